"""The one progress helper: tqdm bars and status lines on stderr (silenced with REVIEWSENSE_QUIET=1),
and warnings (always shown)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def quiet() -> bool:
    return os.environ.get("REVIEWSENSE_QUIET", "") not in ("", "0")


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
