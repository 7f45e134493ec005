"""The seed model: learning, numpy/torch agreement, reproducibility, early stopping."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_expit

from reviewsense.data.dataset import Dataset
from reviewsense.errors import ModelFileError
from reviewsense.models import predictor_class
from reviewsense.models.seed import SeedParams, SeedPredictor, build_module, fit
from reviewsense.text.word_vectors import WordVectors, embedding_matrix
from reviewsense.training.history import KEYS, EarlyStopping
from reviewsense.training.torch_loop import FitOptions

torch = pytest.importorskip("torch")

FAST = {"batch_size": 32, "learning_rate": 0.01, "seed": 0, "threads": 1}


def _bce(predictor, data: Dataset) -> float:
    z = predictor.predict_logits(data.texts).astype(np.float64)
    y = data.labels.astype(np.float64)
    return float(-(y * log_expit(z) + (1 - y) * log_expit(-z)).mean())


def _accuracy(predictor, data: Dataset) -> float:
    return float((predictor.predict(data.texts) == data.labels).mean())


def test_fit_learns_the_toy_task(trained, toy_dataset):
    predictor, history, train, validation = trained
    assert history.history["val_accuracy"][-1] > 0.9
    assert _accuracy(predictor, validation) > 0.9
    fresh = toy_dataset(200, seed=99)
    assert _accuracy(predictor, fresh) > 0.9
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_history_has_exactly_the_keras_keys(trained):
    _, history, _, _ = trained
    assert tuple(history.history) == KEYS == ("loss", "accuracy", "val_loss", "val_accuracy")
    assert all(len(v) == history.epochs == 12 for v in history.history.values())
    assert history.best_epoch is None  # no early stopping in this fit


def test_numpy_logits_match_the_torch_module(trained):
    predictor, _, _, validation = trained
    config = predictor.config
    module = build_module(predictor.vectorizer.vocabulary_size, config["embedding_dim"], config["hidden_units"])
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in predictor.weights.items()})
    module.eval()
    texts = validation.texts[:20] + ["", "never seen tokens only", "GREAT!!! <br /> awful?"]
    ids, offsets = predictor.vectorizer.encode_ragged(texts)
    with torch.no_grad():
        expected = module(torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(offsets[:-1])).numpy()
    np.testing.assert_allclose(predictor.predict_logits(texts), expected, atol=1e-5, rtol=0)


def test_probabilities_and_labels(trained):
    predictor, *_ = trained
    proba = predictor.positive_proba(["", "great excellent superb", "awful terrible worst"])
    assert proba.dtype == np.float32 and proba.shape == (3,)
    assert np.isfinite(proba).all() and ((proba >= 0) & (proba <= 1)).all()
    assert proba[1] > 0.9 and proba[2] < 0.1
    assert predictor.predict(["great excellent superb", "awful terrible worst"]).tolist() == [1, 0]
    assert predictor.predict_proba("great").shape == (1, 2) and predictor.positive_proba("great").shape == (1,)
    assert predictor.predict_proba([]).shape == (0, 2) and predictor.positive_proba([]).shape == (0,)
    above = float(proba[1]) + 1e-3
    assert predictor.predict(["great excellent superb"], threshold=above).tolist() == [0]


def test_empty_text_gives_a_finite_probability(trained):
    predictor, *_ = trained
    p = predictor.positive_proba([""])
    assert np.isfinite(p).all() and 0 <= p[0] <= 1


def test_large_batches_are_split_consistently(trained):
    predictor, _, train, _ = trained
    texts = (train.texts * 20)[:4100]  # more than one internal batch of 4096
    logits = predictor.predict_logits(texts)
    np.testing.assert_array_equal(logits[4096:], predictor.predict_logits(texts[4096:]))


def _small_fit(toy_dataset, seed):
    data = toy_dataset(120, seed=7)
    train, validation = data.subset(range(90)), data.subset(range(90, 120))
    return fit(train, validation, SeedParams(embedding_dim=8, hidden_units=4),
               FitOptions(epochs=3, **{**FAST, "seed": seed}))


def test_same_seed_same_history_and_weights(toy_dataset):
    p1, h1 = _small_fit(toy_dataset, seed=3)
    p2, h2 = _small_fit(toy_dataset, seed=3)
    assert h1.history == h2.history
    for name in p1.weights:
        np.testing.assert_array_equal(p1.weights[name], p2.weights[name])
    _, h3 = _small_fit(toy_dataset, seed=4)
    assert h3.history != h1.history


def test_early_stopping_stops_and_restores_the_best_epoch():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(400)]

    def noise(n):
        texts = [" ".join(rng.choice(vocab, size=6)) for _ in range(n)]
        return Dataset(texts=texts, labels=rng.integers(0, 2, size=n))

    train, validation = noise(60), noise(80)  # random labels: anything learned is overfitting
    patience, max_epochs = 2, 60
    predictor, history = fit(train, validation, SeedParams(embedding_dim=16, hidden_units=16),
                             FitOptions(epochs=max_epochs, batch_size=16, learning_rate=0.05, seed=0, threads=1,
                                        early_stopping=EarlyStopping(patience=patience)))
    val_loss = history.history["val_loss"]
    assert history.stopped_epoch is not None and history.stopped_epoch < max_epochs
    assert history.epochs == history.stopped_epoch
    assert history.best_epoch == int(np.argmin(val_loss)) + 1
    assert history.stopped_epoch == history.best_epoch + patience
    assert _bce(predictor, validation) == pytest.approx(min(val_loss), abs=1e-6)
    assert _bce(predictor, validation) < val_loss[-1] - 1e-6  # not simply the last epoch's weights


def test_pretrained_vectors_initialise_the_embedding(toy_dataset):
    data = toy_dataset(100, seed=2)
    train, validation = data.subset(range(80)), data.subset(range(80, 100))
    rng = np.random.default_rng(1)
    words = ["great", "awful", "movie", "the", "plot"]
    vectors = WordVectors(words, rng.normal(size=(len(words), 6)).astype(np.float32))
    predictor, history = fit(train, validation,
                             SeedParams(embedding_dim=50, hidden_units=4, trainable_embedding=False),
                             FitOptions(epochs=2, **FAST), vectors=vectors)
    assert predictor.config["embedding_dim"] == 6
    assert predictor.config["embedding_source"] == "pretrained"
    expected, _ = embedding_matrix(predictor.vectorizer.vocabulary_, vectors, seed=0)
    # frozen: the embedding is exactly the initial matrix built from the vectors
    np.testing.assert_array_equal(predictor.weights["embedding.weight"], expected)
    np.testing.assert_array_equal(predictor.weights["embedding.weight"][predictor.vectorizer.index_["great"]],
                                  vectors.vectors[0])
    assert history.epochs == 2


def test_scratch_config_records_its_source(trained):
    predictor, *_ = trained
    assert predictor.config["embedding_source"] == "scratch"
    assert predictor.family == "seed"
    assert predictor_class("seed") is SeedPredictor


def test_unknown_family():
    with pytest.raises(ModelFileError, match="unknown model family"):
        predictor_class("gpt-9")


def test_from_tensors_checks_shapes_and_values(trained):
    predictor, *_ = trained
    tensors = predictor.tensors()
    rebuilt = SeedPredictor.from_tensors(predictor.vectorizer, predictor.config, tensors, ("neg", "pos"))
    np.testing.assert_array_equal(rebuilt.predict_logits(["great film"]), predictor.predict_logits(["great film"]))
    assert rebuilt.class_names == ("neg", "pos")

    wrong = dict(tensors, **{"dense.bias": np.zeros(3, np.float32)})
    with pytest.raises(ModelFileError, match="dense.bias"):
        SeedPredictor.from_tensors(predictor.vectorizer, predictor.config, wrong, ("n", "p"))
    missing = {k: v for k, v in tensors.items() if k != "output.bias"}
    with pytest.raises(ModelFileError, match="expected"):
        SeedPredictor.from_tensors(predictor.vectorizer, predictor.config, missing, ("n", "p"))
    nan = dict(tensors, **{"output.bias": np.array([np.nan], np.float32)})
    with pytest.raises(ModelFileError, match="NaN"):
        SeedPredictor.from_tensors(predictor.vectorizer, predictor.config, nan, ("n", "p"))
