"""NgramVectorizer: fast unigram ids + hashed higher-order n-grams."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from reviewsense.errors import ConfigError, ModelFileError
from reviewsense.text import load_vectorizer, ngrams
from reviewsense.text.ngrams import SMALL_BATCH, NgramVectorizer, tokenize, tokenize_batch

CORPUS = ["A good film.", "A bad film<br /><br />really bad!", "Not good, not bad: don't know."]


def test_tokenize_lowercases_strips_tags_and_splits_punctuation():
    tokens = tokenize_batch(["Don't STOP<br />now!!", ""]).to_list()
    assert tokens == [["don't", "stop", "now", "!", "!"], []]


def test_vocabulary_most_frequent_first_ties_alphabetical():
    vec = NgramVectorizer(ngrams=1, hash_bits=8).adapt(["b a", "a c", "c"])
    assert vec.vocabulary_ == ["", "[UNK]", "a", "c", "b"]
    texts = ["b a", "a c", "c"]
    assert NgramVectorizer(ngrams=1, hash_bits=8, max_words=1).adapt(texts).vocabulary_ == ["", "[UNK]", "a"]
    assert NgramVectorizer(ngrams=1, hash_bits=8, min_count=2).adapt(texts).vocabulary_ == ["", "[UNK]", "a", "c"]


def test_counts_unigrams_and_ngrams_within_each_text_only():
    vec = NgramVectorizer(ngrams=3, hash_bits=12).adapt(CORPUS)
    matrix = vec.transform(["good film", "film good", "x"])
    assert matrix.shape == (3, vec.n_features)
    # "good film": 2 unigrams + 1 bigram; nothing crosses into the next text
    assert matrix[0].sum() == 3 and matrix[1].sum() == 3
    assert matrix[2].toarray()[0, 1] == 1  # the unknown word counts as [UNK]
    assert matrix[:, 0].nnz == 0  # the cross-text column is never used
    unigram_cols = matrix[0].indices[matrix[0].indices < vec.vocabulary_size]
    assert sorted(vec.vocabulary_[i] for i in unigram_cols) == ["film", "good"]
    # word order matters for n-grams
    assert set(matrix[0].indices) != set(matrix[1].indices)


def test_binary_mode_clips_counts():
    vec = NgramVectorizer(ngrams=2, hash_bits=10, binary=True).adapt(CORPUS)
    assert vec.transform(["bad bad bad"]).data.max() == 1.0


def test_score_equals_matrix_product():
    vec = NgramVectorizer(ngrams=3, hash_bits=10).adapt(CORPUS)
    weights = np.random.default_rng(0).normal(size=vec.n_features).astype(np.float32)
    weights[0] = 0
    texts = CORPUS + ["", "good good good", "entirely unseen words here"]
    np.testing.assert_allclose(vec.score(texts, weights), vec.transform(texts) @ weights, rtol=1e-5, atol=1e-5)


def test_threaded_chunks_give_the_same_result(monkeypatch):
    texts = [f"text number {i} is {'good' if i % 2 else 'bad'}" for i in range(5000)]
    vec = NgramVectorizer(ngrams=2, hash_bits=10).adapt(texts)
    monkeypatch.setenv("REVIEWSENSE_THREADS", "1")
    one = vec.transform(texts)
    monkeypatch.setenv("REVIEWSENSE_THREADS", "2")
    two = vec.transform(texts)
    assert (one != two).nnz == 0


def test_json_round_trip_and_dispatch(tmp_path):
    vec = NgramVectorizer(ngrams=3, hash_bits=10).adapt(CORPUS)
    vec.save(tmp_path / "v.json")
    again = load_vectorizer(tmp_path / "v.json")
    assert isinstance(again, NgramVectorizer)
    assert (vec.transform(CORPUS) != again.transform(CORPUS)).nnz == 0


@pytest.mark.parametrize("bad", [{"format": "other"}, [], {"format": NgramVectorizer.FORMAT, "format_version": 1,
                                                            "config": {"ngrams": 2}, "vocabulary": ["x"]}])
def test_invalid_files_are_refused(bad):
    with pytest.raises(ModelFileError):
        NgramVectorizer.from_dict(bad)


def test_settings_are_checked():
    with pytest.raises(ConfigError):
        NgramVectorizer(ngrams=9, hash_bits=8)
    with pytest.raises(ConfigError):
        NgramVectorizer(ngrams=3, hash_bits=40)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=50), min_size=1, max_size=8))
def test_any_unicode_vectorizes_deterministically(texts):
    vec = NgramVectorizer(ngrams=3, hash_bits=8).adapt(CORPUS)
    first, second = vec.transform(texts), vec.transform(texts)
    assert first.shape == (len(texts), vec.n_features)
    assert (first != second).nnz == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["", "a", "good", "a good", "not good film", "bad!", "x y z w"]), min_size=1,
                max_size=12))
def test_a_batch_equals_each_text_alone(texts):
    """No n-gram may run from one text into the next, whatever the lengths (empty, 1, 2, …)."""
    vec = NgramVectorizer(ngrams=3, hash_bits=8).adapt(CORPUS)
    batch = vec.transform(texts).toarray()
    alone = np.vstack([vec.transform([t]).toarray() for t in texts])
    np.testing.assert_array_equal(batch, alone)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["", "a", "good", "a good", "not good film", "bad!", "x y z w", "  "]), min_size=1,
                max_size=12))
def test_score_matches_the_matrix_for_any_mix_of_lengths(texts):
    vec = NgramVectorizer(ngrams=3, hash_bits=8).adapt(CORPUS)
    weights = np.random.default_rng(len(texts)).normal(size=vec.n_features)
    weights[0] = 0
    np.testing.assert_allclose(vec.score(texts, weights), vec.transform(texts) @ weights, atol=1e-9)


# -- the two tokenizers: polars for batches, Python's re for a few texts ------------------------

ANY_TEXT = st.text(max_size=60) | st.text(st.characters(codec="utf-8"), max_size=30).map(lambda s: "Café " + s)


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
def test_python_and_polars_tokenizers_agree(text):
    assert tokenize(text) == tokenize_batch([text])[0].to_list()


def test_every_character_the_python_path_takes_tokenizes_alike():
    """Exhaustive: each code point of the categories the Python path accepts, upper and lower
    case, inside and between words, gives the same tokens in both engines."""
    import sys

    from reviewsense.text.ngrams import _agreed

    chars = [chr(i) for i in range(0x80, sys.maxunicode + 1) if not 0xD800 <= i <= 0xDFFF and _agreed(chr(i))]
    assert len(chars) > 100_000
    texts = []
    for start in range(0, len(chars), 2000):
        block = chars[start : start + 2000]
        texts.append(" ".join(f"a{c}b" for c in block) + " " + "".join(block) + " " + "".join(block).upper())
    assert [tokenize(t) for t in texts] == tokenize_batch(texts).to_list()


@settings(max_examples=5, deadline=None)
@given(st.lists(ANY_TEXT, min_size=SMALL_BATCH + 1, max_size=SMALL_BATCH + 40))
def test_large_and_small_batches_give_the_same_features(texts):
    """Batches over SMALL_BATCH go through polars, single texts through Python: same matrix."""
    vec = NgramVectorizer(ngrams=3, hash_bits=10).adapt(CORPUS + texts[:20])
    batch = vec.transform(texts)
    alone = sp.vstack([vec.transform([t]) for t in texts])
    assert (batch != alone).nnz == 0


# -- binary features: the compiled presence loop and its fallback -------------------------------

BINARY_TEXTS = CORPUS + ["", "good good good", "bad bad bad bad film film", "x", "not good not good not good"]


@pytest.mark.parametrize("numba_installed", [True, False])
def test_binary_score_counts_each_ngram_once(monkeypatch, numba_installed):
    if numba_installed:
        pytest.importorskip("numba")
    else:  # the sparse-matrix fallback gives the same sums
        monkeypatch.setattr(ngrams, "_presence_kernel", lambda: None)
    vec = NgramVectorizer(ngrams=3, hash_bits=10, binary=True).adapt(CORPUS)
    weights = np.random.default_rng(0).normal(size=vec.n_features)
    weights[0] = 0
    expected = vec.transform(BINARY_TEXTS) @ weights
    np.testing.assert_allclose(vec.score(BINARY_TEXTS, weights), expected, atol=1e-9)
    # one text at a time (the small-batch tokenizer) gives the same
    np.testing.assert_allclose([vec.score([t], weights)[0] for t in BINARY_TEXTS], expected, atol=1e-9)
    # a text repeating its n-grams has the same set of them: the same score
    assert vec.score(["bad bad bad bad bad"], weights)[0] == pytest.approx(vec.score(["bad bad bad"], weights)[0])
    counted = NgramVectorizer(ngrams=3, hash_bits=10).adapt(CORPUS)
    assert counted.score(["bad bad bad bad bad"], weights)[0] != pytest.approx(vec.score(["bad bad bad"], weights)[0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["", "a", "good", "a good", "good good", "not good film", "bad!", "x y x y", "  "]),
                min_size=1, max_size=12))
def test_binary_score_matches_the_matrix_for_any_mix_of_lengths(texts):
    vec = NgramVectorizer(ngrams=3, hash_bits=6, binary=True).adapt(CORPUS)  # 64 buckets: collisions too
    weights = np.random.default_rng(len(texts)).normal(size=vec.n_features)
    weights[0] = 0
    np.testing.assert_allclose(vec.score(texts, weights), vec.transform(texts) @ weights, atol=1e-9)
