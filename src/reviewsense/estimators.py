"""scikit-learn estimators over reviewsense's model families: ``fit`` on strings and labels of
any type, then ``predict``, ``predict_proba``, ``decision_function``, ``score``.

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

Every family of the registry has one, made from its parameters dataclass (the one place its
settings are written: :mod:`reviewsense.models.params`): ``NBLinearClassifier``,
``SeedClassifier``, ``CNNClassifier``, ``SentenceClassifier``, ``TransformerClassifier``, and
``estimator_class(name)`` for any family, a registered one included. ``StackedClassifier`` is
``train --preset best``: a stack of two of them.

``reviewsense train`` trains through the same estimators (:meth:`TextClassifier.fit_split`),
so the same data, settings and seed give the same model from the CLI and from Python.

Each estimator keeps its hyper-parameters as given in ``__init__`` (so ``clone``,
``Pipeline``, ``GridSearchCV``, ``cross_val_score`` and ``CalibratedClassifierCV`` work),
checks them in ``fit``, holds out ``validation_size`` of the rows for early stopping, the
calibration and the length calibration unless ``validation_data`` is given, and keeps what it
learned in attributes ending with ``_``: ``classes_``, ``predictor_`` (the numpy
:class:`~reviewsense.models.base.Predictor` every export and the server use), ``history_``
for families trained in epochs. ``predict_proba`` is ``(n, n_classes)`` in ``classes_``
order; with two classes ``classes_[1]`` is the positive class (what ``decision_function``
is the logit of). ``save(dir)`` writes the export folder; ``load(dir)`` gives the estimator
back, and :func:`reviewsense.load` the predictor.
"""

from __future__ import annotations

import functools
import inspect
import json
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from .data.dataset import Dataset, check_split, train_validation_split
from .errors import ConfigError, DataError, ModelFileError
from .models.base import as_texts
from .models.params import Spec, check_params, param, specs
from .models.registry import Family, FitJob, Fitted, families, family


@dataclass
class FitSettings:
    """What every estimator has besides its family's parameters."""

    validation_size: float = param(0.2, "rows held out for early stopping and the calibrations: a fraction in "
                                   "(0, 1) or a count", gt=0)
    length_calibration: bool = param(True, "calibrate on spans of the validation texts of every length")
    class_weight: str | None = param(None, "'balanced' (each class weighs as much in the training loss), a dict "
                                     "class → weight, or None", cli=False)
    n_jobs: int | None = param(None, "threads (None: every core, or $REVIEWSENSE_THREADS; -1: every core)", cli=False)
    verbose: bool | None = param(None, "progress on stderr (None: unless $REVIEWSENSE_QUIET)", cli=False)
    random_state: int = param(0, "seeds the split, the initialisation and the shuffling", ge=0, cli=False)


COMMON = tuple(spec.name for spec in specs(FitSettings))


