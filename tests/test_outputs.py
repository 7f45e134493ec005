"""What the commands write, and where: never over the input, never replacing a pipe, a device or a
symlink, no temporary file left on SIGTERM, modes that follow the umask, runs that are not
overwritten by accident, the output format the file name says, and one clean line for texts
and places that cannot be used."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from error_line import read_error_line

from reviewsense.cli import main

FAST = ["--hash-bits", "12", "--span-weight", "0"]


@pytest.fixture(scope="module")
def model(tmp_path_factory, toy_csv_writer) -> Path:
    root = tmp_path_factory.mktemp("outputs")
    data = toy_csv_writer(root / "toy.csv", n=300, seed=3)
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()):
        mp.setenv("REVIEWSENSE_QUIET", "1")
        assert main(["train", "--data", str(data), "--run-dir", str(root / "run"), *FAST]) == 0
    return root / "run" / "model"


@pytest.fixture
def reviews(tmp_path) -> Path:
    path = tmp_path / "reviews.jsonl"
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(["great superb film", "awful dull plot", "",
                                                                "loved it, wonderful"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path




def _predict(model: Path, *args: str) -> int:
    return main(["predict", "--model", str(model), *args])


# -- 1. the output is never the input ----------------------------------------------------------
@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused(model, reviews, tmp_path, capsys, how):
    before = reviews.read_bytes()
    target = reviews
    if how == "symlink":
        target = tmp_path / "link.jsonl"
        target.symlink_to(reviews)
    elif how == "hardlink":
        target = tmp_path / "hard.jsonl"
        os.link(reviews, target)
    line = read_error_line(capsys, _predict(model, "--input", str(reviews), "--output", str(target)))
    assert "is the input file" in line
    assert reviews.read_bytes() == before


def test_evaluate_output_that_is_the_data_is_refused(model, tmp_path, capsys, toy_csv_writer):
    data = toy_csv_writer(tmp_path / "test.csv", n=40, seed=9)
    before = data.read_bytes()
    rc = main(["evaluate", "--model", str(model), "--data", str(data), "--output", str(data)])
    assert "is the input file" in read_error_line(capsys, rc)
    assert data.read_bytes() == before


# -- 2. pipes, devices and symlinks are written through, never replaced ------------------------
def test_fifo_output_is_written_through(model, reviews, tmp_path):
    fifo = tmp_path / "scores.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    with contextlib.redirect_stderr(io.StringIO()):
        assert _predict(model, "--input", str(reviews), "--output", str(fifo)) == 0
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO
    rows = [json.loads(line) for line in received[0].decode().splitlines()]
    assert len(rows) == 4 and rows[0]["label"] == 1 and rows[1]["label"] == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_symlink_output_is_followed_not_replaced(model, reviews, tmp_path):
    target = tmp_path / "elsewhere" / "real.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "scores.jsonl"
    link.symlink_to(target)
    with contextlib.redirect_stderr(io.StringIO()):
        assert _predict(model, "--input", str(reviews), "--output", str(link)) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(target.read_text().splitlines()) == 4


def test_dev_stdout_and_dash_write_to_stdout(model, reviews, tmp_path):
    # a link of our own to /proc/self/fd/1, as /dev/stdout is: a regression would replace it, not /dev/stdout
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/proc/self/fd/1")
    for output in (str(stdout), "-"):
        proc = subprocess.run([sys.executable, "-m", "reviewsense", "predict", "--model", str(model), "--input",
                               str(reviews), "--output", output], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        labels = [json.loads(line)["label"] for line in proc.stdout.splitlines()]
        assert len(labels) == 4 and labels[:2] == [1, 0]
    assert stdout.is_symlink()


def test_a_device_is_never_replaced_and_a_full_one_is_one_line(model, reviews, tmp_path, capsys):
    full = tmp_path / "full"  # our own /dev/full (char 1:7), so that a regression cannot replace the real one
    try:
        os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        with open(full, "wb") as fh:
            fh.write(b"x")
            fh.flush()
    except PermissionError:
        pytest.skip("cannot make or open a device node here (not root, or a nodev mount)")
    except OSError:
        pass  # ENOSPC: it is a full device, as wanted
    before = os.stat(full)
    line = read_error_line(capsys, _predict(model, "--input", str(reviews), "--output", str(full)))
    assert line == f"reviewsense: error: {full}: cannot write (No space left on device)"
    after = os.stat(full)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "reviews.jsonl"]


# -- 3. SIGTERM leaves no temporary file -------------------------------------------------------
def test_sigterm_during_predict_leaves_no_temporary_file(model, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("the plot was great and the acting awful\n" * 400_000)
    out = tmp_path / "scores.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "reviewsense", "predict", "--model", str(model), "--input",
                             str(big), "--output", str(out), "--chunk-size", "500"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not [p for p in tmp_path.iterdir() if p.name.startswith(".scores")] and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until it is writing its temporary file
    assert proc.poll() is None, "finished before it could be stopped: make the input bigger"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in err and "terminated" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt"]


# -- 4. modes follow the umask -----------------------------------------------------------------
@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_everything_written_follows_the_umask(tmp_path, reviews, toy_csv_writer, mask, file_mode, dir_mode):
    data = toy_csv_writer(tmp_path / "toy.csv", n=200, seed=4)
    old = os.umask(mask)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["train", "--data", str(data), "--run-dir", str(tmp_path / "run"), *FAST]) == 0
            assert _predict(tmp_path / "run" / "model", "--input", str(reviews), "--output",
                            str(tmp_path / "scores.csv")) == 0
    finally:
        os.umask(old)
    written = [tmp_path / "run", *(tmp_path / "run").rglob("*"), tmp_path / "scores.csv"]
    assert any(p.name == "model.safetensors" for p in written)
    for path in written:
        expected = dir_mode if path.is_dir() else file_mode
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_a_replaced_output_keeps_its_mode(model, reviews, tmp_path):
    out = tmp_path / "scores.jsonl"
    out.write_text("old\n")
    out.chmod(0o640)
    with contextlib.redirect_stderr(io.StringIO()):
        assert _predict(model, "--input", str(reviews), "--output", str(out)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert len(out.read_text().splitlines()) == 4


# -- 5. a run folder is not overwritten by accident --------------------------------------------
def test_train_into_an_existing_run_is_refused_unless_overwrite(tmp_path, toy_csv_writer, capsys):
    data = toy_csv_writer(tmp_path / "toy.csv", n=200, seed=6)
    run = tmp_path / "run"
    args = ["train", "--data", str(data), "--run-dir", str(run), *FAST]
    assert main(args) == 0
    (run / "loss.png").write_bytes(b"a plot of an earlier seed run")  # not written by an nblinear run
    weights = (run / "model" / "model.safetensors").read_bytes()
    capsys.readouterr()
    line = read_error_line(capsys, main(args))
    assert "holds a previous run" in line and "--overwrite" in line
    assert (run / "model" / "model.safetensors").read_bytes() == weights
    assert main([*args, "--overwrite", "--seed", "1"]) == 0
    assert not (run / "loss.png").exists()  # the previous run's leftovers are gone
    assert (run / "model" / "manifest.json").is_file()


@pytest.mark.parametrize("how", ["overwrite", "resume"])
def test_overwrite_and_resume_remove_the_temporaries_of_a_killed_write(tmp_path, toy_csv_writer, how):
    """A run killed while writing leaves ``.model.XXXXXXXX.tmp`` (a half-exported model),
    ``.metrics.json.XXXXXXXX.tmp`` or ``.model.old``: ``--overwrite`` and ``--resume`` remove
    those of the run's own files, and nothing else (before: they stayed for good)."""
    from reviewsense.training.checkpoint import Checkpoint

    data = toy_csv_writer(tmp_path / "toy.csv", n=200, seed=6)
    run = tmp_path / "run"
    args = ["train", "--data", str(data), "--run-dir", str(run), *FAST]
    assert main(args) == 0
    ours = [".model.k1ll_d9z.tmp", ".model.old", ".checkpoint.abcdefgh.tmp"]
    for name in ours:
        (run / name).mkdir()
        (run / name / "manifest.json").write_text("{}")
    ours += [".metrics.json.a1b2c3d4.tmp", ".README.md.zz_99_zz.tmp"]
    for name in ours[-2:]:
        (run / name).write_text("half")
    others = [".model.tmp", ".model.abc.tmp", ".model.abcdefgh.tmp.keep", "model.abcdefgh.tmp", ".notes.abcdefgh.tmp",
              ".Model.abcdefgh.tmp", ".model.ABCDEFGH.tmp", ".config.json.old", "mine.txt"]
    for name in others:
        (run / name).write_text("mine")
    if how == "resume":
        Checkpoint(run / "checkpoint").save({}, {"stage": "start"})
        assert main(["train", "--resume", str(run)]) == 0
    else:
        assert main([*args, "--overwrite"]) == 0
    left = {p.name for p in run.iterdir()}
    assert not left & set(ours), left
    assert set(others) <= left and all((run / name).read_text() == "mine" for name in others)
    assert (run / "model" / "manifest.json").is_file()


