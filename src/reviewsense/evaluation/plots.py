"""The tutorial's two figures: training (dots) vs validation (line), loss and accuracy."""

from __future__ import annotations

from pathlib import Path

from .._fs import atomic_path
from ..training.history import History


def plot_history(history: History, directory: str | Path, title: str = "") -> list[Path]:
    """Write ``loss.png`` and ``accuracy.png`` into ``directory``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    epochs = range(1, history.epochs + 1)
    written = []
    for metric, label in (("loss", "Loss"), ("accuracy", "Accuracy")):
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        ax.plot(epochs, history.history[metric], "bo", markersize=4, label=f"Training {label.lower()}")
        ax.plot(epochs, history.history[f"val_{metric}"], "b", label=f"Validation {label.lower()}")
        if history.best_epoch:
            ax.axvline(history.best_epoch, color="grey", linestyle=":", linewidth=1, label="best epoch (restored)")
        ax.set_title(f"Training and validation {label.lower()}" + (f" — {title}" if title else ""))
        ax.set_xlabel("Epochs")
        ax.set_ylabel(label)
        ax.legend()
        fig.tight_layout()
        target = directory / f"{metric}.png"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        written.append(target)
    return written
