"""The stacked ensemble behind ``--preset best``."""

from __future__ import annotations

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
    great, awful = stacked.predict_proba(texts)
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