def test_train_into_a_folder_of_other_files_or_a_file_is_refused(tmp_path, toy_csv_writer, capsys):
    data = toy_csv_writer(tmp_path / "toy.csv", n=200, seed=6)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.md").write_text("my notes")
    line = read_error_line(capsys, main(["train", "--data", str(data), "--run-dir", str(notes), *FAST]))
    assert "not empty (README.md)" in line
    assert (notes / "README.md").read_text() == "my notes"
    line = read_error_line(capsys, main(["train", "--data", str(data), "--run-dir", str(data), *FAST]))
    assert "exists and is not a folder" in line


# -- 6. the output format is the one the name says ---------------------------------------------
@pytest.mark.parametrize("name", ["scores.parquet", "scores.csv", "scores.jsonl", "scores.ndjson"])
def test_output_format_follows_the_extension(model, reviews, tmp_path, name):
    import pandas as pd

    out = tmp_path / name
    with contextlib.redirect_stderr(io.StringIO()):
        assert _predict(model, "--input", str(reviews), "--output", str(out), "--keep-columns", "id") == 0
    if name.endswith(".parquet"):
        frame = pd.read_parquet(out)
    elif name.endswith(".csv"):
        frame = pd.read_csv(out)
    else:
        frame = pd.read_json(out, lines=True)
    assert list(frame.columns) == ["id", "probability", "label", "label_name"]
    assert frame["id"].tolist() == ["r0", "r1", "r2", "r3"]
    assert frame["label"].tolist()[:2] == [1, 0]


