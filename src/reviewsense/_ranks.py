"""Which process of a ``torchrun`` job this is, from the variables torchrun sets (``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``): one process, rank 0 of 1, without them. No imports, so that logging
(:mod:`reviewsense.progress`, only rank 0 logs) and the training (:mod:`reviewsense.training.distributed`)
both read it."""

from __future__ import annotations

import os


def world_size() -> int:
    """The number of processes training together (1 without torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def active() -> bool:
    """Whether this process is one of several started by torchrun."""
    return world_size() > 1


def rank() -> int:
    return int(os.environ.get("RANK", "0")) if active() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if active() else 0


def is_main() -> bool:
    """Rank 0, the one that logs and writes (True without torchrun)."""
    return rank() == 0
