"""Crash-safe writing: atomic files and directories leave no half-written state."""

from __future__ import annotations

import hashlib
import json

import pytest

from reviewsense import _fs
from reviewsense._fs import atomic_dir, atomic_path, sha256_file, write_bytes, write_json, write_text


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)
    assert sha256_file(path, chunk=4096) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_write_json_replaces_atomically(tmp_path):
    target = tmp_path / "deep" / "m.json"
    write_json(target, {"a": 1, "text": "café"})
    write_json(target, {"a": 2})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 2}
    assert _names(target.parent) == ["m.json"]
    write_json(target, {"text": "café"})
    assert "café" in target.read_text(encoding="utf-8")  # not \u00e9-escaped


def test_write_json_refuses_nan_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"a": 1})
    with pytest.raises(ValueError):
        write_json(target, {"a": float("nan")})
    assert json.loads(target.read_text()) == {"a": 1}
    assert _names(tmp_path) == ["m.json"]


def test_write_text_and_bytes(tmp_path):
    write_text(tmp_path / "t.txt", "héllo\n")
    write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "t.txt").read_bytes() == "héllo\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert _names(tmp_path) == ["b.bin", "t.txt"]


def test_atomic_path_failure_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half written")
        assert tmp.parent == target.parent and tmp != target
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["f.txt"]


@pytest.fixture(params=["exchange", "fallback"])
def swap_mode(request, monkeypatch):
    """Run each atomic_dir test with renameat2(RENAME_EXCHANGE) and with the rename fallback."""
    if request.param == "fallback":
        monkeypatch.setattr(_fs, "_exchange", lambda a, b: False)
    return request.param


def test_atomic_dir_creates(tmp_path, swap_mode):
    target = tmp_path / "parent" / "model"
    with atomic_dir(target) as tmp:
        assert tmp.is_dir() and not any(tmp.iterdir())
        assert not target.exists()  # nothing under the final name while writing
        (tmp / "a.txt").write_text("new")
    assert _names(target) == ["a.txt"]
    assert _names(target.parent) == ["model"]


def test_atomic_dir_replaces_an_existing_directory(tmp_path, swap_mode):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    (target / "sub").mkdir()
    (target / "sub" / "deep.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # old version intact until the swap
    assert _names(target) == ["new.txt"]
    assert _names(tmp_path) == ["model"]


def test_atomic_dir_failure_keeps_the_old_directory(tmp_path, swap_mode):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("crash while writing")
    assert _names(target) == ["old.txt"]
    assert (target / "old.txt").read_text() == "old"
    assert _names(tmp_path) == ["model"]


def test_atomic_dir_failure_without_previous_leaves_nothing(tmp_path):
    with pytest.raises(KeyError), atomic_dir(tmp_path / "model") as tmp:
        (tmp / "x").write_text("x")
        raise KeyError("boom")
    assert _names(tmp_path) == []
