"""Test metrics: the tutorial's loss and accuracy, and what a practitioner checks next.

Two classes: :func:`binary_metrics` (logits of the positive class, shape ``(n,)``); more:
:func:`multiclass_metrics` (softmax logits, shape ``(n, K)``). :func:`evaluate` picks by shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit, log_expit, log_softmax

from ..data.dataset import Dataset
from ..errors import ConfigError, DataError
from ..models.base import Predictor, check_finite


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
    matrix ``[[tn, fp], [fn, tp]]`` and the share predicted positive; then ``macro_f1`` (the
    mean F1 of the two classes) and ``per_class`` (each class's precision, recall, F1 and
    support, as :func:`multiclass_metrics` reports them).

    With one class only in ``labels``, what that cannot define is None (ROC-AUC always;
    recall and F1 without positives; precision without positive predictions), listed in
    ``undefined`` and explained in ``note``; accuracy is then the recall of that class, and
    ``macro_f1`` the F1 of that class (the other's is undefined, as in ``per_class``)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    y = np.asarray(labels).astype(np.int64)
    z = np.asarray(logits, dtype=np.float64)
    if not len(y):
        raise DataError("no labelled texts to measure")
    check_finite(z, "logits")  # a NaN loss or accuracy is no metric, and no JSON
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
    per_class, macro, _ = _per_class(y, pred, class_names)
    out["macro_f1"], out["per_class"] = macro["macro_f1"], per_class
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


def multiclass_metrics(labels: np.ndarray, logits: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Metrics of K-class softmax ``logits`` (shape ``(n, K)``, columns in ``class_names``
    order) against class indices ``labels``; the prediction is the top class (argmax; a
    tie goes to the first class).

    ``loss`` (mean softmax cross-entropy), ``accuracy``, ``macro_precision``,
    ``macro_recall``, ``macro_f1`` (unweighted means over the classes), ``mae`` (only when
    every class name is a number, e.g. star ratings: the mean absolute difference between
    the predicted class's number and the true one; else None), ``ece`` (top-label expected
    calibration error, 15 equal-width bins of the top probability against whether the top
    class was right), ``confusion_matrix`` (K × K: rows the true class, columns the
    predicted one, in ``class_names`` order), ``per_class`` (name → precision, recall, F1,
    support) and ``count``.

    Precision of a class never predicted counts as 0 (as in :func:`binary_metrics`). A class
    absent from the data has no recall nor F1 (None; its precision too when it is never
    predicted): such classes are listed in ``absent_classes``, explained in ``note``, and the
    macro averages are over the classes present in the data.

    >>> m = multiclass_metrics([0, 1, 2], [[2.0, 0, 0], [0, 2.0, 0], [2.0, 0, 0]], ["1", "2", "3"])
    >>> m["accuracy"], m["mae"], m["confusion_matrix"]
    (0.666667, 0.666667, [[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    """
    from sklearn.metrics import confusion_matrix

    names = [str(c) for c in class_names]
    y = np.asarray(labels).astype(np.int64)
    z = np.asarray(logits, dtype=np.float64)
    k = len(names)
    if not len(y):
        raise DataError("no labelled texts to measure")
    if z.ndim != 2 or z.shape != (len(y), k):
        raise ValueError(f"expected logits of shape ({len(y)}, {k}) for {len(y)} texts and {k} classes, "
                         f"got {z.shape}")
    if y.min() < 0 or y.max() >= k:
        others = sorted(set(y.tolist()) - set(range(k)))
        raise DataError(f"labels must be class indices 0..{k - 1} (of {','.join(names)}), found {others}")
    check_finite(z, "logits")
    log_p = log_softmax(z, axis=1)
    pred = z.argmax(axis=1)
    right = pred == y
    confidence = np.exp(log_p.max(axis=1))
    per_class, macro, absent = _per_class(y, pred, names)
    values = numeric_classes(names)
    out: dict[str, Any] = {
        "loss": round(float(-log_p[np.arange(len(y)), y].mean()), 6),
        "accuracy": round(float(right.mean()), 6),
        **macro,
        "mae": None if values is None else round(float(np.abs(values[pred] - values[y]).mean()), 6),
        "ece": round(expected_calibration_error(right, confidence), 6),
        "confusion_matrix": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
        "per_class": per_class,
        "count": int(len(y)),
    }
    if absent:
        missing = ", ".join(f"'{names[c]}'" for c in absent)
        out["absent_classes"] = [names[c] for c in absent]
        out["note"] = (f"{len(absent)} of {k} classes not in the data ({missing}): their recall and F1 are "
                       f"undefined (null) and the macro averages are over the {k - len(absent)} classes present")
    return out


