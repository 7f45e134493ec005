"""The PyTorch training loop for classifiers: one logit per text for two classes (binary
cross-entropy), K logits for K > 2 classes (softmax cross-entropy).

Inputs are either ragged token ids (:class:`Ragged`, for embedding-bag models) or fixed-size
rows (:class:`Features`: cached sentence embeddings, or token ids padded to one length for
convolutions); ``module(*inputs)`` returns the logits.

Seeded and reproducible on CPU: the same seed gives the same weights and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ModelFileError, require
from ..progress import bar, log
from .checkpoint import Checkpoint, Interrupted, stop_requested
from .history import EarlyStopping, History


@dataclass
class Ragged:
    """Token ids of many texts concatenated, with offsets, and their labels."""

    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def batch(self, index: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        starts, ends = self.offsets[index], self.offsets[index + 1]
        lengths = ends - starts
        pieces = [self.ids[s:e] for s, e in zip(starts, ends, strict=True)]
        flat = np.concatenate(pieces) if pieces else self.ids[:0]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return (flat.astype(np.int64), offsets), self.labels[index]


@dataclass
class Features:
    """One fixed-size row per text (float features, or padded token ids with ``dtype=np.int64``),
    and the labels."""

    rows: np.ndarray
    labels: np.ndarray
    dtype: type = np.float32

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, index: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        return (np.ascontiguousarray(self.rows[index], dtype=self.dtype),), self.labels[index]


@dataclass
class FitOptions:
    epochs: int = 40
    batch_size: int = 512
    learning_rate: float = 1e-3
    seed: int = 0
    early_stopping: EarlyStopping | None = None
    threads: int | None = None
    checkpoint: Checkpoint | None = None  # resume from it if present; write it when asked to stop
    eval_batch_size: int = 4096  # texts per forward pass when scoring the validation split


Batches = Ragged | Features


def _tensors(torch, inputs: tuple[np.ndarray, ...]):
    return tuple(torch.from_numpy(x) for x in inputs)


def _loss_and_correct(torch, logits, labels: np.ndarray):
    """The mean cross-entropy (binary for one logit per text, softmax for K) and how many texts
    the logits put on the side of their label (soft binary labels count by side)."""
    functional = torch.nn.functional
    if logits.ndim == 1:
        y = torch.from_numpy(labels.astype(np.float32))
        return (functional.binary_cross_entropy_with_logits(logits, y),
                int(((logits.detach() > 0) == (y > 0.5)).sum()))
    y = torch.from_numpy(labels.astype(np.int64))
    return functional.cross_entropy(logits, y), int((logits.detach().argmax(1) == y).sum())


def evaluate_module(module, data: Batches, batch_size: int = 4096) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy (at logit 0, or of the top class), and the logits."""
    torch = require("torch", "torch", "Neural training")
    logits = []
    module.eval()
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            inputs, _ = data.batch(np.arange(start, min(start + batch_size, len(data))))
            logits.append(module(*_tensors(torch, inputs)).numpy())
    out = np.concatenate(logits) if logits else np.zeros(0, dtype=np.float32)
    loss, correct = _loss_and_correct(torch, torch.from_numpy(out), data.labels)
    return float(loss), correct / max(len(out), 1), out


