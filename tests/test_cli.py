"""The ``reviewsense`` command, run in-process (plus one real subprocess)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from error_line import read_error_line

from reviewsense.cli import main

TRAIN_ARGS = ["--model", "seed",
              "--embedding", "scratch", "--epochs", "15", "--learning-rate", "0.01", "--batch-size", "32",
              "--threads", "1", "--embedding-dim", "16", "--hidden-units", "8"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, toy_csv_writer):
    """One small CLI training run shared by the tests of this module: (run_dir, data, stdout)."""
    import contextlib

    root = tmp_path_factory.mktemp("cli")
    data = toy_csv_writer(root / "toy.csv", n=300, seed=5)
    run_dir = root / "run"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("REVIEWSENSE_QUIET", "1")
        mp.setenv("REVIEWSENSE_CACHE_DIR", str(root / "cache"))
        mp.delenv("REVIEWSENSE_IMDB", raising=False)
        rc = main(["train", "--data", str(data), "--run-dir", str(run_dir), *TRAIN_ARGS])
    assert rc == 0
    return run_dir, data, out.getvalue()




# -- train -----------------------------------------------------------------------------------


def test_train_writes_the_run_folder(run):
    run_dir, _, stdout = run
    assert stdout.startswith("test accuracy ")
    assert f"run folder: {run_dir}" in stdout
    card = (run_dir / "README.md").read_text()  # two classes: per class and the confusion matrix too
    assert "| 0 | " in card and "| 1 | " in card and "![confusion matrix](confusion.png)" in card
    expected = {"metrics.json", "model", "history.csv", "history.json", "loss.png", "accuracy.png",
                "config.json", "README.md", "confusion.png", "reliability.png"}
    assert expected <= {p.name for p in run_dir.iterdir()}
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.9
    assert 0 <= metrics["test"]["loss"] < 0.5
    assert metrics["test"]["count"] == 60  # 20 % of 300 held out as test
    assert metrics["validation"]["count"] == 48  # then 20 % of the remaining 240
    assert metrics["epochs"]["run"] <= 15
    assert {"load_seconds", "train_seconds", "total_seconds"} <= set(metrics["timing"])

    manifest = json.loads((run_dir / "model" / "manifest.json").read_text())
    assert manifest["family"] == "seed" and manifest["format_version"] == 2
    assert manifest["metrics"]["test"] == metrics["test"]

    history = json.loads((run_dir / "history.json").read_text())
    assert list(history["history"]) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert history["epochs"] == metrics["epochs"]["run"]
    rows = list(csv.reader(io.StringIO((run_dir / "history.csv").read_text())))
    assert rows[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(rows) == history["epochs"] + 1

    config = json.loads((run_dir / "config.json").read_text())
    seed = config["settings"]["seed"]
    assert seed["epochs"] == 15 and seed["batch_size"] == 32 and seed["embedding_dim"] == 16
    assert set(config["settings"]) == {"seed"}  # only the trained family's settings
    for png in ("loss.png", "accuracy.png"):
        assert (run_dir / png).read_bytes()[:4] == b"\x89PNG"
    readme = (run_dir / "README.md").read_text()
    assert "test accuracy" in readme and str(run_dir / "model") in readme


def test_train_is_reproducible(run, tmp_path, capsys):
    run_dir, data, _ = run
    assert main(["train", "--data", str(data), "--run-dir", str(tmp_path / "again"), *TRAIN_ARGS]) == 0
    first = json.loads((run_dir / "history.json").read_text())
    second = json.loads((tmp_path / "again" / "history.json").read_text())
    assert first == second


def test_train_with_the_default_embedding_pretrains_word2vec(toy_csv, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--model", "seed", "--data", str(toy_csv), "--run-dir", str(run_dir), "--epochs", "2",
                 "--embedding-dim", "8", "--threads", "1"]) == 0
    manifest = json.loads((run_dir / "model" / "manifest.json").read_text())
    assert manifest["training"]["config"]["settings"]["seed"]["embedding"] == "word2vec"
    assert manifest["config"]["embedding_source"] == "pretrained"
    assert manifest["config"]["embedding_dim"] == 8
    assert 0 <= json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"] <= 1


# -- predict ---------------------------------------------------------------------------------


PROBE = ["great excellent superb film", "awful terrible worst film", "loved it, wonderful", "boring and dull"]


def test_predict_file_to_file(run, tmp_path, capsys):
    run_dir, _, _ = run
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in PROBE))
    dest = tmp_path / "out.jsonl"
    rc = main(["predict", "--model", str(run_dir / "model"), "--input", str(src), "--output", str(dest)])
    captured = capsys.readouterr()
    assert rc == 0
    assert captured.out == ""
    assert "wrote 4 predictions" in captured.err
    rows = [json.loads(line) for line in dest.read_text().splitlines()]
    assert len(rows) == len(PROBE)
    assert [r["label"] for r in rows] == [1, 0, 1, 0]  # in input order
    assert all(0 <= r["probability"] <= 1 for r in rows)
    assert all(r["label"] in (0, 1) for r in rows)
    assert [r["label_name"] for r in rows] == ["1", "0", "1", "0"]  # class names of a 0/1 CSV


def test_predict_csv_output_from_a_csv_input(run, tmp_path, capsys):
    run_dir, _, _ = run
    src = tmp_path / "in.csv"
    with open(src, "w", newline="") as fh:
        csv.writer(fh).writerows([["review"], *([t] for t in PROBE)])
    dest = tmp_path / "out.csv"
    assert main(["predict", "--model", str(run_dir / "model"), "--input", str(src), "--text-column", "review",
                 "--output", str(dest)]) == 0
    rows = list(csv.DictReader(io.StringIO(dest.read_text())))
    assert [int(r["label"]) for r in rows] == [1, 0, 1, 0]


def test_predict_arguments_print_a_table(run, capsys):
    run_dir, _, _ = run
    assert main(["predict", "--model", str(run_dir / "model"), PROBE[0], PROBE[1]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    p0, name0, *text0 = lines[0].split()
    p1, name1, *_ = lines[1].split()
    assert float(p0) > 0.5 > float(p1)
    assert (name0, name1) == ("1", "0")
    assert " ".join(text0) == PROBE[0]


def test_predict_reads_stdin(run, monkeypatch, capsys):
    run_dir, _, _ = run
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(PROBE) + "\n"))
    assert main(["predict", "--model", str(run_dir / "model"), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["label"]) for r in rows] == [1, 0, 1, 0]


def test_predict_threshold(run, capsys):
    run_dir, _, _ = run
    assert main(["predict", "--model", str(run_dir / "model"), "--format", "jsonl", "--threshold", "1",
                 PROBE[0]]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == 0


def test_predict_streams_parquet_with_workers(run, tmp_path, capsys):
    import pandas as pd

    run_dir, _, _ = run
    texts = PROBE * 50
    pd.DataFrame({"text": texts}).to_parquet(tmp_path / "in.parquet", row_group_size=16)
    dest = tmp_path / "out.jsonl"
    rc = main(["predict", "--model", str(run_dir / "model"), "--input", str(tmp_path / "in.parquet"), "--output",
               str(dest), "--workers", "2", "--chunk-size", "30"])
    assert rc == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in dest.read_text().splitlines()]
    assert [r["label"] for r in rows] == [1, 0, 1, 0] * 50


def test_predict_stdin_dash_streams_to_stdout(run, monkeypatch, capsys):
    run_dir, _, _ = run
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(PROBE) + "\n"))
    assert main(["predict", "--model", str(run_dir / "model"), "--input", "-", "--chunk-size", "3"]) == 0
    assert [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()] == [1, 0, 1, 0]


def test_predict_bad_input_file_is_one_line(run, tmp_path, capsys):
    run_dir, _, _ = run
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "fine"}\n{oops}\n')
    dest = tmp_path / "out.jsonl"
    rc = main(["predict", "--model", str(run_dir / "model"), "--input", str(src), "--output", str(dest)])
    assert "in.jsonl:2: invalid JSON" in read_error_line(capsys, rc)
    assert not dest.exists() and [p.name for p in tmp_path.iterdir()] == ["in.jsonl"]


# -- explain ---------------------------------------------------------------------------------


def test_explain_prints_what_pushed_the_score(run, capsys):
    run_dir, _, _ = run
    assert main(["explain", "--model", str(run_dir / "model"), "-k", "3", PROBE[0], PROBE[1]]) == 0
    out = capsys.readouterr().out
    assert "pushed up" in out and "pushed down" in out
    blocks = out.strip().split("\n\n")
    assert len(blocks) == 2
    assert float(blocks[0].split()[0]) > 0.5 > float(blocks[1].split()[0])
    assert "logit" in blocks[0]


def test_explain_json(run, capsys):
    run_dir, _, _ = run
    assert main(["explain", "--model", str(run_dir / "model"), "--json", "-k", "2", PROBE[0]]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"] == PROBE[0]
    assert len(data["positive"]) <= 2
    assert sum(t["contribution"] for t in data["tokens"]) == pytest.approx(data["logit"] - data["bias"], abs=1e-3)


# -- evaluate --------------------------------------------------------------------------------


def test_evaluate_on_a_csv(run, tmp_path, capsys, toy_csv_writer):
    run_dir, _, _ = run
    data = toy_csv_writer(tmp_path / "fresh.csv", n=100, seed=11)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--model", str(run_dir / "model"), "--data", str(data), "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["count"] == 100
    assert printed["accuracy"] > 0.9
    assert json.loads(out.read_text()) == printed


def test_evaluate_by_length_prints_the_table_and_writes_it(run, tmp_path, capsys, toy_csv_writer):
    run_dir, _, _ = run
    data = toy_csv_writer(tmp_path / "fresh.csv", n=100, seed=12)
    out, png = tmp_path / "m.json", tmp_path / "lengths.png"
    assert main(["evaluate", "--model", str(run_dir / "model"), "--data", str(data), "--output", str(out),
                 "--by-length", "--by-length-plot", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "| span | texts | mean words | accuracy | ROC-AUC | ECE |" in printed
    assert "| 1 word | 100 |" in printed and "| full review | 100 |" in printed
    saved = json.loads(out.read_text())
    assert saved["by_length"]["buckets"]["full review"]["count"] == 100
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_by_length_plot_needs_by_length(run, tmp_path, capsys, toy_csv_writer):
    run_dir, _, _ = run
    data = toy_csv_writer(tmp_path / "fresh.csv", n=20, seed=12)
    assert main(["evaluate", "--model", str(run_dir / "model"), "--data", str(data),
                 "--by-length-plot", str(tmp_path / "x.png")]) == 2
    assert "--by-length-plot needs --by-length" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_evaluate_on_the_imdb_test_split(run, imdb_archive, capsys):
    run_dir, _, _ = run
    archive = imdb_archive
    assert main(["evaluate", "--model", str(run_dir / "model"), "--data", str(archive)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["count"] == 4
    assert sum(map(sum, metrics["confusion_matrix"])) == 4


# -- data ------------------------------------------------------------------------------------


def test_data_describe_csv(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("text,label\none two three,pos\nfour,neg\nfive six,pos\n")
    assert main(["data", "describe", "--data", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == 3
    assert info["classes"] == {"negative": {"count": 1, "share": 0.3333}, "positive": {"count": 2, "share": 0.6667}}
    assert info["words"]["p0"] == 1 and info["words"]["p100"] == 3 and info["words"]["mean"] == 2.0
    assert main(["data", "describe", "--data", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("d.csv: 3 rows")
    assert "positive" in text and "66.7%" in text


def test_data_head_csv(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"first\nreview, long",1\nsecond,0\nthird,1\n')
    assert main(["data", "head", "--data", str(path), "-n", "2", "--width", "10"]) == 0
    assert capsys.readouterr().out.splitlines() == ["[1] first rev…", "[0] second"]


def test_data_describe_and_head_on_the_imdb_archive(imdb_archive, capsys):
    assert main(["data", "describe", "--data", str(imdb_archive), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "imdb:train" and info["rows"] == 6
    assert info["classes"]["negative"]["count"] == 3 and info["classes"]["positive"]["count"] == 3

    assert main(["data", "describe", "--data", str(imdb_archive), "--split", "unsup", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["unlabelled"] == 2 and "classes" not in info

    assert main(["data", "head", "--data", str(imdb_archive), "--split", "test", "-n", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "test/neg/8  [negative] Terrible script.",
        "test/neg/9  [negative] Dreadful pacing, dull lead.",
        "test/pos/0  [positive] Brilliant from start to finish.",
    ]


def test_data_uses_reviewsense_imdb(imdb_folder, monkeypatch, capsys):
    monkeypatch.setenv("REVIEWSENSE_IMDB", str(imdb_folder))
    assert main(["data", "describe", "--no-download", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 6


# -- pretrain and pretrained embeddings --------------------------------------------------------


def test_pretrain_then_train_with_the_vectors(tmp_path, capsys, toy_corpus, toy_csv_writer):
    texts, _ = toy_corpus(150, seed=8)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n")
    vectors = tmp_path / "vectors"
    assert main(["pretrain", "--data", str(corpus), "--output", str(vectors), "--dim", "8", "--epochs", "1",
                 "--min-count", "1"]) == 0
    assert "word2vec vectors of dim 8" in capsys.readouterr().out
    assert sorted(p.name for p in vectors.iterdir()) == ["vectors.json", "vectors.safetensors"]

    data = toy_csv_writer(tmp_path / "toy.csv", n=100, seed=9)
    run_dir = tmp_path / "run"
    assert main(["train", "--model", "seed", "--data", str(data), "--run-dir", str(run_dir),
                 "--embedding", str(vectors),
                 "--epochs", "2", "--threads", "1"]) == 0
    manifest = json.loads((run_dir / "model" / "manifest.json").read_text())
    assert manifest["config"]["embedding_source"] == "pretrained"
    assert manifest["config"]["embedding_dim"] == 8


# -- errors ----------------------------------------------------------------------------------


def test_missing_data_file(tmp_path, capsys):
    rc = main(["data", "describe", "--data", str(tmp_path / "missing.csv")])
    assert "missing.csv: no such file or directory" in read_error_line(capsys, rc)


def test_train_with_missing_data_writes_nothing(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path / "missing.csv"), "--run-dir", str(tmp_path / "run")])
    read_error_line(capsys, rc)
    assert not (tmp_path / "run").exists()


def test_bad_model_dir(tmp_path, capsys):
    rc = main(["predict", "--model", str(tmp_path / "no-model"), "some text"])
    assert "not a model folder" in read_error_line(capsys, rc)


def test_tampered_model(run, tmp_path, capsys):
    import shutil

    run_dir, _, _ = run
    model = shutil.copytree(run_dir / "model", tmp_path / "model")
    with open(model / "model.safetensors", "ab") as fh:
        fh.write(b"\0")
    rc = main(["evaluate", "--model", str(model), "--data", str(run[1])])
    assert "size does not match" in read_error_line(capsys, rc)


def test_no_imdb_and_no_download(capsys):
    rc = main(["data", "describe", "--no-download"])
    assert "REVIEWSENSE_IMDB" in read_error_line(capsys, rc)


def test_arguments_and_input_together(run, tmp_path, capsys):
    run_dir, _, _ = run
    rc = main(["predict", "--model", str(run_dir / "model"), "--input", str(tmp_path / "x.txt"), "text"])
    assert "not both" in read_error_line(capsys, rc)


def test_label_outside_classes(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,good\nb,bad\nc,meh\n")
    rc = main(["data", "describe", "--data", str(path), "--classes", "bad,good"])
    assert "row 3" in read_error_line(capsys, rc)


def test_validation_size_too_large(toy_csv, tmp_path, capsys):
    rc = main(["train", "--data", str(toy_csv), "--run-dir", str(tmp_path / "r"), "--validation-size", "5000"])
    assert "--validation-size" in read_error_line(capsys, rc)


def test_out_of_range_ngrams_is_a_clean_error(toy_csv, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:  # argparse checks the range the family declares
        main(["train", "--data", str(toy_csv), "--run-dir", str(tmp_path / "r"), "--ngrams", "9"])
    assert stop.value.code == 2 and "--ngrams: must be ≤ 5, got 9" in capsys.readouterr().err


def test_train_when_the_held_out_test_split_has_one_class(tmp_path, capsys):
    from reviewsense.pipeline import DataSpec, load_splits

    n, n_test = 40, 8
    test_rows = set(np.random.default_rng(1).permutation(n)[:n_test].tolist())  # the split train uses
    path = tmp_path / "d.csv"
    lines, k = ["text,label"], 0
    for i in range(n):
        label = 1 if i in test_rows else (k := k + 1) % 2
        lines.append(f"{'great fine' if label else 'awful bad'} {i},{label}")
    path.write_text("\n".join(lines) + "\n")
    assert set(load_splits(DataSpec(path=str(path), stratify=False)).test.labels.tolist()) == {1}  # precondition

    rc = main(["train", "--model", "seed", "--data", str(path), "--run-dir", str(tmp_path / "r"), "--epochs", "2",
               "--threads", "1", "--embedding", "scratch", "--no-stratify"])
    assert rc == 0
    assert "roc_auc" in capsys.readouterr().out


# -- the real entry point ----------------------------------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    from importlib.metadata import version

    import reviewsense

    # one version: the package's metadata is read from reviewsense.__version__ (pyproject: dynamic)
    assert capsys.readouterr().out.strip() == f"reviewsense {reviewsense.__version__}"
    assert version("reviewsense") == reviewsense.__version__


def test_python_m_reviewsense_help():
    result = subprocess.run([sys.executable, "-m", "reviewsense", "--help"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for command in ("train", "evaluate", "predict", "explain", "serve", "pretrain", "data"):
        assert command in result.stdout
    assert result.stdout.startswith("usage: reviewsense")


def test_train_nblinear_writes_run_without_training_curve(toy_csv, tmp_path, capsys):
    run = tmp_path / "nb"
    rc = main(["train", "--model", "nblinear", "--data", str(toy_csv), "--run-dir", str(run),
               "--hash-bits", "16"])
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.8
    assert (run / "model" / "manifest.json").is_file()
    assert not (run / "loss.png").exists()
    assert (run / "reliability.png").is_file()
    assert 0 <= metrics["test"]["ece"] <= 1
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert manifest["family"] == "nblinear"


def test_train_binary_features_and_group_column(toy_csv, tmp_path, capsys):
    import pandas as pd

    frame = pd.read_csv(toy_csv)
    frame["author"] = [f"a{i % 40}" for i in range(len(frame))]
    data = tmp_path / "grouped.csv"
    frame.to_csv(data, index=False)
    run = tmp_path / "bin"
    rc = main(["train", "--data", str(data), "--group-column", "author", "--binary", "--run-dir", str(run),
               "--hash-bits", "16"])
    assert rc == 0, capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    assert config["settings"]["nblinear"]["binary"] is True and config["data"]["group_column"] == "author"
    vectorizer = json.loads((run / "model" / "vectorizer.json").read_text())
    assert vectorizer["config"]["binary"] is True
    assert json.loads((run / "metrics.json").read_text())["test"]["accuracy"] > 0.8
    rc = main(["train", "--data", str(data), "--group-column", "nope", "--run-dir", str(tmp_path / "x")])
    assert "no 'nope' column" in read_error_line(capsys, rc)


def test_embedding_applies_to_the_seed_model_only(toy_csv, tmp_path, capsys):
    rc = main(["train", "--data", str(toy_csv), "--run-dir", str(tmp_path / "r"), "--embedding", "scratch"])
    assert "--model seed" in read_error_line(capsys, rc)


def test_preset_best_trains_a_stacked_ensemble(toy_csv, tmp_path, capsys):
    run = tmp_path / "best"
    rc = main(["train", "--preset", "best", "--data", str(toy_csv), "--run-dir", str(run), "--epochs", "5",
               "--embedding-dim", "8", "--threads", "1", "--hash-bits", "12"])
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert manifest["family"] == "ensemble"
    assert [m["family"] for m in manifest["config"]["members"]] == ["nblinear", "cnn"]
    assert (run / "loss.png").is_file()  # the neural member's training curve


# -- hostile data files ------------------------------------------------------------------------


def test_a_50_mb_review_is_refused_naming_its_row(tmp_path, capsys, toy_csv_writer):
    data = toy_csv_writer(tmp_path / "big.csv", n=60)
    with open(data, "a", encoding="utf-8") as fh:
        fh.write('"' + "great film " * (50 * 1024 * 1024 // 11) + '",1\n')
    rc = main(["train", "--data", str(data), "--run-dir", str(tmp_path / "run"), "--hash-bits", "12"])
    line = read_error_line(capsys, rc)
    assert "big.csv: row 61: text of 52,428," in line and "over the limit of 1,000,000" in line
    assert not (tmp_path / "run").exists()


def test_a_50_mb_line_to_score_is_refused_naming_its_line(run, tmp_path, capsys):
    run_dir, _, _ = run
    src = tmp_path / "in.txt"
    src.write_text("fine\n" + "x" * (50 * 1024 * 1024) + "\n")
    dest = tmp_path / "out.jsonl"
    rc = main(["predict", "--model", str(run_dir / "model"), "--input", str(src), "--output", str(dest)])
    assert "in.txt: line 2: text of more than 1,000,000 characters is over the limit" in read_error_line(capsys, rc)
    assert not dest.exists()


def test_test_rows_found_in_training_data_are_warned_about(tmp_path, capsys, monkeypatch, toy_csv_writer):
    train = toy_csv_writer(tmp_path / "train.csv", n=200, seed=1)
    test = toy_csv_writer(tmp_path / "test.csv", n=40, seed=2)
    rows = train.read_text().splitlines()[1:4]  # three training rows copied into the test file
    with open(test, "a", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")
    monkeypatch.setenv("REVIEWSENSE_QUIET", "0")
    rc = main(["train", "--data", str(train), "--test-data", str(test), "--run-dir", str(tmp_path / "run"),
               "--hash-bits", "12"])
    assert rc == 0
    err = capsys.readouterr().err.splitlines()
    assert "reviewsense: warning: 3 test text(s) also appear in the training data; test metrics will be " \
           "optimistic" in err


def test_group_column_with_imdb_is_refused(imdb_archive, tmp_path, capsys):
    rc = main(["train", "--data", str(imdb_archive), "--group-column", "movie", "--run-dir", str(tmp_path / "r")])
    assert "IMDB is split by movie already" in read_error_line(capsys, rc)


# -- data files: separators, encodings, columns, folders, types --------------------------------


def test_sep_and_encoding_flags_reach_training_and_prediction(toy_csv, tmp_path, capsys):
    import pandas as pd

    frame = pd.read_csv(toy_csv)
    frame["text"] = frame["text"] + ", café"
    data = tmp_path / "avis.csv"
    data.write_bytes(frame.to_csv(index=False, sep=";").encode("cp1252"))
    run = tmp_path / "run"
    rc = main(["train", "--data", str(data), "--sep", ";", "--encoding", "cp1252", "--run-dir", str(run),
               "--hash-bits", "16"])
    assert rc == 0, capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["sep"] == ";" and config["data"]["encoding"] == "cp1252"
    utf8 = tmp_path / "utf8.csv"
    frame[["text"]].head(20).to_csv(utf8, index=False)
    cp1252 = tmp_path / "cp1252.csv"
    cp1252.write_bytes(frame[["label", "text"]].head(20).to_csv(index=False, sep="|").encode("cp1252"))
    out_utf8, out_cp = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(["predict", "--model", str(run / "model"), "--input", str(utf8), "--output", str(out_utf8)]) == 0
    assert main(["predict", "--model", str(run / "model"), "--input", str(cp1252), "--output", str(out_cp),
                 "--sep", "|", "--encoding", "cp1252"]) == 0
    assert out_cp.read_text() == out_utf8.read_text()
    capsys.readouterr()
    rc = main(["predict", "--model", str(run / "model"), "--input", str(cp1252), "--output", str(out_cp),
               "--sep", ";"])
    assert "no 'text' column" in read_error_line(capsys, rc)


def test_data_describe_refuses_texts_that_are_not_text(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": [b"I was moved", b"dull"], "label": [1, 0]}), path)
    rc = main(["data", "describe", "--data", str(path)])
    assert "d.parquet: row 1: 'text' is bytes, not text" in read_error_line(capsys, rc)


@pytest.mark.parametrize(("content", "flags", "message"), [
    ("text,label,text\na,1,b\nc,0,d\n", [], "duplicate column name(s) 'text'"),
    ("text,label\na,1\nc,0\n", ["--text-column", "label"], "text column and label column are both 'label'"),
    ("avis;note\nbien;1\nmal;0\n", [], "give --sep ';'"),
    ('text,label\n"open quote,1\n', [], "check the separator (--sep) and the encoding (--encoding)"),
    ("text,label\na,1\nc,0\n", ["--encoding", "klingon"], "unknown encoding 'klingon'"),
])
def test_data_file_problems_are_one_line(tmp_path, capsys, content, flags, message):
    path = tmp_path / "d.csv"
    path.write_text(content)
    rc = main(["data", "describe", "--data", str(path), *flags])
    assert message in read_error_line(capsys, rc)


def test_data_describe_utf16_and_semicolons_without_flags(tmp_path, capsys):
    path = tmp_path / "excel.csv"
    path.write_bytes("text;label\ndéjà vu, great;1\nawful;0\n".encode("utf-16"))
    assert main(["data", "head", "--data", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["[1] déjà vu, great", "[0] awful"]


def test_class_folders_extra_folder_and_nested_files(tmp_path, capsys):
    for label in ("neg", "pos"):
        (tmp_path / label / "2019").mkdir(parents=True)
        (tmp_path / label / "top.txt").write_text(f"{label} top")
        (tmp_path / label / "2019" / "deep.txt").write_text(f"{label} deep")
    assert main(["data", "describe", "--data", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 4
    (tmp_path / "neutral").mkdir()
    rc = main(["data", "describe", "--data", str(tmp_path), "--classes", "neg,pos"])
    assert "neutral/ is not one of the declared classes" in read_error_line(capsys, rc)
    (tmp_path / "neutral").rmdir()
    (tmp_path / "pos" / "2019" / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    rc = main(["data", "describe", "--data", str(tmp_path)])
    assert "gone.txt: broken symbolic link" in read_error_line(capsys, rc)


def test_a_run_folder_another_train_is_writing_into_is_refused(tmp_path, capsys, toy_csv_writer):
    """Two ``train`` processes into one new run folder: the second, finding the folder held by
    the first (its lock), stops in one line before reading data; the first's run is whole."""
    from reviewsense.run_folder import held

    data = toy_csv_writer(tmp_path / "toy.csv")
    run = tmp_path / "run"
    with held(run):  # what a running `train` holds
        rc = main(["train", "--data", str(data), "--run-dir", str(run), "--hash-bits", "12"])
        line = read_error_line(capsys, rc)
        assert "another reviewsense train is writing into it" in line and str(run) in line
        assert not (run / "config.json").exists()
    assert main(["train", "--data", str(data), "--run-dir", str(run), "--hash-bits", "12"]) == 0  # free again
