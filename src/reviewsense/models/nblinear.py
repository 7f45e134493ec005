"""NB-weighted n-gram logistic regression (Wang & Manning 2012, "NBSVM", with a logistic loss).

text → word 1..3-gram counts (:class:`NgramVectorizer`: unigram vocabulary + hashed
higher orders) → each feature scaled by its naive-Bayes log-count ratio
r = log(p/|p|₁) − log(q/|q|₁) (p, q: smoothed counts of texts containing it, per class) →
logistic regression → Platt scaling fitted on the validation split, so probabilities are
calibrated.

The scaled weights fold into one vector (``coef = r ⊙ w``), so prediction is one weighted
count per text, computed straight from the n-gram columns, with numpy and polars only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..data.dataset import Dataset
from ..errors import ModelFileError
from ..progress import log
from ..text.ngrams import NgramVectorizer
from .base import Predictor, check_shapes


@dataclass
class NBLinearParams:
    ngrams: int = 3
    hash_bits: int = 22  # 4M buckets shared by the 2- and 3-grams
    alpha: float = 1.0  # smoothing of the NB counts
    C: float = 1.0  # inverse L2 strength of the logistic regression
    max_iter: int = 1000
    refit: bool = True  # final fit on train + validation (settings and calibration from the split)


class NBLinearPredictor(Predictor):
    family = "nblinear"
    batch_size = 32_768  # texts per scoring call: fewer, larger polars/numpy passes

    def __init__(self, vectorizer: NgramVectorizer, config: dict[str, Any], weights: dict[str, np.ndarray],
                 class_names: Sequence[str] = ("negative", "positive")):
        super().__init__(vectorizer, config, class_names)
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}

    def raw_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of the logistic regression, before calibration."""
        return self.vectorizer.score(texts, self.weights["coef"]) + self.weights["intercept"][0]

    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        slope, offset = self.weights["calibration"]
        return slope * self.raw_logits(texts) + offset

    def tensors(self) -> dict[str, np.ndarray]:
        return dict(self.weights)

    @classmethod
    def from_tensors(cls, vectorizer, config, tensors, class_names) -> NBLinearPredictor:
        if not isinstance(vectorizer, NgramVectorizer):
            raise ModelFileError("an nblinear model needs an n-gram vectorizer.json")
        check_shapes(tensors, {"coef": (vectorizer.n_features,), "intercept": (1,), "calibration": (2,)})
        return cls(vectorizer, config, tensors, class_names)


def nb_ratio(features, labels: np.ndarray, alpha: float) -> np.ndarray:
    """The log-count ratio of each feature between the positive and the negative class."""
    positive = np.asarray(features[labels == 1].sum(axis=0)).ravel() + alpha
    negative = np.asarray(features[labels == 0].sum(axis=0)).ravel() + alpha
    return (np.log(positive / positive.sum()) - np.log(negative / negative.sum())).astype(np.float32)


def platt(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Slope and offset of a sigmoid fitted to (score, label) pairs: calibrated probabilities."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, max_iter=1000).fit(scores.reshape(-1, 1), labels)
    return np.array([model.coef_[0, 0], model.intercept_[0]], dtype=np.float32)


def _fit_weights(features, labels: np.ndarray, params: NBLinearParams) -> tuple[np.ndarray, float]:
    """NB-scaled logistic regression; returns the folded weight vector and the intercept.

    liblinear's dual solver: with millions of features and tens of thousands of texts it is
    about ten times faster than the primal one, for the same solution."""
    from sklearn.linear_model import LogisticRegression

    ratio = nb_ratio(features.sign(), labels, params.alpha)
    model = LogisticRegression(C=params.C, solver="liblinear", dual=True, max_iter=params.max_iter, random_state=0)
    model.fit(features.multiply(ratio).tocsr(), labels)
    return (model.coef_[0] * ratio).astype(np.float32), float(model.intercept_[0])


def fit(train: Dataset, validation: Dataset, params: NBLinearParams) -> tuple[NBLinearPredictor, np.ndarray]:
    """Fit on ``train``, calibrate on ``validation``; then, with ``refit`` (the default), fit
    again on train + validation with the same settings and keep that calibration.

    Returns the predictor and the calibrated validation logits of the model that did not see
    the validation labels (the honest validation score)."""
    texts = list(train.texts) + list(validation.texts)
    # The vocabulary is learned from text alone (no labels), so the refit can share it.
    vectorizer = NgramVectorizer(ngrams=params.ngrams, hash_bits=params.hash_bits).adapt(texts)
    log(f"vectorizing {len(texts):,} texts: {vectorizer.vocabulary_size:,} words + hashed 2..{params.ngrams}-grams")
    features = vectorizer.transform(texts)
    labels = np.concatenate([train.labels, validation.labels]).astype(np.int64)
    n = len(train)
    train_features = features[:n]  # a CSR row slice copies: take it once
    log(f"fitting NB-weighted logistic regression on {train_features.nnz:,} non-zeros")
    coef, intercept = _fit_weights(train_features, labels[:n], params)
    held_out = features[n:] @ coef + intercept
    calibration = platt(held_out, labels[n:])
    validation_logits = calibration[0] * held_out + calibration[1]
    if params.refit:
        log(f"refitting on train + validation ({len(texts):,} texts)")
        coef, intercept = _fit_weights(features, labels, params)
    weights = {"coef": coef, "intercept": np.array([intercept], dtype=np.float32), "calibration": calibration}
    return NBLinearPredictor(vectorizer, asdict(params), weights, train.class_names), validation_logits
