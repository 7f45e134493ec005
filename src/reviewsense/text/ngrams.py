"""Fast word n-gram features for linear models: unigram ids plus hashed 2..n-grams.

Tokenization runs in polars (Rust, multi-threaded: it uses every core), the n-gram hashing
in vectorized numpy, so turning raw strings into features costs a few microseconds per
review instead of the tens that a Python tokenizer loop costs.

Features: column ``i`` for the unigram with vocabulary id ``i`` (0 = padding, never used;
1 = out-of-vocabulary), then ``2**hash_bits`` buckets shared by all n-grams with n ≥ 2.
The hash is a fixed function of the n-gram's word ids (polynomial rolling key, then a
xor-shift-multiply mix), so it is the same on every machine and in every version: only the
vocabulary and the settings are saved.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._fs import write_json
from ..errors import ConfigError, ModelFileError
from .columns import KeptColumns
from .standardize import NGRAM_TOKEN, TAG_PATTERN, strip_tags

FORMAT = "reviewsense-ngram-vectorizer"
FORMAT_VERSION = 1
TAG = TAG_PATTERN  # the shared rules (text/standardize.py), as pattern strings for polars
TOKEN = NGRAM_TOKEN
_MUL = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray) -> np.ndarray:
    """Fold the high half into the low half, then multiply: the top bits of the result (taken
    as the bucket) depend on every bit of the key (wrapping 64-bit arithmetic)."""
    return (h ^ (h >> np.uint64(32))) * np.uint64(0xBF58476D1CE4E5B9)


def workers() -> int:
    """Threads for vectorizing: ``n_jobs`` where set (reviewsense.progress.settings),
    ``$REVIEWSENSE_THREADS``, or every core."""
    from ..progress import threads

    return threads()


def _map_chunks(fn, texts: Sequence[str], min_chunk: int = 2000) -> list:
    """Apply ``fn`` to contiguous chunks of ``texts`` on a thread pool, results in order.

    polars and numpy release the GIL in their kernels, so threads use every core."""
    texts = list(texts)
    n = min(workers(), len(texts) // min_chunk) if len(texts) >= 2 * min_chunk else 1
    if n <= 1:
        return [fn(texts)]
    bounds = np.linspace(0, len(texts), n + 1).astype(int)
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, [texts[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]))


# The same tokenizer in Python's re, for small batches where polars' per-call cost (it
# compiles its regexes on each call: ~1 ms) dominates. Python's \w and \s differ from Rust's
# on some characters (combining marks, circled letters, other numerals, some controls), so
# Python handles a text only when, after lowercasing, every non-ASCII character is in a
# category on which both engines agree: letters and decimal digits (word characters in both),
# punctuation other than connectors, math/currency/modifier symbols (neither word nor space)
# and space separators (space in both); and no ASCII \x1c-\x1f (space to Python's Unicode
# \s, not to Rust's). Every other text goes through polars.
# tests/text/test_ngrams.py checks the agreement on arbitrary Unicode with hypothesis.
_TOKEN_RE = re.compile(TOKEN)
_ASCII_TOKEN_RE = re.compile(TOKEN, re.ASCII)
_AGREED = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "Zs"})
SMALL_BATCH = 64  # texts; up to this many, tokenize in Python and look words up in a dict


@functools.lru_cache(maxsize=65_536)
def _agreed(char: str) -> bool:
    return unicodedata.category(char) in _AGREED


def tokenize(text: str) -> list[str]:
    """The tokens of one text, exactly as :func:`tokenize_batch` gives them."""
    lowered = text.lower()
    if lowered.isascii():
        pattern = _ASCII_TOKEN_RE  # ASCII \w, \s: the same sets in both engines
    elif all(_agreed(c) for c in set(lowered) if not c.isascii() or "\x1c" <= c <= "\x1f"):
        pattern = _TOKEN_RE
    else:
        return tokenize_batch([text])[0].to_list()
    return pattern.findall(strip_tags(lowered))


def tokenize_batch(texts: Sequence[str]):
    """Lowercase, replace HTML tags by spaces, split into words and punctuation marks.

    Returns a polars Series of token lists (one per text)."""
    import polars as pl

    series = pl.Series("text", list(texts), dtype=pl.String)
    return series.str.to_lowercase().str.replace_all(TAG, " ").str.extract_all(TOKEN)


@functools.cache
def _presence_kernel():
    """The compiled presence loop of :mod:`.compiled`, or None without numba: the caller
    then falls back to a sparse matrix."""
    try:
        from .compiled import presence_scores
    except ImportError:
        return None
    return presence_scores


def _matrix(lengths: np.ndarray, columns: list[np.ndarray], n_features: int, binary: bool) -> sp.csr_matrix:
    """The texts × features matrix of n-gram counts (1/0 if ``binary``) from :meth:`NgramVectorizer._columns`."""
    doc = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    rows = np.concatenate([doc[: len(c)] for c in columns])
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, np.concatenate(columns))),
                           shape=(len(lengths), n_features))
    matrix.sum_duplicates()
    matrix.data[matrix.indices == 0] = 0.0  # cross-text n-grams
    matrix.eliminate_zeros()
    if binary:
        matrix.data[:] = 1.0
    return matrix


def _presence_scores(lengths: np.ndarray, columns: list[np.ndarray], weights: np.ndarray, ngrams: int) -> np.ndarray:
    """Per text, the sum of the weights of the distinct columns it has (binary features):
    ``transform(binary=True) @ weights`` without the matrix: one pass over each text's
    columns with a small hash set (it stays in the CPU cache), in compiled code."""
    kernel = _presence_kernel()
    if kernel is None:  # numba missing: the same sums through a sparse matrix, slower
        return _matrix(lengths, columns, len(weights), binary=True) @ weights.astype(np.float64)
    # always ``ngrams`` arrays of one type, so numba compiles the loop once
    empty = np.zeros(0, dtype=np.int64)
    arrays = tuple([c if c.flags.writeable else c.copy() for c in columns] + [empty] * (ngrams - len(columns)))
    longest = 2 * ngrams * int(lengths.max(initial=0))  # the set stays at most half full
    size = 1 << max(6, min(longest, 2 * len(weights)).bit_length())
    return kernel(lengths.astype(np.int64), arrays, weights, np.zeros(size, dtype=np.int64),
                  np.zeros(size, dtype=np.int64))


def _interleave(first: np.ndarray, ours: tuple[np.ndarray, np.ndarray],
                theirs: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Merge the (ids, lengths) of two parts of a batch back into batch order; ``first``
    marks the texts of the first part."""
    lengths = np.empty(len(first), dtype=np.int64)
    lengths[first], lengths[~first] = ours[1], theirs[1]
    source = np.empty(len(first), dtype=np.int64)  # where each text's ids start in ours + theirs
    source[first] = np.cumsum(ours[1]) - ours[1]
    source[~first] = np.cumsum(theirs[1]) - theirs[1] + len(ours[0])
    shift = np.repeat(source - (np.cumsum(lengths) - lengths), lengths)
    return np.concatenate([ours[0], theirs[0]])[shift + np.arange(len(shift))], lengths


