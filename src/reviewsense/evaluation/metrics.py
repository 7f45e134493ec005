"""Test metrics: the tutorial's loss and accuracy, and what a practitioner checks next."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit, log_expit

from ..data.dataset import Dataset
from ..errors import ConfigError, DataError
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


def binary_metrics(labels: np.ndarray, logits: np.ndarray,
                   class_names: Sequence[str] = ("negative", "positive")) -> dict[str, Any]:
    """Loss (binary cross-entropy from logits), accuracy at logit 0, precision, recall, F1
    (of the positive class), ROC-AUC, expected calibration error (15 bins), the confusion
    matrix ``[[tn, fp], [fn, tp]]`` and the share predicted positive.

    With one class only in ``labels``, what that cannot define is None (ROC-AUC always;
    recall and F1 without positives; precision without positive predictions), listed in
    ``undefined`` and explained in ``note``; accuracy is then the recall of that class."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    y = np.asarray(labels).astype(np.int64)
    z = np.asarray(logits, dtype=np.float64)
    if not len(y):
        raise DataError("no labelled texts to measure")
    loss = float(-(y * log_expit(z) + (1 - y) * log_expit(-z)).mean())
    pred = (z > 0).astype(np.int64)
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    present = sorted(set(y.tolist()))
    out: dict[str, Any] = {
        "loss": round(loss, 6),
        "accuracy": round(float((pred == y).mean()), 6),
        "precision": round(float(precision), 6),
        "recall": round(float(recall), 6),
        "f1": round(float(f1), 6),
        "roc_auc": round(float(roc_auc_score(y, z)), 6) if len(present) == 2 else None,
        "ece": round(expected_calibration_error(y, expit(z)), 6),
        "confusion_matrix": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "count": int(len(y)),
        "predicted_positive": round(float(pred.mean()), 6),
    }
    if len(present) == 1:
        only = present[0]
        undefined = ["roc_auc"]
        if only == 0:
            undefined += ["recall", "f1"]  # no positive texts: recall (and so F1) of the positive class is 0/0
        if not pred.any():
            undefined += ["precision"] + (["f1"] if only == 1 else [])  # no positive predictions: precision is 0/0
        for key in undefined:
            out[key] = None
        names = [str(c) for c in class_names]
        out["undefined"] = undefined
        of_positive = [key for key in undefined if key != "roc_auc"]
        out["note"] = (f"only one class ('{names[only]}') in the data: roc_auc"
                       + (f" and the {', '.join(of_positive)} of '{names[1]}' are" if of_positive else " is")
                       + f" undefined (null); accuracy is the recall of '{names[only]}'")
    return out


def check_classes(given: Sequence[str] | None, model_classes: Sequence[str]) -> None:
    """Refuse ``--classes`` that contradict the model's class names (negative first).

    The same names in the same order agree. A model whose names are a generic pair
    (negative/positive, 0/1, false/true) also accepts the data's own names for them
    (``bad,good``), unless those are generic names of the other side (``pos,neg``, ``1,0``).
    A generic pair given in the generic order (``0,1``, ``false,true``, ``neg,pos``,
    ``negative,positive``) says the data's labels are 0 = the model's negative class and
    1 = its positive class, whatever the model's names (``bad,good``): accepted, as the same
    labels are without ``--classes``, unless those names are the model's own in another order."""
    if given is None:
        return
    given, model = [str(c) for c in given], [str(c) for c in model_classes]
    if given == model:
        return
    generic = all(_polarity(name) == side for side, name in enumerate(model))
    if generic and not set(given) & set(model) and all(_polarity(name) in (None, side)
                                                       for side, name in enumerate(given)):
        return
    if not set(given) & set(model) and all(_polarity(name) == side for side, name in enumerate(given)):
        return
    raise ConfigError(f"--classes {','.join(given)} contradicts the model's classes {','.join(model)} (negative "
                      "first): leave --classes out to use the model's, or relabel the data")


def _polarity(name: str) -> int | None:
    """0 or 1 for a generic class name (neg, false, 0…), None for any other."""
    from ..data.files import _KNOWN_PAIRS

    key = name.strip().lower()
    return next((side for pair in _KNOWN_PAIRS for side, names in enumerate(pair) if key in names), None)


def evaluate(predictor: Predictor, data: Dataset, reliability_plot: str | None = None) -> dict[str, Any]:
    """Score ``data`` with the predictor (raw strings, exactly as an export would); optionally
    draw the reliability diagram to ``reliability_plot``."""
    if not data.labelled:
        raise DataError(f"{data.name}: evaluation needs labelled data (this set has texts but no labels)")
    logits = predictor.predict_logits(data.texts)
    if reliability_plot:
        from .plots import plot_reliability

        plot_reliability(data.labels, logits, reliability_plot, title=predictor.family)
    return binary_metrics(data.labels, logits, predictor.class_names)


