"""TextVectorizer: standardization, tokens, vocabulary, outputs and the JSON format."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviewsense.errors import ModelFileError
from reviewsense.text.vectorizer import OOV, PAD, TextVectorizer

CORPUS = [
    "A great film!<br /><br />Truly GREAT.",
    "An awful film. Awful acting, awful plot.",
    "Not good, not bad: just a film.",
    "I didn't like it &amp; I won't watch it again!",
]


def test_docstring_example():
    v = TextVectorizer(max_tokens=10).adapt(["a good film", "a bad film<br />"])
    assert v.vocabulary_[:4] == ["", "[UNK]", "a", "film"]
    assert v(["a good movie"]).tolist() == [[2, 5, 1]]


def test_standardization_strips_html_and_lowercases():
    v = TextVectorizer()
    assert v.tokenize("Great<br />MOVIE") == ["great", "movie"]
    assert v.tokenize("Tom &amp; Jerry") == ["tom", "&", "jerry"]
    assert "br" not in v.tokenize(CORPUS[0])


def test_standardization_modes():
    assert TextVectorizer(standardize="lower").tokenize("A<br />B") == ["a", "<", "br", "/", ">", "b"]
    assert TextVectorizer(standardize="none").tokenize("Hello World") == ["Hello", "World"]


def test_punctuation_split_and_strip():
    text = "Wow!! I don't know..."
    assert TextVectorizer(punctuation="split").tokenize(text) == ["wow", "!", "!", "i", "don't", "know", ".", ".", "."]
    assert TextVectorizer(punctuation="strip").tokenize(text) == ["wow", "i", "don't", "know"]


def test_ngrams_follow_the_words():
    assert TextVectorizer(ngrams=2, punctuation="strip").tokenize("Not good at all") == [
        "not", "good", "at", "all", "not good", "good at", "at all"]
    tokens = TextVectorizer(ngrams=3).tokenize("not very good")
    assert tokens == ["not", "very", "good", "not very", "very good", "not very good"]
    assert TextVectorizer(ngrams=2).tokenize("single") == ["single"]


def test_vocabulary_is_most_frequent_first_with_alphabetical_ties():
    texts = ["b a c c", "c d a", "e"]
    v = TextVectorizer(max_tokens=None).adapt(texts)
    assert v.vocabulary_ == [PAD, OOV, "c", "a", "b", "d", "e"]
    small = TextVectorizer(max_tokens=5).adapt(texts)
    assert small.vocabulary_ == [PAD, OOV, "c", "a", "b"]
    assert small.vocabulary_size == 5


def test_min_count_drops_rare_tokens():
    v = TextVectorizer(min_count=2).adapt(["b a c c", "c d a", "e"])
    assert v.vocabulary_ == [PAD, OOV, "c", "a"]


def test_adapt_is_deterministic_and_order_independent():
    texts = [t for t in CORPUS for _ in range(3)]
    first = TextVectorizer(max_tokens=12, ngrams=2).adapt(texts).vocabulary_
    again = TextVectorizer(max_tokens=12, ngrams=2).adapt(texts).vocabulary_
    shuffled = texts[:]
    random.Random(4).shuffle(shuffled)
    assert first == again == TextVectorizer(max_tokens=12, ngrams=2).adapt(shuffled).vocabulary_


def test_int_output_uses_oov_one_and_pads_with_zero():
    v = TextVectorizer().adapt(["good film", "bad film"])
    out = v(["good film", "unknown words here film", ""])
    assert out.dtype == np.int64
    assert out.shape == (3, 4)  # longest text in the batch
    good, film = v.index_["good"], v.index_["film"]
    assert out[0].tolist() == [good, film, 0, 0]
    assert out[1].tolist() == [1, 1, 1, film]
    assert out[2].tolist() == [0, 0, 0, 0]


def test_int_output_with_sequence_length_pads_and_truncates():
    v = TextVectorizer(sequence_length=3).adapt(["a b c d e"])
    out = v(["a b c d e", "a"])
    assert out.shape == (2, 3)
    assert out[0].tolist() == [v.index_[t] for t in "abc"]
    assert out[1].tolist() == [v.index_["a"], 0, 0]
    assert v("e").tolist() == [[v.index_["e"], 0, 0]]  # fixed width even for one short text


def test_single_string_is_a_batch_of_one():
    v = TextVectorizer(sequence_length=4).adapt(["a b"])
    np.testing.assert_array_equal(v("a b"), v(["a b"]))


def test_bag_outputs():
    texts = ["a a b", "b c", "zzz"]
    for mode in ("multi_hot", "count"):
        v = TextVectorizer(output_mode=mode).adapt(texts)
        dense = v(["a a b z"]).toarray()[0]
        assert dense.shape == (v.vocabulary_size,)
        a, b = v.index_["a"], v.index_["b"]
        if mode == "multi_hot":
            assert dense[a] == 1 and dense[b] == 1 and dense[1] == 1
        else:
            assert dense[a] == 2 and dense[b] == 1 and dense[1] == 1
        assert dense[0] == 0
        assert dense.sum() == (3 if mode == "multi_hot" else 4)


def test_tf_idf_output():
    texts = ["a a b", "b c", "c"]
    v = TextVectorizer(output_mode="tf_idf").adapt(texts)
    row = v(["a a b"]).toarray()[0]
    n = len(texts)
    idf = {t: np.log1p(n / (1 + df)) for t, df in {"a": 1, "b": 2, "c": 2}.items()}
    np.testing.assert_allclose(row[v.index_["a"]], 2 * idf["a"], rtol=1e-6)
    np.testing.assert_allclose(row[v.index_["b"]], idf["b"], rtol=1e-6)
    assert row[v.index_["c"]] == 0
    assert idf["a"] > idf["b"]  # rarer tokens weigh more


def test_tf_idf_needs_a_tf_idf_adapted_vectorizer():
    v = TextVectorizer(output_mode="count").adapt(["a b"])
    with pytest.raises(RuntimeError, match="tf_idf"):
        v.bag(["a"], mode="tf_idf")


def test_not_adapted():
    with pytest.raises(RuntimeError, match="adapt"):
        TextVectorizer()(["a"])


@pytest.mark.parametrize("kwargs", [{"output_mode": "dense"}, {"ngrams": 6}, {"ngrams": 0}, {"max_tokens": 2},
                                    {"standardize": "upper"}, {"punctuation": "keep"}])
def test_bad_configuration_is_rejected(kwargs):
    with pytest.raises(ValueError):
        TextVectorizer(**kwargs).adapt(["a"])


@pytest.mark.parametrize(
    "config",
    [
        {"output_mode": "int", "ngrams": 2, "sequence_length": 6},
        {"output_mode": "tf_idf", "ngrams": 2, "max_tokens": 15},
        {"output_mode": "count", "punctuation": "strip", "standardize": "lower"},
    ],
)
def test_json_round_trip_gives_identical_outputs(tmp_path, config):
    v = TextVectorizer(**config).adapt(CORPUS)
    path = tmp_path / "vectorizer.json"
    v.save(path)
    loaded = TextVectorizer.load(path)
    assert loaded.get_config() == v.get_config()
    assert loaded.vocabulary_ == v.vocabulary_
    probe = CORPUS + ["Something entirely new!", ""]
    a, b = v(probe), loaded(probe)
    if config["output_mode"] == "int":
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_array_equal(a.toarray(), b.toarray())
    assert json.loads(path.read_text())["format_version"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name != "vectorizer.json"]


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=st.lists(st.text(max_size=40), min_size=1, max_size=8),
       probe=st.lists(st.text(max_size=40), max_size=5),
       ngrams=st.integers(1, 3))
def test_round_trip_property(train, probe, ngrams):
    v = TextVectorizer(max_tokens=20, ngrams=ngrams).adapt(train)
    loaded = TextVectorizer.from_dict(json.loads(json.dumps(v.to_dict())))
    assert loaded.vocabulary_ == v.vocabulary_
    ids_a, off_a = v.encode_ragged(probe)
    ids_b, off_b = loaded.encode_ragged(probe)
    np.testing.assert_array_equal(ids_a, ids_b)
    np.testing.assert_array_equal(off_a, off_b)
    assert len(off_a) == len(probe) + 1
    assert ((ids_a >= 1) & (ids_a < v.vocabulary_size)).all()


def _good_dict():
    return TextVectorizer().adapt(["a b c"]).to_dict()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(format="something-else"), "format version"),
        (lambda d: d.update(format_version=2), "format version"),
        (lambda d: d.update(vocabulary=["a", "b"]), "vocabulary"),
        (lambda d: d.update(vocabulary=["", "[UNK]", "a", "a"]), "duplicate"),
        (lambda d: d.update(vocabulary=["", "[UNK]", 3]), "vocabulary"),
        (lambda d: d.update(vocabulary="abc"), "vocabulary"),
        (lambda d: d.pop("vocabulary"), "vocabulary"),
        (lambda d: d.update(idf=[1.0, 2.0]), "idf"),
        (lambda d: d["config"].update(ngrams=9), "ngrams"),
        (lambda d: d["config"].update(colour="red"), "colour"),
    ],
)
def test_from_dict_rejects_bad_files(edit, match):
    data = _good_dict()
    edit(data)
    with pytest.raises(ModelFileError, match=match):
        TextVectorizer.from_dict(data)


def test_load_rejects_unreadable_json(tmp_path):
    path = tmp_path / "v.json"
    path.write_text("{not json")
    with pytest.raises(ModelFileError, match="cannot read vectorizer"):
        TextVectorizer.load(path)
    with pytest.raises(ModelFileError):
        TextVectorizer.load(tmp_path / "missing.json")


def test_load_rejects_json_that_is_not_an_object(tmp_path):
    path = tmp_path / "v.json"
    path.write_text("[]")
    with pytest.raises(ModelFileError):
        TextVectorizer.load(path)
