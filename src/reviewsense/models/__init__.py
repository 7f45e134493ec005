"""Model stage: one module per family, all behind the :class:`Predictor` interface."""

from .base import FAMILIES, Predictor, predictor_class

__all__ = ["FAMILIES", "Predictor", "predictor_class"]
