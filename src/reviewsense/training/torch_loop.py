"""The PyTorch training loop every family trained in epochs uses.

``fit(module, train, validation, options)`` trains ``module`` (``module(*inputs)`` returns
logits: one per text for two classes, K for K > 2) and returns a :class:`History`.
The family supplies, in :class:`FitOptions`, what differs between families: the optimizer
(default: Adam, SparseAdam for sparse embeddings), the loss (default: binary or softmax
cross-entropy, weighted by the rows' weights), the learning-rate schedule, and the device
(``auto``: a GPU when there is one). What happens around the steps is callbacks
(:class:`Callback`): early stopping with the best weights restored, the checkpoint written
when a stop is asked (and resumed from), the per-epoch progress line; users add their own
(``on_epoch_end`` may add metrics to the epoch's ``logs``: the History records any).

Inputs are ragged token ids (:class:`Ragged`, for embedding-bag models) or fixed-size rows
(:class:`Features`: cached sentence embeddings, or token ids padded to one length for
convolutions). Seeded and reproducible on CPU: the same seed gives the same weights.

Under ``torchrun`` the loop trains with DistributedDataParallel, each process on its share of
each batch (:mod:`.distributed`): the same computation as one process with the same batch size.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelFileError, require
from ..progress import bar, log
from . import distributed
from .checkpoint import Checkpoint, Interrupted
from .history import EarlyStopping, History


@dataclass
class Ragged:
    """Token ids of many texts concatenated, with offsets, and their labels."""

    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None = None  # each text's weight in the loss (None: all 1)

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
    weights: np.ndarray | None = None  # each row's weight in the loss (None: all 1)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, index: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        return (np.ascontiguousarray(self.rows[index], dtype=self.dtype),), self.labels[index]


class Callback:
    """Hooks around the loop's steps (Keras's ``Callback``); ``loop`` is the running
    :class:`Loop` (its ``module``, ``optimizer``, ``history``, ``epoch``…; set
    ``loop.stop_training = True`` to end after this epoch)."""

    def on_train_begin(self, loop: Loop) -> None: ...

    def on_epoch_begin(self, loop: Loop, epoch: int) -> None: ...

    def on_batch_end(self, loop: Loop, done: int) -> None:
        """After each step; ``done``: the examples of this epoch trained so far."""

    def on_epoch_end(self, loop: Loop, epoch: int, logs: dict[str, float]) -> None:
        """``logs``: this epoch's metrics; add to it to record more in the History."""

    def on_train_end(self, loop: Loop) -> None: ...


Loss = Callable[[Any, Any, Any], Any]  # (logits, labels, weights or None) → a scalar tensor


@dataclass
class FitOptions:
    """How ``fit`` trains. Families build it from their parameters (:meth:`from_params`) and may
    set ``optimizer``, ``loss`` and ``schedule``."""

    epochs: int = 40
    batch_size: int = 512
    learning_rate: float = 1e-3
    seed: int = 0
    early_stopping: EarlyStopping | None = None
    threads: int | None = None
    checkpoint: Checkpoint | None = None  # resume from it if present; write it when asked to stop
    eval_batch_size: int = 4096  # texts per forward pass when scoring the validation split
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    callbacks: list[Callback] = field(default_factory=list)
    optimizer: Callable[[Any, float], Any] | None = None  # (module, learning rate) → optimizer
    loss: Loss | None = None  # default: cross_entropy
    schedule: Callable[[Any, int], Any] | None = None  # (optimizer, total steps) → LR scheduler, stepped per batch
    progress: bool = True  # the per-epoch line and the batch bar
    accumulation: int = 1  # micro-batches per optimizer step (gradient accumulation; same result, less memory)
    precision: str = "fp32"  # fp32 | bf16 (autocast on a GPU that supports it) | auto (bf16 where it can)

    @classmethod
    def from_params(cls, params: Any, **more: Any) -> FitOptions:
        """From a family's Schedule parameters (epochs, batch size, learning rate, early stopping,
        patience, device) and ``more`` (seed, threads, checkpoint, callbacks…)."""
        stopper = EarlyStopping(patience=params.patience) if params.early_stopping else None
        return cls(epochs=params.epochs, batch_size=params.batch_size, learning_rate=params.learning_rate,
                   early_stopping=stopper, device=params.device, **more)


