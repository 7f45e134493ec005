"""The n-gram vectorizer's compiled loops (numba): word ids of ASCII texts, and presence scores.

Tokenizing in polars and joining the tokens against the vocabulary is most of the cost of
scoring a review with a linear model. Nine in ten reviews are plain ASCII; for those the
tokenizer's rules are a few byte tests, so one compiled pass over the bytes does it all:
lowercase, skip HTML tags (``<…>``, as :data:`~reviewsense.text.ngrams.TAG`), split into
runs of ``[a-z0-9_']`` and single other non-space bytes (as
:data:`~reviewsense.text.ngrams.TOKEN` with ASCII's ``\\w`` and ``\\s``, where Python's
and Rust's engines agree), and look each token up in an open-addressing table of the
vocabulary (FNV-1a hash, then an exact byte comparison, so a hash collision never
returns a wrong id). Other texts keep going through polars; tests check that both give
the same ids on arbitrary ASCII with hypothesis.

The presence loop scores binary n-gram features without building a matrix (see
:func:`presence_scores`); :func:`column_rows` finds the rows of a model's kept columns.

This module needs numba (the ``speed`` extra); :class:`~reviewsense.text.ngrams.NgramVectorizer`
imports it only where numba is installed, and goes through polars and sparse matrices elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def _jit(**options):
    """numba.njit, cached on disk where there is a writable place, else compiled in memory."""
    def wrap(fn):
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError:  # "cannot cache function …: no locator available"
            return numba.njit(**options)(fn)
    return wrap


@_jit(inline="always")
def _fnv(data, start, end):
    """FNV-1a hash of the bytes ``data[start:end]``."""
    h = np.uint64(_FNV_OFFSET)
    for i in range(start, end):
        h = (h ^ np.uint64(data[i])) * np.uint64(_FNV_PRIME)
    return h


@_jit()
def _build_table(words, offsets, size):
    """Slot → vocabulary id (0 = empty) for ids ≥ 2 (0 and 1 are padding and unknown)."""
    table = np.zeros(size, dtype=np.int64)
    mask = np.uint64(size - 1)
    for word in range(2, len(offsets) - 1):
        slot = _fnv(words, offsets[word], offsets[word + 1]) & mask
        while table[slot] != 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = word
    return table


@_jit()
def _lookup(data, start, end, words, offsets, table):
    mask = np.uint64(len(table) - 1)
    slot = _fnv(data, start, end) & mask
    while True:
        word = table[slot]
        if word == 0:
            return 1  # unknown
        a, b = offsets[word], offsets[word + 1]
        if b - a == end - start:
            same = True
            for k in range(end - start):
                if words[a + k] != data[start + k]:
                    same = False
                    break
            if same:
                return word
        slot = (slot + np.uint64(1)) & mask


@_jit(nogil=True)
def _ids(data, bounds, words, offsets, table):
    """Token ids of the texts ``data[bounds[i]:bounds[i+1]]`` (lowercased in place), and
    each text's token count."""
    n_texts = len(bounds) - 1
    ids = np.empty(len(data), dtype=np.int64)  # at most one token per byte
    lengths = np.zeros(n_texts, dtype=np.int64)
    count = 0
    for t in range(n_texts):
        i, end = bounds[t], bounds[t + 1]
        first = count
        closing = -1  # position of the next '>' at or after i (end: none left in this text)
        while i < end:
            c = data[i]
            if 65 <= c <= 90:  # A-Z
                c += 32
                data[i] = c
            if c == 60:  # '<' opens a tag when some '>' follows it
                if closing < i:
                    closing = i + 1
                    while closing < end and data[closing] != 62:
                        closing += 1
                if closing < end:
                    i = closing + 1
                    continue
            if c == 32 or 9 <= c <= 13:  # ASCII whitespace (\s)
                i += 1
                continue
            start = i
            if c == 39 or c == 95 or 48 <= c <= 57 or 97 <= c <= 122:  # [\w']: a run
                i += 1
                while i < end:
                    c = data[i]
                    if 65 <= c <= 90:
                        c += 32
                        data[i] = c
                    if c == 39 or c == 95 or 48 <= c <= 57 or 97 <= c <= 122:
                        i += 1
                    else:
                        break
            else:  # any other byte is a token of its own (\S)
                i += 1
            ids[count] = _lookup(data, start, i, words, offsets, table)
            count += 1
        lengths[t] = count - first
    return ids[:count], lengths


@_jit(nogil=True)
def presence_scores(lengths, columns, weights, keys, marks):
    """Per text, the sum of ``weights`` over its distinct columns. ``keys``/``marks`` are an
    open-addressing hash set, reset for each text by bumping the mark."""
    mask = len(keys) - 1
    out = np.zeros(len(lengths), dtype=np.float64)
    start = 0
    for d in range(len(lengths)):
        end, mark, total = start + lengths[d], d + 1, 0.0
        for n in range(len(columns)):
            cols = columns[n]
            for i in range(start, min(end, len(cols))):
                col = cols[i]
                if col == 0:  # n-grams that cross texts
                    continue
                slot = ((col * 2654435761) >> 16) & mask
                while marks[slot] == mark and keys[slot] != col:
                    slot = (slot + 1) & mask
                if marks[slot] != mark:  # first time in this text
                    marks[slot], keys[slot] = mark, col
                    total += weights[col]
        out[d] = total
        start = end
    return out


class AsciiWordIds:
    """Compiled tokenizer + vocabulary lookup for ASCII texts (see the module docstring)."""

    def __init__(self, vocabulary: Sequence[str]):
        encoded = [word.encode("utf-8") for word in vocabulary]
        self._words = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(w) for w in encoded], out=self._offsets[1:])
        size = 1 << max(4, (2 * len(encoded)).bit_length())  # at most half full
        self._table = _build_table(self._words, self._offsets, size)

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids of all (ASCII) texts concatenated, and each text's token count."""
        sizes = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        bounds = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(sizes, out=bounds[1:])
        data = np.frombuffer(bytearray("".join(texts).encode("ascii")), dtype=np.uint8)
        return _ids(data, bounds, self._words, self._offsets, self._table)


@_jit(inline="always")
def _popcount(word):
    word = word - ((word >> np.uint64(1)) & np.uint64(0x5555555555555555))
    word = (word & np.uint64(0x3333333333333333)) + ((word >> np.uint64(2)) & np.uint64(0x3333333333333333))
    word = (word + (word >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (word * np.uint64(0x0101010101010101)) >> np.uint64(56)


@_jit(nogil=True)
def column_rows(columns, words, before, out):
    """:meth:`reviewsense.text.columns.KeptColumns.rows`: per column, 0 if its bit in
    ``words`` is clear, else 1 + the set bits before it (``before`` counts them per word).
    Without a branch: whether a column is kept is not predictable."""
    for i in range(len(columns)):
        col = columns[i]
        word = words[col >> 6]
        bit = np.uint64(col & 63)
        kept = np.int64((word >> bit) & np.uint64(1))
        out[i] = (before[col >> 6] + np.int64(_popcount(word & ((np.uint64(1) << bit) - np.uint64(1)))) + 1) * kept
    return out
