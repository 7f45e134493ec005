"""Is the model right, and honest, at every text length? Metrics per length bucket.

The labelled texts are cut into spans (:mod:`reviewsense.data.spans`): windows of 1, 3, 5,
10, 20 and 50 words, one sentence, the whole review, each labelled with its review's label.
Per bucket: accuracy, ROC-AUC, expected calibration error, the share predicted positive and
the share labelled positive. Span labels are noisy (a sentence of a positive review need
not be positive), so short-span accuracy understates what the model gets on texts labelled
for themselves; calibration and the predicted-positive rate are what to read here: an
honest model is unsure of a random word, not confidently positive.

Any scorer works (``proba``: texts → ``(n, n_classes)`` probabilities, as
``Predictor.predict_proba`` gives them, or a peer's ``(n,)`` probabilities of the positive
class), so the bench evaluates peers the same way. A scorer of K > 2 classes has rows that
hold the top-label accuracy and ECE and the mean top probability (confidence) instead of
ROC-AUC and the positive rates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..data.dataset import Dataset
from ..data.spans import BUCKETS, cut_spans, words_of
from .metrics import expected_calibration_error
from .plots import plot_by_length

__all__ = ["by_length", "format_table", "plot_by_length", "worst_ece"]

NOTE = ("spans of each review (windows of words, one sentence, the whole review) labelled with their review's "
        "label: a noisy label, so short-span accuracy is a lower bound; ECE and positive rates show honesty")
NOTE_MULTICLASS = ("spans of each review (windows of words, one sentence, the whole review) labelled with their "
                   "review's class: a noisy label, so short-span accuracy is a lower bound; top-label ECE and the "
                   "mean confidence show honesty")


MAX_TEXTS = 25_000  # texts cut into spans at most (a seeded sample of larger sets): IMDB's test set whole


def by_length(proba: Callable[[Sequence[str]], np.ndarray], data: Dataset, seed: int = 0,
              max_texts: int | None = MAX_TEXTS) -> dict[str, Any]:
    """Metrics of ``proba`` on spans of ``data``'s labelled texts, one row per length bucket
    (of at most ``max_texts`` texts, drawn at random when there are more; None: all).

    ``proba`` returns ``(n, K)`` probabilities of each class (as ``Predictor.predict_proba``;
    K > 2: top-label accuracy and ECE, a tie going to the first class), or ``(n,)`` ones of
    the positive class of two (read as column 1 of two columns)."""
    from sklearn.metrics import roc_auc_score

    spans = cut_spans(data, seed=seed, max_texts=max_texts)
    p = np.asarray(proba(spans.data.texts), dtype=np.float64)
    y = spans.data.labels.astype(np.int64)
    if p.ndim not in (1, 2) or len(p) != len(spans) or (p.ndim == 2 and p.shape[1] < 2):
        raise ValueError(f"the scorer returned {p.shape} probabilities for {len(spans)} texts")
    classes = 2 if p.ndim == 1 else p.shape[1]
    if len(y) and y.max() >= classes:
        raise ValueError(f"the scorer returned probabilities of {classes} classes for labels up to {y.max()}")
    multiclass = classes > 2
    if p.ndim == 2 and not multiclass:
        p = p[:, 1]  # two classes: the probability of the positive one
    rows: dict[str, dict[str, Any]] = {}
    for bucket in BUCKETS:
        index = spans.where(bucket)
        if not len(index):
            continue
        yb, pb = y[index], p[index]
        words = np.fromiter((len(words_of(spans.data.texts[i])) for i in index), dtype=np.int64, count=len(index))
        row: dict[str, Any] = {"count": int(len(index)), "mean_words": round(float(words.mean()), 1)}
        if multiclass:
            confidence, right = pb.max(axis=1), pb.argmax(axis=1) == yb
            row |= {
                "accuracy": round(float(right.mean()), 4),
                "ece": round(expected_calibration_error(right, confidence), 4),
                "mean_confidence": round(float(confidence.mean()), 4),
            }
        else:
            row |= {
                "accuracy": round(float(((pb >= 0.5) == (yb == 1)).mean()), 4),
                "roc_auc": round(float(roc_auc_score(yb, pb)), 4) if len(set(yb.tolist())) == 2 else None,
                "ece": round(expected_calibration_error(yb, pb), 4),
                "predicted_positive": round(float((pb >= 0.5).mean()), 4),
                "labelled_positive": round(float(yb.mean()), 4),
            }
        rows[bucket] = row
    reviews = len(set(spans.data.groups or []))
    return {"data": data.name, "reviews": reviews, "of": len(data), "seed": seed,
            "note": NOTE_MULTICLASS if multiclass else NOTE, "buckets": rows}


def worst_ece(result: dict[str, Any]) -> float:
    """The largest ECE over the buckets of a :func:`by_length` result."""
    return max(row["ece"] for row in result["buckets"].values())


def format_table(result: dict[str, Any]) -> str:
    """A Markdown table of a :func:`by_length` result (of two classes or of more)."""
    rows = result["buckets"]
    if any("mean_confidence" in row for row in rows.values()):
        lines = ["| span | texts | mean words | accuracy | ECE | mean confidence |", "|---|---|---|---|---|---|"]
        lines += [f"| {bucket} | {row['count']:,} | {row['mean_words']} | {row['accuracy']:.1%} | {row['ece']:.3f} | "
                  f"{row['mean_confidence']:.1%} |" for bucket, row in rows.items()]
        return "\n".join(lines)
    lines = ["| span | texts | mean words | accuracy | ROC-AUC | ECE | predicted positive | labelled positive |",
             "|---|---|---|---|---|---|---|---|"]
    for bucket, row in rows.items():
        auc = "n/a" if row["roc_auc"] is None else f"{row['roc_auc']:.3f}"
        lines.append(f"| {bucket} | {row['count']:,} | {row['mean_words']} | {row['accuracy']:.1%} | {auc} | "
                     f"{row['ece']:.3f} | {row['predicted_positive']:.1%} | {row['labelled_positive']:.1%} |")
    return "\n".join(lines)
