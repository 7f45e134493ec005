"""The one progress helper: tqdm bars and status lines on stderr (silenced with REVIEWSENSE_QUIET=1),
and warnings (always shown)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from tqdm.auto import tqdm

from ._ranks import is_main

T = TypeVar("T")


# Set for one call by the estimators' ``verbose`` and ``n_jobs`` (``settings``); otherwise the
# environment gives the CLI's defaults (REVIEWSENSE_QUIET=1, REVIEWSENSE_THREADS=N).
_verbose: ContextVar[bool | None] = ContextVar("reviewsense_verbose", default=None)
_threads: ContextVar[int | None] = ContextVar("reviewsense_threads", default=None)


def quiet() -> bool:
    """No progress: asked for, or a process other than rank 0 of a ``torchrun`` job (only rank 0 logs)."""
    if not is_main():
        return True
    verbose = _verbose.get()
    if verbose is not None:
        return not verbose
    return os.environ.get("REVIEWSENSE_QUIET", "") not in ("", "0")


def threads() -> int:
    """Threads for the work that uses several: ``n_jobs`` where a caller set it, else
    ``$REVIEWSENSE_THREADS``, else every core."""
    return max(1, _threads.get() or int(os.environ.get("REVIEWSENSE_THREADS") or os.cpu_count() or 1))


@contextmanager
def settings(verbose: bool | None = None, n_jobs: int | None = None) -> Iterator[None]:
    """Within the block: progress shown or not (``verbose``), and this many threads (``n_jobs``;
    -1 or None: the default). Per thread of control (a ContextVar), not process-wide."""
    cores = os.cpu_count() or 1
    jobs = None if n_jobs is None else cores if n_jobs < 0 else n_jobs
    tokens = (_verbose.set(verbose), _threads.set(jobs))
    try:
        yield
    finally:
        _verbose.reset(tokens[0])
        _threads.reset(tokens[1])


def bar(iterable: Iterable[T] | None = None, **kwargs: Any) -> Any:
    """A tqdm bar on stderr; disabled when quiet or when stderr is not a terminal and
    ``always`` is not set (so logs and CI output stay readable)."""
    always = kwargs.pop("always", False)
    disable = quiet() or (not always and not sys.stderr.isatty())
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=disable, file=sys.stderr, **kwargs)


def log(message: str) -> None:
    """A one-line status message on stderr (stdout is kept for results)."""
    if not quiet():
        print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """A warning on stderr as ``reviewsense: warning: …``, the CLI's one form for them.

    Shown even when quiet: ``REVIEWSENSE_QUIET`` silences progress, not what went wrong."""
    print(f"reviewsense: warning: {message}", file=sys.stderr, flush=True)
