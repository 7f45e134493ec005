"""scikit-learn estimators over reviewsense's model families: ``fit`` on lists of strings and
labels of any type, then ``predict``, ``predict_proba``, ``decision_function``, ``score``.

>>> from reviewsense import NBLinearClassifier
>>> texts = ["a great film", "an awful film", "great acting", "awful plot"] * 10
>>> labels = ["good", "bad", "good", "bad"] * 10
>>> model = NBLinearClassifier(hash_bits=12).fit(texts, labels)
>>> model.classes_.tolist()
['bad', 'good']
>>> model.predict(["a great plot"]).tolist()
['good']
>>> model.predict_proba(["a great plot"]).shape
(1, 2)

Any number of classes: ``predict_proba`` has one column per class of ``classes_`` (sorted,
as scikit-learn sorts them).

Each estimator keeps its hyper-parameters as given in ``__init__`` (so ``clone``,
``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` work), learns in ``fit`` — holding out
``validation_size`` of the rows for early stopping, calibration and the length calibration
unless ``validation_data`` is given — and keeps what it learned in attributes ending with
``_``: ``classes_``, ``predictor_`` (the numpy :class:`~reviewsense.models.base.Predictor`
that every export and the server use), ``history_`` for families trained in epochs.
``save(dir)`` writes the export folder; ``load(dir)`` gives the estimator back, and
:func:`reviewsense.load` the predictor.

Two classes: ``classes_[1]`` is the positive class (column 1 of ``predict_proba``, what
``decision_function`` is the logit of).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from .data.dataset import Dataset, train_validation_split
from .errors import ConfigError, DataError, ModelFileError
from .models.base import as_texts
from .models.registry import Fitted


class _TextClassifier(ClassifierMixin, BaseEstimator):
    """What every family's estimator shares: labels ↔ class indices, the validation split, the length
    calibration, prediction, saving and loading. A family adds ``_fit_family``."""

    validation_size: float | int
    length_calibration: bool
    random_state: int

    def fit(self, X: Sequence[str], y: Sequence[Any], *,
            validation_data: tuple[Sequence[str], Sequence[Any]] | None = None) -> _TextClassifier:
        """Learn from texts ``X`` and labels ``y`` (strings, ints, bools: two classes or more).

        ``validation_data=(texts, labels)`` is what early stopping, the probability calibration
        and the length calibration are fitted on; without it, ``validation_size`` of the rows
        (a fraction, or a count) are held out at random (seeded by ``random_state``)."""
        texts = as_texts(X)
        labels = _labels(y, len(texts))
        self.classes_ = np.unique(labels)
        if len(self.classes_) < 2:
            raise DataError(f"{type(self).__name__} needs at least two classes, got {self.classes_.tolist()}")
        names = tuple(str(c) for c in self.classes_)
        if len(set(names)) != len(names):
            raise DataError(f"classes {self.classes_.tolist()[:5]} are not distinct as text")
        data = Dataset(texts=texts, labels=self._encode(labels), name="fit", class_names=names)
        if validation_data is None:
            train, validation = train_validation_split(data, self.validation_size, seed=self.random_state,
                                                       by_group=False, what="validation_size")
        else:
            v_texts, v_labels = validation_data
            v_texts = as_texts(v_texts)
            train = data
            validation = Dataset(texts=v_texts, labels=self._encode(_labels(v_labels, len(v_texts))),
                                 name="validation", class_names=names)
        fitted = self._fit_family(train, validation)
        if self.length_calibration:
            from .models.calibration import calibrate_by_length

            calibrate_by_length(fitted.predictor, fitted.held_out or fitted.predictor, train.labels, validation,
                                seed=self.random_state)
        self.predictor_ = fitted.predictor
        if fitted.history is not None:
            self.history_ = fitted.history
        self.n_features_in_ = 1  # one text per row
        return self

    #: the family this estimator trains (reviewsense.models.registry): its hyper-parameters that
    #: name a field of the family's parameters are passed on as they are
    _family: str = ""

    def _settings(self) -> dict[str, Any]:
        """This estimator's hyper-parameters that are the family's parameters."""
        from .models.registry import family

        fields = {f.name for f in dataclasses.fields(family(self._family).params)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.get_params(deep=False).items()
                if k in fields}

    def _options(self):
        """The training schedule of families trained in epochs."""
        from .training.history import EarlyStopping
        from .training.torch_loop import FitOptions

        get = self.get_params(deep=False).get
        return FitOptions(epochs=get("epochs", 1), batch_size=get("batch_size", 512),
                          learning_rate=get("learning_rate", 1e-3), seed=self.random_state, threads=get("threads"),
                          early_stopping=EarlyStopping(patience=get("patience", 3)) if get("early_stopping") else None)

    def _vectors(self, train: Dataset, validation: Dataset) -> Any:
        """Word vectors for families that read them (none by default)."""
        return None

    def _fit_family(self, train: Dataset, validation: Dataset) -> Fitted:
        """Train through the family's registered fit."""
        from .models.registry import FitJob, family

        declared = family(self._family)
        assert declared.fit is not None
        job = FitJob(train, validation, self._options(), self._vectors(train, validation),
                     {self._family: self._settings()})
        try:
            params = job.params(self._family)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None
        return declared.fit(job, params)

    def _encode(self, labels: np.ndarray) -> np.ndarray:
        unknown = sorted({str(v) for v in labels[~np.isin(labels, self.classes_)]})
        if unknown:
            raise DataError(f"labels {unknown[:5]} are not among the classes {self.classes_.tolist()}")
        return np.searchsorted(self.classes_, labels).astype(np.int16)

    # -- prediction ------------------------------------------------------------------------
    def decision_function(self, X: Sequence[str]) -> np.ndarray:
        """Two classes: the logit of ``classes_[1]`` for each text, shape ``(n,)``; more: the
        logits before the softmax, ``(n, n_classes)``."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.predict_logits(as_texts(X)).astype(np.float64)

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """Shape ``(n, n_classes)``: each class's probability, in ``classes_`` order."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.predict_proba(as_texts(X)).astype(np.float64)

    def predict(self, X: Sequence[str]) -> np.ndarray:
        """The most probable class of each text, from ``classes_``."""
        check_is_fitted(self, "predictor_")
        return self.classes_[self.predictor_.predict(as_texts(X)).astype(int)]

    # -- saving ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the export folder (the same as ``reviewsense train``'s ``model/``): it loads with
        :meth:`load` as this estimator and with :func:`reviewsense.load` as a predictor."""
        from .export import save_model

        check_is_fitted(self, "predictor_")
        training = {"estimator": type(self).__name__, "params": _jsonable(self.get_params()),
                    "classes": self.classes_.tolist()}
        return save_model(self.predictor_, path, training=training)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> _TextClassifier:
        """The estimator saved in ``path`` by :meth:`save`, ready to predict."""
        from .export import load_model
        from .export.bundle import read_manifest

        predictor = load_model(path)
        training = read_manifest(path).get("training") or {}
        if training.get("estimator") != cls.__name__:
            raise ModelFileError(f"{path}: not saved by {cls.__name__}.save (saved by "
                                 f"{training.get('estimator') or 'reviewsense train'}); use reviewsense.load")
        params = {k: v for k, v in (training.get("params") or {}).items()
                  if k in cls._get_param_names() and not isinstance(v, dict)}
        estimator = cls(**params)
        estimator.classes_ = np.array(training["classes"])
        estimator.predictor_ = predictor
        estimator.n_features_in_ = 1
        return estimator


def _labels(y: Sequence[Any], n: int) -> np.ndarray:
    labels = np.asarray(list(y) if not isinstance(y, np.ndarray) else y)
    if labels.ndim != 1 or len(labels) != n:
        raise DataError(f"expected one label per text: {n} texts, labels of shape {labels.shape}")
    if labels.dtype == object and any(v is None or (isinstance(v, float) and np.isnan(v)) for v in labels):
        raise DataError("a label is missing (None or NaN)")
    return labels


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return out


class NBLinearClassifier(_TextClassifier):
    """NB-weighted word n-gram logistic regression (``reviewsense train``'s default model).

    Parameters are those of ``reviewsense train`` (:class:`~reviewsense.models.nblinear.NBLinearParams`):
    ``ngrams`` (word n-grams up to this length), ``hash_bits`` (2**bits buckets for the longer
    n-grams), ``min_df``, ``C`` (inverse regularization; None: 1.0 for two classes, 0.1 for more),
    ``binary``, ``span_weight`` (weight of
    short spans of the training texts), ``refit`` (the final fit on train + validation);
    ``validation_size``, ``length_calibration`` and ``random_state`` as for every estimator.
    """

    _family = "nblinear"

    def __init__(self, ngrams: int = 3, hash_bits: int = 24, min_df: int = 2, C: float | None = None,
                 binary: bool = False, span_weight: float = 0.05, refit: bool = True,
                 validation_size: float | int = 0.2, length_calibration: bool = True, random_state: int = 0):
        self.ngrams = ngrams
        self.hash_bits = hash_bits
        self.min_df = min_df
        self.C = C
        self.binary = binary
        self.span_weight = span_weight
        self.refit = refit
        self.validation_size = validation_size
        self.length_calibration = length_calibration
        self.random_state = random_state


class SeedClassifier(_TextClassifier):
    """The tutorial's network: a trainable text embedding → Dense(``hidden_units``, relu) →
    Dense(1) logit, binary cross-entropy, Adam, early stopping on the validation loss.

    ``embedding`` is ``"scratch"`` (learned from the training texts) or the path of word vectors
    (a ``reviewsense pretrain`` folder, a ``.vec`` or ``.txt`` file); ``history_`` holds the
    per-epoch ``loss``, ``accuracy``, ``val_loss`` and ``val_accuracy`` (Keras's ``History``).
    """

    _family = "seed"

    def __init__(self, embedding: str = "scratch", embedding_dim: int = 50, hidden_units: int = 16,
                 max_tokens: int | None = 20_000, ngrams: int = 1, sequence_length: int | None = None,
                 trainable_embedding: bool = True, epochs: int = 40, batch_size: int = 512,
                 learning_rate: float = 3e-3, early_stopping: bool = True, patience: int = 3,
                 threads: int | None = None, validation_size: float | int = 0.2, length_calibration: bool = True,
                 random_state: int = 0):
        self.embedding = embedding
        self.embedding_dim = embedding_dim
        self.hidden_units = hidden_units
        self.max_tokens = max_tokens
        self.ngrams = ngrams
        self.sequence_length = sequence_length
        self.trainable_embedding = trainable_embedding
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.patience = patience
        self.threads = threads
        self.validation_size = validation_size
        self.length_calibration = length_calibration
        self.random_state = random_state

    def _vectors(self, train: Dataset, validation: Dataset) -> Any:
        if self.embedding == "scratch":
            return None
        from .text.word_vectors import load_word_vectors

        return load_word_vectors(self.embedding)


def _word_vectors(embedding: str, texts: Sequence[str], dim: int, seed: int):
    """``scratch``: none; ``word2vec``/``fasttext``: pretrained now on ``texts`` (the training and
    validation texts, never labels); else the path of saved vectors."""
    if embedding == "scratch":
        return None
    if embedding in ("word2vec", "fasttext"):
        from .text.word_vectors import pretrain

        return pretrain(texts, method=embedding, dim=dim, seed=seed)
    from .text.word_vectors import load_word_vectors

    return load_word_vectors(embedding)


class CNNClassifier(_TextClassifier):
    """``--preset best``'s network: word vectors → convolutions of ``widths`` words (``filters``
    each) → max-pooling → dropout → a logit, trained with early stopping on the validation loss.

    ``embedding``: ``"word2vec"`` (pretrained on the texts given to ``fit``, as the preset does
    on IMDB's unlabelled reviews), ``"fasttext"``, ``"scratch"``, or the path of saved vectors.
    The rest are :class:`~reviewsense.models.cnn.CNNParams`; ``history_`` as for ``SeedClassifier``.
    """

    _family = "cnn"

    def __init__(self, embedding: str = "word2vec", embedding_dim: int = 100, max_length: int = 300,
                 max_tokens: int | None = 100_000, min_count: int = 2, filters: int = 64,
                 widths: tuple[int, ...] = (3, 4, 5), dropout: float = 0.5, epochs: int = 6, batch_size: int = 64,
                 learning_rate: float = 2e-3, early_stopping: bool = True, patience: int = 2, refit: bool = False,
                 threads: int | None = None, validation_size: float | int = 0.2, length_calibration: bool = True,
                 random_state: int = 0):
        self.embedding = embedding
        self.embedding_dim = embedding_dim
        self.max_length = max_length
        self.max_tokens = max_tokens
        self.min_count = min_count
        self.filters = filters
        self.widths = widths
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.patience = patience
        self.refit = refit
        self.threads = threads
        self.validation_size = validation_size
        self.length_calibration = length_calibration
        self.random_state = random_state

    def _vectors(self, train: Dataset, validation: Dataset) -> Any:
        return _word_vectors(self.embedding, list(train.texts) + list(validation.texts), self.embedding_dim,
                             self.random_state)


class StackedClassifier(_TextClassifier):
    """What ``reviewsense train --preset best`` builds: ``linear`` (an :class:`NBLinearClassifier`)
    and ``network`` (a :class:`CNNClassifier`) trained on the same split, combined by a logistic
    regression fitted on their validation logits (scores of models that did not see those
    labels), then calibrated by length as one model. Their hyper-parameters are reached the
    scikit-learn way: ``StackedClassifier(...).set_params(linear__C=0.5, network__epochs=3)``.
    """

    _family = "ensemble"

    def __init__(self, linear: NBLinearClassifier | None = None, network: CNNClassifier | None = None,
                 validation_size: float | int = 0.2, length_calibration: bool = True, random_state: int = 0):
        self.linear = linear
        self.network = network
        self.validation_size = validation_size
        self.length_calibration = length_calibration
        self.random_state = random_state

    def _fit_family(self, train: Dataset, validation: Dataset) -> Fitted:
        from .models.ensemble import stack_fitted

        linear = clone(self.linear) if self.linear is not None else NBLinearClassifier()
        network = clone(self.network) if self.network is not None else CNNClassifier()
        members = [linear._fit_family(train, validation), network._fit_family(train, validation)]
        return stack_fitted(members, validation, train.class_names)
