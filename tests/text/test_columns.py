"""KeptColumns: the rows of a model's kept feature columns, compiled or in numpy, and small pickles."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviewsense.text import columns as columns_module
from reviewsense.text.columns import KeptColumns, popcount
from reviewsense.text.ngrams import NgramVectorizer


def reference_rows(kept: np.ndarray, queries: np.ndarray) -> np.ndarray:
    at = np.searchsorted(kept, queries)
    found = (at < len(kept)) & (kept[np.minimum(at, max(len(kept) - 1, 0))] == queries) if len(kept) else at < 0
    return np.where(found, at + 1, 0)


@pytest.fixture(params=["compiled", "numpy"])
def path(request, monkeypatch):
    """Each test runs on the compiled lookup (where numba is installed) and on the numpy one."""
    if request.param == "compiled":
        if columns_module._compiled_rows() is None:
            pytest.skip("numba is not installed")
    else:
        monkeypatch.setattr(columns_module, "_compiled_rows", lambda: None)
    return request.param


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 3000), st.data())
def test_rows_are_one_plus_the_rank_of_kept_columns(path, n_features, data):
    kept = np.array(sorted(data.draw(st.sets(st.integers(0, n_features - 1), max_size=200))), dtype=np.int64)
    queries = np.array(data.draw(st.lists(st.integers(0, n_features - 1), max_size=300)), dtype=np.int64)
    lookup = KeptColumns(kept, n_features)
    for dtype in (np.int64, np.int32):  # n-gram columns, and the indices of a CSR matrix
        rows = lookup.rows(queries.astype(dtype))
        assert rows.dtype == np.int64
        np.testing.assert_array_equal(rows, reference_rows(kept, queries))


def test_rows_of_millions_of_hashed_columns(path):
    rng = np.random.default_rng(0)
    n_features = (1 << 24) + 90_000
    kept = np.unique(rng.integers(1, n_features, 300_000))
    queries = np.concatenate([rng.choice(kept, 50_000), rng.integers(0, n_features, 50_000), [0, n_features - 1]])
    lookup = KeptColumns(kept, n_features)
    np.testing.assert_array_equal(lookup.rows(queries), reference_rows(kept, queries))
    # the lookup: a bit per column and a count per 64 of them, far below a dense map's 4 bytes per column
    assert 0 < lookup.lookup_nbytes <= n_features * 3 // 16 + 16


def test_compact_keeps_the_kept_columns_in_order(path):
    rng = np.random.default_rng(1)
    matrix = sp.random(40, 500, density=0.1, format="csr", dtype=np.float32, random_state=rng)
    matrix = sp.vstack([matrix[:3], sp.csr_matrix((1, 500), dtype=np.float32), matrix[3:]], format="csr")  # empty row
    kept = np.unique(rng.integers(0, 500, 120))
    compact = KeptColumns(kept, 500).compact(matrix)
    assert compact.shape == (41, len(kept)) and compact.has_sorted_indices
    np.testing.assert_array_equal(compact.toarray(), matrix[:, kept].toarray())


def test_the_lookup_is_not_pickled():
    lookup = KeptColumns(np.arange(5, 1000, 7), 1 << 20)
    assert lookup.rows(np.array([12, 13])).tolist() == [2, 0]
    assert lookup.lookup_nbytes > 100_000
    blob = pickle.dumps(lookup)
    assert len(blob) < lookup.columns.nbytes + 500
    again = pickle.loads(blob)
    assert again.lookup_nbytes == 0 and again.rows(np.array([12, 13])).tolist() == [2, 0]


@pytest.mark.parametrize("columns", [[3, 2], [2, 2], [-1, 4], [4, 10], np.array([[1, 2]]), [0.5]])
def test_columns_must_be_sorted_distinct_and_in_range(columns):
    with pytest.raises(ValueError, match="kept columns"):
        KeptColumns(np.asarray(columns), 10)


def test_popcount_without_numpy_bitwise_count(monkeypatch):
    words = np.random.default_rng(2).integers(0, 1 << 63, 500, dtype=np.uint64) | np.uint64(1 << 63)
    expected = [bin(int(w)).count("1") for w in words]
    monkeypatch.delattr(np, "bitwise_count", raising=False)  # numpy < 2.0
    assert popcount(words).tolist() == expected


@pytest.mark.parametrize("binary", [False, True])
def test_compact_weights_score_like_dense_ones(path, binary):
    texts = ["a good film, a good good film", "a bad film", "", "good bad good", "unknown words here"]
    vec = NgramVectorizer(ngrams=3, hash_bits=12, binary=binary).adapt(texts)
    rng = np.random.default_rng(3)
    kept = np.unique(np.concatenate([vec.transform(texts).indices[::2], rng.integers(1, vec.n_features, 50)]))
    dense = np.zeros(vec.n_features, dtype=np.float32)
    dense[kept] = rng.normal(size=len(kept))
    lookup = KeptColumns(kept, vec.n_features)
    compact = np.r_[0.0, dense[kept]].astype(np.float32)
    expected = vec.score_and_count(texts, dense)
    got = vec.score_and_count(texts, compact, lookup)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    table = np.stack([compact, -2 * compact], axis=1)
    scores, lengths = vec.score_rows_and_count(texts, lookup, table)
    np.testing.assert_allclose(scores, np.stack([expected[0], -2 * expected[0]], axis=1), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(lengths, expected[1])


def test_a_pickled_vectorizer_rebuilds_its_lookups():
    vec = NgramVectorizer(ngrams=2, hash_bits=10).adapt(["a good film", "a bad film"] * 50)
    expected = vec.transform(["a good film!", "bad"] * 40).toarray()  # builds the word lookups
    blob = pickle.dumps(vec)
    assert b"polars" not in blob and len(blob) < 2_000
    np.testing.assert_array_equal(pickle.loads(blob).transform(["a good film!", "bad"] * 40).toarray(), expected)
