"""The scikit-learn estimators: clone, Pipeline, GridSearchCV, cross_val_score, save and load."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from reviewsense import NBLinearClassifier, SeedClassifier
from reviewsense.errors import DataError, TextTypeError

FAST = {"hash_bits": 12, "span_weight": 0.0}


@pytest.fixture
def corpus(toy_corpus):
    texts, labels = toy_corpus(240, seed=11)
    return texts, ["good" if y else "bad" for y in labels]


def test_hyper_parameters_are_stored_as_given_and_clone_keeps_them():
    model = NBLinearClassifier(C=0.5, ngrams=2, validation_size=30)
    assert model.get_params()["C"] == 0.5 and model.get_params()["validation_size"] == 30
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert not hasattr(copy, "classes_")
    assert model.set_params(C=2.0).C == 2.0


def test_fit_on_strings_with_labels_of_any_type(corpus):
    texts, labels = corpus
    model = NBLinearClassifier(**FAST).fit(texts, labels)
    assert model.classes_.tolist() == ["bad", "good"]
    tests = ["great excellent film", "awful boring film", ""]
    proba = model.predict_proba(tests)
    assert proba.shape == (3, 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.predict(tests)[:2].tolist() == ["good", "bad"]
    np.testing.assert_allclose(1 / (1 + np.exp(-model.decision_function(tests))), proba[:, 1], rtol=1e-5)
    assert model.score(texts, labels) > 0.9
    for y in ([label == "good" for label in labels], [int(label == "good") * 5 for label in labels]):
        fitted = NBLinearClassifier(**FAST).fit(np.array(texts, dtype=object), y)
        assert fitted.predict(["great excellent film"])[0] == fitted.classes_[1]


def test_validation_data_is_used_instead_of_a_split(corpus):
    texts, labels = corpus
    model = NBLinearClassifier(**FAST, refit=False).fit(texts[:200], labels[:200],
                                                       validation_data=(texts[200:], labels[200:]))
    assert model.score(texts[200:], labels[200:]) > 0.9
    with pytest.raises(DataError, match=r"labels \['meh'\] are not among the classes"):
        NBLinearClassifier(**FAST).fit(texts, labels, validation_data=(["fine"], ["meh"]))


def test_bad_input_is_refused_with_what_is_wrong(corpus):
    texts, labels = corpus
    with pytest.raises(NotFittedError):
        NBLinearClassifier().predict(["a film"])
    with pytest.raises(DataError, match=r"needs at least two classes, got \['good'\]"):
        NBLinearClassifier(**FAST).fit(texts, ["good"] * len(texts))
    with pytest.raises(DataError, match="one label per text"):
        NBLinearClassifier(**FAST).fit(texts, labels[:10])
    with pytest.raises(TextTypeError, match=r"texts\[1\] is NoneType"):
        NBLinearClassifier(**FAST).fit(["a", None] + texts[2:], labels)


def test_pipeline_cross_val_score_and_grid_search(corpus):
    texts, labels = corpus
    pipeline = Pipeline([("lower", FunctionTransformer(lambda xs: [x.upper() for x in xs])),
                         ("model", NBLinearClassifier(**FAST))])
    scores = cross_val_score(pipeline, texts, labels, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85
    search = GridSearchCV(NBLinearClassifier(**FAST), {"C": [0.01, 1.0]}, cv=3).fit(texts, labels)
    assert search.best_params_["C"] in (0.01, 1.0)
    assert search.best_estimator_.predict(["great excellent"])[0] == "good"


def test_save_then_load_in_a_fresh_process(corpus, tmp_path):
    texts, labels = corpus
    model = NBLinearClassifier(**FAST, C=0.5).fit(texts, labels)
    model.save(tmp_path / "m")
    probe = ["great excellent film", "awful boring film", "a film"]
    script = f"""
