"""The CLI's checks: evaluate with the model's classes and on one class, arguments out of
range, splits too small to train or measure on, and ``reviewsense info``."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from error_line import read_error_line

from reviewsense.cli import main

FAST = ["--hash-bits", "12"]  # nblinear: a toy model in about a second
BAD_GOOD = ["--classes", "bad,good", *FAST]


def _write(path, data, names=("bad", "good"), rows=None):
    """A CSV of ``data`` (a Dataset) with its labels written as ``names``."""
    index = range(len(data)) if rows is None else rows
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("text,label\n")
        fh.writelines(f"{data.texts[i]},{names[int(data.labels[i])]}\n" for i in index)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory, sentiment_corpus):
    """An nblinear model trained with ``--classes bad,good``: (model dir, a fresh labelled set)."""
    root = tmp_path_factory.mktemp("checks")
    data = _write(root / "train.csv", sentiment_corpus(300, seed=1))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REVIEWSENSE_QUIET", "1")
        mp.setenv("REVIEWSENSE_CACHE_DIR", str(root / "cache"))
        rc = main(["train", "--data", str(data), "--classes", "bad,good", "--run-dir", str(root / "run"), *FAST])
    assert rc == 0
    return root / "run" / "model", sentiment_corpus(200, seed=2)




def _usage_error(capsys, argv) -> str:
    """An argument refused by the parser: exit 2 and argparse's one error line."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# -- evaluate: the model's classes -----------------------------------------------------------


