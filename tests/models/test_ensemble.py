"""The stacked ensemble behind ``--preset best``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reviewsense.errors import ModelFileError
from reviewsense.export import load_model, save_model
from reviewsense.models import ensemble, nblinear, seed
from reviewsense.training.torch_loop import FitOptions

WORDS = (["great", "superb", "loved"], ["awful", "dull", "hated"], ["the", "film", "plot", "was", "and", "a"])


@pytest.fixture(scope="module")
def stacked(sentiment_corpus) -> ensemble.EnsemblePredictor:
    train, validation = (sentiment_corpus(n, seed, WORDS, filler_count=8, noise=0) for n, seed in ((300, 0), (150, 1)))
    linear, linear_held_out = nblinear.fit(train, validation, nblinear.NBLinearParams(hash_bits=12))
    linear_logits = linear_held_out.predict_logits(validation.texts)
    neural, _ = seed.fit(train, validation, seed.SeedParams(embedding_dim=8),
                         FitOptions(epochs=20, batch_size=32, learning_rate=0.02, threads=1))
    logits = np.column_stack([linear_logits, neural.predict_logits(validation.texts)])
    return ensemble.stack([linear, neural], logits, validation.labels, ("negative", "positive"))


def test_stacked_ensemble_combines_members(stacked):
    assert stacked.weights.shape == (2,)
    texts = ["a great superb film", "an awful dull plot"]
    members = stacked.member_logits(texts)
    np.testing.assert_allclose(stacked.predict_logits(texts), members @ stacked.weights + stacked.bias, rtol=1e-5)
    great, awful = stacked.positive_proba(texts)
    assert great > 0.5 > awful


def test_ensemble_export_round_trip(stacked, tmp_path):
    save_model(stacked, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert [m.family for m in loaded.members] == ["nblinear", "seed"]
    texts = ["loved the plot", "hated it", ""]
    np.testing.assert_allclose(loaded.predict_proba(texts), stacked.predict_proba(texts), atol=1e-6)


def test_ensemble_refuses_mismatched_members(stacked):
    config = {"members": stacked.config["members"][:1]}
    with pytest.raises(ModelFileError):
        ensemble.EnsemblePredictor.from_tensors(stacked.vectorizer, config, stacked.tensors(), ("n", "p"))


def test_length_calibrated_ensemble_weighs_members_by_length_and_round_trips(stacked, sentiment_corpus, tmp_path):
    from reviewsense.models.calibration import fit_length_calibration

    validation = sentiment_corpus(150, 1, WORDS, filler_count=8, noise=0)
    model = ensemble.EnsemblePredictor(stacked.members, stacked.weights, stacked.bias)
    model.length_calibration = fit_length_calibration(model, validation, validation.labels)
    assert model.length_calibration.scores == 2
    texts = ["a great superb film", "an awful dull plot", "", "film"]
    path = save_model(model, tmp_path / "m")
    np.testing.assert_array_equal(load_model(path).predict_logits(texts), model.predict_logits(texts))
    e = model.explain("a great film but an awful plot")
    assert e.logit == pytest.approx(sum(e.features.values()) + e.bias, abs=1e-4)
    assert e.logit == pytest.approx(float(model.predict_logits(["a great film but an awful plot"])[0]), abs=1e-4)
    # a calibration that reads another number of scores than the model's members is refused
    manifest = json.loads((path / "manifest.json").read_text())
    single = manifest["length_calibration"]
    single.update(empty=0.0, slope=single["slope"][0])
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="reads 1 score"):
        load_model(path)
