"""Prediction stage: score texts from arguments, files or stdin with any exported model."""

from .io import gather_texts, render, result_rows

__all__ = ["gather_texts", "render", "result_rows"]
