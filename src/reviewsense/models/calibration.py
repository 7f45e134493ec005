"""Probabilities that stay honest at every text length.

A model's raw logit means different things for a one-word text and a 300-word review: a
linear model over n-gram counts sums more evidence the longer the text is, so its scale and
its bias depend on length; a network that averages word vectors sees one word's vector at
full strength. A single sigmoid (Platt scaling) fitted on full reviews is therefore wrong for
short texts.

:class:`LengthCalibration` maps a raw logit ``r`` of a text of ``n`` tokens to

    logit = prior + slope(n) · (r − r_empty) + shift(n)

- ``prior``: the logit of the positive rate of the training data, and ``r_empty`` the raw
  logit of the empty text, so **a text with no evidence gets the class prior**
  (``shift(0) = 0``);
- ``slope(n)`` and ``shift(n)``: piecewise linear in ``log(1 + n)`` between fixed knots
  (1, 2, 4, … 512 tokens), constant beyond the last one, so there is no wild extrapolation
  to texts longer than any seen.

It is fitted by maximum likelihood (L-BFGS, a small L2 penalty on the knots' terms) on the
raw logits of a held-out set of *spans of every length* (:mod:`reviewsense.data.spans`)
scored by a model that did not see their labels. Per text it is an affine map of the raw
logit, so explanations keep their contract: contributions × slope(n), and the bias absorbs
the rest. An ensemble's calibration reads each member's logit (``slope_j(n)`` per member),
so the members' weights depend on the text's length too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelFileError

KNOTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # token counts where slope and shift may bend


def ramps(lengths: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """``(len(lengths), len(knots))``: column k rises linearly in log(1+n) from knot k-1 (0
    for the first) to knot k, and stays at its height after (a basis of piecewise-linear
    functions that are 0 at n = 0 and flat after the last knot)."""
    u = np.log1p(np.maximum(np.asarray(lengths, dtype=np.float64), 0.0))[:, None]
    edges = np.log1p(np.asarray(knots, dtype=np.float64))
    low = np.concatenate([[0.0], edges[:-1]])
    return np.clip(u - low, 0.0, edges - low)


@dataclass
class LengthCalibration:
    """``logit = prior + Σ_j slope_j(n) · (raw_j − empty_j) + shift(n)`` for one raw score
    (most families) or several (an ensemble's members: then the members' weights depend on
    the text's length too)."""

    prior: float  # logit of the training data's positive rate
    empty: np.ndarray  # (scores,): the raw score(s) of a text with no tokens
    slope: np.ndarray  # (scores, len(knots) + 1): each slope at n = 0, then its change along each ramp
    shift: np.ndarray  # len(knots): the shift's change along each ramp
    knots: tuple[int, ...] = KNOTS

    def __post_init__(self) -> None:
        self.empty = np.atleast_1d(np.asarray(self.empty, dtype=np.float64))
        self.slope = np.atleast_2d(np.asarray(self.slope, dtype=np.float64))
        self.shift = np.asarray(self.shift, dtype=np.float64)

    @property
    def scores(self) -> int:
        """How many raw scores a text has (1, or an ensemble's members)."""
        return len(self.empty)

    def slope_shift(self, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per text: the slope of each raw score, ``(texts, scores)``, and the shift."""
        basis = ramps(lengths, np.asarray(self.knots))
        return self.slope[:, 0] + basis @ self.slope[:, 1:].T, basis @ self.shift

    def __call__(self, raw: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Calibrated logits of texts with raw score(s) ``raw`` and ``lengths`` tokens."""
        slope, shift = self.slope_shift(lengths)
        centred = np.asarray(raw, dtype=np.float64).reshape(len(shift), self.scores) - self.empty
        return (self.prior + (slope * centred).sum(axis=1) + shift).astype(np.float32)

    @classmethod
    def fit(cls, raw: np.ndarray, lengths: np.ndarray, labels: np.ndarray, prior: float, empty,
            l2: float = 1e-3, knots: tuple[int, ...] = KNOTS, weights: np.ndarray | None = None) -> LengthCalibration:
        """Maximum-likelihood fit on held-out (raw score(s), length, label) triples, each
        weighing ``weights`` (default 1)."""
        empty, slope, shift = fit_by_length(raw, lengths, labels, prior, empty, l2, knots, weights, classes=2)
        return cls(float(prior), empty[:, 0], slope, shift[0], tuple(knots))

    # -- saving (plain JSON numbers in the manifest) ------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """One raw score: ``empty`` a number and ``slope`` a list; several: lists of them."""
        single = self.scores == 1
        return {"kind": "length", "knots": list(self.knots), "prior": self.prior,
                "empty": float(self.empty[0]) if single else self.empty.tolist(),
                "slope": self.slope[0].tolist() if single else self.slope.tolist(), "shift": self.shift.tolist()}

    @classmethod
    def from_dict(cls, data: Any) -> LengthCalibration:
        try:
            if data.get("kind") != "length":
                raise ValueError(f"unknown kind {data.get('kind')!r}")
            knots = tuple(int(k) for k in data["knots"])
            slope = np.atleast_2d(np.asarray(data["slope"], dtype=np.float64))
            shift = np.asarray(data["shift"], dtype=np.float64)
            empty = np.atleast_1d(np.asarray(data["empty"], dtype=np.float64))
            prior = float(data["prior"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"invalid length calibration: {exc}") from None
        if not knots or list(knots) != sorted(set(knots)) or knots[0] < 1:
            raise ModelFileError("invalid length calibration: knots must be increasing token counts ≥ 1")
        if empty.ndim != 1 or slope.shape != (len(empty), len(knots) + 1) or shift.shape != (len(knots),):
            raise ModelFileError(f"invalid length calibration: {len(knots)} knots need {len(knots) + 1} slope "
                                 f"terms per score and {len(knots)} shift terms")
        if not (np.isfinite(slope).all() and np.isfinite(shift).all() and math.isfinite(prior)
                and np.isfinite(empty).all()):
            raise ModelFileError("invalid length calibration: NaN or infinite values")
        return cls(prior, empty, slope, shift, knots)


@dataclass
class SoftmaxLengthCalibration:
    """K > 2 classes: ``logit_c = prior_c + Σ_j slope_j(n) · (raw_jc − empty_jc) + shift_c(n)``.

    The same idea as :class:`LengthCalibration` for a softmax over K logits: ``prior`` is the
    log of the training data's class rates, so a text with no tokens gets the class rates;
    each raw score vector (one, or an ensemble's members) is scaled by a slope that depends on
    the text's length (a temperature by length), and each class has a shift by length
    (``shift_c(0) = 0``)."""

    prior: np.ndarray  # (K,): log class rates of the training data
    empty: np.ndarray  # (scores, K): the raw scores of a text with no tokens
    slope: np.ndarray  # (scores, len(knots) + 1)
    shift: np.ndarray  # (K, len(knots))
    knots: tuple[int, ...] = KNOTS

    def __post_init__(self) -> None:
        self.prior = np.asarray(self.prior, dtype=np.float64).ravel()
        self.empty = np.asarray(self.empty, dtype=np.float64).reshape(-1, len(self.prior))
        self.slope = np.atleast_2d(np.asarray(self.slope, dtype=np.float64))
        self.shift = np.asarray(self.shift, dtype=np.float64).reshape(len(self.prior), -1)

    @property
    def scores(self) -> int:
        """How many raw score vectors a text has (1, or an ensemble's members)."""
        return len(self.empty)

    @property
    def classes(self) -> int:
        return len(self.prior)

    def slope_shift(self, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per text: the slope of each raw score vector, ``(texts, scores)``, and each class's
        shift, ``(texts, K)``."""
        basis = ramps(lengths, np.asarray(self.knots))
        return self.slope[:, 0] + basis @ self.slope[:, 1:].T, basis @ self.shift.T

    def __call__(self, raw: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Calibrated ``(texts, K)`` logits of texts with raw scores ``raw`` and ``lengths`` tokens."""
        slope, shift = self.slope_shift(lengths)
        centred = np.asarray(raw, dtype=np.float64).reshape(len(shift), self.scores, self.classes) - self.empty
        return (self.prior + np.einsum("ns,nsk->nk", slope, centred) + shift).astype(np.float32)

    @classmethod
    def fit(cls, raw: np.ndarray, lengths: np.ndarray, labels: np.ndarray, prior: np.ndarray, empty,
            l2: float = 1e-3, knots: tuple[int, ...] = KNOTS,
            weights: np.ndarray | None = None) -> SoftmaxLengthCalibration:
        """Maximum-likelihood (softmax cross-entropy) fit on held-out (raw scores, length, label)."""
        prior = np.asarray(prior, dtype=np.float64)
        empty, slope, shift = fit_by_length(raw, lengths, labels, prior, empty, l2, knots, weights,
                                            classes=len(prior))
        return cls(prior, empty, slope, shift, tuple(knots))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "length_softmax", "knots": list(self.knots), "prior": self.prior.tolist(),
                "empty": self.empty.tolist(), "slope": self.slope.tolist(), "shift": self.shift.tolist()}

    @classmethod
    def from_dict(cls, data: Any) -> SoftmaxLengthCalibration:
        try:
            knots = tuple(int(k) for k in data["knots"])
            prior = np.asarray(data["prior"], dtype=np.float64)
            empty = np.asarray(data["empty"], dtype=np.float64)
            slope = np.asarray(data["slope"], dtype=np.float64)
            shift = np.asarray(data["shift"], dtype=np.float64)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"invalid length calibration: {exc}") from None
        if not knots or list(knots) != sorted(set(knots)) or knots[0] < 1:
            raise ModelFileError("invalid length calibration: knots must be increasing token counts ≥ 1")
        classes = prior.shape[0] if prior.ndim == 1 else 0
        if classes < 3 or empty.ndim != 2 or empty.shape[1] != classes or slope.shape != (len(empty), len(knots) + 1) \
                or shift.shape != (classes, len(knots)):
            raise ModelFileError("invalid length calibration: 'prior' (K), 'empty' (scores × K), 'slope' "
                                 "(scores × knots+1) and 'shift' (K × knots) do not fit together")
        if not all(np.isfinite(a).all() for a in (prior, empty, slope, shift)):
            raise ModelFileError("invalid length calibration: NaN or infinite values")
        return cls(prior, empty, slope, shift, knots)


def calibration_from_dict(data: Any) -> LengthCalibration | SoftmaxLengthCalibration:
    """The length calibration a manifest holds: ``kind`` "length" (two classes) or
    "length_softmax" (more)."""
    if isinstance(data, dict) and data.get("kind") == "length_softmax":
        return SoftmaxLengthCalibration.from_dict(data)
    return LengthCalibration.from_dict(data)


def fit_by_length(raw: np.ndarray, lengths: np.ndarray, labels: np.ndarray, prior, empty, l2: float,
                  knots: tuple[int, ...], weights: np.ndarray | None, classes: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What both length calibrations fit (:func:`~.softmax_fit.fit_softmax`): each raw score
    (vector, for K > 2 classes) centred on the empty text's and scaled by a slope piecewise
    linear in log(1 + length), plus each class's shift by length (one shift for two classes).
    Each slope at n = 0 is free and starts at 1/scores (the members' mean); the bends and the
    shifts are shrunk by ``l2``. Returns the empty text's scores ``(scores, C)``, the slopes
    ``(scores, knots + 1)`` and the shifts ``(C, knots)``, C = 1 for two classes."""
    from .softmax_fit import fit_softmax

    basis = ramps(lengths, np.asarray(knots))
    width = 1 if classes == 2 else classes
    empty = np.asarray(empty, dtype=np.float64).reshape(-1, width)
    scores, k = len(empty), len(knots)
    centred = np.asarray(raw, dtype=np.float64).reshape(len(basis), scores, width) - empty
    slope, shift = fit_softmax(centred[:, :, 0] if classes == 2 else centred, labels,
                               np.column_stack([np.ones(len(basis)), basis]), basis, offset=prior,
                               slope_l2=np.r_[0.0, np.full(k, l2)], shift_l2=l2,
                               slope_start=np.r_[1.0 / scores, np.zeros(k)], weights=weights)
    return empty, slope, shift


def vector_scaling(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``(2, K)``: a scale and an offset per class, ``softmax(scale ⊙ score + offset)``,
    fitted by maximum likelihood on held-out scores (each of weight ``weights``; Platt scaling
    for K classes; the offsets shrunk a little)."""
    from .softmax_fit import fit_softmax

    s = np.asarray(scores, dtype=np.float64)
    n, classes = s.shape
    ones = np.ones((n, 1))
    # score vector k: class k's score in its own column, 0 in the others, so its slope is class k's scale
    scale, offset = fit_softmax(s[:, :, None] * np.eye(classes), labels, ones, ones, shift_l2=1e-4, weights=weights)
    return np.stack([scale[:, 0], offset[:, 0]]).astype(np.float32)


def prior_logit(labels: np.ndarray) -> float:
    """The logit of the positive rate of ``labels`` (kept away from 0 and 1)."""
    rate = float(np.clip(np.mean(np.asarray(labels) == 1), 1e-3, 1 - 1e-3))
    return math.log(rate / (1 - rate))


def calibrate_by_length(predictor, held_out, train_labels: np.ndarray | None, validation, seed: int = 0,
                        class_weights: np.ndarray | None = None, counts: np.ndarray | None = None) -> None:
    """Fit the length calibration on spans of the ``validation`` reviews, scored by ``held_out``
    (the model that did not see their labels; ``predictor`` itself when it did not), and give it
    to both models. A refit ``predictor`` has its own bias: its empty text keeps the prior too.
    ``counts``: the labelled rows per class (training and validation), instead of
    ``train_labels`` and ``validation``'s labels (data that is not in memory: a Spark job)."""
    from dataclasses import replace

    labelled = None if counts is not None else np.concatenate([train_labels, validation.labels])
    calibration = fit_length_calibration(held_out, validation, labelled, seed=seed, class_weights=class_weights,
                                         counts=counts)
    held_out.length_calibration = calibration
    empty = predictor.raw_scores([""])[0][0]
    predictor.length_calibration = replace(calibration, empty=empty)


def fit_length_calibration(held_out, validation, labelled: np.ndarray | None, seed: int = 0,
                           max_texts: int | None = 20_000, class_weights: np.ndarray | None = None,
                           counts: np.ndarray | None = None) -> LengthCalibration | SoftmaxLengthCalibration:
    """Fit a :class:`LengthCalibration` (two classes; :class:`SoftmaxLengthCalibration` for
    more) for a model on spans of every length cut from the ``validation`` reviews
    (:func:`~reviewsense.data.spans.cut_spans`), scored by ``held_out``: the model, or the
    version of it that did not see the validation labels.

    The prior is the class rates of ``labelled`` (all labelled training rows, validation
    included; or ``counts``, those rows per class). The validation spans are weighted to those
    rates: a split that holds out whole groups (movies, products) can hold out more of one class
    by chance, and the calibration should not learn that chance as a bias of every short text.
    Larger validation sets give spans of ``max_texts`` of their texts (a seeded sample): 20,000
    texts, ~150,000 spans, pin the calibration's numbers (21 for one score) down well.
    ``class_weights`` (one per class, as ``class_weight`` gives them): the rates are those of
    the weighted rows."""
    from ..data.spans import cut_spans

    spans = cut_spans(validation, seed=seed, max_texts=max_texts)
    raw, lengths = held_out.raw_scores(spans.data.texts)
    empty = held_out.raw_scores([""])[0][0]
    classes = len(validation.class_names)
    if counts is None:
        labelled = np.asarray(labelled)
        counts = np.bincount(labelled[labelled >= 0], minlength=classes)
    counts = np.asarray(counts, dtype=np.float64)
    if class_weights is not None:
        counts = counts * np.asarray(class_weights, dtype=np.float64)
    rates = counts / max(counts.sum(), 1e-12)
    if classes > 2:
        y = spans.data.labels.astype(np.int64)
        rate = np.clip(rates, 1e-3, None)
        rate /= rate.sum()
        seen = np.bincount(y, minlength=classes) / max(len(y), 1)
        weights = np.where(seen[y] > 0, rate[y] / np.maximum(seen[y], 1e-12), 0.0)
        prior = np.log(rate)
        return SoftmaxLengthCalibration.fit(raw, lengths, y, prior - prior.mean(), empty, weights=weights)
    positive = spans.data.labels == 1
    positive_rate, positive_seen = float(rates[1]), float(positive.mean())
    binary_weights = np.where(positive, positive_rate / positive_seen, (1 - positive_rate) / (1 - positive_seen)) \
        if 0 < positive_seen < 1 else None
    rate = min(max(positive_rate, 1e-3), 1 - 1e-3)
    return LengthCalibration.fit(raw, lengths, positive, math.log(rate / (1 - rate)), empty, weights=binary_weights)