def test_evaluate_takes_the_classes_from_the_model(model, tmp_path, capsys):
    path, fresh = model
    data = _write(tmp_path / "fresh.csv", fresh)
    assert main(["evaluate", "--model", str(path), "--data", str(data)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] > 0.8 and metrics["count"] == 200


def test_evaluate_with_the_models_own_classes_given(model, tmp_path, capsys):
    path, fresh = model
    data = _write(tmp_path / "fresh.csv", fresh)
    assert main(["evaluate", "--model", str(path), "--data", str(data), "--classes", "bad,good"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.8


@pytest.mark.parametrize("classes", ["good,bad", "awful,great"])
def test_evaluate_refuses_classes_that_contradict_the_model(model, tmp_path, capsys, classes):
    path, fresh = model
    data = _write(tmp_path / "fresh.csv", fresh, names=classes.split(","))
    out = tmp_path / "m.json"
    rc = main(["evaluate", "--model", str(path), "--data", str(data), "--classes", classes, "--output", str(out)])
    line = read_error_line(capsys, rc)
    assert f"--classes {classes} contradicts the model's classes bad,good" in line
    assert not out.exists()


@pytest.mark.parametrize("classes", ["0,1", "false,true", "neg,pos", "negative,positive"])
def test_evaluate_accepts_a_generic_pair_in_the_generic_order(model, tmp_path, capsys, classes):
    path, fresh = model
    data = _write(tmp_path / "fresh.csv", fresh, names=classes.split(","))
    assert main(["evaluate", "--model", str(path), "--data", str(data)]) == 0
    without = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model", str(path), "--data", str(data), "--classes", classes]) == 0
    given = json.loads(capsys.readouterr().out)
    assert given == without and given["accuracy"] > 0.8  # 0 is bad, 1 is good: the same answer


@pytest.mark.parametrize("classes", ["1,0", "pos,neg", "true,false"])
def test_evaluate_refuses_a_generic_pair_in_the_reversed_order(model, tmp_path, capsys, classes):
    path, fresh = model
    data = _write(tmp_path / "fresh.csv", fresh, names=classes.split(","))
    rc = main(["evaluate", "--model", str(path), "--data", str(data), "--classes", classes])
    assert f"--classes {classes} contradicts the model's classes bad,good" in read_error_line(capsys, rc)


# -- files that are not UTF-8 -------------------------------------------------------------------


def _reading(command: str, model_dir, data, tmp_path) -> list[str]:
    """The arguments of a command that reads ``data`` (writing under ``tmp_path``: p.jsonl, r/)."""
    return {"predict-table": ["predict", "--model", str(model_dir), "--input", str(data), "--format", "table"],
            "predict-stream": ["predict", "--model", str(model_dir), "--input", str(data), "--output",
                               str(tmp_path / "p.jsonl"), "--chunk-size", "7"],
            "evaluate": ["evaluate", "--model", str(model_dir), "--data", str(data)],
            "describe": ["data", "describe", "--data", str(data), "--classes", "bad,good"],
            "train": ["train", "--data", str(data), "--classes", "bad,good", "--run-dir", str(tmp_path / "r"),
                      *FAST]}[command]


@pytest.mark.parametrize("command", ["predict-table", "predict-stream", "evaluate", "describe", "train"])
def test_a_file_that_is_not_utf8_is_read_with_one_warning(model, tmp_path, capsys, command):
    path, fresh = model
    data = tmp_path / "cp.csv"
    rows = "".join(f"{t} caf\xe9,{'good' if y else 'bad'}\n" if i % 10 == 0 else f"{t},{'good' if y else 'bad'}\n"
                   for i, (t, y) in enumerate(zip(fresh.texts, fresh.labels, strict=True)))
    data.write_bytes(("text,label\n" + rows).encode("cp1252"))
    argv = _reading(command, path, data, tmp_path)
    assert main(argv) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == [f"reviewsense: warning: {data}: 20 text(s) hold bytes that are not UTF-8 (replaced by "
                      "U+FFFD); if the file is not UTF-8, give --encoding, e.g. cp1252"]
    assert main([*argv, "--encoding", "cp1252", *(["--overwrite"] if command == "train" else [])]) == 0
    assert "warning" not in capsys.readouterr().err


# -- evaluate: one class ----------------------------------------------------------------------


@pytest.mark.parametrize("only", [0, 1])
def test_evaluate_on_one_class_reports_what_is_defined(model, tmp_path, capsys, only):
    path, fresh = model
    rows = np.flatnonzero(fresh.labels == only)[:40]
    data = _write(tmp_path / "one.csv", fresh, rows=rows)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--model", str(path), "--data", str(data), "--output", str(out)]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)
    assert metrics == json.loads(out.read_text())
    assert metrics["count"] == 40 and metrics["accuracy"] > 0.8 and metrics["loss"] > 0
    assert metrics["predicted_positive"] == pytest.approx(1 - metrics["accuracy"] if only == 0
                                                          else metrics["accuracy"], abs=1e-6)
    assert metrics["roc_auc"] is None and "roc_auc" in metrics["undefined"]
    if only == 0:
        assert metrics["recall"] is None and metrics["f1"] is None
    else:
        assert metrics["recall"] == metrics["accuracy"] and metrics["f1"] is not None
    name = "bad" if only == 0 else "good"
    assert captured.err.strip().splitlines() == [f"reviewsense: warning: {metrics['note']}"]
    assert f"only one class ('{name}')" in metrics["note"] and f"accuracy is the recall of '{name}'" in metrics["note"]


def test_training_on_one_class_is_still_refused(model, tmp_path, capsys):
    _, fresh = model
    data = _write(tmp_path / "one.csv", fresh, rows=np.flatnonzero(fresh.labels == 1))
    rc = main(["train", "--data", str(data), "--classes", "bad,good", "--run-dir", str(tmp_path / "r"), *FAST])
    assert "only one class ('good') is present" in read_error_line(capsys, rc)


# -- arguments out of range -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "inf", "high"])
def test_predict_threshold_outside_0_1_is_refused(model, capsys, value):
    path, _ = model
    line = _usage_error(capsys, ["predict", "--model", str(path), "--threshold", value, "a great film"])
    assert "argument --threshold" in line


@pytest.mark.parametrize("value, label", [("0", 1), ("1", 0)])
def test_predict_threshold_at_the_ends(model, capsys, value, label):
    path, _ = model
    assert main(["predict", "--model", str(path), "--threshold", value, "--format", "jsonl",
                 "a wonderful story", "an awful plot"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == [label, label]


@pytest.mark.parametrize("argv", [
    ["train", "--seed", "-1"],
    ["train", "--seed", "4294967295"],
    ["evaluate", "--model", "m", "--seed", "-1"],
    ["pretrain", "--output", "v", "--seed", "-3"],
])
def test_negative_or_huge_seed_is_refused(capsys, argv):
    assert "argument --seed: must be from 0 to 4294967294" in _usage_error(capsys, argv)


@pytest.mark.parametrize(("argv", "message"), [
    (["-n", "-3"], "argument -n: must be at least 1, got -3"),
    (["-n", "0"], "argument -n: must be at least 1, got 0"),
    (["--width", "-1"], "argument --width: must be at least 0, got -1"),
    (["--width", "x"], "argument --width: expected a whole number, got 'x'"),
])
def test_data_head_counts_out_of_range_are_refused(toy_csv, capsys, argv, message):
    assert message in _usage_error(capsys, ["data", "head", "--data", str(toy_csv), *argv])


def test_data_head_shows_n_rows_and_whole_texts_at_width_0(toy_csv, capsys):
    assert main(["data", "head", "--data", str(toy_csv), "-n", "2", "--width", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all(line.strip() and "…" not in line for line in out)


@pytest.mark.parametrize("value", ["1.5", "0", "-0.2", "1.0001", "nan", "x"])
def test_test_size_is_a_fraction_or_a_count(capsys, value):
    assert "argument --test-size" in _usage_error(capsys, ["train", "--test-size", value])


def test_a_test_set_too_small_to_measure_is_refused(model, tmp_path, capsys):
    _, fresh = model
    data = _write(tmp_path / "d.csv", fresh)
    rc = main(["train", "--data", str(data), "--test-size", "2", "--run-dir", str(tmp_path / "r"), *BAD_GOOD])
    line = read_error_line(capsys, rc)
    assert "--test-size of 2 holds out 2 row(s) of 200: too few to measure anything (at least 5)" in line
    assert not (tmp_path / "r").exists()


def test_a_test_size_count_is_held_out(model, tmp_path, capsys):
    _, fresh = model
    data = _write(tmp_path / "d.csv", fresh)
    run = tmp_path / "r"
    assert main(["train", "--data", str(data), "--test-size", "30", "--run-dir", str(run), *BAD_GOOD]) == 0
    assert json.loads((run / "metrics.json").read_text())["test"]["count"] == 30


def test_a_validation_split_that_leaves_one_class_to_train_on_is_one_line(model, tmp_path, capsys):
    _, fresh = model
    data = _write(tmp_path / "d.csv", fresh)
    rc = main(["train", "--data", str(data), "--validation-size", "0.99", "--run-dir", str(tmp_path / "r"),
               "--seed", "1", "--no-stratify", *BAD_GOOD])
    line = read_error_line(capsys, rc)
    assert re.search(r"--validation-size of 0\.99 leaves the training split 2 row\(s\) of one class only "
                     r"\('(bad|good)'\); hold out fewer rows", line), line


def test_a_validation_split_of_one_class_is_one_line(tmp_path, capsys):
    # 21 rows left after the test split; one held out for validation: of one class by necessity
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"{'fine great' if i % 2 else 'dull awful'} {i},{i % 2}\n"
                                             for i in range(26)))
    rc = main(["train", "--data", str(path), "--validation-size", "1", "--run-dir", str(tmp_path / "r"), *FAST])
    line = read_error_line(capsys, rc)
    assert "--validation-size of 1 leaves the held-out split 1 row(s) of one class only" in line
    assert "hold out more rows" in line


def test_min_df_that_leaves_no_ngram_is_refused(model, tmp_path, capsys):
    _, fresh = model
    data = _write(tmp_path / "d.csv", fresh)
    rc = main(["train", "--data", str(data), "--min-df", "100000", "--run-dir", str(tmp_path / "r"), *BAD_GOOD])
    line = read_error_line(capsys, rc)
    match = re.search(r"--min-df 100000: no n-gram occurs in at least 100,000 of the (\d+) training texts "
                      r"\(the most common is in (\d+)\); use --min-df (\d+) or less", line)
    assert match, line
    texts, most, hint = map(int, match.groups())
    assert most == hint and 1 <= hint <= texts
    assert main(["train", "--data", str(data), "--min-df", str(hint), "--run-dir", str(tmp_path / "ok"),
                 *BAD_GOOD]) == 0


def test_a_test_split_of_negatives_only_reports_f1_as_n_a(tmp_path, capsys):
    from reviewsense.pipeline import DataSpec, load_splits

    n, n_test = 60, 12
    test_rows = set(np.random.default_rng(1).permutation(n)[:n_test].tolist())  # the split train uses
    lines, k = ["text,label"], 0
    for i in range(n):
        label = 0 if i in test_rows else (k := k + 1) % 2
        lines.append(f"{'great fine wonderful' if label else 'awful bad dull'} film {i},{label}")
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    assert set(load_splits(DataSpec(path=str(path), stratify=False)).test.labels.tolist()) == {0}  # precondition
    capsys.readouterr()
    run = tmp_path / "r"
    assert main(["train", "--data", str(path), "--run-dir", str(run), "--no-stratify", *FAST]) == 0
    out, err = capsys.readouterr()
    assert "f1 n/a" in out and "roc_auc n/a" in out
    assert err.splitlines() == ["reviewsense: warning: the --test-size split holds one class only ('0', 12 rows): "
                                "ROC-AUC and the metrics of the other class are undefined"]  # shown when quiet
    assert "F1 n/a" in (run / "README.md").read_text()
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert test["f1"] is None and test["count"] == 12 and "note" in test


# -- info ---------------------------------------------------------------------------------------


def test_info_prints_what_the_folder_holds(model, capsys):
    path, _ = model
    assert main(["info", "--model", str(path)]) == 0
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert lines["family"] == "nblinear"
    assert lines["classes"] == "bad (0, negative), good (1, positive)"
    assert lines["test"].startswith("accuracy ") and "(60 texts)" in lines["test"]
    assert lines["training data"].endswith("train.csv")
    assert lines["rows"] == "train 192, validation 48, test 60"
    assert lines["format"] == "reviewsense-model v2"
    assert "checksums verified" in lines["size on disk"]
    assert lines["created"].startswith("20")


def test_info_json(model, capsys):
    path, _ = model
    assert main(["info", "--model", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    manifest = json.loads((path / "manifest.json").read_text())
    assert info["family"] == "nblinear" and info["class_names"] == ["bad", "good"]
    assert info["metrics"]["test"]["accuracy"] == manifest["metrics"]["test"]["accuracy"]
    assert info["metrics"]["test"]["count"] == 60
    assert info["created"] == manifest["created"] and info["format_version"] == 2
    assert info["size_bytes"] == sum(p.stat().st_size for p in path.iterdir())
    assert info["training"]["rows"] == {"train": 192, "validation": 48, "test": 60}
    assert info["training"]["settings"]["model"] == "nblinear"


def test_info_on_a_bad_folder_is_one_line(model, tmp_path, capsys):
    assert "not a model folder" in read_error_line(capsys, main(["info", "--model", str(tmp_path / "none")]))
    copy = shutil.copytree(model[0], tmp_path / "model")
    (copy / "manifest.json").write_text("{broken")
    assert "not valid JSON" in read_error_line(capsys, main(["info", "--model", str(copy)]))


@pytest.mark.parametrize("command", [["info"], ["predict", "--format", "jsonl", "text"], ["explain", "text"],
                                     ["evaluate"]])
def test_a_manifest_without_two_class_names_is_one_line(model, tmp_path, capsys, command):
    path, fresh = model
    copy = shutil.copytree(path, tmp_path / "model")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["class_names"] = []
    (copy / "manifest.json").write_text(json.dumps(manifest))
    extra = ["--data", str(_write(tmp_path / "d.csv", fresh))] if command == ["evaluate"] else []
    rc = main([command[0], "--model", str(copy), *command[1:], *extra])
    assert "'class_names' must be two different names, negative first (got [])" in read_error_line(capsys, rc)


@pytest.mark.parametrize(("family", "message"), [(None, "no model family (known: nblinear, seed, "),
                                               ("zzz", "unknown model family 'zzz' (known: nblinear, seed, ")])
def test_info_on_a_manifest_without_a_known_family_is_one_line(model, tmp_path, capsys, family, message):
    copy = shutil.copytree(model[0], tmp_path / "model")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest.pop("family")
    if family:
        manifest["family"] = family
    (copy / "manifest.json").write_text(json.dumps(manifest))
    for command in (["info"], ["predict", "--format", "jsonl", "text"]):
        line = read_error_line(capsys, main([command[0], "--model", str(copy), *command[1:]]))
        assert message in line, line


def test_info_is_listed_with_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["info", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "reviewsense info --model runs/imdb/model --json" in out


@pytest.mark.parametrize(("flags", "expected"), [
    (["--model", "seed", "--C", "0.01"], "--C applies to --model nblinear, not to --model seed"),
    (["--model", "seed", "--binary"], "--binary applies to --model nblinear, not to --model seed"),
    (["--hidden-units", "64"], "--hidden-units applies to --model seed, --model sentence, not to --model nblinear"),
    (["--epochs", "3"], "--epochs applies to --model seed, --model cnn, --model sentence, --model transformer, "
                        "not to --model nblinear"),
    (["--model", "cnn", "--hash-bits", "12"], "--hash-bits applies to --model nblinear, not to --model cnn"),
    (["--preset", "best", "--frozen-embedding"],
     "--frozen-embedding applies to --model seed, not to --preset best (nblinear + "),
    (["--preset", "best", "--model", "seed"], "--preset best builds its own models; drop --model seed"),
    (["--preset", "best", "--members", "nblinear,seed", "--filters", "8"],
     "--filters applies to --model cnn, not to --preset best (nblinear + seed)"),
    (["--members", "nblinear,seed"], "--members chooses the families of --preset best; add --preset best"),
])
def test_flags_another_model_would_ignore_are_refused(toy_csv, tmp_path, capsys, flags, expected):
    rc = main(["train", "--data", str(toy_csv), "--run-dir", str(tmp_path / "run"), *flags])
    assert expected in read_error_line(capsys, rc)
    assert not (tmp_path / "run").exists()


BYTE_CODECS = ["rot13", "base64", "zlib", "hex", "bz2", "punycode", "idna", "undefined"]


@pytest.mark.parametrize("encoding", BYTE_CODECS)
@pytest.mark.parametrize("command", ["predict-table", "predict-stream", "evaluate", "describe", "train"])
def test_an_encoding_that_is_not_a_text_encoding_is_one_line(model, tmp_path, capsys, command, encoding):
    """``--encoding rot13`` (bytes-to-bytes codecs, or ones that cannot replace bad bytes): one line
    naming the option and the value, exit 2 (before: a traceback)."""
    path, fresh = model
    data = _write(tmp_path / "d.csv", fresh)
    argv = _reading(command, path, data, tmp_path)
    line = read_error_line(capsys, main([*argv, "--encoding", encoding]))
    assert f"--encoding '{encoding}': not a text encoding" in line, line
    assert not (tmp_path / "p.jsonl").exists() and not (tmp_path / "r").exists()
