"""The NB-weighted n-gram logistic regression family."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from reviewsense.export import load_model, save_model
from reviewsense.models.nblinear import NBLinearParams, NBLinearPredictor, fit, nb_ratio, platt
from reviewsense.text.ngrams import NgramVectorizer


@pytest.fixture(scope="module")
def model(sentiment_corpus) -> NBLinearPredictor:
    return fit(sentiment_corpus(400, 0), sentiment_corpus(200, 1), NBLinearParams(hash_bits=16))[0]


def test_validation_logits_come_from_the_model_that_did_not_see_validation(sentiment_corpus):
    train, validation = sentiment_corpus(400, 0), sentiment_corpus(200, 1)
    refit, held_out = fit(train, validation, NBLinearParams(hash_bits=16, refit=True))
    plain, held_out_plain = fit(train, validation, NBLinearParams(hash_bits=16, refit=False))
    assert held_out_plain is plain
    np.testing.assert_allclose(held_out.predict_logits(validation.texts), plain.predict_logits(validation.texts),
                               rtol=1e-4, atol=1e-4)
    # the refit saw the validation labels: its weights differ
    assert not np.allclose(refit.weights["coef"], plain.weights["coef"])


def test_nb_ratio_sign_follows_the_class():
    vec = NgramVectorizer(ngrams=1).adapt(["good", "bad"])
    features = vec.transform(["good good", "good", "bad"]).sign()
    ratio = nb_ratio(features, np.array([1, 1, 0]), alpha=1.0)
    good, bad = (vec.vocabulary_.index(w) for w in ("good", "bad"))
    assert ratio[good] > 0 > ratio[bad]


def test_platt_recovers_a_known_sigmoid():
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 3, 20_000)
    labels = (rng.random(20_000) < 1 / (1 + np.exp(-(0.5 * scores + 1.0)))).astype(int)
    slope, offset = platt(scores, labels)
    assert slope == pytest.approx(0.5, abs=0.05)
    assert offset == pytest.approx(1.0, abs=0.1)


def test_learns_the_toy_task(model, sentiment_corpus):
    test = sentiment_corpus(300, 2)
    accuracy = (model.predict(test.texts) == test.labels).mean()
    assert accuracy > 0.8
    great, awful = model.positive_proba(["a great and wonderful film", "an awful boring film"])
    assert great > 0.5 > awful


def test_export_round_trip_needs_no_torch(model, tmp_path):
    save_model(model, tmp_path / "model")
    texts = ["loved it", "dull plot", ""]
    np.testing.assert_allclose(load_model(tmp_path / "model").predict_proba(texts), model.predict_proba(texts),
                               atol=1e-6)
    code = ("import sys, reviewsense; m = reviewsense.load(sys.argv[1]); m.predict_proba(['great']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model")], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_tampered_vectorizer_kind_is_refused(model, tmp_path):
    from reviewsense.errors import ModelFileError
    from reviewsense.text.vectorizer import TextVectorizer

    with pytest.raises(ModelFileError, match="n-gram vectorizer"):
        NBLinearPredictor.from_tensors(TextVectorizer().adapt(["a"]), model.config, model.tensors(), ("n", "p"))


def test_spans_of_the_training_texts_join_the_fit_at_their_weight(sentiment_corpus):
    train, validation = sentiment_corpus(300, 0), sentiment_corpus(100, 1)
    plain, _ = fit(train, validation, NBLinearParams(hash_bits=14, span_weight=0.0))
    light, _ = fit(train, validation, NBLinearParams(hash_bits=14, span_weight=0.05))
    heavy, _ = fit(train, validation, NBLinearParams(hash_bits=14, span_weight=1.0))
    change = [float(np.abs(m.weights["coef"] - plain.weights["coef"]).sum()) for m in (light, heavy)]
    assert 0 < change[0] < change[1]
    # settings saved as JSON (a list of windows) fit the same model again
    again, _ = fit(train, validation, NBLinearParams(**{**light.config, "span_windows": [1, 3, 8, 20]}))
    np.testing.assert_array_equal(again.weights["coef"], light.weights["coef"])


def test_an_unfinished_fit_is_one_note_not_python_warnings(sentiment_corpus, monkeypatch, capsys, recwarn):
    monkeypatch.setenv("REVIEWSENSE_QUIET", "0")
    fit(sentiment_corpus(200, 0), sentiment_corpus(100, 1), NBLinearParams(hash_bits=12, max_iter=1, tol=1e-9,
                                                                           refit=False))
    assert "1 of 1 logistic regression(s) stopped at max_iter 1" in capsys.readouterr().err
    assert not [w for w in recwarn if "converge" in str(w.message)]
