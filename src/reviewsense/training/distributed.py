"""Training on several processes (GPUs, nodes) started by ``torchrun``: DistributedDataParallel.

``torchrun --nproc_per_node N -m reviewsense train ...`` starts N copies of the command; each
reads ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` from its environment. Without them (or with
``WORLD_SIZE=1``) every helper here is a no-op, and nothing imports torch.

What the torch loop (:mod:`.torch_loop`) does with them:

- every rank draws the same global order of the examples (the same seeded generator) and, of
  each global batch of ``batch_size`` examples, trains on its share ``batch[rank::world]``
  (DistributedSampler's split); the module is wrapped in ``DistributedDataParallel``, which
  starts every rank from rank 0's weights and averages the gradients;
- each rank's mean loss is scaled by (its weight / the batch's weight) × world size, so the
  averaged gradient is exactly the gradient of the global batch's (weighted) mean loss: the
  run computes what one process with the same ``batch_size`` computes (up to float rounding).
  A family's own ``loss`` must therefore be a (weighted) mean over the batch, as the default is;
- the validation split is scored in shares too and gathered, so every rank sees the same
  val_loss and takes the same early-stopping decisions;
- a stop asked on any rank (SIGINT/SIGTERM) stops every rank after the same batch; rank 0
  alone writes the checkpoint, every rank reads it on resume.

A module that leaves some parameters unused in its forward pass (a pooler, an unused head)
sets ``module.find_unused_parameters = True``. Embeddings with sparse gradients are averaged
over gloo (NCCL cannot all-reduce sparse tensors); the rest over NCCL on GPUs.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np

from .._ranks import active, is_main, local_rank, rank, world_size
from ..errors import ModelFileError

__all__ = ["active", "agree", "barrier", "batch_sums", "cleanup", "device", "gather", "init", "is_main",
           "local_rank", "main_first", "rank", "session", "shard", "share", "world_size", "wrap"]

# long enough for rank 0 to load the data and pretrain word vectors while the others wait
TIMEOUT = timedelta(minutes=60)
_gloo: list[Any] = []  # the gloo group for sparse gradients on GPUs, made once


def _dist():
    import torch.distributed as dist

    return dist


def initialized() -> bool:
    return active() and _dist().is_initialized()


def init() -> bool:
    """Join the process group (gloo for CPU tensors, and NCCL for CUDA ones where there is a GPU);
    True when this call created it. A no-op without torchrun or when already joined."""
    if not active() or _dist().is_initialized():
        return False
    import torch

    backend = "gloo"
    if torch.cuda.is_available():
        backend = "cpu:gloo,cuda:nccl"
        if local_rank() < torch.cuda.device_count():
            torch.cuda.set_device(local_rank())
    _dist().init_process_group(backend=backend, timeout=TIMEOUT)
    atexit.register(cleanup)  # where no session() leaves it (an estimator's fit from a script)
    return True


def cleanup() -> None:
    """Leave the process group (no-op when not in one). What still refers to it (a wrapped
    network in a reference cycle) is collected first: destroyed after the group, its threads
    would end the process with "terminate called without an active exception"."""
    if initialized():
        import gc

        _gloo.clear()
        gc.collect()
        _dist().destroy_process_group()
    _gloo.clear()


@contextmanager
def session() -> Iterator[None]:
    """Within the block, this process is in the process group; it leaves it at the end if it
    joined here."""
    joined = init()
    try:
        yield
    finally:
        if joined:
            cleanup()


def barrier() -> None:
    """Wait for every rank (through gloo, so it works whatever the device)."""
    if initialized():
        import torch

        _dist().all_reduce(torch.zeros(1))


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (downloads, caches of word vectors), then the others (who find
    the cache when they share its filesystem)."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def device(torch, chosen):
    """The device of this rank: its local GPU (``cuda:LOCAL_RANK``) when the family trains on a GPU."""
    if active() and chosen.type == "cuda":
        return torch.device("cuda", local_rank())
    return chosen


def wrap(torch, module, on):
    """``module`` in DistributedDataParallel (which gives every rank rank 0's weights), or
    ``module`` itself without torchrun."""
    if not active():
        return module
    init()
    from torch.nn.parallel import DistributedDataParallel

    sparse = any(getattr(m, "sparse", False) for m in module.modules()
                 if isinstance(m, torch.nn.Embedding | torch.nn.EmbeddingBag))
    group = None
    if sparse and on.type == "cuda":
        if not _gloo:
            _gloo.append(_dist().new_group(backend="gloo"))
        group = _gloo[0]
    return DistributedDataParallel(module, device_ids=[on] if on.type == "cuda" else None, process_group=group,
                                   find_unused_parameters=bool(getattr(module, "find_unused_parameters", False)))


def shard(index: np.ndarray) -> np.ndarray:
    """This rank's share of ``index``: ``index[rank::world]``."""
    return index[rank()::world_size()] if active() else index


def share(index: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, float, int]:
    """This rank's part of the global batch ``index``, the factor for its mean loss (its share
    of the batch's weight × world size) and how many examples it really has: a rank left
    without any (a last batch smaller than the world) runs the first one with factor 0, so that
    it still takes part in the gradients' all-reduce."""
    if not active():
        return index, 1.0, len(index)
    part = shard(index)
    if len(part) == 0:
        return index[:1], 0.0, 0
    total = float(len(index) if weights is None else weights[index].sum())
    mine = float(len(part) if weights is None else weights[part].sum())
    return part, (mine / total * world_size() if total > 0 else 0.0), len(part)


def batch_sums(loss: float, size: int, correct: int) -> tuple[float, int, bool]:
    """The batch's loss × its ``size`` examples and its correct count, summed over the ranks
    (``loss``: this rank's scaled mean loss, see :func:`share`), and whether a stop was asked
    (on any rank: so that every rank stops after the same batch)."""
    from .checkpoint import stop_requested

    if not initialized():
        return loss * size, correct, stop_requested()
    import torch

    sums = torch.tensor([loss * size / world_size(), float(correct), float(stop_requested())], dtype=torch.float64)
    _dist().all_reduce(sums)
    return float(sums[0]), int(round(float(sums[1]))), bool(sums[2] > 0)


def gather(part: np.ndarray, total: int) -> np.ndarray:
    """The rows that each rank computed for its ``shard(np.arange(total))``, back in order."""
    if not initialized():
        return part
    import torch

    world, size = world_size(), -(-total // world_size())
    padded = np.zeros((size, *part.shape[1:]), dtype=np.float32)
    padded[: len(part)] = part
    mine = torch.from_numpy(padded)
    parts = [torch.empty_like(mine) for _ in range(world)]
    _dist().all_gather(parts, mine)
    out = np.empty((total, *part.shape[1:]), dtype=np.float32)
    for r, values in enumerate(parts):
        out[r::world] = values.numpy()[: len(range(r, total, world))]
    return out


def agree(what: str, *values: int) -> None:
    """Refuse to go on when the ranks disagree on ``values`` (e.g. where they resume: a
    checkpoint that only some ranks see)."""
    if not initialized():
        return
    import torch

    mine = torch.tensor(values, dtype=torch.int64)
    low, high = mine.clone(), mine.clone()
    _dist().all_reduce(low, op=_dist().ReduceOp.MIN)
    _dist().all_reduce(high, op=_dist().ReduceOp.MAX)
    if not torch.equal(low, high):
        raise ModelFileError(f"the {world_size()} processes disagree on {what} ({mine.tolist()} on rank {rank()}): "
                             "every node must see the run folder at the same path")
