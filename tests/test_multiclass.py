"""More than two classes, end to end: data → every family → calibration → export → predict,
explain, the HTTP API."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
from error_line import read_error_line

from reviewsense import CNNClassifier, NBLinearClassifier, SeedClassifier, StackedClassifier
from reviewsense.cli import main
from reviewsense.export import load_model

WORDS = {"bad": ["awful", "boring", "dull", "worst"], "meh": ["okay", "uneven", "average", "patchy"],
         "good": ["great", "moving", "superb", "loved"]}
FILLER = ["the", "film", "plot", "acting", "a", "was", "and", "it"]


def _corpus(n: int, seed: int, rates=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    """Reviews of three classes in unequal shares: filler, two words of the class, one of any."""
    rng = np.random.default_rng(seed)
    names = list(WORDS)
    rows = []
    for _ in range(n):
        label = names[rng.choice(3, p=rates)]
        words = list(rng.choice(FILLER, 6)) + list(rng.choice(WORDS[label], 2)) + [rng.choice(sum(WORDS.values(), []))]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """A 3-class CSV and the default model trained on it by the CLI."""
    root = tmp_path_factory.mktemp("three")
    _corpus(900, 0).to_csv(root / "three.csv", index=False)
    assert main(["train", "--data", str(root / "three.csv"), "--hash-bits", "14", "--run-dir", str(root / "run")]) == 0
    return root


def test_three_labels_train_a_three_class_model_with_its_metrics(three):
    metrics = json.loads((three / "run" / "metrics.json").read_text())
    test = metrics["test"]
    assert test["accuracy"] > 0.8 and test["macro_f1"] > 0.75
    assert np.array(test["confusion_matrix"]).shape == (3, 3)
    model = load_model(three / "run" / "model")
    assert model.class_names == ("bad", "good", "meh") and model.metadata["format_version"] == 3
    assert model.predict_proba(["great moving film", "awful"]).shape == (2, 3)


def test_the_run_folder_shows_each_class_and_draws_the_confusion_matrix(three, tmp_path, capsys):
    """Per-class precision/recall/F1 in metrics.json and the model card, the confusion matrix
    as a table there and drawn in confusion.png; `evaluate --confusion-plot` draws it too."""
    from PIL import Image

    run = three / "run"
    test = json.loads((run / "metrics.json").read_text())["test"]
    card = (run / "README.md").read_text()
    assert set(test["per_class"]) == {"bad", "good", "meh"}
    for name, row in test["per_class"].items():
        assert f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} |" in card
    assert "![confusion matrix](confusion.png)" in card
    with Image.open(run / "confusion.png") as image:
        assert image.format == "PNG" and image.width > 300
    plot = tmp_path / "c.png"
    assert main(["evaluate", "--model", str(run / "model"), "--data", str(three / "three.csv"),
                 "--confusion-plot", str(plot), "--json"]) == 0
    capsys.readouterr()
    with Image.open(plot) as image:
        assert image.format == "PNG"


def test_a_text_without_words_gets_the_class_rates(three):
    model = load_model(three / "run" / "model")
    rates = np.bincount(pd.read_csv(three / "three.csv")["label"].map({"bad": 0, "good": 1, "meh": 2}),
                        minlength=3) / 900
    np.testing.assert_allclose(model.predict_proba([""])[0], rates, atol=0.04)  # 50/20/30 %, not a third each
    one = model.predict_proba(["superb"])[0]  # one word (which also comes up in other classes' reviews)
    assert one[1] > rates[1] + 0.05 and one.max() < 0.9  # a lean towards 'good', not a certainty


def test_predict_writes_every_class_in_each_format(three, tmp_path, capsys):
    model = str(three / "run" / "model")
    assert main(["predict", "--model", model, "--format", "jsonl", "great moving film", "awful dull"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label_name"] for r in rows] == ["good", "bad"]
    assert set(rows[0]["probabilities"]) == {"bad", "good", "meh"}
    assert rows[0]["probability"] == max(rows[0]["probabilities"].values())
    assert sum(rows[0]["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", model, "--output", str(out), "great moving film"]) == 0
    table = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(table[0]) == ["probability", "label", "label_name", "probability_bad", "probability_good",
                              "probability_meh"]
    assert float(table[0]["probability_good"]) == rows[0]["probabilities"]["good"]
    parquet = tmp_path / "p.parquet"
    assert main(["predict", "--model", model, "--output", str(parquet), "great moving film"]) == 0
    assert pd.read_parquet(parquet)["probability_good"].iloc[0] == pytest.approx(rows[0]["probabilities"]["good"])


def test_explanations_add_up_for_any_class(three):
    model = load_model(three / "run" / "model")
    text = "a great film with an awful plot"
    logits = model.predict_logits([text])[0]
    for label in ("bad", "good", "meh", None):
        e = model.explain(text, label=label)
        target = e.target
        assert e.bias + sum(e.features.values()) == pytest.approx(float(logits[target]), abs=1e-4)
        assert e.to_dict()["explained"] == model.class_names[target]
    assert model.explain(text).target == int(logits.argmax())
    with pytest.raises(Exception, match="class 'ugly' is not one of"):
        model.explain(text, label="ugly")


def test_the_api_returns_every_class(three):
    from fastapi.testclient import TestClient

    from reviewsense.serving.app import create_app

    client = TestClient(create_app(load_model(three / "run" / "model")))
    body = client.post("/v1/predict", json={"texts": ["great moving film"], "explain": True}).json()
    row = body["predictions"][0]
    assert row["label_name"] == "good" and set(row["probabilities"]) == {"bad", "good", "meh"}
    assert row["explanation"]["explained"] == "good"
    assert client.get("/v1/model").json()["class_names"] == ["bad", "good", "meh"]


@pytest.mark.parametrize("make", [
    lambda: NBLinearClassifier(hash_bits=12),
    lambda: SeedClassifier(embedding="scratch", embedding_dim=8, epochs=20, batch_size=32, n_jobs=1),
    lambda: CNNClassifier(embedding="scratch", embedding_dim=8, filters=8, epochs=10, learning_rate=1e-2,
                          n_jobs=1),
    lambda: StackedClassifier(linear=NBLinearClassifier(hash_bits=12),
                              network=CNNClassifier(embedding="scratch", embedding_dim=8, filters=4, epochs=2,
                                                    n_jobs=1)),
], ids=["nblinear", "seed", "cnn", "stacked"])
def test_every_family_learns_three_classes_and_saves_them(make, tmp_path):
    train, test = _corpus(600, 1), _corpus(200, 2)
    model = make().fit(train["text"], train["label"])
    proba = model.predict_proba(test["text"])
    assert proba.shape == (200, 3) and model.classes_.tolist() == ["bad", "good", "meh"]
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert model.score(test["text"], test["label"]) > 0.6
    text = "the acting was superb"
    e = model.predictor_.explain(text) if model.predictor_.can_explain else None
    if e is not None:
        assert e.bias + sum(e.features.values()) == pytest.approx(float(model.decision_function([text])[0, e.target]),
                                                                   abs=1e-3)
    model.save(tmp_path / "m")
    np.testing.assert_allclose(type(model).load(tmp_path / "m").predict_proba(test["text"]), proba, atol=1e-6)


def test_info_lists_every_class(three, capsys):
    assert main(["info", "--model", str(three / "run" / "model")]) == 0
    assert "3: bad (0), good (1), meh (2)" in capsys.readouterr().out


def test_a_class_with_no_training_row_is_refused(tmp_path):
    from reviewsense.data.dataset import Dataset, check_split
    from reviewsense.errors import DataError

    names = ("bad", "good", "meh")
    train = Dataset(["a", "b", "c", "d"], [0, 1, 0, 1], class_names=names)
    held = Dataset(["e", "f"], [2, 0], class_names=names)
    with pytest.raises(DataError, match="leaves no training row of class 'meh'"):
        check_split(train, held, "--validation-size", 0.2)


def test_the_same_seed_gives_the_same_multiclass_model(monkeypatch):
    """liblinear shuffles with a process-wide rand(): class fits in parallel threads would not repeat."""
    monkeypatch.setenv("REVIEWSENSE_THREADS", "2")
    train, test = _corpus(900, 3), _corpus(100, 4)
    first, second = (NBLinearClassifier(hash_bits=14).fit(train["text"], train["label"]) for _ in range(2))
    np.testing.assert_array_equal(first.decision_function(test["text"]), second.decision_function(test["text"]))


def test_a_declared_class_with_no_row_in_the_data_is_refused_before_the_run_folder(tmp_path, capsys):
    """``--classes a,b,c,zzz`` on data without a ``zzz`` row: one line naming the class and the
    labels found, exit 2, and no run folder written (not a half-written one)."""
    from error_line import read_error_line

    rows = [{"text": f"word{y} and some filler {i % 7}", "label": y} for i, y in enumerate("abc" * 40)]
    pd.DataFrame(rows).to_csv(tmp_path / "abc.csv", index=False)
    run = tmp_path / "run"
    rc = main(["train", "--data", str(tmp_path / "abc.csv"), "--classes", "a,b,c,zzz", "--run-dir", str(run)])
    line = read_error_line(capsys, rc)
    assert "'zzz'" in line and "no row" in line and "a, b, c" in line
    assert not run.exists() or not any(run.iterdir())


def test_an_explanation_of_another_class_keeps_its_row_consistent(three):
    """``explain(label=…)`` of a class that is not the top one: ``probability``, ``label`` and
    ``label_name`` all describe the predicted class (as a prediction row does); the explained
    class and its probability are named apart."""
    model = load_model(three / "run" / "model")
    text = "a great film with an awful plot"
    proba = model.predict_proba([text])[0]
    top = int(proba.argmax())
    other = (top + 1) % 3
    row = model.explain(text, label=other).to_dict()
    assert row["label"] == top and row["label_name"] == model.class_names[top]
    assert row["probability"] == pytest.approx(float(proba[top]), abs=1e-6)
    assert row["explained"] == model.class_names[other]
    assert row["explained_probability"] == pytest.approx(float(proba[other]), abs=1e-6)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("column", ["probabilities", "probability_good"])
def test_kept_columns_named_like_a_result_field_are_refused(three, tmp_path, capsys, fmt, column):
    """A K-class model's results hold ``probabilities`` (JSONL) and ``probability_<class>`` (CSV,
    Parquet): a kept input column of such a name would overwrite the data or give two columns of
    one name; it is one line, whatever the format, and nothing is written."""
    from error_line import read_error_line

    data = tmp_path / "in.csv"
    pd.DataFrame({"text": ["great film", "awful plot"], column: ["x", "y"]}).to_csv(data, index=False)
    out = tmp_path / f"out.{fmt}"
    rc = main(["predict", "--model", str(three / "run" / "model"), "--input", str(data), "--keep-columns", column,
               "--output", str(out)])
    assert column in read_error_line(capsys, rc)
    assert not out.exists()


def test_own_data_is_held_out_stratified_by_default(tmp_path, capsys):
    """Three classes, one rare: the test and validation splits hold each class in its share
    (the default for own data without a group column); --no-stratify holds out plain random rows,
    and --stratify with --group-column is one line."""
    from reviewsense.pipeline import DataSpec, load_splits

    path = tmp_path / "d.csv"
    labels = ["pos"] * 60 + ["neg"] * 30 + ["meh"] * 10
    path.write_text("text,label,group\n" + "".join(f"review {i} of {y},{y},g{i % 25}\n" for i, y in enumerate(labels)))
    for seed in range(5):
        splits = load_splits(DataSpec(path=str(path), test_size=0.2, validation_size=0.25), seed=seed)
        names = splits.test.class_names
        count = {part: dict(zip(names, np.bincount(getattr(splits, part).labels, minlength=3).tolist(), strict=True))
                 for part in ("train", "validation", "test")}
        assert count["test"] == {"meh": 2, "neg": 6, "pos": 12}
        assert count["validation"] == {"meh": 2, "neg": 6, "pos": 12}
    random = {tuple(np.bincount(load_splits(DataSpec(path=str(path), stratify=False), seed=s).test.labels,
                                minlength=3)) for s in range(5)}
    assert len(random) > 1
    rc = main(["train", "--data", str(path), "--group-column", "group", "--stratify", "--run-dir",
               str(tmp_path / "r")])
    assert "--stratify holds out rows" in read_error_line(capsys, rc)
    assert not (tmp_path / "r").exists()
