"""Explanations: which words and n-grams pushed a text's score up or down, and by how much.

Each family attributes its logit to its own features (``Attribution``): the contributions
plus a bias add up to the logit exactly, so the explanation is a decomposition of the score,
not an approximation. This module turns that into what people read:

- ``features``: every n-gram with its summed contribution (a word used twice counts twice);
- ``tokens``: each word of the text with its character span in the *original* string and its
  share of the contributions of the n-grams covering it, for highlighting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit

from ..text.standardize import strip_tags


@dataclass
class Attribution:
    """A family's raw answer: the model's words, the n-grams as (first word, length,
    contribution), and the bias, with ``sum(contributions) + bias == logit``."""

    words: list[str]
    items: list[tuple[int, int, float]]
    bias: float


@dataclass
class Explanation:
    logit: float
    bias: float
    features: dict[str, float]
    tokens: list[dict[str, Any]] = field(default_factory=list)
    class_names: tuple[str, ...] = ("negative", "positive")
    k: int = 10  # how many features ``top`` and ``to_dict`` show per direction
    # more than two classes: the class whose logit is explained, and every class's probability
    target: int | None = None
    probabilities: list[float] | None = None

    @property
    def probability(self) -> float:
        """The probability of the explained class (two classes: of ``class_names[1]``)."""
        if self.probabilities is not None and self.target is not None:
            return self.probabilities[self.target]
        return float(expit(self.logit))

    @property
    def label(self) -> int:
        """The predicted class (two classes: 1 when the probability is ≥ 0.5)."""
        if self.probabilities is not None:
            return int(np.argmax(self.probabilities))
        return int(self.probability >= 0.5)

    def top(self, k: int | None = None) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """The ``k`` features that pushed the score up most, and the ``k`` that pushed it down."""
        k = self.k if k is None else k
        ranked = sorted(self.features.items(), key=lambda kv: (-kv[1], kv[0]))
        up = [(f, c) for f, c in ranked if c > 0][:k]
        down = [(f, c) for f, c in reversed(ranked) if c < 0][:k]
        return up, down

    def to_dict(self, k: int | None = None, tokens: bool = True) -> dict[str, Any]:
        up, down = self.top(k)
        # the row describes the prediction, as base.result_row does (two classes: at 0.5); with more,
        # "explained" names the class whose logit the contributions add up to, and its probability
        label = self.label
        predicted = self.probabilities[label] if self.probabilities is not None else self.probability
        out: dict[str, Any] = {
            "probability": round(float(predicted), 6), "label": label,
            "label_name": self.class_names[label], "logit": round(self.logit, 6), "bias": round(self.bias, 6),
            "positive": [{"feature": f, "contribution": round(c, 6)} for f, c in up],
            "negative": [{"feature": f, "contribution": round(c, 6)} for f, c in down],
        }
        if self.probabilities is not None and self.target is not None:
            out["explained"] = self.class_names[self.target]  # whose logit the contributions add up to
            out["explained_probability"] = round(self.probability, 6)
            out["probabilities"] = {name: round(p, 6) for name, p in zip(self.class_names, self.probabilities,
                                                                        strict=True)}
        if tokens:
            out["tokens"] = self.tokens
        return out

    def scaled(self, weight: float) -> Explanation:
        """This explanation with every contribution (and the bias) multiplied by ``weight``."""
        return self.affine(weight, 0.0)

    def affine(self, weight: float, shift: float) -> Explanation:
        """The explanation of ``weight × logit + shift``: contributions × ``weight``, and the
        bias takes the shift, so contributions + bias still add up to the logit."""
        return Explanation(
            self.logit * weight + shift, self.bias * weight + shift, {f: c * weight for f, c in self.features.items()},
            [{**t, "contribution": t["contribution"] * weight} for t in self.tokens], self.class_names, self.k,
            self.target, self.probabilities)


def align(text: str, words: Sequence[str]) -> list[tuple[int, int] | None]:
    """Character span of each (lowercased) model word in the original text, searched in order;
    None where a word cannot be found (e.g. an HTML entity the vectorizer decoded).

    Spans are code-point offsets into ``text``. A letter whose lowercase is longer (``İ``,
    U+0130, becomes ``i`` + a combining dot) shifts the lowercased text against the original:
    offsets are mapped back, and a word that would begin or end inside such a letter's
    lowercase is searched further on (else None)."""
    lowered = text.lower()
    origin = None  # offset in the lowercased text -> offset in the original (when they differ)
    if len(lowered) != len(text):
        origin = [i for i, c in enumerate(text) for _ in range(len(c.lower()))] + [len(text)]
        boundary = [True] * (len(lowered) + 1)  # offsets where an original character's lowercase begins
        for j in range(1, len(lowered)):
            boundary[j] = origin[j] != origin[j - 1]
    lowered = strip_tags(lowered, keep_offsets=True)
    spans: list[tuple[int, int] | None] = []
    cursor = 0
    for word in words:
        at = lowered.find(word, cursor) if word else -1
        if origin is not None:
            while at >= 0 and not (boundary[at] and boundary[at + len(word)]):
                at = lowered.find(word, at + 1)
        if at < 0:
            spans.append(None)
            continue
        end = at + len(word)
        spans.append((at, end) if origin is None else (origin[at], origin[end]))
        cursor = end
    return spans


def explain(text: str, attribution: Attribution, class_names: Sequence[str], k: int = 10) -> Explanation:
    """The explanation of ``text`` from its attribution; the logit is the attribution's sum."""
    words = attribution.words
    features: dict[str, float] = {}
    shares = np.zeros(len(words), dtype=np.float64)
    for start, n, contribution in attribution.items:
        name = " ".join(words[start : start + n])
        features[name] = features.get(name, 0.0) + contribution
        shares[start : start + n] += contribution / n
    tokens = [
        {"token": word, "start": span[0], "end": span[1], "contribution": round(float(share), 6)}
        for word, span, share in zip(words, align(text, words), shares, strict=True) if span is not None
    ]
    logit = attribution.bias + sum(c for _, _, c in attribution.items)
    return Explanation(float(logit), attribution.bias, features, tokens, tuple(class_names), k)


def combine(parts: Sequence[Explanation], weights: Sequence[float], bias: float, class_names: Sequence[str],
            k: int = 10) -> Explanation:
    """A weighted sum of explanations (a stacked ensemble): features add by name, token
    contributions by character span."""
    features: dict[str, float] = {}
    spans: dict[tuple[int, int], dict[str, Any]] = {}
    logit, total_bias = bias, bias
    for part, weight in zip(parts, weights, strict=True):
        scaled = part.scaled(float(weight))
        logit += scaled.logit
        total_bias += scaled.bias
        for name, value in scaled.features.items():
            features[name] = features.get(name, 0.0) + value
        for token in scaled.tokens:
            key = (token["start"], token["end"])
            if key in spans:
                spans[key]["contribution"] += token["contribution"]
            else:
                spans[key] = dict(token)
    tokens = [{**t, "contribution": round(t["contribution"], 6)} for _, t in sorted(spans.items())]
    return Explanation(logit, total_bias, features, tokens, tuple(class_names), k)