def numeric_classes(class_names: Sequence[str]) -> np.ndarray | None:
    """The number each class name stands for, when every one is a finite number (ordered
    classes such as star ratings), else None.

    >>> numeric_classes(["1", "2", "10"])
    array([ 1.,  2., 10.])
    >>> numeric_classes(["bad", "ok", "good"]) is None
    True
    """
    try:
        values = np.array([float(str(name)) for name in class_names], dtype=np.float64)
    except ValueError:
        return None
    return values if np.isfinite(values).all() else None


def is_multiclass(metrics: dict[str, Any]) -> bool:
    """Whether a metrics dict came from :func:`multiclass_metrics` (not :func:`binary_metrics`)."""
    return "macro_recall" in metrics


def _per_class(y: np.ndarray, pred: np.ndarray, class_names: Sequence[str]
               ) -> tuple[dict[str, dict[str, Any]], dict[str, float], list[int]]:
    """Per class (by name): precision, recall, F1, support; the macro averages over the
    classes present in ``y``; and the indices of the classes absent from ``y``."""
    from sklearn.metrics import precision_recall_fscore_support

    k = len(class_names)
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=list(range(k)), average=None,
                                                                     zero_division=0)
    predicted = np.bincount(pred, minlength=k)
    absent = [c for c in range(k) if not support[c]]
    per_class = {
        str(name): {
            "precision": None if not support[c] and not predicted[c] else round(float(precision[c]), 6),
            "recall": None if not support[c] else round(float(recall[c]), 6),
            "f1": None if not support[c] else round(float(f1[c]), 6),
            "support": int(support[c]),
        }
        for c, name in enumerate(class_names)
    }
    present = np.flatnonzero(support)
    macro = {f"macro_{key}": round(float(value[present].mean()), 6)
             for key, value in (("precision", precision), ("recall", recall), ("f1", f1))}
    return per_class, macro, absent


def format_per_class(metrics: dict[str, Any]) -> str:
    """A Markdown table of the ``per_class`` metrics (n/a where undefined)."""
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, row in metrics["per_class"].items():
        cells = ["n/a" if row[key] is None else f"{row[key]:.4f}" for key in ("precision", "recall", "f1")]
        lines.append(f"| {_cell(name)} | " + " | ".join(cells) + f" | {row['support']:,} |")
    return "\n".join(lines)


def format_confusion(metrics: dict[str, Any]) -> str:
    """A Markdown table of the confusion matrix: a row per true class, a column per predicted one."""
    names = [_cell(name) for name in metrics["per_class"]]
    lines = ["| true \\ predicted | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for name, row in zip(names, metrics["confusion_matrix"], strict=True):
        lines.append(f"| {name} | " + " | ".join(f"{n:,}" for n in row) + " |")
    return "\n".join(lines)


def _cell(name: str) -> str:
    return str(name).replace("|", "\\|")


def check_classes(given: Sequence[str] | None, model_classes: Sequence[str]) -> None:
    """Refuse ``--classes`` that contradict the model's class names (negative first).

    A model of more than two classes accepts only its own names, in its own order.
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
    if len(model) > 2:
        raise ConfigError(f"--classes {','.join(given)} contradicts the model's classes {','.join(model)} (the same "
                          "names in the same order): leave --classes out to use the model's, or relabel the data")
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
    """Score ``data`` with the predictor (raw strings, exactly as an export would):
    :func:`binary_metrics` for ``(n,)`` logits, :func:`multiclass_metrics` for ``(n, K)``;
    optionally draw the reliability diagram (top-label for K classes) to ``reliability_plot``."""
    if not data.labelled:
        raise DataError(f"{data.name}: evaluation needs labelled data (this set has texts but no labels)")
    return evaluate_logits(predictor, data.labels, np.asarray(predictor.predict_logits(data.texts)), reliability_plot)


def evaluate_logits(predictor: Predictor, labels: np.ndarray, logits: np.ndarray,
                    reliability_plot: str | None = None) -> dict[str, Any]:
    """:func:`evaluate` from the predictor's ``logits`` of texts labelled ``labels`` (scored
    elsewhere: a Spark job)."""
    if reliability_plot:
        from .plots import plot_reliability

        plot_reliability(labels, logits, reliability_plot, title=predictor.family)
    if logits.ndim == 2:
        return multiclass_metrics(labels, logits, predictor.class_names)
    return binary_metrics(labels, logits, predictor.class_names)


