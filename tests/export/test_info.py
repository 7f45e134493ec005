"""``reviewsense.info``: what a model folder holds, read from its manifest without loading it."""

from __future__ import annotations

import json
import re

import pytest

from reviewsense.errors import ModelFileError
from reviewsense.export import save_model
from reviewsense.info import format_info, model_info


@pytest.fixture
def export(trained, tmp_path):
    predictor, *_ = trained
    training = {"data": "toy.csv", "rows": {"train": 192, "validation": 48, "test": 60},
                "config": {"model": "seed", "seed": 3, "embedding": "scratch", "epochs": 12,
                           "data": {"path": "toy.csv", "test_path": None, "text_column": "review",
                                    "label_column": "stars"}},
                "history": {"epochs": 12, "best_epoch": 9}}
    metrics = {"test": {"accuracy": 0.97, "loss": 0.1, "f1": None, "roc_auc": 0.99, "count": 60,
                        "confusion_matrix": [[1, 0], [0, 1]]}}
    return save_model(predictor, tmp_path / "model", metrics=metrics, training=training)


def test_model_info_reads_the_manifest(export, trained):
    info = model_info(export)
    assert info["family"] == "seed" and info["members"] is None
    assert info["class_names"] == list(trained[0].class_names)
    assert info["format"] == "reviewsense-model" and info["format_version"] == 2
    assert info["created"] and info["reviewsense_version"]
    files = {p.name: p.stat().st_size for p in export.iterdir()}
    assert info["files"] == files and info["size_bytes"] == sum(files.values())
    assert info["metrics"] == {"test": {"accuracy": 0.97, "loss": 0.1, "f1": None, "roc_auc": 0.99, "count": 60}}
    training = info["training"]
    assert training["data"] == "toy.csv" and training["rows"] == {"train": 192, "validation": 48, "test": 60}
    assert training["columns"] == {"text_column": "review", "label_column": "stars"}
    assert training["settings"] == {"model": "seed", "embedding": "scratch", "seed": 3, "epochs": 12}
    assert training["epochs"] == {"run": 12, "best": 9}
    json.dumps(info)  # all of it is JSON


def _lines(text: str) -> dict[str, str]:
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in text.splitlines())


def test_format_info_lines(export):
    lines = _lines(format_info(model_info(export)))
    assert lines["family"] == "seed"
    assert "accuracy 0.9700" in lines["test"] and "f1 n/a" in lines["test"] and "(60 texts)" in lines["test"]
    assert lines["rows"] == "train 192, validation 48, test 60"
    assert lines["training data"] == "toy.csv" and lines["epochs"] == "12 (best: 9)"
    assert lines["size on disk"].endswith("in 3 files (checksums verified, loaded)")
    assert lines["format"] == "reviewsense-model v2"


def test_an_export_without_a_training_record(trained, tmp_path):
    path = save_model(trained[0], tmp_path / "bare")
    info = model_info(path)
    assert info["metrics"] == {} and info["training"] is None
    lines = _lines(format_info(info))
    assert lines["metrics"] == "none recorded" and lines["training"] == "not recorded"


def test_model_info_refuses_what_load_model_refuses(export, tmp_path):
    with pytest.raises(ModelFileError, match="not a model folder"):
        model_info(tmp_path / "nothing")
    with open(export / "model.safetensors", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelFileError, match="size does not match"):
        model_info(export)


def test_model_info_refuses_bad_class_names(export):
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["class_names"] = []
    (export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="class_names"):
        model_info(export)


@pytest.mark.parametrize(("family", "message"), [
    (None, r"manifest\.json: no model family \(known: nblinear, seed, .*ensemble\)$"),
    ("zzz", r"manifest\.json: unknown model family 'zzz' \(known: nblinear, seed, .*\)$"),
    (7, r"manifest\.json: unknown model family 7 \(known: nblinear, seed, .*\)$"),
])
def test_model_info_refuses_a_family_that_load_model_refuses(export, family, message):
    manifest = json.loads((export / "manifest.json").read_text())
    if family is None:
        del manifest["family"]
    else:
        manifest["family"] = family
    (export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=message):
        model_info(export)
    from reviewsense.export import load_model

    with pytest.raises(ModelFileError, match=message.split(": ", 1)[1]):
        load_model(export)


def test_model_info_refuses_an_ensemble_member_of_no_known_family(export):
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["family"], manifest["config"] = "ensemble", {"members": [{"family": "seed"}, {"family": "zzz"}]}
    (export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"manifest\.json: member 2: unknown model family 'zzz'"):
        model_info(export)


def test_a_run_on_own_data_records_and_shows_only_what_it_used(toy_run, tmp_path, capsys):
    """config.json, the model card and info: the settings of the family trained and nothing else,
    no movie example for a model of other texts, and info in lines of text (no Python repr)."""
    from reviewsense.cli import main

    _, run = toy_run(tmp_path, ["--model", "nblinear", "--hash-bits", "12"])
    config = json.loads((run / "config.json").read_text())
    assert list(config["settings"]) == ["nblinear"] and "pretrain_epochs" not in config
    card = (run / "README.md").read_text()
    assert "movie" not in card.lower() and 'predict_proba(["I really liked it."])' in card
    assert "of texts similar to the training data" in card
    capsys.readouterr()
    assert main(["info", "--model", str(run / "model")]) == 0
    text = capsys.readouterr().out
    assert not set("{}[]'") & set(text.replace("\\", "")), text
    assert _lines(text)["settings"] == "model=nblinear, seed=0, length_calibration=true, nblinear: hash_bits=12"


def test_settings_of_older_runs_are_shown_as_text():
    from reviewsense.info import _shown_settings

    shown = _shown_settings({"model": "nblinear", "preset": "best", "seed": 0, "linear": {"C": 0.5, "ngrams": [1, 2]},
                             "cnn": {"embedding": {"source": "word2vec", "dim": 100}}})
    assert shown == "preset=best, seed=0, linear.C=0.5, linear.ngrams=1,2, cnn.embedding.source=word2vec, " \
                    "cnn.embedding.dim=100"


def test_a_presets_record_leaves_out_the_unused_model():
    from reviewsense.run_config import TrainConfig

    record = TrainConfig(preset="best").record()
    assert "model" not in record and set(record["settings"]) == {"ensemble", "nblinear", "cnn"}
    assert TrainConfig.from_dict(record).family == "ensemble"
    assert "pretrain_epochs" not in TrainConfig(model="nblinear").record()
