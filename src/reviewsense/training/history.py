"""Training history (Keras-style) and the early-stopping rule."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class History:
    """Per-epoch metrics: ``history.history`` is a dict with exactly the keys ``loss``,
    ``accuracy``, ``val_loss`` and ``val_accuracy``, each a list with one value per epoch."""

    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KEYS})
    best_epoch: int | None = None
    stopped_epoch: int | None = None

    def append(self, **values: float) -> None:
        if set(values) != set(KEYS):
            raise ValueError(f"an epoch needs exactly {KEYS}, got {sorted(values)}")
        for key in KEYS:
            self.history[key].append(float(values[key]))

    @property
    def epochs(self) -> int:
        return len(self.history["loss"])

    def to_dict(self) -> dict[str, Any]:
        return {"history": self.history, "epochs": self.epochs, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls({k: list(map(float, data["history"][k])) for k in KEYS}, data.get("best_epoch"),
                   data.get("stopped_epoch"))

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("epoch", *KEYS))
        for i in range(self.epochs):
            writer.writerow((i + 1, *(f"{self.history[k][i]:.6f}" for k in KEYS)))
        return out.getvalue()


@dataclass
class EarlyStopping:
    """Stop when ``val_loss`` has not improved by ``min_delta`` for ``patience`` epochs;
    the trainer then restores the weights of the best epoch (``restore_best_weights``)."""

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
