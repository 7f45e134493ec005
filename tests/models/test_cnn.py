"""The convolutional member of ``--preset best``: word order, numpy/torch agreement, exact
explanations, head-and-tail truncation, export."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reviewsense.data.dataset import Dataset
from reviewsense.errors import ModelFileError
from reviewsense.export import load_model, save_model
from reviewsense.models import cnn, nblinear
from reviewsense.text.vectorizer import TextVectorizer
from reviewsense.training.torch_loop import FitOptions

torch = pytest.importorskip("torch")

FILLER = ["the", "film", "plot", "was", "and", "a", "it", "of", "this"]


def negation_corpus(n: int, seed: int) -> Dataset:
    """Every text holds 'not' and one of 'good'/'bad'; the label flips when 'not' stands
    right before that word. Each word alone says nothing about the label: a model must read
    the order."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        words = list(rng.choice(FILLER, 12))
        good, negated = bool(rng.integers(2)), bool(rng.integers(2))
        at = int(rng.integers(1, 11))
        words.insert(at, "good" if good else "bad")
        words.insert(at if negated else int(rng.choice([0, 13])), "not")
        texts.append(" ".join(words))
        labels.append(int(good != negated))
    return Dataset(texts=texts, labels=np.array(labels))


PARAMS = cnn.CNNParams(max_length=40, embedding_dim=16, filters=16, widths=[2, 3], dropout=0.0, epochs=15,
                       batch_size=32, learning_rate=0.01, patience=3)


@pytest.fixture(scope="module")
def trained():
    train, validation = negation_corpus(600, 0), negation_corpus(300, 1)
    predictor, history, _ = cnn.fit(train, validation, PARAMS, FitOptions(epochs=15, batch_size=32, learning_rate=0.01,
                                                                       seed=0, threads=1))
    return predictor, history, train, validation


def test_the_network_reads_word_order_that_a_bag_of_words_cannot(trained):
    predictor, history, train, validation = trained
    fresh = negation_corpus(300, 2)
    assert (predictor.predict(fresh.texts) == fresh.labels).mean() > 0.9
    assert history.history["loss"][-1] < history.history["loss"][0]
    unigrams, _ = nblinear.fit(train, validation, nblinear.NBLinearParams(ngrams=1, hash_bits=10, min_df=1))
    assert (unigrams.predict(fresh.texts) == fresh.labels).mean() < 0.7


