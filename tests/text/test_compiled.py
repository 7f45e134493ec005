"""The compiled word-id lookup of ASCII texts gives exactly the polars tokenizer's ids."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reviewsense.text.ngrams import SMALL_BATCH, NgramVectorizer

compiled = pytest.importorskip("reviewsense.text.compiled")

CORPUS = ["A good film.", "A bad film<br /><br />really bad!", "Not good, not bad: don't know.", "x_1 2,000 <3"]
# tags, apostrophes, underscores, digits, every ASCII space and control character
TRICKY = st.text(st.sampled_from(list("<>/ab B'_0 9.!\n\t\r\x0b\x0c\x1c\x1f\x00\x7f")), max_size=40)
ASCII = st.text(st.characters(max_codepoint=127), max_size=60) | TRICKY
NON_ASCII = st.text(max_size=30).map(lambda s: "Café " + s)


def polars_ids(vec: NgramVectorizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The reference: tokens from polars (more texts than the Python path takes), joined to the vocabulary."""
    padded = texts + ["é"] * (SMALL_BATCH + 1)
    ids, lengths = vec._word_ids_any(padded)
    return ids[: lengths[: len(texts)].sum()], lengths[: len(texts)]


def assert_same(got, expected):
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[0], expected[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(ASCII, min_size=1, max_size=6))
def test_ascii_texts_get_the_polars_ids(texts):
    vec = NgramVectorizer(ngrams=2, hash_bits=8).adapt(CORPUS + texts[:3])  # known and unknown words
    assert vec._ascii_word_ids() is not None
    assert_same(vec.word_ids(texts), polars_ids(vec, texts))


@settings(max_examples=60, deadline=None)
@given(st.lists(ASCII | NON_ASCII, min_size=1, max_size=SMALL_BATCH + 20))
def test_mixed_batches_keep_each_text_in_place(texts):
    """ASCII texts take the compiled path, the others polars; the ids come back in batch order."""
    vec = NgramVectorizer(ngrams=3, hash_bits=8).adapt(CORPUS + texts[:10])
    assert_same(vec.word_ids(texts), polars_ids(vec, texts))


def test_every_vocabulary_word_is_found_and_nothing_else():
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghij'_0"))
    words = sorted({"".join(rng.choice(letters, size=rng.integers(1, 8))) for _ in range(20_000)})
    vec = NgramVectorizer(ngrams=1, hash_bits=8)
    vec._set_vocabulary(["", "[UNK]", *words, "naïve", "<"])
    ids, lengths = vec._ascii_word_ids()([" ".join(words) + " < naive"])
    assert ids.tolist() == [*range(2, len(words) + 2), len(words) + 3, 1]  # "naive" is not "naïve"
    assert lengths.tolist() == [len(words) + 2]


def test_features_and_scores_are_the_same_without_numba(monkeypatch):
    texts = CORPUS * 30 + ["Ça va <i>bien</i>", "", "ÉNORME!"]
    vec = NgramVectorizer(ngrams=3, hash_bits=10).adapt(CORPUS)
    weights = np.random.default_rng(2).normal(size=vec.n_features)
    fast = vec.transform(texts), vec.score(texts, weights)
    monkeypatch.setattr(vec, "_ascii", False)  # as when numba is missing
    slow = vec.transform(texts), vec.score(texts, weights)
    assert (fast[0] != slow[0]).nnz == 0
    np.testing.assert_array_equal(fast[1], slow[1])


def test_compiles_in_memory_without_a_writable_cache(monkeypatch):
    numba = pytest.importorskip("numba")
    real = numba.njit

    def njit(*args, **kwargs):
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit)
    try:
        module = importlib.reload(compiled)
        ids, lengths = module.AsciiWordIds(["", "[UNK]", "good"])(["Good <b>good</b> film"])
        assert ids.tolist() == [2, 2, 1] and lengths.tolist() == [3]
    finally:
        monkeypatch.undo()
        importlib.reload(compiled)
