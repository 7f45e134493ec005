"""The few feature columns a linear model keeps, out of the n-gram vectorizer's millions.

:class:`~reviewsense.text.ngrams.NgramVectorizer` gives every text columns among
``vocabulary + 2**hash_bits`` (16.9 million with the default 24 bits), but a model fitted on
a data set weighs only the columns of its training texts that survived ``min_df`` (1.4 million
on IMDB's 25,000 reviews, a few thousand on small data). :class:`KeptColumns` numbers those
columns 1, 2, … in column order, so that their weights live in a compact table (row 0 standing
for every other column: zeros), during training and in the fitted model.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.sparse as sp

_ONE = np.uint64(1)


@functools.cache
def _compiled_rows():
    """The compiled lookup of :mod:`.compiled`, or None without numba (numpy does it then)."""
    try:
        from .compiled import column_rows
    except ImportError:
        return None
    return column_rows


def popcount(words: np.ndarray) -> np.ndarray:
    """The number of set bits of each uint64 (numpy's ``bitwise_count``, or the same by
    shifts and masks where numpy is older than 2.0)."""
    count = getattr(np, "bitwise_count", None)
    if count is not None:
        return count(words)
    words = words - ((words >> _ONE) & np.uint64(0x5555555555555555))
    words = (words & np.uint64(0x3333333333333333)) + ((words >> np.uint64(2)) & np.uint64(0x3333333333333333))
    words = (words + (words >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (words * np.uint64(0x0101010101010101)) >> np.uint64(56)


class KeptColumns:
    """A sorted set of feature columns out of ``n_features``; column ``columns[i]`` is row
    ``i + 1`` of a compact table, and every column outside the set is row 0.

    It holds (and pickles) the columns only, 4 bytes each. The lookup column → row is built
    on first use and never pickled: a bitmap of the ``n_features`` columns and, per 64-bit
    word of it, the number of kept columns before it (3/16 of a byte per column: 3.2 MB for
    2**24 buckets, where a dense map would take 64 MB), so a row is one bit test and one
    popcount; compiled where numba is installed, in numpy elsewhere (the same rows).

    >>> kept = KeptColumns([3, 70, 71], n_features=100)
    >>> kept.rows(np.array([70, 5, 3, 71, 0])).tolist()
    [2, 0, 1, 3, 0]
    """

    def __init__(self, columns: Any, n_features: int):
        columns = np.asarray(columns)
        if columns.ndim != 1 or columns.dtype.kind not in "iu":
            raise ValueError("kept columns must be a 1-D array of integers")
        columns = columns.astype(np.int64)
        if len(columns) and (columns[0] < 0 or columns[-1] >= n_features or np.any(np.diff(columns) <= 0)):
            raise ValueError(f"kept columns must be sorted, distinct and below {n_features:,}")
        self.columns = columns.astype(np.int32)  # n_features < 2**31: hash_bits ≤ 26
        self.n_features = int(n_features)
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.columns)

    def __getstate__(self) -> dict[str, Any]:
        return {"columns": self.columns, "n_features": self.n_features}  # the lookup is rebuilt on use

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.columns, self.n_features, self._lookup = state["columns"], state["n_features"], None

    @property
    def lookup_nbytes(self) -> int:
        """Bytes held by the lookup (0 until the first :meth:`rows`)."""
        return 0 if self._lookup is None else sum(a.nbytes for a in self._lookup)

    def _bitmap(self) -> tuple[np.ndarray, np.ndarray]:
        if self._lookup is None:
            columns = self.columns.astype(np.int64)
            words = np.zeros((self.n_features + 63) // 64, dtype=np.uint64)
            np.bitwise_or.at(words, columns >> 6, _ONE << (columns & 63).astype(np.uint64))
            before = np.zeros(len(words), dtype=np.int32)
            np.cumsum(popcount(words[:-1]), out=before[1:])
            self._lookup = words, before
        return self._lookup

    def rows(self, columns: np.ndarray) -> np.ndarray:
        """Each column's row (int64, the shape of ``columns``): 1 + its rank among the kept
        columns, 0 if it is not kept. ``columns`` must lie in ``0 .. n_features - 1``."""
        words, before = self._bitmap()
        compiled = _compiled_rows()
        if compiled is not None and columns.ndim == 1:
            return compiled(columns, words, before, np.empty(len(columns), dtype=np.int64))
        word = words[columns >> 6]
        bit = (columns & 63).astype(np.uint64)
        rows = np.add(before[columns >> 6], popcount(word & ((_ONE << bit) - _ONE)), dtype=np.int64)
        rows += 1
        rows[((word >> bit) & _ONE) == 0] = 0
        return rows

    def compact(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """``matrix`` (rows × ``n_features``) on the kept columns only: rows × ``len(self)``."""
        rows = self.rows(matrix.indices)
        keep = rows > 0
        indptr = np.concatenate([[0], np.cumsum(keep)])[matrix.indptr]
        return sp.csr_matrix((matrix.data[keep], rows[keep] - 1, indptr), shape=(matrix.shape[0], len(self)))