class NgramVectorizer:
    """Strings → sparse bags of word n-grams (unigram vocabulary + hashed higher orders).

    Examples
    --------
    >>> v = NgramVectorizer(ngrams=2, hash_bits=8).adapt(["a good film", "a bad film"])
    >>> v.vocabulary_
    ['', '[UNK]', 'a', 'film', 'bad', 'good']
    >>> v.transform(["a good film!"]).nnz   # a, good, film, ! (OOV), and 3 bigrams
    7
    >>> float(v.transform(["good good"]).sum())   # counts unless binary=True
    3.0
    """

    FORMAT = FORMAT

    def __init__(self, *, ngrams: int, hash_bits: int, min_count: int = 1, max_words: int | None = None,
                 binary: bool = False) -> None:
        """``ngrams`` and ``hash_bits`` have no default here: the model family's parameters
        (NBLinearParams) hold the one default."""
        self.ngrams = ngrams
        self.hash_bits = hash_bits
        self.min_count = min_count
        self.max_words = max_words
        self.binary = binary
        if not 1 <= int(ngrams) <= 5:
            raise ConfigError(f"ngrams must be between 1 and 5, got {ngrams}")
        if not 4 <= int(hash_bits) <= 26:
            raise ConfigError(f"hash_bits must be between 4 and 26, got {hash_bits}")

    def get_config(self) -> dict[str, Any]:
        return {"ngrams": self.ngrams, "hash_bits": self.hash_bits, "min_count": self.min_count,
                "max_words": self.max_words, "binary": self.binary}

    # -- vocabulary ------------------------------------------------------------------------
    def adapt(self, texts: Sequence[str]) -> NgramVectorizer:
        return self.adapt_counts(word_counts(texts))

    def adapt_counts(self, counts: Any) -> NgramVectorizer:
        """:meth:`adapt` from the word counts of the texts (:func:`word_counts`, or the sum of
        those of their parts, :func:`add_word_counts`): the same vocabulary however the texts
        were divided."""
        import polars as pl

        counts = counts.filter(pl.col("count") >= self.min_count)
        counts = counts.sort(["count", "text"], descending=[True, False])
        if self.max_words is not None:
            counts = counts.head(self.max_words)
        self._set_vocabulary(["", "[UNK]", *counts["text"].to_list()])
        return self

    def __getstate__(self) -> dict[str, Any]:
        """Pickled: the settings and the vocabulary; the lookups are rebuilt from them."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_index", "_ascii", "_lookup")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "vocabulary_" in state:
            self._set_vocabulary(state["vocabulary_"])

    def _set_vocabulary(self, vocabulary: list[str]) -> None:
        import polars as pl

        self.vocabulary_ = vocabulary
        self._index: dict[str, int] | None = None  # built on first use by _word_ids_small
        self._ascii: Any = None  # the compiled lookup of ASCII texts, built on first use
        self._lookup = pl.DataFrame({"text": vocabulary[2:], "id": np.arange(2, len(vocabulary), dtype=np.int64)})

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary_)

    @property
    def n_features(self) -> int:
        return self.vocabulary_size + (1 << self.hash_bits if self.ngrams > 1 else 0)

    # -- features ----------------------------------------------------------------------------
    def word_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Word ids of all texts concatenated (1 = unknown word) and each text's length.

        ASCII texts go through the compiled lookup of :mod:`.compiled` where numba is
        installed (same ids, 2-4× faster), the others through polars."""
        if not hasattr(self, "vocabulary_"):
            raise RuntimeError("NgramVectorizer is not adapted yet: call adapt(texts) first")
        fast = self._ascii_word_ids()
        if fast is None:
            return self._word_ids_any(texts)
        ascii_ = np.fromiter(map(str.isascii, texts), dtype=bool, count=len(texts))
        if ascii_.all():
            return fast(texts)
        if not ascii_.any():
            return self._word_ids_any(texts)
        return _interleave(ascii_, fast([t for t, a in zip(texts, ascii_, strict=True) if a]),
                           self._word_ids_any([t for t, a in zip(texts, ascii_, strict=True) if not a]))

    def _ascii_word_ids(self):
        """The compiled word-id lookup for ASCII texts (:mod:`.compiled`), or None without numba."""
        if self._ascii is None:
            try:
                from .compiled import AsciiWordIds
            except ImportError:
                self._ascii = False
            else:
                self._ascii = AsciiWordIds(self.vocabulary_)
        return self._ascii or None

    def _word_ids_any(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`word_ids` for texts of any characters: polars, or Python for a few texts."""
        import polars as pl

        if len(texts) <= SMALL_BATCH:
            return self._word_ids_small(texts)
        tokens = tokenize_batch(texts)
        lengths = np.asarray(tokens.list.len().to_numpy(), dtype=np.int64)
        words = pl.DataFrame({"text": tokens.explode().drop_nulls()})
        ids = words.join(self._lookup, on="text", how="left", maintain_order="left")["id"]
        return np.asarray(ids.fill_null(1).to_numpy(), dtype=np.int64), lengths

    def _word_ids_small(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`word_ids` for a few texts: a dict lookup instead of a polars join, whose
        fixed cost (hashing the whole vocabulary) is milliseconds."""
        if self._index is None:
            self._index = {word: i for i, word in enumerate(self.vocabulary_) if i >= 2}
        tokens = [tokenize(text) for text in texts]
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        words = tokens[0] if len(tokens) == 1 else [word for text in tokens for word in text]
        ids = np.fromiter(map(self._index.get, words, itertools.repeat(1, len(words))), dtype=np.int64,
                          count=len(words))
        return ids, lengths

    def _columns(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's token count, and per n (1, 2, …) the column of the n-gram starting at
        each token (texts one after the other). N-grams that would run past the end of their
        text get column 0, which is never a feature, so no masking (and no copy) is needed."""
        ids, lengths = self.word_ids(texts)
        ends = np.cumsum(lengths)
        columns = [ids]
        words = ids.astype(np.uint64)
        key = words
        base, shift = np.int64(self.vocabulary_size), np.uint64(64 - self.hash_bits)
        for n in range(2, self.ngrams + 1):
            if len(key) < 2:
                break
            # the key of the n-gram starting at token i folds the next word id into the key
            # of the (n-1)-gram starting there; then the mix picks the bucket from its top bits
            key = key[:-1] * _MUL
            key += words[n - 1 :]
            bucket = (_mix(key) >> shift).view(np.int64)
            bucket += base
            # the last n-1 positions of each text start n-grams that run into the next text
            for k in range(1, n):
                tail = ends - k
                bucket[tail[(lengths >= k) & (tail < len(bucket))]] = 0
            columns.append(bucket)
        return lengths, columns

    def _transform_chunk(self, texts: Sequence[str]) -> sp.csr_matrix:
        return _matrix(*self._columns(texts), self.n_features, self.binary)

    def _score_chunk(self, texts: Sequence[str], weights: np.ndarray,
                     kept: KeptColumns | None) -> tuple[np.ndarray, np.ndarray]:
        lengths, columns = self._columns(texts)
        if kept is not None:  # compact weights: each column's row of them
            columns = [kept.rows(cols) for cols in columns]
        if self.binary:
            return _presence_scores(lengths, columns, weights, self.ngrams), lengths
        starts = np.cumsum(lengths) - lengths
        score = np.zeros(len(texts), dtype=np.float64)
        for cols in columns:
            # text i owns positions [starts[i], starts[i] + lengths[i]) of each array; the
            # n-gram arrays are shorter at the very end, and their cross-text entries weigh 0
            owns = (lengths > 0) & (starts < len(cols))
            if owns.any():  # summed in float64, in token order: a text scores the same in any batch
                score[owns] += np.add.reduceat(weights[cols], starts[owns], dtype=np.float64)
        return score, lengths

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Sparse ``(len(texts), n_features)`` matrix of n-gram counts (1/0 if ``binary``)."""
        return sp.vstack(_map_chunks(self._transform_chunk, texts), format="csr")

    def score(self, texts: Sequence[str], weights: np.ndarray) -> np.ndarray:
        """``transform(texts) @ weights``, without building the matrix."""
        return self.score_and_count(texts, weights)[0]

    def score_and_count(self, texts: Sequence[str], weights: np.ndarray,
                        kept: KeptColumns | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`score` and each text's token count (:func:`count_tokens`), from one pass.

        With ``kept``, ``weights`` is compact: the weight of column ``c`` is
        ``weights[kept.rows(c)]`` (row 0: the columns that are not kept)."""
        if weights[0] != 0:  # column (or row) 0 takes the cross-text n-grams: it must weigh nothing
            weights = np.array(weights)
            weights[0] = 0.0
        parts = _map_chunks(lambda chunk: self._score_chunk(chunk, weights, kept), texts)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def score_rows_and_count(self, texts: Sequence[str], kept: KeptColumns,
                             table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Several weights per feature (one per class): ``(len(texts), table.shape[1])`` sums
        of ``table[kept.rows(column)]`` over each text's n-grams (counts, or presence with
        ``binary``), and each text's token count. ``table`` is compact: row 0 (all zeros)
        for the columns that are not kept, then one row per kept column."""

        def chunk(part: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
            lengths, columns = self._columns(part)
            matrix = _matrix(lengths, columns, self.n_features, self.binary)
            compact = sp.csr_matrix((matrix.data, kept.rows(matrix.indices), matrix.indptr),
                                    shape=(len(part), table.shape[0]))
            return np.asarray(compact @ table, dtype=np.float64), lengths

        parts = _map_chunks(chunk, texts)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    # -- saving ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.get_config(),
                "vocabulary": self.vocabulary_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NgramVectorizer:
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"not a reviewsense n-gram vectorizer of format version {FORMAT_VERSION}")
        try:
            vec = cls(**data["config"])
            vocabulary = data["vocabulary"]
            if not isinstance(vocabulary, list) or vocabulary[:2] != ["", "[UNK]"] or not all(
                    isinstance(t, str) for t in vocabulary) or len(set(vocabulary)) != len(vocabulary):
                raise ValueError("vocabulary must be distinct strings starting with '' and '[UNK]'")
            vec._set_vocabulary(vocabulary)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"invalid n-gram vectorizer: {exc}") from exc
        return vec

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())


def word_counts(texts: Sequence[str]) -> Any:
    """How often each token occurs in ``texts``: a polars DataFrame (``text``, ``count``: UInt64),
    in no particular order."""
    import polars as pl

    counts = tokenize_batch(texts).explode().drop_nulls().value_counts(name="count")
    return counts.with_columns(pl.col("count").cast(pl.UInt64))


def add_word_counts(*parts: Any) -> Any:
    """The :func:`word_counts` of several parts of a corpus summed: those of the whole corpus."""
    import polars as pl

    return pl.concat(parts).group_by("text").agg(pl.col("count").sum())


def count_tokens(texts: Sequence[str]) -> np.ndarray:
    """How many tokens (words and punctuation marks, as :func:`tokenize` splits them) each
    text has: the length that :class:`~reviewsense.models.calibration.LengthCalibration` reads."""
    texts = list(texts)
    if len(texts) <= SMALL_BATCH:
        return np.fromiter((len(tokenize(t)) for t in texts), dtype=np.int64, count=len(texts))
    import polars as pl

    series = pl.Series("text", texts, dtype=pl.String).str.to_lowercase().str.replace_all(TAG, " ")
    return np.asarray(series.str.count_matches(TOKEN).to_numpy(), dtype=np.int64)
