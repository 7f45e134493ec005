"""reviewsense: train, evaluate, explain, export and serve sentiment classifiers.

>>> import reviewsense
>>> model = reviewsense.load("runs/imdb/model")                 # doctest: +SKIP
>>> model.predict_proba(["The movie was great!"])              # doctest: +SKIP
array([[0.03, 0.97]], dtype=float32)
>>> model.positive_proba(["The movie was great!"])             # doctest: +SKIP
array([0.97], dtype=float32)

Importing reviewsense does not import torch: exported models predict with numpy alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.2.0"

if TYPE_CHECKING:
    from .estimators import (
        CNNClassifier,
        NBLinearClassifier,
        SeedClassifier,
        SentenceClassifier,
        StackedClassifier,
        TransformerClassifier,
        estimator_class,
    )
    from .models.base import Predictor
    from .models.registry import Family, register

_ESTIMATORS = ("NBLinearClassifier", "SeedClassifier", "CNNClassifier", "SentenceClassifier",
               "TransformerClassifier", "StackedClassifier", "estimator_class")


def __getattr__(name: str):
    """The estimators and the registry, imported when first used (``import reviewsense`` stays light)."""
    if name in _ESTIMATORS:
        from . import estimators

        return getattr(estimators, name)
    if name in ("Family", "register"):
        from .models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'reviewsense' has no attribute {name!r}")


def load(path: str) -> Predictor:
    """Load an exported model folder and return its :class:`~reviewsense.models.base.Predictor`."""
    from .export import load_model

    return load_model(path)


__all__ = ["CNNClassifier", "Family", "NBLinearClassifier", "SeedClassifier", "SentenceClassifier", "StackedClassifier",
           "TransformerClassifier", "estimator_class", "load", "register", "__version__"]
