"""The tutorial's two figures: training (dots) vs validation (line), loss and accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
        written.append(_save(fig, directory / f"{metric}.png"))
    return written


def plot_reliability(labels, logits, path: str | Path, title: str = "") -> Path:
    """Reliability diagram, per bin of 15. Logits of shape ``(n,)`` (two classes): observed
    positive rate against predicted probability of positive. ``(n, K)`` (softmax logits):
    top-label, the share of right top predictions against their probability (confidence)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy.special import expit, softmax

    from .metrics import expected_calibration_error, reliability

    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 2:
        p = softmax(z, axis=1)
        probabilities = p.max(axis=1)
        labels = (p.argmax(axis=1) == np.asarray(labels)).astype(np.int64)
        axes = ("Confidence (probability of the top class)", "Accuracy (share of top classes right)")
    else:
        probabilities = expit(z)
        axes = ("Predicted probability of positive", "Observed share of positives")
    table = reliability(labels, probabilities)
    ece = expected_calibration_error(labels, probabilities)
    count = np.asarray(table["count"])
    shown = count > 0
    fig, ax = plt.subplots(figsize=(5.2, 5.2), dpi=100)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    ax.plot(np.asarray(table["mean_probability"])[shown], np.asarray(table["observed_rate"])[shown], "o-",
            label=f"model ({'top-label ' if z.ndim == 2 else ''}ECE {ece:.3f})")
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title("Reliability" + (f" — {title}" if title else ""))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_confusion(metrics: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """The confusion matrix of a metrics dict (:func:`~reviewsense.evaluation.metrics.evaluate`)
    as a heat map: a row per true class, a column per predicted class, each cell shaded by its
    share of the row (the diagonal is each class's recall) and labelled with its count and share
    (up to 20 classes; more are shaded only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [name if len(name) <= 18 else name[:17] + "…" for name in map(str, metrics["per_class"])]
    counts = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(names)
    side = min(4.5 + 0.45 * k, 16)
    fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=100)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if k <= 20:
        for (i, j), count in np.ndenumerate(counts):
            ax.text(j, i, f"{count:,}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=9 if k <= 8 else 7,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title("Confusion matrix" + (f" — {title}" if title else "") + f" ({int(counts.sum()):,} texts)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Lay out, write as PNG (atomically) and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def plot_by_length(results: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Accuracy and ECE against mean span length (log scale), one line per result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100)
    for name, result in results.items():
        rows = sorted(result["buckets"].values(), key=lambda r: r["mean_words"])
        x = [max(r["mean_words"], 1) for r in rows]
        left.plot(x, [r["accuracy"] for r in rows], "o-", label=name)
        right.plot(x, [r["ece"] for r in rows], "o-", label=name)
    for ax, label in ((left, "Accuracy (span labels are noisy)"), (right, "Expected calibration error")):
        ax.set_xscale("log")
        ax.set_xlabel("Words per text (mean of the bucket)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    right.axhline(0.05, color="grey", linestyle=":", linewidth=1)
    left.legend(loc="lower right")
    fig.suptitle("By text length" + (f" — {title}" if title else ""))
    return _save(fig, path)