def test_format_overrides_the_extension_and_unknown_extensions_are_refused(model, reviews, tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "scores.dat"
    line = read_error_line(capsys, _predict(model, "--input", str(reviews), "--output", str(out)))
    assert "unknown output extension '.dat'" in line and "--format" in line
    assert not out.exists()
    with contextlib.redirect_stderr(io.StringIO()):
        assert _predict(model, "--input", str(reviews), "--output", str(out), "--format", "parquet") == 0
    assert len(pd.read_parquet(out)) == 4


def test_keep_columns_carries_the_text_and_ids_through(model, reviews, tmp_path, capsys):
    assert _predict(model, "--input", str(reviews), "--keep-columns", "id,text") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["r0", "r1", "r2", "r3"]
    assert rows[0]["text"] == "great superb film" and list(rows[0])[:3] == ["id", "text", "probability"]
    line = read_error_line(capsys, _predict(model, "--input", str(reviews), "--keep-columns", "movie"))
    assert "movie" in line
    assert _predict(model, "--format", "csv", "--keep-columns", "text", "fine, film") == 0
    assert capsys.readouterr().out.splitlines()[:2][0] == "text,probability,label,label_name"


# -- 12. text that is not UTF-8 ----------------------------------------------------------------
def test_non_utf8_on_stdin_and_in_arguments_is_replaced_like_in_files(model, tmp_path):
    env = {**os.environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": ""}
    cmd = [sys.executable, "-m", "reviewsense"]
    piped = subprocess.run([*cmd, "predict", "--model", str(model)], input=b"caf\xe9 great\n",
                           capture_output=True, env=env, timeout=120)
    assert piped.returncode == 0, piped.stderr
    from_stdin = json.loads(piped.stdout)

    file = tmp_path / "bytes.txt"
    file.write_bytes(b"caf\xe9 great\n")
    read = subprocess.run([*cmd, "predict", "--model", str(model), "--input", str(file)],
                          capture_output=True, env=env, timeout=120)
    assert json.loads(read.stdout) == from_stdin

    for sub in (["predict", "--format", "jsonl"], ["explain", "--json"]):
        proc = subprocess.run([*cmd, sub[0], "--model", str(model), *sub[1:], os.fsdecode(b"caf\xe9 great")],
                              capture_output=True, env=env, timeout=120)
        assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr
        row = json.loads(proc.stdout)
        if sub[0] == "explain":
            assert row["text"] == "caf\ufffd great"
        else:
            assert row == from_stdin


def test_predict_proba_names_the_item_that_is_not_a_string(model):
    from reviewsense import load
    from reviewsense.errors import TextTypeError

    predictor = load(model)
    with pytest.raises(TextTypeError, match=r"texts\[1\] is NoneType"):
        predictor.predict_proba(["fine", None])
    with pytest.raises(TypeError, match=r"texts\[0\] is int"):
        predictor.predict_proba([3])
    lone = predictor.predict_proba(["caf\udce9 great", "\ud800 great"])  # lone surrogates: U+FFFD
    assert np.allclose(lone, predictor.predict_proba(["caf\ufffd great", "\ufffd great"]))


# -- 13. places that cannot be written ---------------------------------------------------------
def test_outputs_that_cannot_be_written_are_one_line(model, reviews, tmp_path, capsys):
    cases = [
        (["predict", "--input", str(reviews), "--output", str(tmp_path)], "is a folder"),
        (["predict", "--input", str(reviews), "--output", "/proc/reviewsense/scores.jsonl"], "/proc/reviewsense"),
        (["evaluate", "--data", str(tmp_path / "x.csv"), "--reliability-plot", "/proc/x/r.png"], "/proc/x"),
    ]
    (tmp_path / "x.csv").write_text("text,label\ngreat film,1\nawful film,0\n")
    for args, expected in cases:
        rc = main([args[0], "--model", str(model), *args[1:]])
        assert expected in read_error_line(capsys, rc), args


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_before_any_work(model, reviews, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        line = read_error_line(capsys, _predict(model, "--input", str(reviews), "--output", str(ro / "s.jsonl")))
    finally:
        ro.chmod(0o755)
    assert "read-only or no permission" in line


# -- 13. serve on an address that cannot be listened on ----------------------------------------
def test_serve_on_a_port_in_use_or_an_address_not_here_is_one_line(model, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = read_error_line(capsys, main(["serve", "--model", str(model), "--port", str(port)]))
        assert line == f"reviewsense: error: cannot listen on 127.0.0.1:{port} (Address already in use); " \
                       "choose another --port or --host"
    line = read_error_line(capsys, main(["serve", "--model", str(model), "--host", "192.0.2.1",
                                         "--api-key", "k"]))  # TEST-NET-1: an address this machine has not
    assert "cannot listen on 192.0.2.1:8000" in line


# -- found by review: more ways to lose data or get a traceback --------------------------------
def test_stdout_redirected_to_a_file_is_appended_to_not_replaced(model, reviews, tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("PREV\n")
    inode = log.stat().st_ino
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/proc/self/fd/1")  # what /dev/stdout is
    with open(log, "ab") as fh:  # the shell's `>> log.csv`
        proc = subprocess.run([sys.executable, "-m", "reviewsense", "predict", "--model", str(model), "--input",
                               str(reviews), "--output", str(stdout), "--format", "csv"], stdout=fh,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "PREV" and lines[1] == "probability,label,label_name" and len(lines) == 6
    assert log.stat().st_ino == inode and stdout.is_symlink()


def test_outputs_over_standard_input_or_the_model_are_refused(model, reviews, tmp_path, capsys):
    before = reviews.read_bytes()
    with open(reviews, "rb") as stdin:
        proc = subprocess.run([sys.executable, "-m", "reviewsense", "predict", "--model", str(model), "--input", "-",
                               "--output", str(reviews)], stdin=stdin, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "is standard input" in proc.stderr and "Traceback" not in proc.stderr
    assert reviews.read_bytes() == before
    manifest = (model / "manifest.json").read_bytes()
    weights = str(model / "model.safetensors")
    for args in (["predict", "--input", str(reviews), "--output", str(model / "manifest.json")],
                 ["evaluate", "--data", str(tmp_path / "x.csv"), "--reliability-plot", weights]):
        line = read_error_line(capsys, main([args[0], "--model", str(model), *args[1:]]))
        assert "inside the input folder" in line
    assert (model / "manifest.json").read_bytes() == manifest


def test_file_flags_with_texts_from_stdin_or_arguments_are_refused(model, capsys):
    line = read_error_line(capsys, _predict(model, "--text-column", "review", "a fine film"))
    assert "--text-column applies to --input FILE" in line
    line = read_error_line(capsys, _predict(model, "--input", "-", "--sep", ";"))
    assert "--sep applies to --input FILE" in line


def test_compressed_outputs_are_compressed(model, reviews, tmp_path, capsys):
    import gzip
    import lzma

    with contextlib.redirect_stderr(io.StringIO()):
        assert _predict(model, "--input", str(reviews), "--output", str(tmp_path / "s.jsonl.gz")) == 0
        assert _predict(model, "--input", str(reviews), "--output", str(tmp_path / "s.csv.xz")) == 0
    with gzip.open(tmp_path / "s.jsonl.gz", "rt") as fh:
        assert len(fh.read().splitlines()) == 4
    with lzma.open(tmp_path / "s.csv.xz", "rt") as fh:
        assert fh.readline() == "probability,label,label_name\n"
    line = read_error_line(capsys, _predict(model, "--input", str(reviews), "--output", str(tmp_path / "s.pq.gz")))
    assert "Parquet is compressed inside already" in line


def test_kept_columns_of_changing_types_reach_parquet_and_csv(model, tmp_path):
    import pandas as pd

    source = tmp_path / "mixed.jsonl"
    ids = [1, "a", None, 2.5, {"a": 0}, 2**70, True]
    source.write_text("".join(json.dumps({"id": v, "text": "great film"}) + "\n" for v in ids))
    with contextlib.redirect_stderr(io.StringIO()):
        for name in ("o.parquet", "o.csv"):
            assert _predict(model, "--input", str(source), "--keep-columns", "id", "--chunk-size", "2",
                            "--output", str(tmp_path / name)) == 0
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "o.parquet").column("id").to_pylist() == \
        ["1", "a", None, "2.5", '{"a": 0}', str(2**70), "true"]
    assert pd.read_csv(tmp_path / "o.csv", dtype=str, keep_default_na=False)["id"].tolist() == \
        ["1", "a", "", "2.5", '{"a": 0}', str(2**70), "True"]


def test_pretrain_never_empties_a_folder_that_holds_something(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the film was great and the plot was good\nthe film was bad and the plot was dull\n" * 20)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    line = read_error_line(capsys, main(["pretrain", "--data", str(corpus), "--output", str(notes), "--dim", "8"]))
    assert "folder is not empty (mine.txt)" in line and "--overwrite" in line
    line = read_error_line(capsys, main(["pretrain", "--data", str(corpus), "--output", str(tmp_path), "--dim", "8",
                                         "--overwrite"]))
    assert "holds the input" in line
    assert (notes / "mine.txt").read_text() == "keep me" and corpus.exists()


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    line = read_error_line(capsys, main(["train", "--resume", str(tmp_path), "--seed", "3", "--C", "2"]))
    assert line == f"reviewsense: error: --resume takes every setting from {tmp_path}/config.json; drop --C, --seed"


@pytest.mark.parametrize("args", [["train", "--C", "inf"], ["train", "--span-weight", "nan"],
                                  ["train", "--span-weight", "-1"], ["train", "--test-size", "nan"],
                                  ["serve", "--model", "m", "--max-body-mb", "inf"]])
def test_settings_that_are_not_finite_are_refused_by_the_parser(args, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "argument --" in err.splitlines()[-1]


def test_a_long_file_name_is_written(model, reviews, tmp_path):
    out = tmp_path / ("s" * 240 + ".jsonl")  # 246 characters: the temporary name must still fit
    with contextlib.redirect_stderr(io.StringIO()):
        assert _predict(model, "--input", str(reviews), "--output", str(out)) == 0
    assert len(out.read_text().splitlines()) == 4
