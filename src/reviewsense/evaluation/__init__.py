"""Evaluation stage: metrics on held-out data and the training-curve plots."""

from .metrics import binary_metrics, evaluate

__all__ = ["binary_metrics", "evaluate"]
