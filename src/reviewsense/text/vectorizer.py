"""Text vectorization: the equivalent of Keras ``TextVectorization``, saved as plain JSON.

``adapt`` learns a vocabulary from training text only; afterwards the vectorizer is a pure,
deterministic function from raw strings to token ids (``output_mode="int"``) or to sparse
bags of tokens (``"multi_hot"``, ``"count"``, ``"tf_idf"``). Index 0 is padding and index 1
the out-of-vocabulary token, as in Keras.
"""

from __future__ import annotations

import html
import json
import math
import os
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._fs import write_json
from ..errors import ConfigError, ModelFileError
from .standardize import WORD_TOKENS, strip_tags

PAD, OOV = "", "[UNK]"
STANDARDIZE = ("lower_strip_html", "lower", "none")
PUNCTUATION = ("split", "strip")
OUTPUT_MODES = ("int", "multi_hot", "count", "tf_idf")
FORMAT = "reviewsense-text-vectorizer"
FORMAT_VERSION = 1



class TextVectorizer:
    """Strings → token ids or bags, with a vocabulary learned by :meth:`adapt`.

    Parameters
    ----------
    max_tokens : int or None
        Vocabulary size including the padding and OOV entries; the most frequent tokens
        are kept (ties broken alphabetically, so the result is deterministic).
    ngrams : int
        Add word n-grams up to this length (2 = unigrams and bigrams), joined by a space.
    standardize : {"lower_strip_html", "lower", "none"}
        ``lower_strip_html`` lowercases, unescapes entities and replaces tags such as
        ``<br />`` by a space.
    punctuation : {"split", "strip"}
        ``split`` keeps punctuation marks as tokens of their own ("!" carries sentiment),
        ``strip`` drops them like Keras' default.
    output_mode : {"int", "multi_hot", "count", "tf_idf"}
    sequence_length : int or None
        For ``int`` output: pad/truncate to this length (``None`` = longest in the batch).
    min_count : int
        Drop tokens seen fewer times than this in the adapted text.

    Examples
    --------
    >>> v = TextVectorizer(max_tokens=10).adapt(["a good film", "a bad film<br />"])
    >>> v.vocabulary_[:4]
    ['', '[UNK]', 'a', 'film']
    >>> v(["a good movie"]).tolist()
    [[2, 5, 1]]
    """

    def __init__(
        self,
        max_tokens: int | None = 20_000,
        ngrams: int = 1,
        standardize: str = "lower_strip_html",
        punctuation: str = "split",
        output_mode: str = "int",
        sequence_length: int | None = None,
        min_count: int = 1,
    ) -> None:
        self.max_tokens = max_tokens
        self.ngrams = ngrams
        self.standardize = standardize
        self.punctuation = punctuation
        self.output_mode = output_mode
        self.sequence_length = sequence_length
        self.min_count = min_count
        self.idf_: np.ndarray | None = None  # learned by adapt (tf_idf)

    # -- configuration -----------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "ngrams": self.ngrams,
            "standardize": self.standardize,
            "punctuation": self.punctuation,
            "output_mode": self.output_mode,
            "sequence_length": self.sequence_length,
            "min_count": self.min_count,
        }

    def _check_config(self) -> None:
        if self.standardize not in STANDARDIZE:
            raise ConfigError(f"standardize must be one of {STANDARDIZE}, got {self.standardize!r}")
        if self.punctuation not in PUNCTUATION:
            raise ConfigError(f"punctuation must be one of {PUNCTUATION}, got {self.punctuation!r}")
        if self.output_mode not in OUTPUT_MODES:
            raise ConfigError(f"output_mode must be one of {OUTPUT_MODES}, got {self.output_mode!r}")
        if not 1 <= int(self.ngrams) <= 5:
            raise ConfigError(f"ngrams must be between 1 and 5, got {self.ngrams}")
        if self.max_tokens is not None and self.max_tokens < 3:
            raise ConfigError(f"max_tokens must be at least 3 (padding, OOV and one token), got {self.max_tokens}")

    # -- text → tokens -------------------------------------------------------------------
    def standardize_text(self, text: str) -> str:
        if self.standardize == "none":
            return text
        text = text.lower()
        if self.standardize == "lower_strip_html":
            text = html.unescape(strip_tags(text))
        return text

    def words(self, text: str) -> list[str]:
        """The standardized words of ``text`` (no n-grams)."""
        return WORD_TOKENS[self.punctuation].findall(self.standardize_text(text))

    def token_positions(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        """The words of ``text``, and for each token :meth:`tokenize` returns (after
        ``sequence_length`` truncation) the first word it covers and how many words."""
        words = self.words(text)
        positions = [(i, n) for n in range(1, self.ngrams + 1) for i in range(len(words) - n + 1)]
        return words, positions[: self.sequence_length]

    def tokenize(self, text: str) -> list[str]:
        """Standardized words, then their n-grams (e.g. ``"not good"``) after them."""
        words = self.words(text)
        if self.ngrams == 1:
            return words
        tokens = list(words)
        for n in range(2, self.ngrams + 1):
            tokens.extend(map(" ".join, zip(*(words[i:] for i in range(n)), strict=False)))
        return tokens

    # -- learning the vocabulary -------------------------------------------------------
    def adapt(self, texts: Iterable[str]) -> TextVectorizer:
        """Learn the vocabulary (and document frequencies for tf-idf) from ``texts``."""
        self._check_config()
        counts: Counter[str] = Counter()
        doc_freq: Counter[str] = Counter()
        n_docs = 0
        for text in texts:
            tokens = self.tokenize(text)
            counts.update(tokens)
            if self.output_mode == "tf_idf":
                doc_freq.update(set(tokens))
            n_docs += 1
        counts.pop(PAD, None)
        counts.pop(OOV, None)
        kept = [(t, c) for t, c in counts.items() if c >= self.min_count]
        kept.sort(key=lambda tc: (-tc[1], tc[0]))
        if self.max_tokens is not None:
            kept = kept[: self.max_tokens - 2]
        self.vocabulary_ = [PAD, OOV] + [t for t, _ in kept]
        self.index_ = {t: i for i, t in enumerate(self.vocabulary_)}
        if self.output_mode == "tf_idf":
            df = np.array([0, 0] + [doc_freq[t] for t, _ in kept], dtype=np.float64)
            idf = np.log1p(n_docs / (1.0 + df)).astype(np.float32)
            idf[0] = 0.0
            idf[1] = math.log1p(n_docs / 1.0)
            self.idf_ = idf
        else:
            self.idf_ = None
        return self

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary_)

    def _require_adapted(self) -> None:
        if not hasattr(self, "vocabulary_"):
            raise RuntimeError("TextVectorizer is not adapted yet: call adapt(texts) first")

    # -- strings → numbers ---------------------------------------------------------------
    def encode_ragged(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """All texts' token ids concatenated, and offsets (``len(texts) + 1``) into them.

        Text ``i`` is ``ids[offsets[i]:offsets[i + 1]]`` (truncated to ``sequence_length``)."""
        self._require_adapted()
        index, limit = self.index_, self.sequence_length
        ids = array("i")
        offsets = array("q", [0])
        for text in texts:
            tokens = self.tokenize(text)
            if limit is not None:
                tokens = tokens[:limit]
            ids.extend([index.get(t, 1) for t in tokens])
            offsets.append(len(ids))
        return np.frombuffer(ids, dtype=np.int32).copy(), np.frombuffer(offsets, dtype=np.int64).copy()

    def bag(self, texts: Sequence[str], mode: str | None = None) -> sp.csr_matrix:
        """Sparse ``(len(texts), vocabulary_size)`` matrix of multi-hot, counts or tf-idf."""
        mode = mode or self.output_mode
        ids, offsets = self.encode_ragged(texts)
        rows = np.repeat(np.arange(len(texts)), np.diff(offsets))
        data = np.ones(len(ids), dtype=np.float32)
        matrix = sp.csr_matrix((data, (rows, ids)), shape=(len(texts), self.vocabulary_size))
        matrix.sum_duplicates()
        if mode == "multi_hot":
            matrix.data[:] = 1.0
        elif mode == "tf_idf":
            if self.idf_ is None:
                raise RuntimeError("tf_idf output needs a vectorizer adapted with output_mode='tf_idf'")
            matrix = matrix.multiply(self.idf_[None, :]).tocsr()
        return matrix

    def __call__(self, texts: Sequence[str] | str) -> np.ndarray | sp.csr_matrix:
        """Vectorize a batch: a padded int matrix in ``int`` mode, else a sparse bag."""
        if isinstance(texts, str):
            texts = [texts]
        if self.output_mode != "int":
            return self.bag(texts)
        ids, offsets = self.encode_ragged(texts)
        lengths = np.diff(offsets)
        width = self.sequence_length or (int(lengths.max()) if len(lengths) else 0)
        out = np.zeros((len(texts), width), dtype=np.int64)
        for i, (start, length) in enumerate(zip(offsets[:-1], lengths, strict=True)):
            out[i, :length] = ids[start : start + length]
        return out

    # -- saving --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._require_adapted()
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.get_config(),
            "vocabulary": self.vocabulary_,
            "idf": None if self.idf_ is None else [float(x) for x in self.idf_],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextVectorizer:
        if not isinstance(data, dict):
            raise ModelFileError(f"a vectorizer must be a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(
                f"not a reviewsense vectorizer of format version {FORMAT_VERSION} "
                f"(got {data.get('format')!r} version {data.get('format_version')!r})"
            )
        try:
            vec = cls(**data["config"])
            vec._check_config()
            vocabulary = data["vocabulary"]
            if not isinstance(vocabulary, list) or vocabulary[:2] != [PAD, OOV] or not all(
                isinstance(t, str) for t in vocabulary
            ):
                raise ValueError("vocabulary must be a list of strings starting with '' and '[UNK]'")
            vec.vocabulary_ = vocabulary
            vec.index_ = {t: i for i, t in enumerate(vocabulary)}
            if len(vec.index_) != len(vocabulary):
                raise ValueError("vocabulary has duplicate tokens")
            vec.idf_ = None if data.get("idf") is None else np.asarray(data["idf"], dtype=np.float32)
            if vec.idf_ is not None and vec.idf_.shape != (len(vocabulary),):
                raise ValueError("idf must have one value per vocabulary entry")
        except (KeyError, TypeError, ValueError) as exc:  # ConfigError included
            raise ModelFileError(f"invalid vectorizer: {exc}") from exc
        return vec

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextVectorizer:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ModelFileError(f"{path}: cannot read vectorizer ({exc})") from None
        return cls.from_dict(data)
