"""NB-weighted n-gram logistic regression (Wang & Manning 2012, "NBSVM", with a logistic loss).

text → word 1..3-gram counts (:class:`NgramVectorizer`: unigram vocabulary + hashed
higher orders; or presence, with ``binary``) → each feature scaled by its naive-Bayes
log-count ratio r = log(p/|p|₁) − log(q/|q|₁) (p, q: smoothed counts of texts containing it, per class;
features in fewer than ``min_df`` training texts are dropped) →
logistic regression (fitted on the texts and, at a small weight, on random spans of them, so
that short texts are scored well too) → Platt scaling fitted on the validation split; `train`
then calibrates by length (reviewsense.models.calibration).

More than two classes: one such model per class against the rest (one-vs-rest: each class
gets its own NB ratios, which a single softmax over the same features could not use), their
scores turned into probabilities by a softmax with a scale and an offset per class fitted on
the validation split (vector scaling, Platt's K-class analogue).

The scaled weights fold into one vector (``coef = r ⊙ w``; one per class), so prediction is one weighted
sum per text, computed straight from the n-gram columns (polars and numpy; for binary
features a small numba loop that counts each n-gram once, where numba is installed); no torch.

Of the vectorizer's millions of columns (2**24 hashed buckets by default) only those kept —
in at least ``min_df`` training texts — are fitted, and only those with a weight are held by
the predictor (:class:`~reviewsense.text.columns.KeptColumns` and a table of their weights,
``(columns,)`` or ``(columns, K)``): memory and pickles grow with the model, not the buckets.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..data.dataset import Dataset
from ..data.spans import cut_spans
from ..errors import ConfigError, ModelFileError
from ..progress import log
from ..text.columns import KeptColumns
from ..text.ngrams import NgramVectorizer, tokenize
from ..training.checkpoint import check_stop
from .base import Predictor, check_shapes
from .calibration import vector_scaling
from .explanation import Attribution
from .params import param
from .registry import Family, FitJob, Fitted


@dataclass
class NBLinearParams:
    ngrams: int = param(3, "word n-grams up to this length", ge=1, le=5)
    hash_bits: int = param(24, "2**bits buckets shared by the hashed 2..n-grams", ge=4, le=26)
    min_df: int = param(2, "drop n-grams found in fewer training texts (rare n-grams are noise)", ge=1)
    alpha: float = param(1.0, "smoothing of the naive-Bayes counts", gt=0, cli=False)
    # One model per class: on IMDB's 8 star ratings 0.1 separated the classes of validation
    # better than 1.0 (ROC-AUC +0.002 to +0.012) and fits in half the time.
    C: float | None = param(None, "inverse L2 strength of the logistic regressions; none: 1.0 for two "
                            "classes, 0.1 for more", gt=0, flag="--C")
    # On IMDB validation held out by movie it scored +0.3 points (C=0.1), within noise and not
    # on test, and it predicts 10-20 % slower.
    binary: bool = param(False, "an n-gram counts once per text however often it occurs (default: counts)")
    max_iter: int = param(1000, "most iterations of each logistic regression", ge=1, cli=False)
    # liblinear's own default for this dual solver is 0.1; scikit-learn's 1e-4 took 1.6x as long
    # on IMDB for the same validation accuracy.
    tol: float = param(1e-2, "liblinear's stopping tolerance", gt=0, cli=False)
    refit: bool = param(True, "the final fit on train + validation (settings and calibration from the split)",
                        flag="--no-refit")
    # On IMDB validation held out by movie, 0.05 added 0.6-1.5 points of accuracy and 0.01 of
    # ROC-AUC on 3-20-word spans and sentences at no cost on whole reviews; 0.1 cost 0.4 points
    # on whole reviews.
    span_weight: float = param(0.05, "weight of random spans of the training texts (1-20 words, a sentence) "
                               "in the fit, relative to a whole text; 0 = none", ge=0, metavar="W")
    span_windows: list[int] = param([1, 3, 8, 20], "the span lengths, in words", cli=False)


class NBLinearPredictor(Predictor):
    """``weights``: ``intercept``, ``calibration`` and the coefficients, sparse as :meth:`tensors`
    gives them (``coef_index``: columns; ``coef_value``: their weights, ``(columns, K)`` for
    more than two classes) or dense (``coef``: ``(features,)``, or ``(K, features)``; models
    saved by reviewsense 0.1.0). Either way only the columns with a weight are held: their
    numbers (:class:`KeptColumns`) and a compact table of their weights."""

    family = "nblinear"
    batch_size = 32_768  # texts per scoring call: fewer, larger polars/numpy passes

    def __init__(self, vectorizer: NgramVectorizer, config: dict[str, Any], weights: dict[str, np.ndarray],
                 class_names: Sequence[str] = ("negative", "positive")):
        super().__init__(vectorizer, config, class_names)
        index, value = _weighted_columns(weights)
        self._kept = KeptColumns(index, vectorizer.n_features)
        # row 0: every column without a weight (and column 0, the n-grams that cross texts)
        self._table = np.concatenate([np.zeros((1, *value.shape[1:]), dtype=np.float32), value])
        self._intercept = np.array(weights["intercept"], dtype=np.float32)
        self._calibration = np.array(weights["calibration"], dtype=np.float32)

    @property
    def weights(self) -> dict[str, np.ndarray]:
        """The learned arrays (:meth:`tensors`)."""
        return self.tensors()

    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        return self._logits_and_lengths(texts)[0]

    def _logits_and_lengths(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Platt-scaled (vector-scaled) scores and token counts, from one pass over the texts."""
        slope, offset = self._calibration
        if self.binary:
            score, lengths = self.vectorizer.score_and_count(texts, self._table, self._kept)
        else:
            score, lengths = self.vectorizer.score_rows_and_count(texts, self._kept, self._table)
        return slope * (score + self._intercept) + offset, lengths

    def _attribute(self, text: str, target: int | None = None) -> Attribution:
        """Each n-gram occurrence contributes its weight (times the calibration slope)."""
        c = 0 if self.binary else target or 0
        slope, offset = (float(np.atleast_1d(x)[c]) for x in self._calibration)
        words = tokenize(text)
        _, columns = self.vectorizer._columns([text])
        weights = self._table if self.binary else self._table[:, c]
        items = []
        for n, cols in enumerate(columns, 1):
            # binary features count once however often the n-gram occurs: share the weight
            uses = np.unique(cols, return_counts=True) if self.vectorizer.binary else None
            for start, (col, row) in enumerate(zip(cols.tolist(), self._kept.rows(cols).tolist(), strict=True)):
                weight = float(weights[row])
                if uses is not None and weight:
                    weight /= int(uses[1][np.searchsorted(uses[0], col)])
                if weight:
                    items.append((start, n, slope * weight))
        return Attribution(words, items, slope * float(np.atleast_1d(self._intercept)[c]) + offset)

    def tensors(self) -> dict[str, np.ndarray]:
        """The weights, with the coefficients stored sparse (most buckets weigh 0): the
        columns with a weight (``coef_index``) and their weights (``coef_value``: one per
        column; ``(columns, K)`` for more than two classes)."""
        return {"coef_index": self._kept.columns, "coef_value": self._table[1:], "intercept": self._intercept,
                "calibration": self._calibration}

    @classmethod
    def from_tensors(cls, vectorizer, config, tensors, class_names) -> NBLinearPredictor:
        if not isinstance(vectorizer, NgramVectorizer):
            raise ModelFileError("an nblinear model needs an n-gram vectorizer.json")
        n, classes = vectorizer.n_features, len(class_names)
        own = (1,) if classes == 2 else (classes,)
        calibration = (2,) if classes == 2 else (2, classes)
        if "coef" in tensors:  # dense coefficients (models saved by reviewsense 0.1.0 before sparse storage)
            check_shapes(tensors, {"coef": (n,), "intercept": own, "calibration": calibration})
            return cls(vectorizer, config, tensors, class_names)
        index, value = tensors.get("coef_index"), tensors.get("coef_value")
        width = () if classes == 2 else (classes,)
        if index is None or value is None or index.ndim != 1 or value.shape != index.shape + width:
            raise ModelFileError("nblinear weights need 'coef_index' and 'coef_value' with one row per column"
                                 + ("" if classes == 2 else f" ({classes} values each, one per class)"))
        if index.dtype.kind not in "iu" or (len(index) and (index.min() < 0 or index.max() >= n)):
            raise ModelFileError(f"'coef_index' must hold column numbers below {n:,}")
        check_shapes({k: v for k, v in tensors.items() if not k.startswith("coef_")}, {"intercept": own,
                                                                                      "calibration": calibration})
        check_shapes({"coef_value": value}, {"coef_value": value.shape})
        return cls(vectorizer, config, tensors, class_names)


