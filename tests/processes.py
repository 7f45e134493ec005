"""Helpers for tests that start server processes."""

from __future__ import annotations

import os


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` (a server and its workers) is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
