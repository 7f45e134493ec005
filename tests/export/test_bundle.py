"""The export folder: round trip, manifest, and refusing tampered or unsafe folders."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import reviewsense
from reviewsense.errors import ModelFileError
from reviewsense.export import load_model, read_manifest, save_model
from reviewsense.models.seed import SeedPredictor

PROBE = ["a great film", "an awful film", "", "words the model never saw", "GREAT<br />awful!!"]


@pytest.fixture
def export(trained, tmp_path):
    predictor, *_ = trained
    return save_model(predictor, tmp_path / "model", metrics={"test": {"accuracy": 0.97}},
                      training={"data": "toy.csv"})


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def _write_manifest(path, manifest):
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_round_trip_gives_identical_predictions(trained, export):
    predictor, *_ = trained
    loaded = load_model(export)
    assert isinstance(loaded, SeedPredictor)
    np.testing.assert_array_equal(loaded.predict_proba(PROBE), predictor.predict_proba(PROBE))
    assert loaded.class_names == predictor.class_names
    assert loaded.config == predictor.config
    assert loaded.vectorizer.vocabulary_ == predictor.vectorizer.vocabulary_
    np.testing.assert_array_equal(reviewsense.load(str(export)).predict_proba(PROBE), loaded.predict_proba(PROBE))


def test_folder_contents_and_manifest(trained, export):
    predictor, *_ = trained
    assert sorted(p.name for p in export.iterdir()) == ["manifest.json", "model.safetensors", "vectorizer.json"]
    manifest = read_manifest(export)
    assert manifest["format"] == "reviewsense-model"
    assert manifest["format_version"] == 2
    assert manifest["family"] == "seed"
    assert manifest["class_names"] == ["negative", "positive"]
    assert manifest["vocabulary_size"] == predictor.vectorizer.vocabulary_size
    assert manifest["metrics"] == {"test": {"accuracy": 0.97}}
    assert manifest["training"] == {"data": "toy.csv"}
    assert set(manifest["files"]) == {"vectorizer.json", "model.safetensors"}
    for name, info in manifest["files"].items():
        raw = (export / name).read_bytes()
        assert info["sha256"] == hashlib.sha256(raw).hexdigest()
        assert info["bytes"] == len(raw)
    assert load_model(export).metadata["family"] == "seed"


def test_vectorizer_edited_by_one_byte_is_refused(export):
    path = export / "vectorizer.json"
    raw = bytearray(path.read_bytes())
    i = raw.index(b'"vocabulary"') + 20
    raw[i] = ord("x") if raw[i] != ord("x") else ord("y")
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="SHA-256 does not match"):
        load_model(export)


def test_edited_checksum_in_manifest_is_refused(export):
    manifest = _manifest(export)
    manifest["files"]["model.safetensors"]["sha256"] = "0" * 64
    _write_manifest(export, manifest)
    with pytest.raises(ModelFileError, match="SHA-256"):
        load_model(export)


def test_truncated_weights_are_refused(export):
    path = export / "model.safetensors"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="size does not match"):
        load_model(export)


def test_truncated_weights_with_a_matching_manifest_are_refused(export):
    path = export / "model.safetensors"
    raw = path.read_bytes()[:100]
    path.write_bytes(raw)
    manifest = _manifest(export)
    manifest["files"]["model.safetensors"] = {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
    _write_manifest(export, manifest)
    with pytest.raises(ModelFileError, match="unreadable weights"):
        load_model(export)


def test_config_that_does_not_fit_the_weights_is_refused(export):
    manifest = _manifest(export)
    manifest["config"]["hidden_units"] += 1
    _write_manifest(export, manifest)
    with pytest.raises(ModelFileError, match="shape"):
        load_model(export)


@pytest.mark.parametrize("version", [5, 0, "1", None])
def test_unknown_format_version_is_refused(export, version):
    manifest = _manifest(export)
    manifest["format_version"] = version
    _write_manifest(export, manifest)
    with pytest.raises(ModelFileError, match="format version"):
        load_model(export)


def test_pickle_in_the_folder_is_refused(export):
    (export / "evil.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(export)


@pytest.mark.parametrize("layout", ["extra", "replaced"])
def test_path_tricks_in_manifest_files_are_refused(export, tmp_path, layout):
    (tmp_path / "x").write_text("outside the model folder")
    manifest = _manifest(export)
    entry = {"sha256": hashlib.sha256(b"outside the model folder").hexdigest(), "bytes": 24}
    if layout == "replaced":
        manifest["files"]["../x"] = manifest["files"].pop("vectorizer.json")
    else:
        manifest["files"]["../x"] = entry
    _write_manifest(export, manifest)
    with pytest.raises(ModelFileError, match="files"):
        load_model(export)


def test_missing_weights_file_is_refused(export):
    (export / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        load_model(export)


def test_unknown_family_is_refused(export):
    manifest = _manifest(export)
    manifest["family"] = "gpt"
    _write_manifest(export, manifest)
    with pytest.raises(ModelFileError, match="unknown model family"):
        load_model(export)


@pytest.mark.parametrize("content", ["{broken", "[1, 2]", '{"format": "other"}'])
def test_bad_manifest_is_refused(export, content):
    (export / "manifest.json").write_text(content)
    with pytest.raises(ModelFileError):
        load_model(export)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ModelFileError, match="not a model folder"):
        load_model(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="no manifest.json"):
        load_model(tmp_path / "empty")


def test_saving_over_an_export_replaces_it_without_leftovers(trained, tmp_path):
    predictor, *_ = trained
    target = tmp_path / "out" / "model"
    save_model(predictor, target)
    (target / "stale.txt").write_text("from the old export")
    flipped = SeedPredictor(predictor.vectorizer, predictor.config,
                            {k: (-v if k == "output.weight" else v) for k, v in predictor.weights.items()},
                            predictor.class_names)
    save_model(flipped, target, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model"]
    assert not (target / "stale.txt").exists()
    np.testing.assert_array_equal(load_model(target).predict_proba(PROBE), flipped.predict_proba(PROBE))
    assert not np.array_equal(flipped.predict_proba(PROBE), predictor.predict_proba(PROBE))


class _Payload:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("where", ["model.safetensors", "vectorizer.json", "extra.pkl", "extra.bin"])
def test_loading_never_executes_code_from_the_bundle(export, tmp_path, monkeypatch, where):
    """A pickle that would run code, planted in the folder (under the real names too, with
    checksums that match), is refused, and its code never runs: no pickle-capable loader
    is ever called while loading."""
    import pickle

    marker = tmp_path / "code-ran"
    payload = pickle.dumps(_Payload(marker))
    pickle.loads(payload)  # the payload works: it does run code when unpickled...
    assert marker.exists()
    marker.unlink()

    def forbidden(*_a, **_k):
        raise AssertionError("a pickle-capable loader was called")

    for module, name in ((pickle, "load"), (pickle, "loads"), (np, "load")):
        monkeypatch.setattr(module, name, forbidden)
    (export / where).write_bytes(payload)
    manifest = _manifest(export)
    if where in manifest["files"]:  # the attacker also fixed the checksums
        manifest["files"][where] = {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
        _write_manifest(export, manifest)
    with pytest.raises(ModelFileError):
        load_model(export)
    assert not marker.exists()  # ...but loading the folder did not


@pytest.fixture
def calibrated_export(trained, tmp_path):
    """The seed model with a length calibration, as `reviewsense train` exports it."""
    from reviewsense.models.calibration import fit_length_calibration

    predictor, _, train, validation = trained
    model = SeedPredictor(predictor.vectorizer, predictor.config, predictor.weights, predictor.class_names)
    model.length_calibration = fit_length_calibration(model, validation, train.labels)
    return model, save_model(model, tmp_path / "calibrated")


def test_length_calibration_survives_export(calibrated_export, trained):
    model, path = calibrated_export
    loaded = load_model(path)
    assert _manifest(path)["length_calibration"]["kind"] == "length"
    np.testing.assert_array_equal(loaded.predict_proba(PROBE), model.predict_proba(PROBE))
    # the calibration changes the scores: the raw network's are not what comes out
    assert not np.allclose(loaded.predict_proba(PROBE), trained[0].predict_proba(PROBE))


@pytest.mark.parametrize("bad", [{"kind": "length"}, {"kind": "platt"}, "x", [1, 2]])
def test_broken_length_calibration_is_refused(calibrated_export, bad):
    _, path = calibrated_export
    manifest = _manifest(path)
    manifest["length_calibration"] = bad
    _write_manifest(path, manifest)
    with pytest.raises(ModelFileError, match="manifest.json: invalid length calibration"):
        load_model(path)


def test_version_1_exports_still_load(trained, export):
    """Models saved before the length calibration (format version 1) load and score as before."""
    manifest = _manifest(export)
    manifest["format_version"] = 1
    del manifest["length_calibration"]
    _write_manifest(export, manifest)
    loaded = load_model(export)
    assert loaded.length_calibration is None
    np.testing.assert_array_equal(loaded.predict_proba(PROBE), trained[0].predict_proba(PROBE))


@pytest.mark.parametrize("names", [[], ["negative"], ["a", "b", "c"], ["same", "same"], ["bad", 1], ["", "good"],
                                   "ab", None, {"0": "bad", "1": "good"}])
def test_class_names_that_are_not_two_different_strings_are_refused(export, names):
    manifest = _manifest(export)
    manifest["class_names"] = names
    _write_manifest(export, manifest)
    with pytest.raises(ModelFileError, match="'class_names' must be two different names, negative first") as info:
        load_model(export)
    assert "\n" not in str(info.value)


def test_missing_class_names_are_refused(export):
    manifest = _manifest(export)
    del manifest["class_names"]
    _write_manifest(export, manifest)
    with pytest.raises(ModelFileError, match="'class_names' must be two different names"):
        load_model(export)


def test_a_manifest_nested_too_deeply_is_refused(export):
    (export / "manifest.json").write_text('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ModelFileError, match="nested too deeply"):
        load_model(export)


def test_a_full_disk_while_exporting_is_one_error_and_leaves_nothing(trained, tmp_path, monkeypatch):
    """The weights' writer fails as safetensors does on a full disk: an OutputError naming the
    folder and the reason (no SafetensorError traceback), and no temporary folder left behind."""
    import safetensors.numpy
    from safetensors import SafetensorError

    from reviewsense.errors import OutputError

    def full_disk(*args, **kwargs):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                              '"No space left on device" })')

    monkeypatch.setattr(safetensors.numpy, "save_file", full_disk)
    predictor, *_ = trained
    with pytest.raises(OutputError, match=r"model: cannot write .*No space left on device"):
        save_model(predictor, tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_a_model_whose_numbers_overflow_is_refused_at_load(tmp_path, sentiment_corpus):
    """A length calibration of 1e308 (the manifest edited): it would load and score NaN for
    every text; loading refuses it in one line instead."""
    from reviewsense import NBLinearClassifier

    data = sentiment_corpus(200, 0)
    folder = NBLinearClassifier(hash_bits=12, verbose=False).fit(data.texts, data.labels).save(tmp_path / "model")
    manifest = json.loads((folder / "manifest.json").read_text())
    calibration = manifest["length_calibration"]
    calibration["slope"] = (np.asarray(calibration["slope"], dtype=float) * 0 + 1e308).tolist()
    calibration["shift"] = (np.asarray(calibration["shift"], dtype=float) * 0 - 1e308).tolist()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="NaN or infinite probabilities"):
        load_model(folder)
