"""A vocabulary-free vectorizer: word n-grams hashed into a fixed number of columns.

Same standardization and tokenization as :class:`TextVectorizer`, but nothing to store
except the settings, so an export with millions of n-grams stays small. Hashing is
scikit-learn's (MurmurHash3, stable across processes and machines).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import scipy.sparse as sp

from .._fs import write_json
from ..errors import ConfigError, ModelFileError
from .vectorizer import TextVectorizer

FORMAT = "reviewsense-hashing-vectorizer"
FORMAT_VERSION = 1


class HashingVectorizer:
    """Strings → sparse binary (or count) bags of hashed word n-grams.

    Examples
    --------
    >>> v = HashingVectorizer(n_features=2**10, ngrams=2)
    >>> v.transform(["not good", "good"]).sum(axis=1).A1.tolist()
    [3.0, 1.0]
    """

    def __init__(self, n_features: int = 2**22, ngrams: int = 3, standardize: str = "lower_strip_html",
                 punctuation: str = "split", binary: bool = True) -> None:
        self.n_features = n_features
        self.ngrams = ngrams
        self.standardize = standardize
        self.punctuation = punctuation
        self.binary = binary
        if not 2**4 <= int(n_features) <= 2**26:
            raise ConfigError(f"n_features must be between 2**4 and 2**26, got {n_features}")
        self._tokenizer = TextVectorizer(max_tokens=None, ngrams=ngrams, standardize=standardize,
                                         punctuation=punctuation)
        self._tokenizer._check_config()
        from sklearn.feature_extraction.text import HashingVectorizer as SkHashing

        self._hasher = SkHashing(n_features=n_features, analyzer=self._tokenizer.tokenize, alternate_sign=False,
                                 norm=None, binary=binary, dtype="float32")

    @property
    def vocabulary_size(self) -> int:
        return self.n_features

    def tokenize(self, text: str) -> list[str]:
        return self._tokenizer.tokenize(text)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._hasher.transform(texts).tocsr()

    def get_config(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "ngrams": self.ngrams, "standardize": self.standardize,
                "punctuation": self.punctuation, "binary": self.binary}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.get_config()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HashingVectorizer:
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"not a reviewsense hashing vectorizer of format version {FORMAT_VERSION}")
        try:
            return cls(**data["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"invalid hashing vectorizer: {exc}") from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())


def load_vectorizer(path: str | os.PathLike[str]) -> TextVectorizer | HashingVectorizer:
    """Load whichever vectorizer a ``vectorizer.json`` holds."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: cannot read vectorizer ({exc})") from exc
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return HashingVectorizer.from_dict(data)
    return TextVectorizer.from_dict(data)
