"""Saving never destroys what is not a model: ``save_model`` and every estimator's ``save``
write a new or empty folder, replace a saved model only with ``overwrite=True``, and refuse
anything else (untouched) with one line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from reviewsense import NBLinearClassifier
from reviewsense._fs import check_save_folder
from reviewsense.errors import OutputError
from reviewsense.export import load_model, save_model

FAST = {"hash_bits": 12, "span_weight": 0.0}
PROBE = ["a great film", "an awful film", "boring plot", ""]


@pytest.fixture
def fitted(toy_corpus):
    """Two estimators that disagree: the second learned the labels the other way round."""
    texts, labels = toy_corpus(120, seed=3)
    first = NBLinearClassifier(**FAST).fit(texts, ["good" if y else "bad" for y in labels])
    second = NBLinearClassifier(**FAST).fit(texts, ["bad" if y else "good" for y in labels])
    assert not np.allclose(first.predict_proba(PROBE), second.predict_proba(PROBE))
    return first, second


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` and its bytes (None for a folder or link), to compare before and after."""
    found: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        plain = path.is_file() and not path.is_symlink()
        found[str(path.relative_to(folder))] = path.read_bytes() if plain else None
    return found


def _user_folder(root: Path) -> Path:
    folder = root / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "sub" / "data.csv").write_bytes(b"text,label\nfine,1\n")
    return folder


def _refused(match: str, call, *args, **kwargs) -> str:
    with pytest.raises(OutputError, match=match) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_of_the_users_files_is_refused_and_untouched(fitted, tmp_path, overwrite):
    folder = _user_folder(tmp_path)
    before, listing = _snapshot(folder), sorted(os.listdir(tmp_path))
    message = _refused("folder is not empty", fitted[0].save, folder, overwrite=overwrite)
    assert "notes.txt" in message and "holds no saved reviewsense model" in message
    assert _snapshot(folder) == before
    assert sorted(os.listdir(tmp_path)) == listing  # no temporary folder left beside it either
    _refused("folder is not empty", save_model, fitted[0].predictor_, folder, overwrite=overwrite)
    assert _snapshot(folder) == before


@pytest.mark.parametrize("spelling", [".", "", "./", "CWD"])
def test_the_working_folder_is_refused(fitted, tmp_path, monkeypatch, spelling):
    folder = _user_folder(tmp_path)
    monkeypatch.chdir(folder)
    before = _snapshot(folder)
    target = str(folder) if spelling == "CWD" else spelling
    for overwrite in (False, True):
        _refused("is the current working folder", fitted[0].save, target, overwrite=overwrite)
    assert _snapshot(folder) == before


def test_the_working_folder_is_refused_even_when_it_holds_a_model(fitted, tmp_path, monkeypatch):
    fitted[0].save(tmp_path / "m")
    before = _snapshot(tmp_path / "m")
    monkeypatch.chdir(tmp_path / "m")
    _refused("is the current working folder", fitted[1].save, ".", overwrite=True)
    _refused("holds the current working folder", fitted[1].save, tmp_path, overwrite=True)
    assert _snapshot(tmp_path / "m") == before


def test_the_home_folder_and_the_root_are_refused(fitted, tmp_path, monkeypatch):
    home = _user_folder(tmp_path)
    monkeypatch.setenv("HOME", str(home))
    assert Path.home() == home
    before = _snapshot(home)
    for overwrite in (False, True):
        _refused("is your home folder", fitted[0].save, home, overwrite=overwrite)
        _refused("holds your home folder", fitted[0].save, tmp_path, overwrite=overwrite)
    assert _snapshot(home) == before
    # the root, checked without a save (were the check broken, a test must not write there)
    _refused("is the root folder", check_save_folder, "/", True, lambda _: True)


def test_an_empty_home_folder_is_refused_too(fitted, tmp_path, monkeypatch):
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _refused("is your home folder", fitted[0].save, tmp_path / "home")
    assert list((tmp_path / "home").iterdir()) == []


def test_a_file_is_refused_and_untouched(fitted, tmp_path):
    file = tmp_path / "model"
    file.write_bytes(b"not a folder")
    for overwrite in (False, True):
        _refused("exists and is not a folder", fitted[0].save, file, overwrite=overwrite)
    assert file.read_bytes() == b"not a folder"
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_a_fifo_is_refused(fitted, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    _refused("exists and is not a folder", fitted[0].save, tmp_path / "pipe", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]


@pytest.mark.parametrize("to", ["empty folder", "model", "nothing"])
def test_a_symbolic_link_is_refused_and_left_as_it_is(fitted, tmp_path, to):
    target = tmp_path / "target"
    if to == "model":
        fitted[0].save(target)
    elif to == "empty folder":
        target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    before = _snapshot(tmp_path)
    for overwrite in (False, True):
        _refused("is a symbolic link", fitted[1].save, link, overwrite=overwrite)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert _snapshot(tmp_path) == before


def test_a_new_folder_is_written_with_its_parents(fitted, tmp_path):
    path = fitted[0].save(tmp_path / "a" / "b" / "model")
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "model.safetensors", "vectorizer.json"]
    assert sorted(os.listdir(tmp_path / "a" / "b")) == ["model"]


