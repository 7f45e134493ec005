"""The stacked ensemble behind ``--preset best``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reviewsense.errors import ConfigError, ModelFileError
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


# -- with a length calibration, its per-member slopes are the stack ------------------------------
@pytest.fixture
def calibrated(stacked, sentiment_corpus):
    """The stack over the same members, then length-calibrated (what ``reviewsense train --preset best`` does)."""
    from reviewsense.models.calibration import fit_length_calibration

    validation = sentiment_corpus(150, 1, WORDS, filler_count=8, noise=0)
    model = ensemble.EnsemblePredictor(stacked.members, stacked.weights, stacked.bias)
    calibration = fit_length_calibration(model, validation, validation.labels)
    return model, calibration


def test_without_a_length_calibration_the_stack_weights_set_the_probabilities(stacked):
    texts = ["a great superb film", "an awful dull plot", "film"]
    other = ensemble.EnsemblePredictor(stacked.members, stacked.weights[::-1] * 0.5, stacked.bias + 1.0)
    assert not np.allclose(other.predict_proba(texts), stacked.predict_proba(texts))


def test_a_length_calibration_replaces_the_stack_weights(calibrated, tmp_path):
    """The calibration reads every member's logit with its own slope by length: the weights would
    change no probability, so the model drops them and its export holds none."""
    model, calibration = calibrated
    model.length_calibration = calibration
    assert model.weights is None and model.bias is None and model.needs_length_calibration
    assert not any(name.startswith("stack.") for name in model.tensors())
    texts = ["a great superb film", "an awful dull plot", "", "film"]
    path = save_model(model, tmp_path / "m")
    assert json.loads((path / "manifest.json").read_text())["format_version"] == 4
    loaded = load_model(path)
    assert loaded.weights is None
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
    # a model that scores through its calibration is refused without it, on load and after
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["length_calibration"] = None
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="scores through its length calibration"):
        load_model(path)
    loaded.length_calibration = None
    with pytest.raises(ConfigError, match="combined by its length calibration"):
        loaded.predict_proba(texts)


@pytest.mark.parametrize("scale", [1.0, -3.0])
def test_exports_of_calibrated_ensembles_with_stack_weights_still_load_and_predict_as_before(calibrated, tmp_path,
                                                                                           scale):
    """reviewsense 0.1.0 wrote a calibrated ensemble with its stack weights (format version 2); its
    predictions read the calibration only. Such an export loads and predicts as before, whatever
    weights it holds, and drops them."""
    from safetensors.numpy import load_file, save_file

    from reviewsense._fs import sha256_file

    model, calibration = calibrated
    weights, bias = model.weights * scale, model.bias
    model.length_calibration = calibration
    path = save_model(model, tmp_path / "old")
    tensors = load_file(str(path / "model.safetensors"))
    tensors |= {"stack.weights": weights, "stack.bias": np.atleast_1d(np.float32(bias))}
    save_file(tensors, str(path / "model.safetensors"), metadata={"family": "ensemble"})
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 2
    manifest["files"]["model.safetensors"] = {"sha256": sha256_file(path / "model.safetensors"),
                                              "bytes": (path / "model.safetensors").stat().st_size}
    (path / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_model(path)
    assert loaded.weights is None
    texts = ["a great superb film", "an awful dull plot", "", "film", "great but dull"]
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
    # what 0.1.0 computed: the calibration of the members' logits
    expected = calibration(model.member_logits(texts), np.array([4, 4, 0, 1, 3]))
    np.testing.assert_allclose(loaded.predict_logits(texts), expected, rtol=1e-6)