class TextClassifier(ClassifierMixin, BaseEstimator):
    """What every family's estimator shares: target checks, labels ↔ class indices, the
    validation split, the length calibration, prediction, saving and loading. The class for a
    family comes from :func:`estimator_class`."""

    _family: str = ""
    validation_size: float | int
    length_calibration: bool
    class_weight: Any
    n_jobs: int | None
    verbose: bool | None
    random_state: int

    def __init__(self, **params: Any) -> None:  # replaced by each family's class (estimator_class)
        raise TypeError("TextClassifier is abstract: use a family's estimator (estimator_class(name))")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True  # one text per row …
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False  # … not a numeric matrix (a one-column frame is taken as the texts)
        tags.target_tags.required = True
        tags.classifier_tags.multi_class = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"X_types": ["string"], "requires_y": True}

    # -- parameters ------------------------------------------------------------------------
    def _family_params(self) -> dict[str, Any]:
        """This estimator's hyper-parameters that are its family's parameters (lists as lists)."""
        names = {spec.name for spec in specs(family(self._family).params)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.get_params(deep=False).items()
                if k in names}

    def _job_settings(self) -> dict[str, dict[str, Any]]:
        """Every family's settings for this fit (a stack adds its members')."""
        return {self._family: self._family_params()}

    def _check_common(self) -> None:
        settings = FitSettings(**{k: getattr(self, k) for k in COMMON if k != "class_weight"}, class_weight=None)
        check_params(type(self).__name__, settings)
        size = self.validation_size
        if isinstance(size, float) and size >= 1 and not size.is_integer():
            raise ConfigError(f"{type(self).__name__}: validation_size must be a fraction in (0, 1) or a count, "
                              f"got {size!r}")
        if self.n_jobs is not None and self.n_jobs != -1 and self.n_jobs < 1:
            raise ConfigError(f"{type(self).__name__}: n_jobs must be -1 (every core), None or ≥ 1, got {self.n_jobs}")
        weight = self.class_weight
        if not (weight is None or weight == "balanced" or isinstance(weight, dict)):
            raise ConfigError(f"{type(self).__name__}: class_weight must be 'balanced', a dict or None, "
                              f"got {weight!r}")

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None, *,
            validation_data: tuple[Any, Any] | None = None) -> TextClassifier:
        """Learn from texts ``X`` (strings; a one-column DataFrame or (n, 1) array of them) and
        labels ``y`` (strings, ints, bools: two classes or more; missing, continuous or
        infinite labels are refused).

        ``sample_weight``: each row's weight in the training loss. ``validation_data=(texts,
        labels)`` is what early stopping, the probability calibration and the length
        calibration are fitted on; without it, ``validation_size`` of the rows (a fraction, or a
        count) are held out at random within each class, in its share (seeded by ``random_state``)."""
        self._check_common()
        family(self._family).make_params(self._family_params())  # refuse bad settings before any work
        texts = _texts(X)
        labels = check_targets(y, len(texts))
        classes = np.unique(labels)
        if len(classes) < 2:
            raise DataError(f"{type(self).__name__} needs at least two classes, got {classes.tolist()}")
        names = tuple(str(c) for c in classes)
        if len(set(names)) != len(names):
            raise DataError(f"classes {classes.tolist()[:5]} are not distinct as text")
        weights = check_sample_weight(sample_weight, len(texts))
        data = Dataset(texts=texts, labels=np.searchsorted(classes, labels), name="fit", class_names=names,
                       weights=weights)
        if validation_data is None:
            train, validation = train_validation_split(data, self.validation_size, seed=self.random_state,
                                                       by_group=False, what="validation_size", stratify=True)
            what, size = "validation_size", self.validation_size
        else:
            v_texts, v_labels = validation_data
            v_texts = _texts(v_texts)
            v_labels = check_targets(v_labels, len(v_texts), "validation labels")
            unknown = sorted({str(v) for v in v_labels[~np.isin(v_labels, classes)]})
            if unknown:
                raise DataError(f"validation labels {unknown[:5]} are not among the classes {classes.tolist()}")
            train, validation = data, Dataset(texts=v_texts, labels=np.searchsorted(classes, v_labels),
                                              name="validation", class_names=names)
            what, size = "validation_data", len(v_texts)
        self.classes_ = classes
        return self.fit_split(train, validation, what=what, size=size)

    def fit_split(self, train: Dataset, validation: Dataset, *, vectors: Any = None, checkpoint: Any = None,
                  callbacks: Sequence[Any] = (), what: str = "validation", size: Any = "") -> TextClassifier:
        """Fit on a split made already (what ``reviewsense train`` calls, with the vectors it
        pretrained and its checkpoint): the checks every fit runs, the family's fit, the length
        calibration. ``classes_`` are ``train.class_names`` unless :meth:`fit` set them."""
        self._fit_split(train, validation, vectors=vectors, checkpoint=checkpoint, callbacks=callbacks, what=what,
                        size=size)
        return self

    def _fit_split(self, train: Dataset, validation: Dataset, *, vectors: Any = None, checkpoint: Any = None,
                   callbacks: Sequence[Any] = (), what: str = "validation", size: Any = "") -> Fitted:
        """:meth:`fit_split`, returning the family's :class:`Fitted` (with the model that did not
        see the validation labels, which the run folder's validation metrics need; not kept on
        the estimator, so pickles hold one model)."""
        from .progress import settings

        self._check_common()
        declared = family(self._family)
        params = declared.make_params(self._family_params())
        check_training_split(train, validation, what, size)
        per_class = _class_weights(train, self.class_weight, getattr(self, "classes_", None))
        train, validation = _weighted(train, per_class), _weighted(validation, per_class)
        with settings(verbose=self.verbose, n_jobs=self.n_jobs):
            if vectors is None:
                vectors = self._vectors(train, validation)
            job = FitJob(train, validation, vectors, self._job_settings(), seed=self.random_state,
                         n_jobs=self.n_jobs, checkpoint=checkpoint, callbacks=tuple(callbacks))
            assert declared.fit is not None
            fitted = declared.fit(job, params)
            if self.length_calibration:
                from .models.calibration import calibrate_by_length
                from .progress import log

                log("calibrating on spans of the validation texts (1 word to the whole text)")
                calibrate_by_length(fitted.predictor, fitted.held_out or fitted.predictor, train.labels, validation,
                                    seed=self.random_state, class_weights=per_class)
        if not hasattr(self, "classes_") or len(self.classes_) != len(train.class_names):
            self.classes_ = np.array(train.class_names)
        self.predictor_ = fitted.predictor
        self.predictor_.n_jobs = self.n_jobs
        if fitted.history is not None:
            self.history_ = fitted.history
        self.n_features_in_ = 1  # one text per row
        return fitted

    def _vectors(self, train: Dataset, validation: Dataset) -> Any:
        """Word vectors for families that read them: pretrained now on the training and
        validation texts (never labels) for ``word2vec``/``fasttext``, or loaded from a path."""
        if not family(self._family).word_vectors:
            return None
        from .text.word_vectors import vectors_for

        own = self._family_params()
        return vectors_for(own["embedding"], list(train.texts) + list(validation.texts), own["embedding_dim"],
                           seed=self.random_state)

    # -- prediction ------------------------------------------------------------------------
    def decision_function(self, X: Any) -> np.ndarray:
        """Two classes: the logit of ``classes_[1]`` for each text, shape ``(n,)``; more: the
        logits before the softmax, ``(n, n_classes)``."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.predict_logits(_texts(X)).astype(np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Shape ``(n, n_classes)``: each class's probability, in ``classes_`` order."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.predict_proba(_texts(X)).astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each text, from ``classes_``."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    # -- saving ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the export folder (the same as ``reviewsense train``'s ``model/``): it loads with
        :meth:`load` as this estimator and with :func:`reviewsense.load` as a predictor.

        ``path`` is a new or empty folder; one that holds a saved model is replaced only with
        ``overwrite=True``; any other folder with files in it, ``.``, the home folder, a file or a
        link is refused (:class:`~reviewsense.errors.OutputError`) and left untouched."""
        from .export import save_model

        check_is_fitted(self, "predictor_")
        training = {"estimator": type(self).__name__, "params": _jsonable(self.get_params(deep=False)),
                    "classes": self.classes_.tolist()}
        return save_model(self.predictor_, path, training=training, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextClassifier:
        """The estimator saved in ``path`` by :meth:`save`, ready to predict."""
        from .export import load_model
        from .export.bundle import read_manifest

        predictor = load_model(path)
        training = read_manifest(path).get("training") or {}
        if training.get("estimator") != cls.__name__:
            raise ModelFileError(f"{path}: not saved by {cls.__name__}.save (saved by "
                                 f"{training.get('estimator') or 'reviewsense train'}); use reviewsense.load")
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in (training.get("params") or {}).items()
                  if k in cls._get_param_names() and not isinstance(v, dict)}
        estimator = cls(**params)
        estimator.classes_ = np.array(training["classes"])
        estimator.predictor_ = predictor
        predictor.n_jobs = estimator.n_jobs
        estimator.n_features_in_ = 1
        return estimator


