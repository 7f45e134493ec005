"""Pieces of reviews of every length: how short texts are scored, calibrated and trained on.

A labelled review is cut into *spans*: a window of 1, 3, 5, 10, 20 or 50 consecutive words,
one sentence, or the whole review. Each span carries its review's label. That label is
**noisy**: one sentence of a positive review can be neutral or even negative ("the first
half was dull, but…"), and a single word usually says nothing. So a span's accuracy is a
lower bound on what the model could reach on texts that are labelled for themselves; what
the spans measure well is whether the model's *probabilities* stay honest as texts get
shorter (calibration, the predicted-positive rate, the ranking).

Every function is seeded and does not depend on the order of other calls, so the same
reviews always give the same spans.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..text.standardize import strip_tags
from .dataset import Dataset

WINDOWS = (1, 3, 5, 10, 20, 50)
SENTENCE, FULL = "sentence", "full review"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\w")


def bucket_name(window: int) -> str:
    return f"{window} word" if window == 1 else f"{window} words"


BUCKETS = tuple(bucket_name(w) for w in WINDOWS) + (SENTENCE, FULL)


@dataclass
class Spans:
    """Spans of labelled texts: ``data`` (a Dataset: texts, labels, groups = the review each
    span comes from) and the ``bucket`` of each span (``"3 words"``, ``"sentence"``, …)."""

    data: Dataset
    bucket: np.ndarray

    def __len__(self) -> int:
        return len(self.data)

    def where(self, bucket: str) -> np.ndarray:
        return np.flatnonzero(self.bucket == bucket)


def words_of(text: str) -> list[str]:
    """The text without HTML tags, split at white space (punctuation stays on its word)."""
    return strip_tags(text).split()


def sentences_of(text: str) -> list[str]:
    """The sentences of a text (split after . ! ? followed by white space) that hold a word."""
    parts = _SENTENCE_END.split(" ".join(words_of(text)))
    return [p for p in parts if _WORD.search(p)]


def cut_spans(data: Dataset, windows: Sequence[int] = WINDOWS, sentences: bool = True, full: bool = True,
              per_review: int = 1, seed: int = 0, max_texts: int | None = None) -> Spans:
    """Cut every review of ``data`` into ``per_review`` random spans of each kind: windows of
    each length in ``windows`` (reviews shorter than a window give none of it), one sentence,
    and (once) the review itself. Spans are labelled with their review's label.

    ``max_texts``: cut only that many reviews, drawn at random (seeded), when there are more."""
    if not data.labelled:
        raise ValueError(f"{data.name}: spans need labelled data")
    rng = np.random.default_rng(seed)
    if max_texts is not None and len(data) > max_texts:
        data = data.subset(np.sort(rng.choice(len(data), max_texts, replace=False)))
    texts: list[str] = []
    labels: list[int] = []
    buckets: list[str] = []
    origin: list[int] = []
    for i, (text, label) in enumerate(zip(data.texts, data.labels.tolist(), strict=True)):  # i: within the sample
        words = words_of(text)
        pieces: list[tuple[str, str]] = []
        for window in windows:
            if len(words) >= window:
                starts = rng.integers(0, len(words) - window + 1, size=per_review)
                pieces += [(" ".join(words[s : s + window]), bucket_name(window)) for s in starts.tolist()]
        if sentences:
            found = sentences_of(text)
            if found:
                pieces += [(found[j], SENTENCE) for j in rng.integers(0, len(found), size=per_review).tolist()]
        if full:
            pieces.append((text, FULL))
        for piece, bucket in pieces:
            texts.append(piece)
            labels.append(label)
            buckets.append(bucket)
            origin.append(i)
    spans = Dataset(texts, np.asarray(labels, dtype=np.int16), name=f"{data.name}:spans",
                    class_names=data.class_names, groups=[str(i) for i in origin])
    return Spans(spans, np.asarray(buckets, dtype=object))