import json, sys
import reviewsense
from reviewsense import NBLinearClassifier
m = NBLinearClassifier.load({str(tmp_path / "m")!r})
p = reviewsense.load({str(tmp_path / "m")!r})
print(json.dumps({{"classes": m.classes_.tolist(), "C": m.C, "proba": m.predict_proba({probe!r}).tolist(),
                  "labels": m.predict({probe!r}).tolist(), "positive": p.positive_proba({probe!r}).tolist()}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    import json

    loaded = json.loads(out.stdout)
    assert loaded["classes"] == ["bad", "good"] and loaded["C"] == 0.5
    np.testing.assert_allclose(loaded["proba"], model.predict_proba(probe), rtol=1e-6)
    assert loaded["labels"] == model.predict(probe).tolist()
    np.testing.assert_allclose(loaded["positive"], model.predict_proba(probe)[:, 1], rtol=1e-6)


def test_load_refuses_a_folder_of_another_estimator(corpus, tmp_path):
    from reviewsense.errors import ModelFileError

    texts, labels = corpus
    NBLinearClassifier(**FAST).fit(texts, labels).save(tmp_path / "m")
    with pytest.raises(ModelFileError, match="not saved by SeedClassifier.save"):
        SeedClassifier.load(tmp_path / "m")


def test_the_tutorials_network_as_an_estimator(corpus):
    pytest.importorskip("torch")
    texts, labels = corpus
    model = SeedClassifier(embedding="scratch", ngrams=1, embedding_dim=8,
                           hidden_units=4, epochs=4, batch_size=32, learning_rate=0.02,
                           n_jobs=1)
    assert clone(model).get_params() == model.get_params()
    model.fit(texts, labels)
    assert 1 <= model.history_.epochs <= 4
    assert set(model.history_.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert model.predict_proba(texts[:5]).shape == (5, 2)
    assert model.score(texts, labels) > 0.8


TINY_CNN = {"embedding_dim": 8, "filters": 4, "widths": (2, 3), "epochs": 3, "batch_size": 32, "n_jobs": 1,
            "max_length": 20, "min_count": 1}


def test_the_presets_network_and_the_stack_as_estimators(corpus, tmp_path):
    pytest.importorskip("torch")
    from reviewsense import CNNClassifier, StackedClassifier

    texts, labels = corpus
    network = CNNClassifier(embedding="scratch", **TINY_CNN).fit(texts, labels)
    assert network.history_.epochs <= 3 and network.predict_proba(texts[:3]).shape == (3, 2)
    stack = StackedClassifier(linear=NBLinearClassifier(**FAST), network=CNNClassifier(embedding="scratch", **TINY_CNN))
    assert stack.get_params()["linear__C"] is None and stack.set_params(linear__C=0.5).linear.C == 0.5
    stack.fit(texts, labels)
    assert stack.predictor_.family == "ensemble" and stack.score(texts, labels) > 0.9
    assert not hasattr(stack.linear, "predictor_")  # the members given are templates: cloned, never fitted
    stack.save(tmp_path / "stack")
    again = StackedClassifier.load(tmp_path / "stack")
    np.testing.assert_allclose(again.predict_proba(texts[:5]), stack.predict_proba(texts[:5]), rtol=1e-5)


def test_word2vec_vectors_pretrained_on_the_fit_texts(corpus, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("gensim")
    from reviewsense import CNNClassifier
    from reviewsense.text import word_vectors

    calls = []
    real = word_vectors.pretrain

    def spy(texts, **kwargs):
        calls.append((list(texts), kwargs))
        return real(texts, **kwargs)

    monkeypatch.setattr(word_vectors, "pretrain", spy)
    texts, labels = corpus
    model = CNNClassifier(embedding="word2vec", **{**TINY_CNN, "embedding_dim": 12}).fit(texts, labels)
    (seen, kwargs), = calls
    assert sorted(seen) == sorted(texts) and kwargs["dim"] == 12 and kwargs["method"] == "word2vec"
    assert model.predictor_.tensors()["embedding.weight"].shape[1] == 12
