"""Explanations: contributions that add up to the logit, spans that point into the text."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reviewsense.errors import ConfigError
from reviewsense.export import load_model, save_model
from reviewsense.models import cnn, ensemble, nblinear, seed
from reviewsense.models.calibration import fit_length_calibration
from reviewsense.models.explanation import Attribution, align, explain
from reviewsense.training.torch_loop import FitOptions

WORDS = (["great", "superb", "loved"], ["awful", "dull", "hated"], ["the", "film", "plot", "was", "and", "a"])
TEXT = "The <b>GREAT</b> film was dull, but I LOVED it!"


@pytest.fixture(scope="module")
def models(sentiment_corpus):
    train, validation = (sentiment_corpus(n, seed, WORDS, filler_count=8, noise=0) for n, seed in ((300, 0), (150, 1)))
    linear, linear_held_out = nblinear.fit(train, validation, nblinear.NBLinearParams(hash_bits=12))
    linear_logits = linear_held_out.predict_logits(validation.texts)
    neural, _ = seed.fit(train, validation, seed.SeedParams(embedding_dim=8, ngrams=2),
                         FitOptions(epochs=20, batch_size=32, learning_rate=0.02, threads=1))
    logits = np.column_stack([linear_logits, neural.predict_logits(validation.texts)])
    stacked = ensemble.stack([linear, neural], logits, validation.labels, ("negative", "positive"))
    network, _, _ = cnn.fit(train, validation, cnn.CNNParams(embedding_dim=8, filters=8, dropout=0.0, refit=False),
                            FitOptions(epochs=15, batch_size=32, learning_rate=0.01, threads=1))
    models = {"nblinear": linear, "seed": neural, "ensemble": stacked, "cnn": network}
    for model in models.values():  # as `reviewsense train` gives them: calibrated by length
        model.length_calibration = fit_length_calibration(model, validation, train.labels)
    return models


FAMILIES = ["nblinear", "seed", "ensemble", "cnn"]


@pytest.mark.parametrize("family", FAMILIES)
def test_contributions_add_up_to_the_logit(models, family):
    model = models[family]
    e = model.explain(TEXT)
    # explain builds its logit as bias + Σ contributions; what can fail is that sum against the
    # model's own score, computed by another path (predict_logits)
    assert e.bias + sum(e.features.values()) == pytest.approx(float(model.predict_logits([TEXT])[0]), abs=1e-4)
    assert e.probability == pytest.approx(float(model.positive_proba([TEXT])[0]), abs=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_sentiment_words_push_the_right_way(models, family):
    e = models[family].explain(TEXT, k=3)
    up, down = e.top()
    assert len(up) <= 3 and len(down) <= 3
    assert [c for _, c in up] == sorted((c for _, c in up), reverse=True)
    assert [c for _, c in down] == sorted(c for _, c in down)
    assert e.features["great"] > 0 and e.features["loved"] > 0 and e.features["dull"] < 0
    words = {t["token"]: t["contribution"] for t in e.tokens}
    assert words["great"] > 0 > words["dull"]


@pytest.mark.parametrize("family", FAMILIES)
def test_token_spans_point_into_the_original_text(models, family):
    e = models[family].explain(TEXT)
    assert [t["token"] for t in e.tokens][:4] == ["the", "great", "film", "was"]
    for token in e.tokens:
        assert TEXT[token["start"] : token["end"]].lower() == token["token"]
    assert TEXT[e.tokens[1]["start"] : e.tokens[1]["end"]] == "GREAT"  # inside the tag, not the tag's 'b'


@pytest.mark.parametrize("family", ["nblinear", "seed", "cnn"])
def test_word_shares_add_up_to_the_contributions(models, family):
    e = models[family].explain("a great film, not dull")
    assert sum(t["contribution"] for t in e.tokens) == pytest.approx(sum(e.features.values()), abs=1e-4)


def test_to_dict_is_json_ready(models):
    import json

    d = models["nblinear"].explain(TEXT, k=2).to_dict()
    assert set(d) == {"probability", "label", "label_name", "logit", "bias", "positive", "negative", "tokens"}
    assert len(d["positive"]) <= 2 and all(f["contribution"] > 0 for f in d["positive"])
    assert d["label_name"] == ("positive" if d["label"] else "negative")
    json.dumps(d)


def test_empty_text_is_all_bias(models):
    for family in FAMILIES:
        e = models[family].explain("")
        assert e.features == {} and e.tokens == []
        expected = float(models[family].predict_logits([""])[0])
        assert e.logit == pytest.approx(e.bias) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_explanations_survive_export(models, family, tmp_path):
    save_model(models[family], tmp_path / "m")
    loaded = load_model(tmp_path / "m").explain(TEXT).to_dict()
    original = models[family].explain(TEXT).to_dict()
    assert loaded["positive"] == original["positive"] and loaded["tokens"] == original["tokens"]


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=80))
def test_any_text_is_explained_consistently(models, text):
    model = models["nblinear"]
    e = model.explain(text)
    assert e.logit == pytest.approx(float(model.predict_logits([text])[0]), abs=1e-4)
    for token in e.tokens:
        assert 0 <= token["start"] < token["end"] <= len(text)
        assert text[token["start"] : token["end"]].lower() == token["token"]


def test_align_skips_what_it_cannot_find():
    assert align("Caf&eacute; ok", ["café", "ok"]) == [None, (12, 14)]
    assert align("<i>a</i> i", ["a", "i"]) == [(3, 4), (9, 10)]


def test_explain_builds_features_from_items():
    e = explain("good not bad", Attribution(["good", "not", "bad"], [(0, 1, 1.0), (1, 2, 0.5), (2, 1, -2.0)], 0.25),
                ("neg", "pos"), k=5)
    assert e.features == {"good": 1.0, "not bad": 0.5, "bad": -2.0}
    assert e.logit == pytest.approx(-0.25)
    assert [t["contribution"] for t in e.tokens] == [1.0, 0.25, -1.75]
    assert e.to_dict()["label_name"] == "neg"


def test_families_without_explanations_say_so(models):
    class Opaque(type(models["nblinear"])):
        family = "opaque"

        def _attribute(self, text, target=None):
            return super(nblinear.NBLinearPredictor, self)._attribute(text, target)

    opaque = Opaque(models["nblinear"].vectorizer, {}, models["nblinear"].weights)
    with pytest.raises(ConfigError, match="not available for 'opaque'"):
        opaque.explain("text")
