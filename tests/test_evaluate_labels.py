"""``reviewsense evaluate`` matches the data's labels to the model's classes by name (numbers by
value) and refuses the ones the model does not know; without ``--data`` it reads IMDB only for
a model trained on IMDB, and it reuses the columns the model was trained on. ``--threshold``
(CLI) and ``threshold`` (API) are refused for a model of more than two classes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from error_line import read_error_line

from reviewsense.cli import main

WORDS = {0: ["awful", "boring", "dull", "worst"], 1: ["okay", "uneven", "average", "patchy"],
         2: ["great", "moving", "superb", "loved"]}
FILLER = ["the", "film", "plot", "acting", "a", "was", "and", "it"]
FAST = ["--hash-bits", "12"]
COLUMNS = ["--text-column", "review", "--label-column", "stars"]  # the stars model's


def _rows(n: int, seed: int, classes: int = 3) -> list[tuple[str, int]]:
    """(text, class index) of ``classes`` classes: filler and two words of the class."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % classes if classes == 3 else 2 * (i % 2)  # two classes: the first and the last
        words = [*rng.choice(FILLER, 5), *rng.choice(WORDS[label], 2)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def _csv(path, rows, names, text="text", label="label"):
    """A CSV of ``rows`` with class ``i`` written as ``names[i]``."""
    path.write_text(f"{text},{label}\n" + "".join(f"{t},{names[y]}\n" for t, y in rows), encoding="utf-8")
    return path


def _train(root, names, *extra, text="text", label="label"):
    data = _csv(root / "train.csv", _rows(300, 0), names, text, label)
    argv = ["train", "--data", str(data), "--run-dir", str(root / "run"), *FAST, *extra]
    assert main(argv) == 0
    return root / "run" / "model"


@pytest.fixture(scope="module")
def sentiment3(tmp_path_factory):
    """A model of the classes negative, neutral, positive."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REVIEWSENSE_QUIET", "1")
        return _train(tmp_path_factory.mktemp("sentiment3"), ["negative", "neutral", "positive"])


@pytest.fixture(scope="module")
def stars(tmp_path_factory):
    """A model of the classes 1, 3, 5 (stars), trained on columns named review and stars."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REVIEWSENSE_QUIET", "1")
        return _train(tmp_path_factory.mktemp("stars"), ["1", "3", "5"], "--text-column", "review",
                      "--label-column", "stars", text="review", label="stars")


@pytest.fixture(scope="module")
def badgood(tmp_path_factory):
    """A two-class model of the classes bad, good."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REVIEWSENSE_QUIET", "1")
        root = tmp_path_factory.mktemp("badgood")
        data = _csv(root / "train.csv", _rows(300, 0, classes=2), ["bad", "", "good"])
        assert main(["train", "--data", str(data), "--run-dir", str(root / "run"), "--classes", "bad,good", *FAST]) == 0
        return root / "run" / "model"


def _evaluate(capsys, *argv):
    assert main(["evaluate", *map(str, argv)]) == 0
    return json.loads(capsys.readouterr().out.split("\n\nper class")[0])


# -- 1. labels matched by name ----------------------------------------------------------------


@pytest.mark.parametrize("names", [["0", "", "1"], ["neg", "", "pos"], ["false", "", "true"]])
def test_a_k_class_model_refuses_a_generic_pair_it_does_not_have(sentiment3, tmp_path, capsys, names):
    data = _csv(tmp_path / "d.csv", _rows(60, 1, classes=2), names)
    out = tmp_path / "m.json"
    rc = main(["evaluate", "--model", str(sentiment3), "--data", str(data), "--output", str(out)])
    line = read_error_line(capsys, rc)
    assert "not classes of the model" in line and "negative, neutral, positive" in line
    assert "--classes NEG,POS" not in line
    assert not out.exists()


def test_a_k_class_model_matches_negative_and_positive_by_name(sentiment3, tmp_path, capsys):
    """IMDB's labels (negative, positive) on a negative/neutral/positive model: positive is 'positive'."""
    data = _csv(tmp_path / "d.csv", _rows(60, 1, classes=2), ["negative", "", "positive"])
    metrics = _evaluate(capsys, "--model", sentiment3, "--data", data)
    assert metrics["per_class"]["positive"]["support"] == 30 and metrics["per_class"]["neutral"]["support"] == 0
    assert metrics["accuracy"] > 0.8


