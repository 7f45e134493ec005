"""Fits under test for tests/training/test_distributed.py: ``python -m torch.distributed.run
--nproc_per_node 2 tests/training/ddp_fit.py OUT`` runs them on every rank and each rank writes
what it ended with to ``OUT/rank<R>.npz``; the test runs the same fits in one process.

Per kind of module (seed: EmbeddingBag + dense; cnn: a sparse embedding; seed3: three classes;
transformer: a tiny random BERT under the transformer family's head, on token batches by length):
a whole fit, then a fit stopped by rank 1 alone after epoch 2 (every rank must stop at the same
batch; rank 0 writes the checkpoint) and the fit resumed from that checkpoint. The data have
row weights and a last batch of one example (one rank trains on nothing of it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from reviewsense.errors import Interrupted
from reviewsense.training import distributed
from reviewsense.training.checkpoint import Checkpoint, request_stop, stop_on_signals
from reviewsense.training.history import EarlyStopping
from reviewsense.training.torch_loop import Callback, Features, FitOptions, Ragged, Tokens, fit

KINDS = ("seed", "cnn", "seed3", "transformer")


def data(n: int, seed: int, classes: int = 2) -> Ragged:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    lengths = rng.integers(1, 8, n)
    ids = np.concatenate([rng.integers(2, 10, k) + 10 * y for k, y in zip(lengths, labels, strict=True)])
    weights = rng.uniform(0.5, 2.0, n)
    return Ragged(ids.astype(np.int64), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), labels, weights)


def module(kind: str):
    import torch

    from reviewsense.models import cnn, seed

    torch.manual_seed(0)
    if kind == "transformer":
        from transformers import BertConfig, BertModel

        from reviewsense.models import transformer

        encoder = BertModel(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
                                       attention_probs_dropout_prob=0.0))
        return transformer.build_module(encoder, 2, dropout=0.0)
    if kind == "cnn":
        return cnn.build_module(40, 4, cnn.CNNParams(filters=3, widths=[2, 3], dropout=0.0))
    return seed.build_module(40, 4, 3, classes=3 if kind == "seed3" else 2)


def run(kind: str, checkpoint: Checkpoint | None = None, stop_on_rank: int | None = None) -> tuple[dict, dict]:
    """One fit: the weights (name → array) and the history (val_loss, loss, best_epoch…)."""
    from reviewsense.models.cnn import head_tail

    classes = 3 if kind == "seed3" else 2
    train, validation = data(181, 0, classes), data(61, 1, classes)  # 181 = 9 batches of 20 + 1
    if kind == "transformer":  # [CLS] ids [SEP], of different lengths
        train, validation = (Tokens([np.r_[2, d.ids[a:b], 3] for a, b in zip(d.offsets[:-1], d.offsets[1:],
                                                                             strict=True)], d.labels, d.weights)
                             for d in (train, validation))
    if kind == "cnn":
        train, validation = (Features(head_tail(d.ids, d.offsets, 8)[0], d.labels, dtype=np.int64, weights=d.weights)
                             for d in (train, validation))
    net = module(kind)

    class StopAfterTwo(Callback):
        def on_epoch_end(self, loop, epoch, logs):
            if epoch == 2 and int(os.environ.get("RANK", "0")) == stop_on_rank:
                request_stop()

    rate = 0.005 if kind == "transformer" else 0.05  # attention at 0.05 is chaotic: float rounding would grow
    options = FitOptions(epochs=5, batch_size=20, learning_rate=rate, threads=1, checkpoint=checkpoint,
                         accumulation=2 if kind == "transformer" else 1,  # micro-batches: one exchange per batch
                         early_stopping=EarlyStopping(patience=1), callbacks=[StopAfterTwo()], progress=False)
    history = fit(net, train, validation, options)
    weights = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    curves = {k: np.asarray(v, dtype=np.float64) for k, v in history.history.items()}
    return weights, {**curves, "best_epoch": np.asarray(history.best_epoch or 0)}


def stopped_then_resumed(kind: str, folder: Path) -> tuple[dict, dict]:
    """The fit stopped by rank 1 (its checkpoint stays in ``folder``), then resumed."""
    checkpoint = Checkpoint(folder / f"checkpoint-{kind}")
    try:
        with stop_on_signals():
            run(kind, checkpoint, stop_on_rank=1)
    except Interrupted:
        pass
    return run(kind, checkpoint)


def main(out: Path) -> None:
    arrays = {}
    for kind in KINDS:
        for name, found in zip(("whole", "resumed"), (run(kind), stopped_then_resumed(kind, out)), strict=True):
            weights, curves = found
            arrays.update({f"{kind}.{name}.weights.{k}": v for k, v in weights.items()})
            arrays.update({f"{kind}.{name}.curves.{k}": v for k, v in curves.items()})
    np.savez(out / f"rank{os.environ.get('RANK', '0')}.npz", **arrays)
    distributed.cleanup()  # leave the process group before the interpreter's teardown


if __name__ == "__main__":
    main(Path(sys.argv[1]))