def fit(module, train: Batches, validation: Batches | None, options: FitOptions,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> History:
    """Train ``module`` with Adam on the cross-entropy of its logits; return the History.

    With early stopping, the best epoch's weights (lowest val_loss) are restored at the end.
    Without ``validation`` (a final fit on all the data) val_loss and val_accuracy are NaN.
    A stop request ends the loop after the current batch: with a checkpoint it is written
    first, without one the caller starts over on resume."""
    torch = require("torch", "torch", "Neural training")
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    optimizer = SparseAwareAdam(torch, module, options.learning_rate)
    history = History()
    stopper = options.early_stopping
    if stopper is not None:
        stopper.reset()  # a resumed run restores its state below
    best_state = None
    first_epoch, position, order, totals = 1, 0, None, (0.0, 0)
    checkpoint = options.checkpoint
    if checkpoint is not None and checkpoint.exists():
        tensors, state = checkpoint.load()
        if "epoch" in state:  # else it marks a run stopped before this loop began: start afresh
            first_epoch, position, order, totals, history, best_state = _restore(
                torch, tensors, state, module, optimizer, rng, stopper)
            log(f"resuming at epoch {first_epoch}, example {position:,} of {len(train):,}")
    for epoch in range(first_epoch, options.epochs + 1):
        started = time.perf_counter()
        module.train()
        if order is None:  # a fresh epoch (a resumed one continues its own order)
            order, position, totals = rng.permutation(len(train)), 0, (0.0, 0)
        total_loss, total_correct = totals
        batches = range(position, len(order), options.batch_size)
        for start in bar(batches, desc=f"epoch {epoch}/{options.epochs}", unit="batch"):
            inputs, labels = train.batch(order[start : start + options.batch_size])
            optimizer.zero_grad(set_to_none=True)
            logits = module(*_tensors(torch, inputs))
            loss, correct = _loss_and_correct(torch, logits, labels)
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * len(labels)
            total_correct += correct
            if stop_requested():
                done = min(start + options.batch_size, len(order))
                where = f"interrupted in epoch {epoch} ({done:,} of {len(order):,} examples)"
                if checkpoint is None:
                    raise Interrupted(where)
                _save(torch, checkpoint, module, optimizer, rng, stopper, history, best_state,
                      {"epoch": epoch, "position": done, "totals": [total_loss, total_correct]}, order)
                raise Interrupted(f"{where}: checkpoint written to {checkpoint.path}")
        order = None
        val_loss, val_accuracy = (evaluate_module(module, validation, options.eval_batch_size)[:2]
                                  if validation is not None else (float("nan"), float("nan")))
        values = {"loss": total_loss / len(train), "accuracy": total_correct / len(train),
                  "val_loss": val_loss, "val_accuracy": val_accuracy}
        history.append(**values)
        scores = "" if validation is None else f" - val_loss: {val_loss:.4f} - val_accuracy: {val_accuracy:.4f}"
        log(f"Epoch {epoch}/{options.epochs} - {time.perf_counter() - started:.1f}s - loss: {values['loss']:.4f}"
            f" - accuracy: {values['accuracy']:.4f}{scores}")
        if on_epoch:
            on_epoch(epoch, values)
        if stopper is not None:
            improved, stop = stopper.update(epoch, val_loss)
            if improved and stopper.restore_best_weights:
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            if stop:
                history.stopped_epoch = epoch
                log(f"early stopping: val_loss has not improved for {stopper.patience} epochs "
                    f"(best {stopper.best:.4f} at epoch {stopper.best_epoch})")
                break
    if stopper is not None:
        history.best_epoch = stopper.best_epoch
        if best_state is not None and stopper.restore_best_weights:
            module.load_state_dict(best_state)
    module.eval()
    return history


class SparseAwareAdam:
    """Adam for the dense parameters and SparseAdam for embeddings with sparse gradients
    (``nn.Embedding(sparse=True)``: a step touches only the rows of the batch's words), with
    one ``state_dict`` in the format of a single Adam (identical to it when nothing is sparse)."""

    def __init__(self, torch, module, learning_rate: float) -> None:
        sparse = [m.weight for m in module.modules() if isinstance(m, torch.nn.Embedding) and m.sparse]
        dense = [p for p in module.parameters() if all(p is not q for q in sparse)]
        self.parts = [torch.optim.Adam(dense, lr=learning_rate)] if dense else []
        if sparse:
            self.parts.append(torch.optim.SparseAdam(sparse, lr=learning_rate))

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def state_dict(self) -> dict:
        state, groups, offset = {}, [], 0
        for part in self.parts:
            own = part.state_dict()
            state.update({index + offset: values for index, values in own["state"].items()})
            for group in own["param_groups"]:
                groups.append({**group, "params": [index + offset for index in group["params"]]})
            offset += sum(len(group["params"]) for group in own["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict) -> None:
        groups = list(saved["param_groups"])
        if len(groups) != len(self.parts):
            raise ValueError(f"the checkpoint has {len(groups)} optimizer groups, this model {len(self.parts)}")
        for part, group in zip(self.parts, groups, strict=True):
            mine = {int(i) for i in group["params"]}
            offset = min(mine, default=0)
            indices = [int(i) - offset for i in group["params"]]
            state = {int(i) - offset: v for i, v in saved["state"].items() if int(i) in mine}
            part.load_state_dict({"state": state, "param_groups": [{**group, "params": indices}]})


def _save(torch, checkpoint: Checkpoint, module, optimizer, rng, stopper, history: History, best_state,
          progress: dict, order: np.ndarray) -> None:
    """Everything the loop needs to continue exactly where it stopped."""
    from dataclasses import asdict

    tensors = {f"module.{k}": v.detach().numpy() for k, v in module.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v.numpy() for k, v in best_state.items()})
    moments: dict[str, dict[str, list[int] | None]] = {}
    for index, values in optimizer.state_dict()["state"].items():
        for name, value in values.items():
            number = not isinstance(value, torch.Tensor)  # SparseAdam counts its steps in a plain int
            tensors[f"optim.{index}.{name}"] = np.asarray([value]) if number else value.detach().numpy().reshape(-1)
            moments.setdefault(str(index), {})[name] = None if number else list(value.shape)
    tensors["torch_rng"] = torch.get_rng_state().numpy()
    tensors["order"] = order
    state = {**progress, "numpy_rng": rng.bit_generator.state, "history": history.to_dict(),
             "early_stopping": asdict(stopper) if stopper is not None else None,
             "optimizer": {"param_groups": optimizer.state_dict()["param_groups"], "shapes": moments}}
    checkpoint.save(tensors, state)


def _restore(torch, tensors: dict[str, np.ndarray], state: dict, module, optimizer, rng, stopper):
    try:
        return _restore_state(torch, tensors, state, module, optimizer, rng, stopper)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"the checkpoint does not fit this run ({str(exc).splitlines()[0]}); delete it to "
                             "start over") from exc


def _restore_state(torch, tensors: dict[str, np.ndarray], state: dict, module, optimizer, rng, stopper):
    module.load_state_dict({k.removeprefix("module."): torch.from_numpy(v) for k, v in tensors.items()
                            if k.startswith("module.")})
    best = {k.removeprefix("best."): torch.from_numpy(v) for k, v in tensors.items() if k.startswith("best.")}
    moments = {int(i): {name: tensors[f"optim.{i}.{name}"][0].item() if shape is None
                        else torch.from_numpy(tensors[f"optim.{i}.{name}"]).reshape(shape)
                        for name, shape in values.items()}
               for i, values in state["optimizer"]["shapes"].items()}
    optimizer.load_state_dict({"state": moments, "param_groups": state["optimizer"]["param_groups"]})
    torch.set_rng_state(torch.from_numpy(tensors["torch_rng"]))
    rng.bit_generator.state = state["numpy_rng"]
    if stopper is not None and state["early_stopping"]:
        for key, value in state["early_stopping"].items():
            setattr(stopper, key, value)
    total_loss, total_correct = state["totals"]
    return (int(state["epoch"]), int(state["position"]), tensors["order"], (float(total_loss), int(total_correct)),
            History.from_dict(state["history"]), best or None)