def test_a_k_class_model_on_the_imdb_archive_matches_by_name(sentiment3, imdb_archive, capsys):
    metrics = _evaluate(capsys, "--model", sentiment3, "--data", imdb_archive)
    assert metrics["per_class"]["positive"]["support"] == 2 and metrics["per_class"]["negative"]["support"] == 2
    assert metrics["per_class"]["neutral"]["support"] == 0


def test_numbered_classes_are_refused_by_value_not_mapped_by_position(stars, tmp_path, capsys):
    """Labels 1, 2, 3 on a model of 1, 3, 5: '2' is no class of the model (not 'accuracy 1.0')."""
    rows = _rows(60, 1)
    data = _csv(tmp_path / "d.csv", rows, ["1", "2", "3"], "review", "stars")
    rc = main(["evaluate", "--model", str(stars), "--data", str(data), *COLUMNS])
    line = read_error_line(capsys, rc)
    assert "'2'" in line and "1, 3, 5" in line and "--classes NEG,POS" not in line


@pytest.mark.parametrize("names", [["1.0", "3.0", "5.0"], ["5.0", "", "1"], ["1", "", "5.0"], ["01", "3", "5"]])
def test_numbers_match_classes_by_value(stars, tmp_path, capsys, names):
    rows = [r for r in _rows(60, 1) if names[r[1]]]
    data = _csv(tmp_path / "d.csv", rows, names, "review", "stars")
    metrics = _evaluate(capsys, "--model", stars, "--data", data, *COLUMNS)
    value = {name: float(name) for name in names if name}
    for i, name in enumerate(names):
        if name:
            cls = {1.0: "1", 3.0: "3", 5.0: "5"}[value[name]]
            assert metrics["per_class"][cls]["support"] == sum(1 for r in rows if r[1] == i)
    if names[1]:
        assert metrics["accuracy"] > 0.8


def test_json_numbers_match_classes_by_value(stars, tmp_path, capsys):
    rows = _rows(60, 1)
    values = [1, 3.0, "5"]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"review": t, "stars": values[y]}) + "\n" for t, y in rows))
    metrics = _evaluate(capsys, "--model", stars, "--data", data, *COLUMNS)
    assert [metrics["per_class"][c]["support"] for c in ("1", "3", "5")] == [20, 20, 20]
    assert metrics["accuracy"] > 0.8


