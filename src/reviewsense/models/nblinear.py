"""NB-weighted n-gram logistic regression (Wang & Manning 2012, "NBSVM", with a logistic loss).

text → hashed binary word 1..3-grams → each feature scaled by its naive-Bayes log-count
ratio r = log(p/|p|₁) − log(q/|q|₁) → logistic regression → Platt scaling fitted on the
validation split, so probabilities are calibrated.

The scaled weights fold into one vector (``coef = r ⊙ w``), so prediction is a single sparse
product and needs neither torch nor scikit-learn's estimators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..data.dataset import Dataset
from ..errors import ModelFileError
from ..progress import log
from ..text.hashing import HashingVectorizer
from .base import Predictor, check_shapes


@dataclass
class NBLinearParams:
    ngrams: int = 3
    n_features: int = 2**22
    alpha: float = 1.0  # smoothing of the NB counts
    C: float = 1.0  # inverse L2 strength of the logistic regression
    max_iter: int = 200


class NBLinearPredictor(Predictor):
    family = "nblinear"

    def __init__(self, vectorizer: HashingVectorizer, config: dict[str, Any], weights: dict[str, np.ndarray],
                 class_names: Sequence[str] = ("negative", "positive")):
        super().__init__(vectorizer, config, class_names)
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}

    def raw_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of the logistic regression, before calibration."""
        return self.vectorizer.transform(texts) @ self.weights["coef"] + self.weights["intercept"][0]

    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        slope, offset = self.weights["calibration"]
        return slope * self.raw_logits(texts) + offset

    def tensors(self) -> dict[str, np.ndarray]:
        return dict(self.weights)

    @classmethod
    def from_tensors(cls, vectorizer, config, tensors, class_names) -> NBLinearPredictor:
        if not isinstance(vectorizer, HashingVectorizer):
            raise ModelFileError("an nblinear model needs a hashing vectorizer.json")
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


def fit(train: Dataset, validation: Dataset, params: NBLinearParams) -> NBLinearPredictor:
    from sklearn.linear_model import LogisticRegression

    vectorizer = HashingVectorizer(n_features=params.n_features, ngrams=params.ngrams)
    log(f"vectorizing {len(train):,} + {len(validation):,} texts (hashed 1..{params.ngrams}-grams)")
    x_train = vectorizer.transform(train.texts)
    y_train = train.labels.astype(np.int64)
    ratio = nb_ratio(x_train, y_train, params.alpha)
    log(f"fitting NB-weighted logistic regression on {x_train.nnz:,} non-zeros")
    model = LogisticRegression(C=params.C, solver="liblinear", max_iter=params.max_iter)
    model.fit(x_train.multiply(ratio).tocsr(), y_train)
    weights = {
        "coef": (model.coef_[0] * ratio).astype(np.float32),
        "intercept": np.array([model.intercept_[0]], dtype=np.float32),
        "calibration": np.array([1.0, 0.0], dtype=np.float32),
    }
    predictor = NBLinearPredictor(vectorizer, asdict(params), weights, train.class_names)
    predictor.weights["calibration"] = platt(predictor.raw_logits(validation.texts), validation.labels)
    return predictor
