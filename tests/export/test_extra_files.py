"""A family's own files in the export (a tokenizer, a config): saved, listed with their
checksums, verified, and handed back on loading; unsafe or tampered ones are refused."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from reviewsense import NBLinearClassifier
from reviewsense.errors import ModelFileError
from reviewsense.export import load_model, read_manifest, save_model
from reviewsense.info import format_info, model_info
from reviewsense.models import nblinear, registry
from reviewsense.models.base import packed, unpacked
from reviewsense.models.ensemble import EnsemblePredictor

PROBE = ["a great film", "an awful film", "boring plot", ""]
CONFIG = json.dumps({"do_lower_case": True, "model_max_length": 512, "note": "café ✓"}, indent=2).encode()
VOCAB = "[PAD]\n[UNK]\ngreat\nawful\nfilm\ncafé\n".encode()


class VocabNBLinear(nblinear.NBLinearPredictor):
    """nblinear with a tokenizer-like vocabulary and its config saved beside the weights, read
    back the way a Hugging Face tokenizer reads a folder."""

    files: dict[str, bytes] = {}  # set per instance
    loaded_from: Path | None = None

    def extra_files(self) -> dict[str, bytes]:
        return dict(self.files)

    @classmethod
    def from_export(cls, vectorizer, config, tensors, class_names, files):
        model = cls.from_tensors(vectorizer, config, tensors, class_names)
        with unpacked(files) as folder:  # AutoTokenizer.from_pretrained(folder) would read these
            model.files = packed(folder)
            model.loaded_from = folder
        if model.files:
            assert json.loads(model.files["tokenizer_config.json"])["model_max_length"] == 512
        return model


def _register(monkeypatch, predictor: type) -> None:
    """``predictor`` as the nblinear family's, so that loading builds it (until the test ends)."""
    monkeypatch.setattr(nblinear, "FAMILY", dataclasses.replace(nblinear.FAMILY, predictor=predictor))
    registry.families.cache_clear()


@pytest.fixture
def registered(monkeypatch):
    _register(monkeypatch, VocabNBLinear)
    yield
    registry.families.cache_clear()  # the next call reads the real family again


@pytest.fixture
def model(toy_corpus, registered) -> VocabNBLinear:
    texts, labels = toy_corpus(120, seed=5)
    base = NBLinearClassifier(hash_bits=12, span_weight=0.0).fit(texts, labels).predictor_
    toy = VocabNBLinear.from_tensors(base.vectorizer, base.config, base.tensors(), base.class_names)
    toy.files = {"tokenizer_config.json": CONFIG, "vocab.txt": VOCAB}
    return toy


@pytest.fixture
def export(model, tmp_path) -> Path:
    return save_model(model, tmp_path / "model")


def _edit_manifest(path: Path, files: dict | None = None, **fields) -> None:
    """Edit ``path``'s manifest by hand: add ``files`` entries, set ``fields``."""
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"].update(files or {})
    (path / "manifest.json").write_text(json.dumps(manifest | fields))