def _folders(root, rows, names):
    """One sub-folder per class, named ``names[i]``, one .txt per row."""
    for i, (text, label) in enumerate(rows):
        (root / names[label]).mkdir(parents=True, exist_ok=True)
        (root / names[label] / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


def test_class_folders_are_matched_to_a_k_class_model_by_name(sentiment3, stars, tmp_path, capsys):
    rows = _rows(60, 1, classes=2)
    named = _folders(tmp_path / "named", rows, ["negative", "", "positive"])
    (named / "unsup").mkdir()
    metrics = _evaluate(capsys, "--model", sentiment3, "--data", named)
    assert metrics["per_class"]["positive"]["support"] == 30 and metrics["accuracy"] > 0.8
    line = read_error_line(capsys, main(["evaluate", "--model", str(sentiment3), "--data",
                                         str(_folders(tmp_path / "generic", rows, ["neg", "", "pos"]))]))
    assert "'neg', 'pos' are not classes of the model" in line and "--classes NEG,POS" not in line
    numbered = _folders(tmp_path / "numbered", rows, ["1.0", "", "5"])
    assert _evaluate(capsys, "--model", stars, "--data", numbered)["per_class"]["1"]["support"] == 30


def test_a_two_class_model_refuses_three_classes(badgood, tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", _rows(60, 1), ["bad", "meh", "good"])
    line = read_error_line(capsys, main(["evaluate", "--model", str(badgood), "--data", str(data)]))
    assert "'meh'" in line and "bad, good" in line


def test_a_two_class_model_never_reads_a_name_of_its_own_as_the_other_side(tmp_path, capsys):
    """0/1 labels on a model of the classes 1, 5: '1' is its negative class by name, its
    positive one by position; refused rather than guessed."""
    from reviewsense.data.dataset import Dataset
    from reviewsense.data.files import align_to_model

    data = Dataset(texts=["a", "b"], labels=np.array([0, 1]), name="d.csv", class_names=("0", "1"))
    with pytest.raises(Exception, match=r"d.csv: label '0' is not a class of the model \(its classes: 1, 5\)"):
        align_to_model(data, ("1", "5"))
    swapped = align_to_model(Dataset(texts=["a"], labels=np.array([1]), class_names=("good", "bad")), ("bad", "good"))
    assert swapped.labels.tolist() == [0] and swapped.class_names == ("bad", "good")
    assert align_to_model(data, ("bad", "good")).labels.tolist() == [0, 1]  # a generic pair: negative first


@pytest.mark.parametrize("names", [["bad", "", "good"], ["0", "", "1"], ["neg", "", "pos"], ["false", "", "true"]])
def test_a_two_class_model_still_takes_its_names_and_the_generic_pairs(badgood, tmp_path, capsys, names):
    data = _csv(tmp_path / "d.csv", _rows(60, 1, classes=2), names)
    metrics = _evaluate(capsys, "--model", badgood, "--data", data)
    assert metrics["accuracy"] > 0.8 and metrics["per_class"]["good"]["support"] == 30


# -- 2. no --data: IMDB only for a model trained on IMDB; the columns of training -------------


def test_evaluate_without_data_asks_for_it_when_the_model_was_not_trained_on_imdb(badgood, imdb_archive, capsys,
                                                                                  monkeypatch):
    monkeypatch.setenv("REVIEWSENSE_IMDB", str(imdb_archive))  # IMDB at hand: it would be read today
    line = read_error_line(capsys, main(["evaluate", "--model", str(badgood)]))
    assert "--data" in line and "train.csv" in line


def test_evaluate_without_data_reads_imdb_for_a_model_trained_on_imdb(badgood, imdb_archive, capsys, monkeypatch,
                                                                     tmp_path):
    from reviewsense.export import load_model, save_model

    imdb_model = save_model(load_model(badgood), tmp_path / "imdb-model",
                            training={"config": {"data": {"path": None, "text_column": "text",
                                                          "label_column": "label"}},
                                      "data": str(imdb_archive)})
    monkeypatch.setenv("REVIEWSENSE_IMDB", str(imdb_archive))
    metrics = _evaluate(capsys, "--model", imdb_model)
    assert metrics["count"] == 4


def test_evaluate_reuses_the_columns_of_training(stars, tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", _rows(60, 1), ["1", "3", "5"], "review", "stars")
    assert _evaluate(capsys, "--model", stars, "--data", data)["accuracy"] > 0.8
    other = _csv(tmp_path / "o.csv", _rows(60, 1), ["1", "3", "5"], "body", "score")
    given = _evaluate(capsys, "--model", stars, "--data", other, "--text-column", "body", "--label-column", "score")
    assert given["accuracy"] > 0.8
    line = read_error_line(capsys, main(["evaluate", "--model", str(stars), "--data", str(other)]))
    assert "no 'review' column" in line


# -- 3. threshold: two classes only -------------------------------------------------------------


def test_predict_refuses_a_threshold_for_a_k_class_model(sentiment3, capsys):
    line = read_error_line(capsys, main(["predict", "--model", str(sentiment3), "--threshold", "0.3", "great"]))
    assert "--threshold" in line and "3 classes" in line
    assert main(["predict", "--model", str(sentiment3), "--format", "jsonl", "great moving"]) == 0
    assert json.loads(capsys.readouterr().out)["label_name"] == "positive"


def test_predict_help_says_threshold_is_for_two_classes(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "two classes only" in " ".join(capsys.readouterr().out.split()).split("--threshold THRESHOLD")[-1][:200]


def test_the_api_refuses_a_threshold_for_a_k_class_model(sentiment3):
    from fastapi.testclient import TestClient

    from reviewsense.export import load_model
    from reviewsense.serving.app import create_app

    client = TestClient(create_app(load_model(sentiment3)))
    refused = client.post("/v1/predict", json={"texts": ["great"], "threshold": 0.3})
    assert refused.status_code == 422 and "threshold" in refused.json()["detail"]
    assert client.post("/v1/predict", json={"texts": ["great"]}).status_code == 200
    body = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["requestBody"]
    threshold = body["content"]["application/json"]["schema"]["properties"]["threshold"]
    assert "two classes only" in threshold["description"] and "422" in threshold["description"]


def test_evaluate_json_prints_one_json_document_a_pipe_can_read(sentiment3, tmp_path, capsys):
    """``--json``: stdout is the metrics JSON alone (per class, confusion, by length included),
    so ``| jq`` works for a K-class model; without it, people get the tables after the JSON."""
    data = _csv(tmp_path / "test.csv", _rows(60, 7), ["negative", "neutral", "positive"])
    assert main(["evaluate", "--model", str(sentiment3), "--data", str(data), "--by-length", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)  # the whole of stdout
    assert printed["count"] == 60 and "per_class" in printed and "by_length" in printed
    assert main(["evaluate", "--model", str(sentiment3), "--data", str(data)]) == 0
    assert "confusion matrix" in capsys.readouterr().out
