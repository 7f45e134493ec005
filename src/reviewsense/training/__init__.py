"""Training stage: the History/EarlyStopping contract, the loops, and the run folder."""

from .history import EarlyStopping, History

__all__ = ["EarlyStopping", "History"]
