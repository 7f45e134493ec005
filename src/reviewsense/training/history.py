"""Training history (Keras-style) and the early-stopping rule."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")  # what the torch loop records each epoch


@dataclass
class History:
    """Per-epoch metrics, as Keras's ``History``: ``history.history`` maps each metric's name to
    a list with one value per epoch. The loop records ``loss``, ``accuracy``, ``val_loss`` and
    ``val_accuracy``; callbacks may add any other (every epoch must give the same names)."""

    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    stopped_epoch: int | None = None

    def append(self, **values: float) -> None:
        if self.history and set(values) != set(self.history):
            raise ValueError(f"an epoch needs the metrics {sorted(self.history)}, got {sorted(values)}")
        for key, value in values.items():
            self.history.setdefault(key, []).append(float(value))

    @property
    def epochs(self) -> int:
        return len(next(iter(self.history.values()), []))

    def to_dict(self) -> dict[str, Any]:
        return {"history": self.history, "epochs": self.epochs, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls({str(k): list(map(float, v)) for k, v in data["history"].items()}, data.get("best_epoch"),
                   data.get("stopped_epoch"))

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("epoch", *self.history))
        for i in range(self.epochs):
            writer.writerow((i + 1, *(f"{values[i]:.6f}" for values in self.history.values())))
        return out.getvalue()


@dataclass
class EarlyStopping:
    """Stop when ``val_loss`` has not improved by ``min_delta`` for ``patience`` epochs;
    the trainer then restores the weights of the best epoch (``restore_best_weights``).

    The torch loop runs it as a callback (reviewsense.training.torch_loop); its state is part
    of a checkpoint, so a resumed run stops where an uninterrupted one would."""

    patience: int = 3
    min_delta: float = 0.0
    restore_best_weights: bool = True
    best: float = math.inf
    best_epoch: int = 0
    wait: int = 0

    def reset(self) -> None:
        """Forget earlier fits: a stopper passed to a second fit starts from scratch (as Keras's does)."""
        self.best, self.best_epoch, self.wait = math.inf, 0, 0

    def update(self, epoch: int, val_loss: float) -> tuple[bool, bool]:
        """Record an epoch (1-based). Returns (improved, should_stop)."""
        if val_loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = val_loss, epoch, 0
            return True, False
        self.wait += 1
        return False, self.wait >= self.patience
