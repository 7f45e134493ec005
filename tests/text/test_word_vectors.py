"""Word vectors: gensim pretraining, the safetensors folder, text formats, embedding init."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reviewsense.errors import DataError, ModelFileError
from reviewsense.text.vectorizer import TextVectorizer
from reviewsense.text.word_vectors import WordVectors, embedding_matrix, load_word_vectors, pretrain


@pytest.fixture
def corpus(toy_corpus):
    texts, _ = toy_corpus(120, seed=3)
    return texts + ["Great!<br />A hapax legomenon appears once."]


def test_pretrain_gives_vectors_for_frequent_words(corpus):
    wv = pretrain(corpus, dim=12, epochs=2, min_count=2, workers=1, seed=0)
    assert wv.dim == 12
    assert wv.vectors.shape == (len(wv.words), 12)
    assert wv.vectors.dtype == np.float32
    assert np.isfinite(wv.vectors).all()
    assert {"the", "movie", "great", "awful"} <= set(wv.words)
    assert "hapax" not in wv.words  # seen once, below min_count
    assert "br" not in wv.words  # tokenized like the classifier: HTML tags removed
    assert len(set(wv.words)) == len(wv.words)
    assert wv.info["method"] == "word2vec" and wv.info["texts"] == len(corpus)


def test_pretrain_uses_the_given_vectorizer_tokenization(corpus):
    plain = pretrain(corpus, dim=8, epochs=1, min_count=1, workers=1)
    assert "!" in plain.words
    stripped = pretrain(corpus, dim=8, epochs=1, min_count=1, workers=1,
                        vectorizer=TextVectorizer(punctuation="strip"))
    assert "!" not in stripped.words and "great" in stripped.words


def test_pretrain_is_seeded(corpus):
    a = pretrain(corpus, dim=8, epochs=2, min_count=2, workers=1, seed=5)
    b = pretrain(corpus, dim=8, epochs=2, min_count=2, workers=1, seed=5)
    assert a.words == b.words
    np.testing.assert_array_equal(a.vectors, b.vectors)


def test_pretrain_unknown_method(corpus):
    with pytest.raises(DataError, match="unknown pretraining method"):
        pretrain(corpus, method="glove")


def test_pretrain_without_words_is_a_data_error():
    with pytest.raises(DataError, match="no words"):
        pretrain(["", "   ", "<br />"], workers=1)


def test_pretrain_with_no_frequent_word_is_a_data_error():
    with pytest.raises(DataError, match="cannot pretrain"):
        pretrain(["each word once", "never again here"], min_count=5, workers=1)


def _vectors():
    rng = np.random.default_rng(0)
    return WordVectors(["good", "not", "film"], rng.normal(size=(3, 4)).astype(np.float32), {"method": "test"})


def test_save_load_round_trip(tmp_path):
    wv = _vectors()
    folder = wv.save(tmp_path / "vectors")
    assert sorted(p.name for p in folder.iterdir()) == ["vectors.json", "vectors.safetensors"]
    loaded = load_word_vectors(folder)
    assert loaded.words == wv.words
    np.testing.assert_array_equal(loaded.vectors, wv.vectors)
    assert loaded.info == {"method": "test"}
    assert [p.name for p in tmp_path.iterdir()] == ["vectors"]


def test_saving_again_replaces_the_folder(tmp_path):
    _vectors().save(tmp_path / "v")
    other = WordVectors(["x"], np.ones((1, 2), np.float32))
    other.save(tmp_path / "v")
    assert load_word_vectors(tmp_path / "v").words == ["x"]
    assert [p.name for p in tmp_path.iterdir()] == ["v"]


def test_tampered_vectors_are_refused(tmp_path):
    folder = _vectors().save(tmp_path / "v")
    weights = folder / "vectors.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0x01
    weights.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum"):
        load_word_vectors(folder)


def test_folder_of_another_format_is_refused(tmp_path):
    folder = _vectors().save(tmp_path / "v")
    meta = json.loads((folder / "vectors.json").read_text())
    meta["format"] = "something-else"
    (folder / "vectors.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="not a reviewsense word-vector folder"):
        load_word_vectors(folder)
    (folder / "vectors.json").unlink()
    with pytest.raises(ModelFileError, match="cannot read"):
        load_word_vectors(folder)


def test_missing_vectors_path(tmp_path):
    with pytest.raises(DataError, match="no such word-vector file"):
        load_word_vectors(tmp_path / "nope.vec")


def test_load_word2vec_text_with_header(tmp_path):
    path = tmp_path / "wiki.vec"
    path.write_text("3 2\ngood 0.5 1.0\nbad -0.5 -1.0\nfilm 0 0.25\n", encoding="utf-8")
    wv = load_word_vectors(path)
    assert wv.words == ["good", "bad", "film"]
    np.testing.assert_allclose(wv.vectors, [[0.5, 1.0], [-0.5, -1.0], [0.0, 0.25]])
    assert wv.dim == 2


def test_load_glove_text_without_header(tmp_path):
    path = tmp_path / "glove.6B.3d.txt"
    path.write_text("the 0.1 0.2 0.3\ngood 1 2 3\n", encoding="utf-8")
    wv = load_word_vectors(path)
    assert wv.words == ["the", "good"]
    np.testing.assert_allclose(wv.vectors, [[0.1, 0.2, 0.3], [1, 2, 3]], rtol=1e-6)


def test_embedding_matrix():
    wv = _vectors()
    vocabulary = ["", "[UNK]", "good", "not good", "film", "zzz", "not zzz"]
    matrix, coverage = embedding_matrix(vocabulary, wv, seed=0)
    assert matrix.shape == (7, 4) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], 0)
    np.testing.assert_array_equal(matrix[2], wv.vectors[0])
    np.testing.assert_allclose(matrix[3], wv.vectors[[1, 0]].mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(matrix[4], wv.vectors[2])
    np.testing.assert_array_equal(matrix[6], wv.vectors[1])  # only the known word of the bigram
    assert np.abs(matrix[5]).sum() > 0  # unknown: random, not zero
    assert coverage == pytest.approx(4 / 5)
    again, _ = embedding_matrix(vocabulary, wv, seed=0)
    np.testing.assert_array_equal(matrix, again)