def _texts(X: Any) -> list[str]:
    """The texts of ``X``: a sequence of strings, or a one-column DataFrame / ``(n, 1)`` array of them."""
    if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2:
        if X.shape[1] != 1:
            raise DataError(f"X has {X.shape[1]} columns; give the texts as one column (or a list of strings)")
        X = X.iloc[:, 0]
    elif isinstance(X, np.ndarray) and X.ndim == 2:
        if X.shape[1] != 1:
            raise DataError(f"X has shape {X.shape}; give one text per row (a list of strings, or shape (n, 1))")
        X = X[:, 0]
    return as_texts(X)


def check_targets(y: Any, n: int, what: str = "labels") -> np.ndarray:
    """``y`` as a 1-D array of class labels, one per text; refused in one line: a missing label
    (None, NaN, pd.NA), a continuous or infinite one, labels of mixed types, a wrong length."""
    from sklearn.utils.multiclass import type_of_target

    if hasattr(y, "to_numpy"):
        y = y.to_numpy(dtype=object) if getattr(y, "dtype", None) is not None and str(y.dtype) in (
            "category", "string", "boolean", "Int64", "Int32", "Int16", "Int8") else y.to_numpy()
    labels = np.asarray(list(y) if not isinstance(y, np.ndarray) else y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != n:
        raise DataError(f"expected one label per text: {n} texts, {what} of shape {labels.shape}")
    for i, value in enumerate(labels.tolist()):
        if value is None or (isinstance(value, float) and np.isnan(value)) or type(value).__name__ == "NAType":
            raise DataError(f"{what}[{i}] is missing ({value!r}): give every text a label")
        if isinstance(value, float) and np.isinf(value):
            raise DataError(f"{what}[{i}] is {value}: labels must be classes")
    if labels.dtype == object:
        kinds = {type(v).__name__ if not isinstance(v, numbers.Number) or isinstance(v, bool) else "number"
                 for v in labels.tolist()}
        if len(kinds) > 1:
            raise DataError(f"{what} mix types ({', '.join(sorted(kinds))}): give every label the same type")
        labels = np.asarray(labels.tolist())
    try:
        kind = type_of_target(labels, input_name="y")
    except ValueError as exc:
        raise DataError(f"{what}: {exc}") from None
    if kind not in ("binary", "multiclass"):
        what_it_is = "continuous values (regression targets?)" if kind.startswith("continuous") else kind
        raise DataError(f"{what} are {what_it_is}: a classifier needs class labels (strings, ints or bools)")
    return labels


def check_sample_weight(sample_weight: Any, n: int) -> np.ndarray | None:
    """``sample_weight`` as float64, one finite non-negative value per text, not all zero."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n, float(sample_weight))  # type: ignore[arg-type]
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n,):
        raise DataError(f"sample_weight has shape {weights.shape}; expected one weight per text ({n},)")
    if not np.isfinite(weights).all() or (weights < 0).any() or not weights.any():
        raise DataError("sample_weight must be finite, ≥ 0 and not all zero")
    return weights


def check_training_split(train: Dataset, validation: Dataset, what: str = "validation", size: Any = "") -> None:
    """What every fit checks, from the CLI or from Python: every class has training rows (a class
    only in the held-out rows could never be learned), and the split leaves something to learn
    from and to measure with."""
    present = set(train.labels.tolist())
    missing = [name for c, name in enumerate(train.class_names) if c not in present]
    if missing:
        shown = ", ".join(f"'{name}'" for name in missing)
        raise DataError(f"{what} {size}: no training row of class {shown} (all its rows are held out, or none "
                        "exist); give more rows of it, hold out fewer, or change the seed".replace("  ", " "))
    check_split(train, validation, what, size)


def _class_weights(train: Dataset, class_weight: Any, classes: np.ndarray | None) -> np.ndarray | None:
    """One weight per class (``"balanced"``: inversely proportional to its training rows), or None."""
    if class_weight is None:
        return None
    counts = np.bincount(train.labels, minlength=len(train.class_names)).astype(np.float64)
    if class_weight == "balanced":
        per_class = counts.sum() / (len(counts) * np.maximum(counts, 1))
    else:
        names = classes.tolist() if classes is not None else list(train.class_names)
        unknown = [k for k in class_weight if k not in names and str(k) not in train.class_names]
        if unknown:
            raise ConfigError(f"class_weight names {unknown[:5]}, not among the classes {names}")
        per_class = np.ones(len(counts))
        for key, value in class_weight.items():
            index = names.index(key) if key in names else list(train.class_names).index(str(key))
            if not isinstance(value, numbers.Real) or not np.isfinite(float(value)) or value < 0:
                raise ConfigError(f"class_weight[{key!r}] must be a finite number ≥ 0, got {value!r}")
            per_class[index] = float(value)
    return per_class


def _weighted(data: Dataset, per_class: np.ndarray | None) -> Dataset:
    """``data`` with each row's weight multiplied by its class's weight: the training loss, early
    stopping and the calibrations on the validation rows all see the same weighting."""
    if per_class is None:
        return data
    base = data.weights if data.weights is not None else np.ones(len(data))
    return replace(data, weights=base * per_class[data.labels])


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    return out


def _signature_default(spec: Spec) -> Any:
    """A parameter's default as a constructor default: lists become tuples (scikit-learn wants
    immutable defaults)."""
    return tuple(spec.default) if isinstance(spec.default, list) else spec.default


def _docstring(name: str, summary: str, own: Sequence[Spec]) -> str:
    lines = [f"{summary[:1].upper()}{summary[1:]} (the ``{name}`` family, ``reviewsense train --model {name}``).",
             "", "Parameters", "----------"]
    for spec in (*own, *specs(FitSettings)):
        lines += [f"{spec.name} : default {_signature_default(spec)!r}", f"    {spec.help}"
                  + (f" ({spec.range_text()})" if spec.range_text() else "") + "."]
    return "\n".join(lines)


def estimator_class(name: str) -> type[TextClassifier]:
    """The scikit-learn estimator of family ``name``: its constructor's parameters are the
    family's (from its parameters dataclass, with their defaults) and :class:`FitSettings`'."""
    return _estimator_class(family(name))


@functools.cache
def _estimator_class(declared: Family) -> type[TextClassifier]:
    name = declared.name
    own = specs(declared.params)
    clash = {spec.name for spec in own} & set(COMMON)
    if clash:
        raise RuntimeError(f"family '{name}' declares {sorted(clash)}, which every estimator has")
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + [
        inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=_signature_default(spec))
        for spec in (*own, *specs(FitSettings))]
    signature = inspect.Signature(parameters)
    defaults = {p.name: p.default for p in parameters[1:]}
    class_name = _class_name(declared)

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise TypeError(f"{class_name}() got unexpected parameter(s) {', '.join(unknown)}")
        for key, value in defaults.items():
            setattr(self, key, params.get(key, value))

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{class_name}.__init__"
    return type(class_name, (TextClassifier,), {"__init__": __init__, "_family": name, "__module__": __name__,
                                                "__doc__": _docstring(name, declared.summary, own)})


class StackedClassifier(TextClassifier):
    """What ``reviewsense train --preset best`` builds: ``linear`` (an :class:`NBLinearClassifier`)
    and ``network`` (a :class:`CNNClassifier`) trained on the same split, stacked on their
    validation scores (of models that did not see those labels); with the length calibration
    (the default) that calibration is the stack: each member's logit weighed by text length.
    Their hyper-parameters are reached the scikit-learn way:
    ``StackedClassifier(...).set_params(linear__C=0.5, network__epochs=3)``.
    """

    _family = "ensemble"

    def __init__(self, linear: TextClassifier | None = None, network: TextClassifier | None = None, *,
                 validation_size: float | int = 0.2, length_calibration: bool = True, class_weight: Any = None,
                 n_jobs: int | None = None, verbose: bool | None = None, random_state: int = 0):
        self.linear = linear
        self.network = network
        self.validation_size = validation_size
        self.length_calibration = length_calibration
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    def _members(self) -> list[TextClassifier]:
        return [self.linear if self.linear is not None else NBLinearClassifier(),
                self.network if self.network is not None else CNNClassifier()]

    def _family_params(self) -> dict[str, Any]:
        return {"members": [member._family for member in self._members()]}

    def _job_settings(self) -> dict[str, dict[str, Any]]:
        settings = {self._family: self._family_params()}
        for member in self._members():
            settings[member._family] = member._family_params()
        return settings

    def _vectors(self, train: Dataset, validation: Dataset) -> Any:
        readers = [m for m in self._members() if family(m._family).word_vectors]
        if not readers:
            return None
        return clone(readers[0]).set_params(random_state=self.random_state)._vectors(train, validation)


def _class_name(declared: Family) -> str:
    """The estimator class's name: the family's ``estimator``, else ``<Name>Classifier``."""
    return declared.estimator or f"{declared.name.title().replace('_', '')}Classifier"


def __getattr__(name: str) -> type[TextClassifier]:
    """A registered family's estimator by its class name (how pickle finds it)."""
    for declared in families().values():
        if _class_name(declared) == name and (declared.estimator or declared.fit is not None):
            return estimator_class(declared.name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


NBLinearClassifier = estimator_class("nblinear")
SeedClassifier = estimator_class("seed")
CNNClassifier = estimator_class("cnn")
SentenceClassifier = estimator_class("sentence")
TransformerClassifier = estimator_class("transformer")
