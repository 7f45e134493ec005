"""Test metrics: the tutorial's loss and accuracy, and what a practitioner checks next."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit, log_expit

from ..data.dataset import Dataset
from ..models.base import Predictor


def reliability(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> dict[str, list]:
    """Per equal-width probability bin: count, mean predicted probability, observed rate."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=p, minlength=bins) / count
        observed = np.bincount(which, weights=y, minlength=bins) / count
    return {"count": count.tolist(), "mean_probability": confidence.tolist(), "observed_rate": observed.tolist()}


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float:
    """ECE: the count-weighted mean gap between predicted probability and observed positive
    rate over equal-width bins (0 = perfectly calibrated)."""
    table = reliability(labels, probabilities, bins)
    count = np.asarray(table["count"], dtype=np.float64)
    gaps = np.abs(np.nan_to_num(np.asarray(table["mean_probability"]) - np.asarray(table["observed_rate"])))
    return float((count * gaps).sum() / max(count.sum(), 1))


def binary_metrics(labels: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    """Loss (binary cross-entropy from logits), accuracy at logit 0, precision, recall, F1,
    ROC-AUC, expected calibration error (15 bins) and the confusion matrix ``[[tn, fp], [fn, tp]]``."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    y = np.asarray(labels).astype(np.int64)
    z = np.asarray(logits, dtype=np.float64)
    loss = float(-(y * log_expit(z) + (1 - y) * log_expit(-z)).mean())
    pred = (z > 0).astype(np.int64)
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    out: dict[str, Any] = {
        "loss": round(loss, 6),
        "accuracy": round(float((pred == y).mean()), 6),
        "precision": round(float(precision), 6),
        "recall": round(float(recall), 6),
        "f1": round(float(f1), 6),
        "roc_auc": round(float(roc_auc_score(y, z)), 6) if len(set(y.tolist())) == 2 else None,
        "ece": round(expected_calibration_error(y, expit(z)), 6),
        "confusion_matrix": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "count": int(len(y)),
    }
    return out


def evaluate(predictor: Predictor, data: Dataset, reliability_plot: str | None = None) -> dict[str, Any]:
    """Score ``data`` with the predictor (raw strings, exactly as an export would); optionally
    draw the reliability diagram to ``reliability_plot``."""
    if not data.labelled:
        raise ValueError(f"{data.name}: evaluation needs labelled data")
    logits = predictor.predict_logits(data.texts)
    if reliability_plot:
        from .plots import plot_reliability

        plot_reliability(data.labels, logits, reliability_plot, title=predictor.family)
    return binary_metrics(data.labels, logits)


def probabilities(logits: np.ndarray) -> np.ndarray:
    return expit(np.asarray(logits, dtype=np.float64))