def test_extra_files_round_trip_byte_identical(model, export):
    assert sorted(os.listdir(export)) == ["manifest.json", "model.safetensors", "tokenizer_config.json",
                                          "vectorizer.json", "vocab.txt"]
    assert (export / "vocab.txt").read_bytes() == VOCAB and (export / "tokenizer_config.json").read_bytes() == CONFIG
    manifest = read_manifest(export)
    assert manifest["format_version"] == 4  # older readers refuse it by its version
    for name, content in model.files.items():
        assert manifest["files"][name] == {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    loaded = load_model(export)
    assert isinstance(loaded, VocabNBLinear)
    assert loaded.files == {"tokenizer_config.json": CONFIG, "vocab.txt": VOCAB}
    assert loaded.loaded_from is not None and not loaded.loaded_from.exists()  # the temporary folder is gone
    np.testing.assert_array_equal(loaded.predict_proba(PROBE), model.predict_proba(PROBE))


def test_a_model_without_extra_files_keeps_its_format_version(model, tmp_path):
    model.files = {}
    path = save_model(model, tmp_path / "plain")
    assert read_manifest(path)["format_version"] == 2
    assert sorted(read_manifest(path)["files"]) == ["model.safetensors", "vectorizer.json"]
    assert load_model(path).files == {}


def test_tampered_extra_file_is_refused_naming_it(export):
    (export / "vocab.txt").write_bytes(VOCAB.replace(b"great", b"GREAT"))  # same size, other bytes
    with pytest.raises(ModelFileError, match=r"vocab\.txt: SHA-256 does not match"):
        load_model(export)
    (export / "vocab.txt").write_bytes(VOCAB + b"extra\n")
    with pytest.raises(ModelFileError, match=r"vocab\.txt: size does not match"):
        load_model(export)


def test_missing_extra_file_is_refused(export):
    (export / "tokenizer_config.json").unlink()
    with pytest.raises(ModelFileError, match=r"tokenizer_config\.json: missing"):
        load_model(export)


@pytest.mark.parametrize("kind", ["symlink", "folder", "fifo"])
def test_an_extra_file_that_is_not_a_regular_file_is_refused(export, tmp_path, kind):
    file = export / "vocab.txt"
    file.unlink()
    if kind == "symlink":  # a link to a file of the very content the manifest lists
        (tmp_path / "outside.txt").write_bytes(VOCAB)
        file.symlink_to(tmp_path / "outside.txt")
        match = "vocab.txt: is a symbolic link"
    elif kind == "folder":
        file.mkdir()
        match = "vocab.txt: missing"
    else:
        os.mkfifo(file)
        match = "vocab.txt: missing"
    with pytest.raises(ModelFileError, match=match):
        load_model(export)


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a.pkl", ".hidden", "sub/vocab.txt", "a\\b.txt",
                                  "weights.BIN", "model.pt", "vectorizer.json.bak/../x", "MANIFEST.JSON",
                                  "Model.safetensors", "", "x" * 200])
def test_unsafe_names_in_a_hand_edited_manifest_are_refused(export, tmp_path, name):
    content = b"outside the model folder"
    (tmp_path / "x").write_bytes(content)
    _edit_manifest(export, {name: {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}})
    with pytest.raises(ModelFileError, match="unsafe file name") as info:
        load_model(export)
    assert "\n" not in str(info.value)
    with pytest.raises(ModelFileError, match="unsafe file name"):
        model_info(export)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_older_format_versions_list_no_extra_files(export, version):
    """Versions 1-3 hold the weights and the vectorizer only, as they always did."""
    _edit_manifest(export, format_version=version)
    with pytest.raises(ModelFileError, match="'files' must list model.safetensors .and vectorizer.json., nothing else"):
        load_model(export)


def test_a_family_without_extra_files_refuses_them(export, monkeypatch):
    _register(monkeypatch, nblinear.NBLinearPredictor)
    with pytest.raises(ModelFileError, match="'nblinear' models have no extra files; the manifest lists "
                                             "tokenizer_config.json, vocab.txt"):
        load_model(export)


def test_unlisted_files_are_ignored_but_pickles_refused(model, export):
    (export / "README.txt").write_text("notes beside the model")
    assert load_model(export).files == model.files  # not listed: not read, not handed over
    (export / "tokenizer.bin").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(export)


@pytest.mark.parametrize(("files", "error", "match"), [
    ({"../escape.txt": b"x"}, ValueError, "not a plain file name"),
    ({"pytorch_model.bin": b"x"}, ValueError, "pickle-like suffix"),
    ({"manifest.json": b"{}"}, ValueError, "a name the format uses itself"),
    ({"vocab.txt": "text, not bytes"}, TypeError, "must be bytes"),
    ({"Vocab.txt": b"a", "vocab.txt": b"b"}, ValueError, "two files named"),
])
def test_a_family_giving_unsafe_files_writes_nothing(model, tmp_path, files, error, match):
    model.files = files
    with pytest.raises(error, match=match):
        save_model(model, tmp_path / "model")
    assert os.listdir(tmp_path) == []