@dataclass
class Tokens:
    """Token ids of each text (a transformer's: special tokens included), padded per batch to its
    longest text (dynamic padding), with the attention mask; batches are bucketed by length."""

    ids: list[np.ndarray]
    labels: np.ndarray
    weights: np.ndarray | None = None
    pad_id: int = 0
    bucket: int = 50  # batches per bucket: texts of similar lengths are batched together within one

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))

    def batch(self, index: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        rows = [self.ids[i] for i in index]
        width = max((len(r) for r in rows), default=1)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, row in enumerate(rows):
            ids[j, : len(row)], mask[j, : len(row)] = row, 1
        return (ids, mask), self.labels[index]

    def epoch_order(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """A shuffled order whose consecutive ``batch_size`` slices hold texts of similar length
        (little padding): shuffle, sort within buckets of ``bucket`` batches, shuffle the batches."""
        order = rng.permutation(len(self))
        lengths = self.lengths
        size = batch_size * self.bucket
        chunks = [chunk[np.argsort(lengths[chunk], kind="stable")] for chunk in
                  (order[i : i + size] for i in range(0, len(order), size))]
        batches = [b for chunk in chunks for b in np.array_split(chunk, range(batch_size, len(chunk), batch_size))]
        return np.concatenate([batches[i] for i in rng.permutation(len(batches))]) if batches else order

    def eval_order(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Texts (of ``rows``: positions in it) by length, for scoring with little padding."""
        return np.argsort(self.lengths if rows is None else self.lengths[rows], kind="stable")


Batches = Ragged | Features | Tokens


def resolve_device(torch, device: str):
    """``auto``: the first GPU when torch sees one, else the CPU; a GPU asked for but absent is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        from ..errors import ConfigError

        raise ConfigError(f"device {device}: torch sees no GPU (torch {torch.__version__}); use --device cpu or auto")
    return torch.device(device)


def cross_entropy(logits, labels, weights=None):
    """Binary cross-entropy of one logit per text, softmax cross-entropy of K; the mean, or the
    weighted mean with ``weights``."""
    import torch

    functional = torch.nn.functional
    if logits.ndim == 1:
        each = functional.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
    else:
        each = functional.cross_entropy(logits, labels.long(), reduction="none")
    if weights is None:
        return each.mean()
    return (each * weights).sum() / weights.sum().clamp_min(1e-12)


def _correct(logits, labels) -> int:
    """How many texts the logits put on the side of their label (soft binary labels count by side)."""
    if logits.ndim == 1:
        return int(((logits.detach() > 0) == (labels > 0.5)).sum())
    return int((logits.detach().argmax(1) == labels.long()).sum())


def _on(torch, device, inputs: tuple[np.ndarray, ...]):
    return tuple(torch.from_numpy(x).to(device, non_blocking=True) for x in inputs)


def _labels(torch, device, labels: np.ndarray, binary: bool):
    return torch.from_numpy(labels.astype(np.float32 if binary else np.int64)).to(device)


def autocast(torch, device, precision: str):
    """bf16 autocast on a GPU for ``precision`` bf16 (or auto, where the GPU supports it); else nothing."""
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    if precision == "auto" and not torch.cuda.is_bf16_supported():
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)


def evaluate_module(module, data: Batches, batch_size: int = 4096, loss: Loss | None = None,
                    precision: str = "fp32") -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy (at logit 0, or of the top class), and the logits (on the CPU, in
    ``data``'s order)."""
    torch = require("torch", "torch", "Neural training")
    out = score_rows(torch, module, data, np.arange(len(data)), batch_size, precision)
    return (*_scores(torch, out, data, loss), out)


def score_rows(torch, module, data: Batches, rows: np.ndarray, batch_size: int, precision: str = "fp32",
               progress: bool = False) -> np.ndarray:
    """The module's logits (on the CPU) for the examples ``rows`` of ``data``, in that order
    (token batches are scored by length: little padding); ``progress``: a bar over long work."""
    device = next(module.parameters()).device
    logits = []
    order = data.eval_order(rows) if isinstance(data, Tokens) else np.arange(len(rows))
    steps = range(0, len(rows), batch_size)
    module.eval()
    with torch.inference_mode(), autocast(torch, device, precision):
        for start in bar(steps, desc="scoring", unit="batch") if progress and len(steps) > 20 else steps:
            inputs, _ = data.batch(rows[order[start : start + batch_size]])
            logits.append(module(*_on(torch, device, inputs)).float().cpu().numpy())
    out = np.concatenate(logits) if logits else np.zeros(0, dtype=np.float32)
    placed = np.empty_like(out)
    placed[order] = out
    return placed


def _scores(torch, out: np.ndarray, data: Batches, loss: Loss | None) -> tuple[float, float]:
    """Mean loss and accuracy of the logits ``out`` of every example of ``data``."""
    scores = torch.from_numpy(out)
    labels = _labels(torch, "cpu", data.labels, out.ndim == 1)
    weights = None if data.weights is None else torch.from_numpy(data.weights.astype(np.float32))
    value = (loss or cross_entropy)(scores, labels, weights)
    return float(value), _correct(scores, labels) / max(len(out), 1)


class Loop:
    """One run of :func:`fit`: what callbacks see and may change."""

    def __init__(self, torch, module, train: Batches, validation: Batches | None, options: FitOptions) -> None:
        self.torch, self.module, self.train, self.validation, self.options = torch, module, train, validation, options
        self.device = distributed.device(torch, resolve_device(torch, options.device))
        module.to(self.device)
        self.network = distributed.wrap(torch, module, self.device)  # DistributedDataParallel under torchrun
        self.rng = np.random.default_rng(options.seed)
        self.optimizer = (options.optimizer or (lambda m, lr: SparseAwareAdam(torch, m, lr)))(module,
                                                                                              options.learning_rate)
        steps = options.epochs * -(-len(train) // options.batch_size)
        self.scheduler = options.schedule(self.optimizer, steps) if options.schedule else None
        self.loss = options.loss or cross_entropy
        self.history = History()
        self.best_state: dict | None = None
        self.first_epoch, self.position, self.totals = 1, 0, (0.0, 0)
        self.order: np.ndarray | None = None  # this epoch's order of the training examples
        self.epoch = 0
        self.texts_per_second = 0.0  # the last epoch's training speed
        self.stop_training = False
        self.stop_asked = False  # a stop asked (on any rank under torchrun) by the end of this batch
        stopper = options.early_stopping
        builtin: list[Callback] = [ProgressLine()] if options.progress else []
        if stopper is not None:
            builtin.append(EarlyStoppingCallback(stopper))
        builtin.append(Checkpointing(options.checkpoint))  # without one, a stop request still ends the run
        self.callbacks: list[Callback] = [*options.callbacks, *builtin]

    def state_dict_cpu(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    def run(self) -> History:
        torch, options = self.torch, self.options
        if self.device.type == "cuda":
            log(f"training on {torch.cuda.get_device_name(self.device)}")
        for callback in self.callbacks:
            callback.on_train_begin(self)
        for epoch in range(self.first_epoch, options.epochs + 1):
            self.epoch = epoch
            self._epoch(epoch)
            if self.stop_training:
                break
        for callback in self.callbacks:
            callback.on_train_end(self)
        self.module.eval()
        self.module.to(torch.device("cpu"))  # the family reads its weights from here
        return self.history

    def _epoch(self, epoch: int) -> None:
        options, train = self.options, self.train
        started = time.perf_counter()
        for callback in self.callbacks:
            callback.on_epoch_begin(self, epoch)
        self.network.train()
        if self.order is None:  # a fresh epoch (a resumed one continues its own order)
            order = train.epoch_order(self.rng, options.batch_size) if isinstance(train, Tokens) else \
                self.rng.permutation(len(train))
            self.order, self.position, self.totals = order, 0, (0.0, 0)
        total_loss, total_correct = self.totals
        first = self.position
        batches = range(self.position, len(self.order), options.batch_size)
        if options.progress:
            batches = bar(batches, desc=f"epoch {epoch}/{options.epochs}", unit="text",
                          unit_scale=options.batch_size)
        for start in batches:
            batch = self.order[start : start + options.batch_size]
            index, scale, mine = distributed.share(batch, train.weights)  # the whole batch without torchrun
            self.optimizer.zero_grad(set_to_none=True)
            loss, correct = self._step(index, scale)
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            batch_loss, batch_correct, self.stop_asked = distributed.batch_sums(
                loss * scale, len(batch), correct if mine else 0)
            total_loss += batch_loss
            total_correct += batch_correct
            self.totals = (total_loss, total_correct)
            done = min(start + options.batch_size, len(self.order))
            for callback in self.callbacks:
                callback.on_batch_end(self, done)
        self.order = None
        trained = time.perf_counter()
        val_loss, val_accuracy = self._validate()
        logs = {"loss": total_loss / len(train), "accuracy": total_correct / len(train),
                "val_loss": val_loss, "val_accuracy": val_accuracy, "seconds": time.perf_counter() - started}
        self.texts_per_second = (len(train) - first) / max(trained - started, 1e-9)
        for callback in self.callbacks:
            callback.on_epoch_end(self, epoch, logs)
        logs.pop("seconds")
        self.history.append(**logs)

    def _step(self, index: np.ndarray, scale: float = 1.0) -> tuple[float, int]:
        """Forward and backward passes over this rank's rows ``index`` of a batch (``accumulation``
        micro-batches, each loss weighted by its share of the rows, so the gradient is theirs;
        ``scale``: this rank's factor under torchrun); their mean loss and how many they got right."""
        torch, train = self.torch, self.train
        weights = np.ones(len(index), np.float32) if train.weights is None else train.weights[index].astype(np.float32)
        total = max(float(weights.sum()), 1e-12)
        batch_loss, correct = 0.0, 0
        parts = np.array_split(np.arange(len(index)), min(self.options.accumulation, len(index)))
        for i, part in enumerate(parts):
            inputs, labels = train.batch(index[part])
            # under torchrun the gradients are exchanged once per batch, after its last micro-batch
            exchange = i == len(parts) - 1 or not hasattr(self.network, "no_sync")
            with contextlib.nullcontext() if exchange else self.network.no_sync():
                with autocast(torch, self.device, self.options.precision):
                    logits = self.network(*_on(torch, self.device, inputs))
                logits = logits.float()
                y = _labels(torch, self.device, labels, logits.ndim == 1)
                w = None if train.weights is None else torch.from_numpy(weights[part]).to(self.device)
                loss = self.loss(logits, y, w) * (float(weights[part].sum()) / total)
                (loss * scale if scale != 1 else loss).backward()
            batch_loss += float(loss.detach())
            correct += _correct(logits, y)
        return batch_loss, correct

    def _validate(self) -> tuple[float, float]:
        """val_loss and val_accuracy (NaN without a validation split); under torchrun each rank
        scores its share and every rank gets the same figures."""
        data = self.validation
        if data is None:
            return float("nan"), float("nan")
        rows = distributed.shard(np.arange(len(data)))
        logits = score_rows(self.torch, self.module, data, rows, self.options.eval_batch_size, self.options.precision)
        return _scores(self.torch, distributed.gather(logits, len(data)), data, self.loss)


def fit(module, train: Batches, validation: Batches | None, options: FitOptions) -> History:
    """Train ``module`` on ``train``; return the History (see the module's docstring).

    With early stopping, the best epoch's weights (lowest val_loss) are restored at the end.
    Without ``validation`` (a final fit on all the data) val_loss and val_accuracy are NaN.
    A stop request ends the loop after the current batch: with a checkpoint it is written
    first, without one the caller starts over on resume. The module is back on the CPU at the end."""
    torch = require("torch", "torch", "Neural training")
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    return Loop(torch, module, train, validation, options).run()


class ProgressLine(Callback):
    """Keras's line per epoch on stderr: time, loss, accuracy, val_loss, val_accuracy (and any added metric)."""

    def on_epoch_end(self, loop: Loop, epoch: int, logs: dict[str, float]) -> None:
        shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()
                           if k != "seconds" and not (k.startswith("val_") and loop.validation is None))
        speed = loop.texts_per_second
        log(f"Epoch {epoch}/{loop.options.epochs} - {logs['seconds']:.1f}s ({speed:,.{0 if speed >= 100 else 1}f} "
            f"texts/s) - {shown}")


class EarlyStoppingCallback(Callback):
    """Runs an :class:`EarlyStopping` rule on ``val_loss`` and restores the best epoch's weights."""

    def __init__(self, stopper: EarlyStopping) -> None:
        self.stopper = stopper

    def on_train_begin(self, loop: Loop) -> None:
        if loop.first_epoch == 1:
            self.stopper.reset()  # a resumed run restored its state

    def on_epoch_end(self, loop: Loop, epoch: int, logs: dict[str, float]) -> None:
        stopper = self.stopper
        improved, stop = stopper.update(epoch, logs["val_loss"])
        if improved and stopper.restore_best_weights:
            loop.best_state = loop.state_dict_cpu()
        if stop:
            loop.stop_training = True
            loop.history.stopped_epoch = epoch
            log(f"early stopping: val_loss has not improved for {stopper.patience} epochs "
                f"(best {stopper.best:.4f} at epoch {stopper.best_epoch})")

    def on_train_end(self, loop: Loop) -> None:
        loop.history.best_epoch = self.stopper.best_epoch
        if loop.best_state is not None and self.stopper.restore_best_weights:
            loop.module.load_state_dict(loop.best_state)


class Checkpointing(Callback):
    """Resumes from ``checkpoint`` when it holds a loop's state; when a stop is asked (Ctrl+C,
    SIGTERM) it writes everything the loop needs to continue exactly there, then ends the run
    with :class:`Interrupted` (without a checkpoint: just ends it)."""

    def __init__(self, checkpoint: Checkpoint | None) -> None:
        self.checkpoint = checkpoint

    def on_train_begin(self, loop: Loop) -> None:
        checkpoint = self.checkpoint
        if checkpoint is not None and checkpoint.exists():
            tensors, state = checkpoint.load()
            if "epoch" in state:  # else it marks a run stopped before this loop began: start afresh
                _restore(loop, tensors, state)
                log(f"resuming at epoch {loop.first_epoch}, example {loop.position:,} of {len(loop.train):,}")
        distributed.agree("where to resume (epoch, example)", loop.first_epoch, loop.position)

    def on_batch_end(self, loop: Loop, done: int) -> None:
        if not loop.stop_asked:
            return
        where = f"interrupted in epoch {loop.epoch} ({done:,} of {len(loop.train):,} examples)"
        if self.checkpoint is None:
            raise Interrupted(where)
        if distributed.is_main():  # rank 0 alone writes; the others wait for it
            _save(loop, self.checkpoint, {"epoch": loop.epoch, "position": done, "totals": list(loop.totals)})
        distributed.barrier()
        raise Interrupted(f"{where}: checkpoint written to {self.checkpoint.path}")


def _stopper(loop: Loop) -> EarlyStopping | None:
    return loop.options.early_stopping


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


def _save(loop: Loop, checkpoint: Checkpoint, progress: dict) -> None:
    """Everything the loop needs to continue exactly where it stopped."""
    from dataclasses import asdict

    torch, optimizer, stopper = loop.torch, loop.optimizer, _stopper(loop)
    tensors = {f"module.{k}": v.numpy() for k, v in loop.state_dict_cpu().items()}
    if loop.best_state is not None:
        tensors.update({f"best.{k}": v.numpy() for k, v in loop.best_state.items()})
    moments: dict[str, dict[str, list[int] | None]] = {}
    for index, values in optimizer.state_dict()["state"].items():
        for name, value in values.items():
            number = not isinstance(value, torch.Tensor)  # SparseAdam counts its steps in a plain int
            tensors[f"optim.{index}.{name}"] = np.asarray([value]) if number else \
                value.detach().cpu().numpy().reshape(-1)
            moments.setdefault(str(index), {})[name] = None if number else list(value.shape)
    tensors["torch_rng"] = torch.get_rng_state().numpy()
    tensors["order"] = loop.order
    if loop.scheduler is not None:
        progress = {**progress, "scheduler": loop.scheduler.state_dict()}
    state = {**progress, "numpy_rng": loop.rng.bit_generator.state, "history": loop.history.to_dict(),
             "early_stopping": asdict(stopper) if stopper is not None else None,
             "optimizer": {"param_groups": optimizer.state_dict()["param_groups"], "shapes": moments}}
    checkpoint.save(tensors, state)


def _restore(loop: Loop, tensors: dict[str, np.ndarray], state: dict) -> None:
    try:
        _restore_state(loop, tensors, state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"the checkpoint does not fit this run ({str(exc).splitlines()[0]}); delete it to "
                             "start over") from exc


def _restore_state(loop: Loop, tensors: dict[str, np.ndarray], state: dict) -> None:
    torch, stopper = loop.torch, _stopper(loop)
    loop.module.load_state_dict({k.removeprefix("module."): torch.from_numpy(v) for k, v in tensors.items()
                                 if k.startswith("module.")})
    best = {k.removeprefix("best."): torch.from_numpy(v) for k, v in tensors.items() if k.startswith("best.")}
    moments = {int(i): {name: tensors[f"optim.{i}.{name}"][0].item() if shape is None
                        else torch.from_numpy(tensors[f"optim.{i}.{name}"]).reshape(shape)
                        for name, shape in values.items()}
               for i, values in state["optimizer"]["shapes"].items()}
    loop.optimizer.load_state_dict({"state": moments, "param_groups": state["optimizer"]["param_groups"]})
    if loop.scheduler is not None and "scheduler" in state:
        loop.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(torch.from_numpy(tensors["torch_rng"]))
    loop.rng.bit_generator.state = state["numpy_rng"]
    if stopper is not None and state["early_stopping"]:
        for key, value in state["early_stopping"].items():
            setattr(stopper, key, value)
    total_loss, total_correct = state["totals"]
    loop.first_epoch, loop.position, loop.order = int(state["epoch"]), int(state["position"]), tensors["order"]
    loop.totals = (float(total_loss), int(total_correct))
    loop.history, loop.best_state = History.from_dict(state["history"]), best or None
