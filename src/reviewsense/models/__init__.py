"""Model stage: one module per family, all behind the :class:`Predictor` interface; the
families are listed in :mod:`.registry` (the registry)."""

from .base import Predictor
from .registry import MODULES, Family, FitJob, Fitted, families, family, predictor_class, register

__all__ = ["MODULES", "Family", "FitJob", "Fitted", "Predictor", "families", "family", "predictor_class", "register"]