def test_reviewsense_info_lists_the_extra_files(export):
    info = model_info(export)
    assert info["extra_files"] == {"tokenizer_config.json": len(CONFIG), "vocab.txt": len(VOCAB)}
    assert info["format_version"] == 4
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in format_info(info).splitlines())
    assert lines["extra files"] == f"tokenizer_config.json ({len(CONFIG)} bytes), vocab.txt ({len(VOCAB)} bytes)"
    assert lines["size on disk"].endswith("in 5 files (checksums verified, loaded)")


def test_an_ensemble_keeps_its_members_extra_files(model, tmp_path, toy_corpus):
    texts, labels = toy_corpus(120, seed=6)
    plain = NBLinearClassifier(hash_bits=12, span_weight=0.0, ngrams=1).fit(texts, labels).predictor_
    ensemble = EnsemblePredictor([plain, model], np.array([0.5, 1.5], np.float32), 0.1, model.class_names)
    path = save_model(ensemble, tmp_path / "ensemble")
    assert sorted(n for n in os.listdir(path) if n.startswith("m")) == ["m1.tokenizer_config.json", "m1.vocab.txt",
                                                                         "manifest.json", "model.safetensors"]
    loaded = load_model(path)
    assert loaded.members[1].files == model.files and loaded.members[0].extra_files() == {}
    np.testing.assert_array_equal(loaded.predict_proba(PROBE), ensemble.predict_proba(PROBE))
    (path / "m7.vocab.txt").write_bytes(VOCAB)
    _edit_manifest(path, {"m7.vocab.txt": read_manifest(path)["files"]["m1.vocab.txt"]})
    with pytest.raises(ModelFileError, match="files of no member: m7.vocab.txt"):
        load_model(path)


class TokenizerNBLinear(nblinear.NBLinearPredictor):
    """nblinear carrying a real Hugging Face ``tokenizers`` tokenizer, saved and read back
    through a folder as a transformer family would (``save_pretrained`` / ``from_pretrained``)."""

    tokenizer = None

    def extra_files(self) -> dict[str, bytes]:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            self.tokenizer.save(str(Path(tmp) / "tokenizer.json"))
            return packed(tmp)

    @classmethod
    def from_export(cls, vectorizer, config, tensors, class_names, files):
        from tokenizers import Tokenizer

        model = cls.from_tensors(vectorizer, config, tensors, class_names)
        with unpacked(files) as folder:
            model.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        return model


def test_a_hugging_face_tokenizer_travels_in_the_export(toy_corpus, tmp_path, monkeypatch):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    texts, labels = toy_corpus(120, seed=7)
    base = NBLinearClassifier(hash_bits=12, span_weight=0.0).fit(texts, labels).predictor_
    model = TokenizerNBLinear.from_tensors(base.vectorizer, base.config, base.tensors(), base.class_names)
    model.tokenizer = tokenizers.Tokenizer(WordLevel({"[UNK]": 0, "great": 1, "film": 2, "café": 3}, unk_token="[UNK]"))
    model.tokenizer.pre_tokenizer = Whitespace()
    _register(monkeypatch, TokenizerNBLinear)
    try:
        loaded = load_model(save_model(model, tmp_path / "model"))
    finally:
        monkeypatch.undo()  # the real family back before the registry is read again (read_manifest reads it)
        registry.families.cache_clear()
    assert sorted(read_manifest(tmp_path / "model")["files"]) == ["model.safetensors", "tokenizer.json",
                                                                  "vectorizer.json"]
    assert loaded.tokenizer.encode("a great café film").ids == [0, 1, 3, 2]
    assert loaded.tokenizer.to_str() == model.tokenizer.to_str()