def test_an_empty_folder_is_accepted(fitted, tmp_path):
    (tmp_path / "empty").mkdir()
    fitted[0].save(tmp_path / "empty")
    np.testing.assert_array_equal(NBLinearClassifier.load(tmp_path / "empty").predict_proba(PROBE),
                                  fitted[0].predict_proba(PROBE))
    assert sorted(os.listdir(tmp_path)) == ["empty"]


def test_a_model_is_replaced_only_with_overwrite(fitted, tmp_path):
    first, second = fitted
    target = tmp_path / "model"
    first.save(target)
    before = _snapshot(target)
    message = _refused("holds a saved reviewsense model", second.save, target)
    assert "overwrite=True" in message
    _refused("pass overwrite=True", save_model, second.predictor_, target)
    assert _snapshot(target) == before
    np.testing.assert_array_equal(NBLinearClassifier.load(target).predict_proba(PROBE), first.predict_proba(PROBE))

    second.save(target, overwrite=True)
    np.testing.assert_array_equal(NBLinearClassifier.load(target).predict_proba(PROBE), second.predict_proba(PROBE))
    np.testing.assert_array_equal(load_model(target).predict_proba(PROBE), second.predictor_.predict_proba(PROBE))
    assert sorted(os.listdir(tmp_path)) == ["model"]

    save_model(first.predictor_, target, overwrite=True)
    np.testing.assert_array_equal(load_model(target).predict_proba(PROBE), first.predictor_.predict_proba(PROBE))


@pytest.mark.parametrize("manifest", ['{"format": "other"}', "{broken", '["reviewsense-model"]'])
def test_a_folder_with_a_manifest_of_another_kind_is_not_a_model(fitted, tmp_path, manifest):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text(manifest)
    _refused("holds no saved reviewsense model", fitted[0].save, tmp_path / "m", overwrite=True)
    assert (tmp_path / "m" / "manifest.json").read_text() == manifest


@pytest.mark.parametrize("exchange", [True, False])
@pytest.mark.parametrize("old", ["folder", "file"])
def test_leftovers_of_a_killed_save_do_not_break_the_next(fitted, tmp_path, monkeypatch, exchange, old):
    """A save killed midway leaves its temporary folder beside the target (and, where
    renameat2 is missing, maybe the previous export as ``.model.old``): the next save works."""
    import reviewsense._fs as fs

    target = tmp_path / "model"
    fitted[0].save(target)
    (tmp_path / ".model.k1ll3d.tmp").mkdir()
    (tmp_path / ".model.k1ll3d.tmp" / "model.safetensors").write_bytes(b"half")
    if old == "folder":
        (tmp_path / ".model.old").mkdir()
        (tmp_path / ".model.old" / "manifest.json").write_text("{}")
    else:
        (tmp_path / ".model.old").write_text("a file")
    if not exchange:
        monkeypatch.setattr(fs, "_exchange", lambda a, b: False)  # the rename fallback
    fitted[1].save(target, overwrite=True)
    np.testing.assert_array_equal(load_model(target).predict_proba(PROBE), fitted[1].predictor_.predict_proba(PROBE))
    assert (tmp_path / ".model.k1ll3d.tmp" / "model.safetensors").read_bytes() == b"half"  # not ours to remove
    if not exchange:
        assert not (tmp_path / ".model.old").exists()


def test_a_model_that_appears_while_saving_is_not_replaced(fitted, tmp_path, monkeypatch):
    """The folder is checked again just before the new export takes its place."""
    import reviewsense.export.bundle as bundle

    target = tmp_path / "model"
    real_write_json = bundle.write_json

    def meanwhile(path, obj):
        real_write_json(path, obj)
        if not target.exists():
            target.mkdir()
            (target / "theirs.txt").write_text("written by someone else meanwhile")

    monkeypatch.setattr(bundle, "write_json", meanwhile)
    _refused("folder is not empty", fitted[0].save, target)
    assert os.listdir(target) == ["theirs.txt"]
    assert sorted(os.listdir(tmp_path)) == ["model"]
