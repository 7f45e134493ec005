"""Interruptible training: SIGINT/SIGTERM → checkpoint → ``reviewsense train --resume RUN``.

While :func:`stop_on_signals` is active, the first SIGINT (Ctrl+C) or SIGTERM only *asks*
training to stop; the training loop notices after the current batch, writes a checkpoint
and raises :class:`Interrupted`. A second Ctrl+C stops at once, without a checkpoint.

A checkpoint is a folder (``RUN/checkpoint``) of two files, written atomically:
``state.json`` (epoch, position in the epoch, the shuffling order's RNG state, history,
early-stopping state, optimizer settings) and ``tensors.safetensors`` (weights, optimizer
moments, best weights so far, torch's RNG state). No pickle: reading it cannot run code.
Resuming restores every piece, so the resumed run is the same computation as an
uninterrupted one: same seed, same final weights and metrics.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .._fs import atomic_dir
from ..errors import Interrupted, ModelFileError

FORMAT = "reviewsense-checkpoint"
FORMAT_VERSION = 1
STATE, TENSORS = "state.json", "tensors.safetensors"

_stop = threading.Event()


__all__ = ["Checkpoint", "Interrupted", "check_stop", "request_stop", "stop_on_signals", "stop_requested"]


def stop_requested() -> bool:
    return _stop.is_set()


def check_stop(where: str) -> None:
    """For training without epochs (closed-form fits): stop between stages when asked.
    Such fits are deterministic, so resuming simply runs them again."""
    if _stop.is_set():
        raise Interrupted(f"interrupted {where}")


def request_stop() -> None:
    """What the signal handlers do; callable directly (e.g. from a GUI or a test)."""
    _stop.set()


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into a stop request for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _stop.clear()

    def handler(signum, _frame):
        if _stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl+C: stop now
        _stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _stop.clear()


class Checkpoint:
    """A training checkpoint folder: ``save(tensors, state)``, ``load()``, ``clear()``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def exists(self) -> bool:
        return (self.path / STATE).is_file()

    def save(self, tensors: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        from safetensors.numpy import save_file

        with atomic_dir(self.path) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp / TENSORS))
            (tmp / STATE).write_text(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **state}),
                                     encoding="utf-8")

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from safetensors.numpy import load_file

        try:
            state = json.loads((self.path / STATE).read_text(encoding="utf-8"))
            tensors = load_file(str(self.path / TENSORS)) if (self.path / TENSORS).is_file() else {}
        except Exception as exc:  # json, OS and safetensors errors alike: the file is unusable
            raise ModelFileError(f"{self.path}: unreadable checkpoint ({str(exc).splitlines()[0]})") from exc
        if not isinstance(state, dict) or state.get("format") != FORMAT or \
                state.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"{self.path}: not a reviewsense checkpoint of format version {FORMAT_VERSION}")
        return tensors, state

    def clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
