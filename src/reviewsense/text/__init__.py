"""Text stage: strings → token ids / bags (:class:`TextVectorizer`), fast hashed n-gram
features (:class:`NgramVectorizer`), and word vectors."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ModelFileError
from .ngrams import NgramVectorizer
from .vectorizer import TextVectorizer

__all__ = ["NgramVectorizer", "TextVectorizer", "load_vectorizer"]


def load_vectorizer(path: str | os.PathLike[str]) -> TextVectorizer | NgramVectorizer:
    """Load whichever vectorizer a ``vectorizer.json`` holds (dispatch on its ``format``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: cannot read vectorizer ({exc})") from exc
    if isinstance(data, dict) and data.get("format") == NgramVectorizer.FORMAT:
        return NgramVectorizer.from_dict(data)
    return TextVectorizer.from_dict(data)
