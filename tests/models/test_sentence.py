"""The optional sentence-transformers family, with a stand-in encoder (no model download)."""

from __future__ import annotations

import numpy as np
import pytest

from reviewsense.data.dataset import Dataset
from reviewsense.errors import DataError
from reviewsense.export import load_model, save_model
from reviewsense.models import sentence
from reviewsense.training.torch_loop import FitOptions

WORDS = {"great": 0, "awful": 1, "film": 2}


class FakeEncoder:
    """Counts three words: a deterministic stand-in for a sentence-transformers model."""

    def __init__(self, spec: str, batch_size: int = 64) -> None:
        self.spec, self.path = spec, spec

    def encode(self, texts, cache: bool = True) -> np.ndarray:
        rows = np.zeros((len(texts), 3), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                if word in WORDS:
                    rows[i, WORDS[word]] += 1
        return rows


@pytest.fixture
def fake_encoder(monkeypatch):
    monkeypatch.setattr(sentence, "SentenceEncoder", FakeEncoder)


def _data(n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = [("great film" if y else "awful film") + " film" * int(rng.integers(0, 3)) for y in labels]
    return Dataset(texts, labels)


def test_head_learns_and_exports_without_vectorizer(fake_encoder, tmp_path):
    params = sentence.SentenceParams(encoder="fake")
    predictor, history = sentence.fit(_data(200, 0), _data(60, 1), params,
                                      FitOptions(epochs=60, batch_size=32, learning_rate=0.05, threads=1))
    assert history.history["val_accuracy"][-1] == 1.0
    assert predictor.vectorizer is None
    save_model(predictor, tmp_path / "model")
    assert not (tmp_path / "model" / "vectorizer.json").exists()
    loaded = load_model(tmp_path / "model")
    texts = ["great film", "awful film", ""]
    np.testing.assert_allclose(loaded.predict_proba(texts), predictor.predict_proba(texts), atol=1e-6)
    great, awful, _ = loaded.positive_proba(texts)
    assert great > 0.5 > awful


def test_unknown_encoder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="neither a folder nor an installed package"):
        sentence.resolve_encoder(str(tmp_path / "no-such-encoder"))


def test_the_head_learns_three_classes(fake_encoder, tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 240)
    texts = [("awful film", "film film", "great film")[y] for y in labels]
    data = Dataset(texts, labels, class_names=("bad", "meh", "good"))
    predictor, history = sentence.fit(data.subset(range(180)), data.subset(range(180, 240)),
                                      sentence.SentenceParams(encoder="fake"),
                                      FitOptions(epochs=80, batch_size=32, learning_rate=0.05, threads=1))
    assert history.history["val_accuracy"][-1] == 1.0
    save_model(predictor, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    proba = loaded.predict_proba(["awful film", "film film", "great film"])
    assert proba.shape == (3, 3) and proba.argmax(axis=1).tolist() == [0, 1, 2]