def test_numpy_logits_match_the_torch_module(trained):
    predictor, _, _, validation = trained
    config = predictor.config
    module = cnn.build_module(predictor.vectorizer.vocabulary_size, config["embedding_dim"],
                              cnn.CNNParams(**config))
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in predictor.weights.items()})
    module.eval()
    texts = validation.texts[:20] + ["", "never seen words only", "good " * 100 + "not bad"]
    ids, _ = predictor._encode(texts)
    with torch.no_grad():
        expected = module(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(predictor.predict_logits(texts), expected, atol=1e-5, rtol=0)


def test_explanations_add_up_to_the_logit_and_name_the_deciding_words(trained):
    predictor, _, _, _ = trained
    for text in ["the plot was not good", "a good film", "", "bad bad bad", "not " * 60 + "good"]:
        explanation = predictor.explain(text)
        total = sum(t["contribution"] for t in explanation.tokens) + explanation.bias
        assert total == pytest.approx(float(predictor.predict_logits([text])[0]), abs=1e-4)
        assert explanation.logit == pytest.approx(float(predictor.predict_logits([text])[0]), abs=1e-4)
    negated = predictor.explain("the plot was and not good film of this a it the")
    assert negated.label == 0
    strongest = max(negated.features.items(), key=lambda kv: abs(kv[1]))[0]
    assert strongest in ("not", "good")


def test_long_texts_are_read_at_both_ends_and_explained_there(trained):
    predictor, _, _, _ = trained
    middle = " ".join(["plot"] * 20 + ["awful"] + ["plot"] * 20)
    text = "good " + middle + " bad"  # 43 words, max_length 40: the middle word 'awful' is dropped
    explanation = predictor.explain(text)
    words = {t["token"] for t in explanation.tokens if t["contribution"]}
    assert {"good", "bad"} <= words and "awful" not in words


@given(st.lists(st.integers(0, 12), max_size=8), st.integers(1, 9))
def test_head_tail_keeps_the_first_and_last_halves(lengths, limit):
    texts = [np.arange(n, dtype=np.int32) + 100 * (i + 1) for i, n in enumerate(lengths)]
    ids = np.concatenate(texts) if texts else np.zeros(0, dtype=np.int32)
    offsets = np.cumsum([0] + lengths)
    matrix, kept = cnn.head_tail(ids, offsets, limit)
    assert matrix.shape[0] == len(lengths)
    for row, n, text, k in zip(matrix, lengths, texts, kept, strict=True):
        expected = text[cnn.kept_positions(n, limit)]
        assert k == len(expected) == min(n, limit)
        assert row[:k].tolist() == expected.tolist() and not row[k:].any()


def test_export_round_trip_predicts_without_torch(trained, tmp_path):
    predictor, _, _, validation = trained
    save_model(predictor, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    texts = validation.texts[:10] + [""]
    np.testing.assert_allclose(loaded.predict_proba(texts), predictor.predict_proba(texts), atol=1e-6)
    code = ("import sys; from reviewsense.export import load_model; "
            f"m = load_model({str(tmp_path / 'model')!r}); m.predict_proba(['not good']); m.explain('good');"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_mismatched_weights_are_refused(trained):
    predictor, _, _, _ = trained
    tensors = predictor.tensors()
    tensors["convs.0.weight"] = tensors["convs.0.weight"][:, :, :1]
    with pytest.raises(ModelFileError, match="convs.0.weight"):
        cnn.CNNPredictor.from_tensors(predictor.vectorizer, predictor.config, tensors, ("n", "p"))
    with pytest.raises(ModelFileError, match="widths"):
        broken = {**predictor.config, "widths": ["three"]}
        cnn.CNNPredictor.from_tensors(predictor.vectorizer, broken, tensors, ("n", "p"))


def test_kernels_wider_than_the_text_score_and_explain_like_torch():
    """A kernel slice that would reach past both ends of a short text sees only padding."""
    vectorizer = TextVectorizer(max_tokens=None).adapt(["good film", "bad plot here"])
    params = cnn.CNNParams(max_length=8, embedding_dim=4, filters=3, widths=[1, 6, 7], dropout=0.0)
    torch.manual_seed(0)
    module = cnn.build_module(vectorizer.vocabulary_size, 4, params)
    module.eval()
    weights = {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
    predictor = cnn.CNNPredictor(vectorizer, asdict(params), weights)
    texts = ["good", "good film", "bad plot here", "", "good film bad plot here good film bad plot"]
    ids, _ = predictor._encode(texts)
    with torch.no_grad():
        expected = module(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(predictor.predict_logits(texts), expected, atol=1e-5, rtol=0)
    for text in texts:
        e = predictor.explain(text)
        assert e.bias + sum(e.features.values()) == pytest.approx(e.logit, abs=1e-5)
        assert e.logit == pytest.approx(float(predictor.predict_logits([text])[0]), abs=1e-5)


@pytest.mark.parametrize("settings, message", [
    ({"max_length": 0}, "cnn: max_length must be ≥ 1, got 0"),
    ({"widths": []}, "widths must be a non-empty list"),
    ({"widths": [3, 0]}, "widths: each item must be ≥ 1, got 0"),
    ({"dropout": 1.0}, "dropout must be < 1"),
    ({"filterz": 3}, "'cnn' has no setting 'filterz'"),
])
def test_bad_network_settings_are_refused_before_any_data_is_read(tmp_path, settings, message):
    from reviewsense.errors import ConfigError
    from reviewsense.pipeline import DataSpec, TrainConfig, train

    config = TrainConfig(run_dir=str(tmp_path / "run"), data=DataSpec(path=str(tmp_path / "missing.csv")),
                         preset="best", settings={"cnn": settings})
    with pytest.raises(ConfigError, match=message):
        train(config)


def test_network_settings_without_the_preset_are_refused(tmp_path):
    from reviewsense.errors import ConfigError
    from reviewsense.pipeline import DataSpec, TrainConfig, train

    with pytest.raises(ConfigError, match="the 'cnn' settings are for --model cnn or --preset best; this run trains "):
        train(TrainConfig(run_dir=str(tmp_path / "run"), data=DataSpec(path=str(tmp_path / "x.csv")),
                          settings={"cnn": {"epochs": 2}}))