def _weighted_columns(weights: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The columns with a weight (sorted; never column 0, which takes the n-grams that cross
    texts) and their weights (float32, one row per column), from sparse or dense coefficients.
    A column listed twice in ``coef_index`` takes its last value."""
    if "coef" in weights:
        dense = np.asarray(weights["coef"], dtype=np.float32)
        index = np.arange(dense.shape[-1])
        value = dense.T
    else:
        # the last of repeated columns: the first of them in reverse order
        index, last = np.unique(np.asarray(weights["coef_index"])[::-1], return_index=True)
        value = np.asarray(weights["coef_value"], dtype=np.float32)[::-1][last]
    used = (index != 0) & (value != 0).reshape(len(value), -1).any(axis=1)
    return index[used], np.ascontiguousarray(value[used])


def nb_ratio(features, labels: np.ndarray, alpha: float, columns: int | None = None) -> np.ndarray:
    """The log-count ratio of each column of ``features`` (texts × columns: 1 where the text
    has the feature) between the positive and the negative class.

    ``columns``: how many feature columns there are in all, when ``features`` holds only some
    of them (the kept ones): the others occur in no text, and only their smoothing ``alpha``
    enters each class's total."""
    counts = class_counts(features, labels, 2)
    return ratio_from_counts(counts[1], counts[0], alpha, columns or features.shape[1])


def class_counts(features, labels: np.ndarray, classes: int) -> np.ndarray:
    """``(classes, columns)`` int64: per class, how many of its texts have each column of
    ``features`` (texts × columns, 1 where the text has the feature): the naive-Bayes counts."""
    out = np.zeros((classes, features.shape[1]), dtype=np.int64)
    for c in range(classes):
        mine = features[labels == c]
        out[c] = np.bincount(mine.indices, minlength=features.shape[1]) if sp.issparse(mine) else \
            np.asarray(mine.sum(axis=0)).ravel()
    return out


def ratio_from_counts(positive: np.ndarray, negative: np.ndarray, alpha: float, columns: int) -> np.ndarray:
    """:func:`nb_ratio` from the counts of the kept columns (texts of each side that have each
    column; ``columns``: how many columns there are in all, kept or not)."""
    p = positive.astype(np.float32) + alpha  # float32, as the sums of a float32 matrix
    q = negative.astype(np.float32) + alpha
    unseen = alpha * (columns - len(p))
    # the totals summed exactly (float64), then rounded once to the ratios' float32
    p_total, n_total = (np.float32(x.sum(dtype=np.float64) + unseen) for x in (p, q))
    return (np.log(p / p_total) - np.log(q / n_total)).astype(np.float32)


def kept_columns(df: np.ndarray, min_df: int, texts: int, spans: np.ndarray | None = None) -> np.ndarray:
    """The columns a fit keeps: those in at least ``min_df`` of the ``texts`` training texts
    (``df``: texts per column); with ``min_df`` 1 every column of the texts and of their spans
    (``spans``: span rows per column). No column kept is a ConfigError."""
    if min_df > 1:
        columns = np.flatnonzero(df >= min_df)
        if not len(columns):  # every weight would be 0: a constant model
            most = int(df.max(initial=0))
            raise ConfigError(f"--min-df {min_df}: no n-gram occurs in at least {min_df:,} of the {texts:,} training "
                              f"texts (the most common is in {most:,}); use --min-df {max(most, 1)} or less")
        return columns
    return np.flatnonzero(df if spans is None else df + spans)


def platt(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Slope and offset of a sigmoid fitted to (score, label) pairs (each of weight ``weights``):
    calibrated probabilities."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, max_iter=1000).fit(scores.reshape(-1, 1), labels, sample_weight=weights)
    return np.array([model.coef_[0, 0], model.intercept_[0]], dtype=np.float32)


def strength(params: NBLinearParams, classes: int) -> float:
    """The C of the logistic regressions: ``params.C``, or the default for this many classes."""
    return params.C if params.C is not None else 1.0 if classes == 2 else 0.1


@dataclass
class _Design:
    """What the fits of one training set share (every class's, one-vs-rest), computed once:
    the feature columns kept (those in at least ``min_df`` texts), which of them each text
    has, and the rows fitted — the texts, then the spans at their weight — on those columns
    only, so that every array of the fits is as wide as the kept columns, not the millions
    of hashed ones."""

    kept: KeptColumns
    present: Any  # texts × kept columns: 1 where the text has the feature
    rows: Any  # texts × kept columns, then spans × kept columns
    weights: np.ndarray | None  # each row's weight in the fit (None: all 1)
    spans: bool  # rows after the texts are spans


def _design(features, params: NBLinearParams, spans: tuple[Any, np.ndarray] | None,
            row_weights: np.ndarray | None = None) -> _Design:
    """``row_weights``: each text's weight in the logistic regression (sample_weight; None: 1)."""
    spans = spans if spans is not None and spans[0].shape[0] else None
    df = np.bincount(features.indices, minlength=features.shape[1])  # texts per column (CSR: one entry per text)
    in_spans = None if spans is None or params.min_df > 1 else \
        np.bincount(spans[0].indices, minlength=features.shape[1])
    kept = KeptColumns(kept_columns(df, params.min_df, features.shape[0], in_spans), features.shape[1])
    del df, in_spans
    texts = kept.compact(features)
    if spans is None:
        return _Design(kept, texts.sign(), texts, row_weights, False)
    own = np.ones(features.shape[0]) if row_weights is None else row_weights
    weights = np.r_[own, np.full(spans[0].shape[0], params.span_weight)]
    return _Design(kept, texts.sign(), sp.vstack([texts, kept.compact(spans[0])], format="csr"), weights, True)


def _fit_weights(design: _Design, labels: np.ndarray, span_labels: np.ndarray | None, params: NBLinearParams,
                 classes: int = 2) -> tuple[np.ndarray, float]:
    """NB-scaled logistic regression of ``labels`` (1 = the class fitted); returns the folded
    weights of the kept columns and the intercept. The spans of ``design`` join the fit with their labels
    ``span_labels`` at weight ``params.span_weight``; the NB ratios come from the whole texts.

    liblinear's dual solver: with millions of features and tens of thousands of texts it is
    about ten times faster than the primal one, for the same solution."""
    from sklearn.linear_model import LogisticRegression

    ratio = nb_ratio(design.present, labels, params.alpha, design.kept.n_features)
    if design.spans:
        assert span_labels is not None
        labels = np.concatenate([labels, span_labels])
    scaled = design.rows.multiply(ratio).tocsr()
    scaled.eliminate_zeros()  # features whose ratio is 0
    model = LogisticRegression(C=strength(params, classes), solver="liblinear", dual=True, max_iter=params.max_iter,
                               tol=params.tol, random_state=0)
    model.fit(scaled, labels, sample_weight=design.weights)
    return (model.coef_[0] * ratio).astype(np.float32), float(model.intercept_[0])


def fit(train: Dataset, validation: Dataset, params: NBLinearParams) -> tuple[NBLinearPredictor, NBLinearPredictor]:
    """Fit on ``train``, calibrate on ``validation``; then, with ``refit`` (the default), fit
    again on train + validation with the same settings and keep that calibration. More than
    two classes: one model per class against the rest.

    Returns the predictor and the model that did not see the validation labels (the same
    object without ``refit``): what honest validation scores and calibrations come from."""
    texts = list(train.texts) + list(validation.texts)
    # The vocabulary is learned from text alone (no labels), so the refit can share it.
    vectorizer = NgramVectorizer(ngrams=params.ngrams, hash_bits=params.hash_bits,
                                 binary=params.binary).adapt(texts)
    log(f"vectorizing {len(texts):,} texts: {vectorizer.vocabulary_size:,} words + hashed 2..{params.ngrams}-grams")
    features = vectorizer.transform(texts)
    check_stop("after vectorizing")
    labels = np.concatenate([train.labels, validation.labels]).astype(np.int64)
    classes = len(train.class_names)
    n = len(train)
    train_features = features[:n]  # a CSR row slice copies: take it once
    spans = _spans(vectorizer, train, params)
    log(f"fitting NB-weighted logistic regression on {train_features.nnz:,} non-zeros"
        + (f" (+ {spans[0].shape[0]:,} spans of them)" if spans else "")
        + ("" if classes == 2 else f", one per class against the rest ({classes} classes)"))
    kept, coef, intercept = _fit_classes(train_features, labels[:n], params, spans, classes, train.weights)
    calibration = calibrate(kept.compact(features[n:]) @ coef.T + intercept, labels[n:], validation.weights)

    def predictor(kept: KeptColumns, coef: np.ndarray, intercept: np.ndarray) -> NBLinearPredictor:
        return make_predictor(vectorizer, params, train.class_names, kept, coef, intercept, calibration)

    first = predictor(kept, coef, intercept)
    if not params.refit:
        return first, first
    check_stop("before the final fit")
    log(f"refitting on train + validation ({len(texts):,} texts)")
    if spans:
        more = _spans(vectorizer, validation, params)
        spans = (sp.vstack([spans[0], more[0]], format="csr"), np.concatenate([spans[1], more[1]])) if more else spans
    weights = None if train.weights is None else np.r_[train.weights, np.ones(len(validation))]
    return predictor(*_fit_classes(features, labels, params, spans, classes, weights)), first


def calibrate(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The calibration of held-out ``scores`` (``(n, 1)``, or ``(n, K)`` for K > 2 classes: one
    model's per class): Platt scaling for two classes, vector scaling for more."""
    return platt(scores, labels, weights) if scores.shape[1] == 1 else vector_scaling(scores, labels, weights)


def make_predictor(vectorizer: NgramVectorizer, params: NBLinearParams, class_names: Sequence[str],
                   kept: KeptColumns, coef: np.ndarray, intercept: np.ndarray,
                   calibration: np.ndarray) -> NBLinearPredictor:
    """The predictor of fitted weights: ``coef`` ``(models, kept columns)`` and ``intercept``
    ``(models,)``, one model for two classes, one per class for more."""
    weights = {"coef_index": kept.columns, "coef_value": coef[0] if len(class_names) == 2 else coef.T,
               "intercept": np.asarray(intercept, dtype=np.float32), "calibration": calibration}
    return NBLinearPredictor(vectorizer, asdict(params), weights, class_names)


def _fit_classes(features, labels: np.ndarray, params: NBLinearParams, spans: tuple[Any, np.ndarray] | None,
                 classes: int, row_weights: np.ndarray | None = None) -> tuple[KeptColumns, np.ndarray, np.ndarray]:
    """The columns kept, ``(models, kept columns)`` weights and ``(models,)`` intercepts: one
    model for two classes (of class 1), else one per class against the rest."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:  # liblinear's, from every thread: one note below
        warnings.simplefilter("always", ConvergenceWarning)
        kept, coef, intercept = _fit_all(features, labels, params, spans, classes, row_weights)
    stopped = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if stopped:
        log(f"note: {stopped} of {1 if classes == 2 else classes} logistic regression(s) stopped at max_iter "
            f"{params.max_iter} before their tolerance {params.tol:g} (the weights are used as they are)")
    return kept, coef, intercept


def _fit_all(features, labels: np.ndarray, params: NBLinearParams, spans: tuple[Any, np.ndarray] | None,
             classes: int, row_weights: np.ndarray | None = None) -> tuple[KeptColumns, np.ndarray, np.ndarray]:
    design = _design(features, params, spans, row_weights)  # once: every class's fit shares it
    span_labels = None if spans is None else spans[1]
    if classes == 2:
        coef, intercept = _fit_weights(design, labels, span_labels, params)
        return design.kept, coef[None, :], np.array([intercept])

    def one(c: int) -> tuple[np.ndarray, float]:
        check_stop(f"before fitting class {c + 1} of {classes}")
        mine = None if span_labels is None else (span_labels == c).astype(np.int64)
        fitted = _fit_weights(design, (labels == c).astype(np.int64), mine, params, classes)
        log(f"  class {c + 1} of {classes} fitted")  # minutes on large data: say how far it is
        return fitted

    # one after another: liblinear shuffles with the C library's global rand(), so fits in
    # parallel threads (it releases the GIL) would draw from one another's sequence and the
    # same seed would not give the same model
    fitted = [one(c) for c in range(classes)]
    return design.kept, np.stack([coef for coef, _ in fitted]), np.array([intercept for _, intercept in fitted])


def _spans(vectorizer: NgramVectorizer, data: Dataset, params: NBLinearParams) -> tuple[Any, np.ndarray] | None:
    """Features and labels of random spans of ``data``'s texts (None with ``span_weight`` 0)."""
    if not params.span_weight or not len(data):
        return None
    spans = cut_spans(data, windows=params.span_windows, full=False, seed=0)
    return vectorizer.transform(spans.data.texts), spans.data.labels.astype(np.int64)


def fit_family(job: FitJob, params: NBLinearParams) -> Fitted:
    predictor, held_out = fit(job.train, job.validation, params)
    return Fitted(predictor, held_out=held_out)


FAMILY = Family(
    name="nblinear", summary="NB-weighted word n-gram logistic regression (the default: fast and accurate)",
    params=NBLinearParams, predictor=NBLinearPredictor, fit=fit_family, estimator="NBLinearClassifier")
