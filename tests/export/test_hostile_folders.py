"""Model folders are as untrusted as data: ``info`` and loading refuse the same folders, with
the same one line (``check_manifest`` is the one check of both; ``info`` loads the model)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from reviewsense.cli import main
from reviewsense.errors import DataError, ModelFileError
from reviewsense.estimators import NBLinearClassifier
from reviewsense.export import load_model, save_model
from reviewsense.info import format_info, model_info


@pytest.fixture(scope="module")
def saved(tmp_path_factory, sentiment_corpus) -> Path:
    data = sentiment_corpus(160, 3)
    texts, labels = data.texts, data.labels
    predictor = NBLinearClassifier(hash_bits=12, span_weight=0.0).fit(texts, labels).predictor_
    return save_model(predictor, tmp_path_factory.mktemp("saved") / "model", metrics={"test": {"accuracy": 0.9}},
                      training={"data": "toy.csv", "config": {"model": "nblinear", "n_jobs": 1, "seed": 0}})


def _copy(saved: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for file in saved.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    return folder


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _write(folder: Path, manifest: dict) -> None:
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def _set(**fields):
    def edit(folder: Path) -> None:
        _write(folder, _manifest(folder) | fields)
    return edit


def _files(name: str, **entry):
    def edit(folder: Path) -> None:
        manifest = _manifest(folder)
        manifest["files"]["model.safetensors"] |= entry
        _write(folder, manifest)
    return edit


def _replace_weights(folder: Path) -> None:
    """Weights of the wrong shape, with the checksums recomputed: the checksums verify."""
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"coef": np.ones((3, 3), np.float32)}, str(folder / "model.safetensors"))
    data = (folder / "model.safetensors").read_bytes()
    manifest = _manifest(folder)
    manifest["files"]["model.safetensors"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    _write(folder, manifest)


def _huge(folder: Path) -> None:
    manifest = _manifest(folder)
    manifest["training"]["notes"] = "x" * (50 << 20)
    _write(folder, manifest)


def _nested(depth: int):
    def edit(folder: Path) -> None:
        text = (folder / "manifest.json").read_text().rstrip()
        (folder / "manifest.json").write_text(text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}")
    return edit


def _unlisted_pickle(folder: Path) -> None:
    (folder / "extra.pkl").write_bytes(b"\x80\x04K\x01.")


def _linked_manifest(folder: Path) -> None:
    (folder / "real.json").write_bytes((folder / "manifest.json").read_bytes())
    (folder / "manifest.json").unlink()
    os.symlink("real.json", folder / "manifest.json")


def _flip_a_byte(folder: Path) -> None:
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(data))


HOSTILE = {
    "string vocabulary_size": (_set(vocabulary_size="12"), "'vocabulary_size' must be a count of words"),
    "negative vocabulary_size": (_set(vocabulary_size=-1), "'vocabulary_size' must be a count"),
    "huge vocabulary_size": (_set(vocabulary_size=10**30), "'vocabulary_size' must be a count"),
    "float vocabulary_size": (_set(vocabulary_size=1.5), "'vocabulary_size' must be a count"),
    "string format_version": (_set(format_version="2"), "format version \"2\" is not supported"),
    "boolean format_version": (_set(format_version=True), "format version true is not supported"),
    "unknown format_version": (_set(format_version=99), "format version 99 is not supported"),
    "class_names a string": (_set(class_names="neg,pos"), "'class_names' must be"),
    "class name with an escape": (_set(class_names=["neg", "pos\x1b[2J"]), r"control character '\\x1b'"),
    "class name with NUL": (_set(class_names=["n\x00eg", "pos"]), r"control character '\\x00'"),
    "class name with a bidi override": (_set(class_names=["neg", "\u202eson"]), r"control character '\\u202e'"),
    "class name with a C1 control": (_set(class_names=["neg", "pos\x9b"]), r"control character '\\x9b'"),
    "config a list": (_set(config=[1, 2]), "'config' must be an object"),
    "metrics a string": (_set(metrics="good"), "'metrics' must be an object"),
    "a split's metrics a list": (_set(metrics={"test": [0.9]}), "'metrics.test' must be an object"),
    "training a list": (_set(training=["toy.csv"]), "'training' must be an object"),
    "created a number": (_set(created=2024), "'created' must be a string"),
    "files a list": (_set(files=["model.safetensors"]), "'files' must list model.safetensors"),
    "size a string": (_files("model.safetensors", bytes="612"), "must hold its 'sha256'"),
    "sha256 not hex": (_files("model.safetensors", sha256="zz"), "must hold its 'sha256'"),
    "family a number": (_set(family=7), "unknown model family 7"),
    "missing weights": (lambda f: (f / "model.safetensors").unlink(), "model.safetensors: missing"),
    "checksum mismatch": (_flip_a_byte, "SHA-256 does not match"),
    "weights replaced, checksums recomputed": (_replace_weights, "invalid model configuration"),
    "unlisted pickle": (_unlisted_pickle, "must not contain pickle"),
    "manifest a symbolic link": (_linked_manifest, "is a symbolic link"),
    "manifest of 50 MB": (_huge, "too large to be a manifest"),
    "nesting 10,000 deep": (_nested(10_000), "nested too deeply"),
    "nesting 40 deep": (_nested(40), "nested too deeply"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_info_and_loading_refuse_the_same_folders(saved, tmp_path, case, capsys):
    edit, message = HOSTILE[case]
    folder = _copy(saved, tmp_path)
    edit(folder)
    with pytest.raises(ModelFileError, match=message) as loading:
        load_model(folder)
    with pytest.raises(ModelFileError, match=message) as info:
        model_info(folder)
    assert str(info.value) == str(loading.value)
    assert main(["info", "--model", str(folder)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "checksums verified" not in err
    assert err.count("\n") == 1 and "Traceback" not in err and "\x1b" not in err and "\x00" not in err


def test_the_saved_model_itself_is_described(saved, capsys):
    assert main(["info", "--model", str(saved)]) == 0
    assert "(checksums verified, loaded)" in capsys.readouterr().out


def test_what_info_prints_from_the_manifest_is_escaped(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    manifest = _manifest(folder)
    manifest["training"]["data"] = "toy\x1b[2J.csv\u202e"
    _write(folder, manifest)
    text = format_info(model_info(folder))
    assert "\x1b" not in text and "\u202e" not in text
    assert "toy\\x1b[2J.csv\\u202e" in text


def test_a_label_with_a_control_character_is_refused_with_its_line(tmp_path):
    from reviewsense.data.files import load_table

    data = tmp_path / "labels.csv"
    data.write_text("text,label\ngood film,pos\nbad film,neg\nfine,\"pos\x1b[31m\"\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"labels\.csv: row 3: label 'pos\\x1b\[31m' holds the control character "
                                        r"'\\x1b'"):
        load_table(data)
    data.write_text("text,label\ngood film,good\nbad film,bad\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"class 'go\\x00od' holds the control character '\\x00'"):
        load_table(data, classes=["bad", "go\x00od"])


def test_a_class_folder_with_a_control_character_is_refused(tmp_path):
    from reviewsense.data.files import load_folder

    for name in ("neg", "pos\u2028"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "a.txt").write_text("a text")
    with pytest.raises(DataError, match=r"class folder 'pos\\u2028' holds the control character"):
        load_folder(tmp_path / "data")
