"""Scoring on Spark (``reviewsense.spark``, ``predict --spark``): a ``local[2]`` session on this
machine's loopback, generated data, the same results as the one-process ``reviewsense predict``.

Skipped without pyspark or Java, unless REVIEWSENSE_REQUIRE_SPARK=1 (CI), where they must run."""

from __future__ import annotations

import json
import os
import shutil
import socket

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from error_line import read_error_line

from reviewsense.cli import main

# pyspark checks its pandas once, at an import (pyspark.testing.utils), and warns that 3.x is newer than it knows
pytestmark = [pytest.mark.spark, pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")]
WORDS = {"bad": ["awful", "boring", "dull"], "meh": ["okay", "uneven", "average"], "good": ["great", "superb", "loved"]}
FILLER = ["the", "film", "plot", "acting", "a", "was", "and", "it", "é", "ünïcode"]


def _texts(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    names = list(WORDS)
    labels = [names[k] for k in rng.choice(3, n, p=[0.5, 0.3, 0.2])]
    texts = [" ".join([*rng.choice(FILLER, rng.integers(0, 8)), *rng.choice(WORDS[label], rng.integers(0, 3))])
             for label in labels]
    return texts, labels


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two exported models trained by the CLI: two classes (good/bad) and three (bad/meh/good)."""
    root = tmp_path_factory.mktemp("models")
    texts, labels = _texts(900, 0)
    frame = pd.DataFrame({"text": texts, "label": labels})
    frame[frame.label != "meh"].to_csv(root / "two.csv", index=False)
    frame.to_csv(root / "three.csv", index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REVIEWSENSE_QUIET", "1")
        for name, classes in (("two", ["--classes", "bad,good"]), ("three", [])):
            assert main(["train", "--data", str(root / f"{name}.csv"), "--hash-bits", "12", *classes,
                         "--run-dir", str(root / name)]) == 0
    return {"two": root / "two" / "model", "three": root / "three" / "model"}


def _input(tmp_path, n: int = 4_000, seed: int = 1):
    texts, _ = _texts(n, seed)
    texts[3] = None  # a missing text scores as an empty one
    texts[5] = 'quoted "great", with a\nnewline'
    return pd.DataFrame({"id": np.arange(n, dtype=np.int64), "text": texts})


def _one_process(model, frame, tmp_path, fmt: str = "parquet", extra=()) -> pd.DataFrame | list:
    """``reviewsense predict`` in this process on the same rows (the reference)."""
    source, out = tmp_path / "ref-in.parquet", tmp_path / f"ref-out.{fmt}"
    frame.to_parquet(source)
    assert main(["predict", "--model", str(model), "--input", str(source), "--output", str(out),
                 "--keep-columns", "id", *extra]) == 0
    if fmt == "jsonl":
        return [json.loads(line) for line in out.read_text().splitlines()]
    return pd.read_parquet(out)


def test_dataframe_api_matches_one_process_in_input_order(spark, models, tmp_path):
    from reviewsense.spark import predict

    frame = _input(tmp_path)
    frame.to_parquet(tmp_path / "in.parquet", row_group_size=300)
    df = spark.read.parquet(str(tmp_path / "in.parquet"))
    assert df.rdd.getNumPartitions() >= 2  # both task slots score
    scored = predict(df, models["two"])
    assert scored.columns == ["id", "text", "probability", "label", "label_name"]
    got = scored.toArrow().to_pandas()
    want = _one_process(models["two"], frame, tmp_path)
    assert got["id"].tolist() == list(range(len(frame)))  # every row once, in input order
    assert np.abs(got["probability"].to_numpy() - want["probability"].to_numpy()).max() <= 1e-6
    assert got["label"].tolist() == want["label"].tolist()
    assert got["label_name"].tolist() == want["label_name"].tolist()
    assert str(got["label"].dtype) == "int8"
    assert got.loc[3, "probability"] == want.loc[3, "probability"]  # null → the empty text's score


def test_threshold_and_a_text_column_that_is_not_a_string(spark, models, tmp_path):
    from reviewsense.errors import ConfigError, DataError
    from reviewsense.spark import predict

    df = spark.createDataFrame(pa.table({"text": ["great film", "awful"], "stars": [5, 1]}))
    labels = predict(df, models["two"], threshold=0.0).select("label").toArrow().to_pandas()["label"].tolist()
    assert labels == [1, 1]
    with pytest.raises(DataError, match=r"^column 'stars' is bigint, not text"):
        predict(df, models["two"], text_col="stars")
    with pytest.raises(DataError, match="no 'review' column"):
        predict(df, models["two"], text_col="review")
    with pytest.raises(ConfigError, match="threshold is for two-class models"):
        predict(df, models["three"], threshold=0.7)
    with pytest.raises(ConfigError, match="already has a column named probability"):
        predict(df.withColumnRenamed("stars", "probability"), models["two"])


def test_cli_three_classes_parquet_and_jsonl_like_one_process(spark, models, tmp_path):
    """CSV in (quoted newlines), Parquet and JSONL folders out: the columns of the one-process command."""
    frame = _input(tmp_path, 3_000)
    frame.to_csv(tmp_path / "in.csv", index=False)
    for fmt in ("parquet", "jsonl"):
        out = tmp_path / f"out.{fmt}"
        assert main(["predict", "--model", str(models["three"]), "--spark", "local[2]", "--input",
                     str(tmp_path / "in.csv"), "--output", str(out), "--keep-columns", "id"]) == 0
        want = _one_process(models["three"], frame, tmp_path, fmt)
        if fmt == "parquet":
            got = pd.read_parquet(out)
            assert list(got.columns) == list(want.columns) == ["id", "probability", "label", "label_name",
                                                               "probability_bad", "probability_good",
                                                               "probability_meh"]
            got["id"] = got["id"].astype(int)  # CSV columns are text in Spark
            assert got["id"].tolist() == list(range(len(frame)))
            numbers = want.columns[[1, 4, 5, 6]]
            assert np.abs(got[numbers].to_numpy() - want[numbers].to_numpy()).max() <= 1e-6
            assert got["label_name"].tolist() == want["label_name"].tolist()
        else:
            rows = [json.loads(line) for part in sorted(out.glob("part-*.json")) for line in part.open()]
            assert [int(r["id"]) for r in rows] == list(range(len(frame)))
            assert [list(r) for r in rows[:1]] == [list(w) for w in want[:1]]  # the same fields, in order
            for r, w in zip(rows, want, strict=True):
                assert r["label_name"] == w["label_name"]
                assert max(abs(r["probabilities"][c] - w["probabilities"][c]) for c in w["probabilities"]) <= 1e-6


def test_cli_jsonl_input_and_the_active_session(spark, models, tmp_path, capsys):
    """``--spark`` alone uses the session there is (as under spark-submit); JSONL in, Parquet out."""
    frame = _input(tmp_path, 1_000)
    frame.to_json(tmp_path / "in.jsonl", orient="records", lines=True, force_ascii=False)
    out = tmp_path / "scores.parquet"
    assert main(["predict", "--model", str(models["two"]), "--spark", "--input", str(tmp_path / "in.jsonl"),
                 "--output", str(out), "--keep-columns", "id,text"]) == 0
    assert "wrote 1,000 predictions" in capsys.readouterr().err
    got, want = pd.read_parquet(out), _one_process(models["two"], frame, tmp_path)
    assert got["id"].tolist() == list(range(1_000)) and got["text"].tolist()[5] == frame["text"][5]
    assert np.abs(got["probability"].to_numpy() - want["probability"].to_numpy()).max() <= 1e-6
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".scores")] == []  # no temporary left


def _no_session(monkeypatch):
    from pyspark.sql import SparkSession

    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: None))


def test_errors_are_one_line(spark, models, tmp_path, capsys, monkeypatch):
    frame = _input(tmp_path, 50)
    frame.to_parquet(tmp_path / "in.parquet")
    pd.DataFrame({"text": [1, 2]}).to_parquet(tmp_path / "numbers.parquet")
    base = ["predict", "--model", str(models["two"]), "--spark", "local[2]"]
    def files(source: str, target: str) -> list[str]:
        return ["--input", str(tmp_path / source), "--output", str(tmp_path / target)]

    cases = {
        "no such file or directory": files("missing.parquet", "a.parquet"),
        "'text' is bigint, not text": files("numbers.parquet", "b.parquet"),
        "Parquet or JSONL": files("in.parquet", "c.csv"),
        "no 'review' column": [*files("in.parquet", "d.parquet"), "--text-column", "review"],
        "give --input PATH and --output PATH": ["some text"],
    }
    for expected, args in cases.items():
        assert expected in read_error_line(capsys, main(base + args))
    (tmp_path / "e.parquet").mkdir()
    assert "already exists" in read_error_line(capsys, main(base + files("in.parquet", "e.parquet")))
    _no_session(monkeypatch)  # a new session would be started: its checks come first
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    args = files("in.parquet", "f.parquet")
    line = read_error_line(capsys, main([*base[:-1], f"spark://127.0.0.1:{port}", *args]))
    assert f"cannot reach the Spark master spark://127.0.0.1:{port}" in line
    assert "not a Spark master" in read_error_line(capsys, main([*base[:-1], "local[two]", *args]))
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("YARN_CONF_DIR", raising=False)
    assert "needs HADOOP_CONF_DIR or YARN_CONF_DIR" in read_error_line(capsys, main([*base[:-1], "yarn", *args]))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert "Spark needs Java 17 or 21" in read_error_line(capsys, main(base + args))
    assert not (tmp_path / "f.parquet").exists()


def test_a_failed_job_leaves_nothing_at_the_output(spark, models, tmp_path, capsys):
    """A JSONL line that is not JSON fails the job half-way: one line, no output, no temporary folder."""
    lines = [json.dumps({"id": i, "text": "great film"}) for i in range(2_000)]
    lines[1_500] = '{"id": 1500, "text": "broken'
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    line = read_error_line(capsys, main(["predict", "--model", str(models["two"]), "--spark", "local[2]",
                                         "--input", str(tmp_path / "in.jsonl"), "--output", str(out)]))
    assert "the Spark job failed" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_an_error_on_an_executor_comes_back_as_the_projects_error(spark, models, tmp_path):
    """The worker checks the model against the driver's manifest: changed since, it refuses (one line)."""
    from reviewsense.errors import ModelFileError
    from reviewsense.spark import predict, spark_errors

    folder = tmp_path / "model"
    shutil.copytree(models["two"], folder)
    scored = predict(spark.createDataFrame(pa.table({"text": ["great"]})), folder, ship=False)
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace("{", "{ ", 1))  # the same model, other bytes
    with pytest.raises(ModelFileError, match=r"manifest.json: not the manifest the driver loaded") as caught, \
            spark_errors():
        scored.collect()
    assert "\n" not in str(caught.value)


def test_each_python_worker_loads_the_model_once(spark, models, tmp_path):
    """Many tasks and batches, few workers: every batch a worker scores uses the model it loaded first."""
    import reviewsense.spark as rs
    from reviewsense._fs import sha256_file

    frame = _input(tmp_path, 4_000)
    df = spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False)).repartition(8)
    digest = sha256_file(models["two"] / "manifest.json")
    name = rs._ship(spark.sparkContext, models["two"].absolute(), digest)
    assert rs.predict(df, models["two"]).count() == 4_000  # the workers load it here

    def which(batches):
        for batch in batches:
            yield pa.RecordBatch.from_pydict({"pid": [os.getpid()], "model": [id(rs._worker_model(name, digest, True))],
                                              "rows": [batch.num_rows]})

    seen = df.mapInArrow(which, "pid long, model long, rows long").toArrow().to_pandas()
    assert seen["rows"].sum() == 4_000 and len(seen) >= 8  # several batches in each of 8 tasks
    assert seen.groupby("pid")["model"].nunique().eq(1).all()
    assert seen["pid"].nunique() <= 2  # local[2]: the workers are reused from task to task


def test_the_model_is_zipped_once_and_shipped_to_each_spark_application(models):
    """A session stopped and another started in the same driver: the new one gets the archive too."""
    import zipfile

    from reviewsense.spark import _ship

    class Context:
        def __init__(self, app: str):
            self.applicationId, self.added = app, []

        def addArchive(self, path: str) -> None:  # noqa: N802 - SparkContext's name
            self.added.append(path)

    first, again, second = Context("app-1"), Context("app-1"), Context("app-2")
    names = {_ship(sc, models["two"], "f" * 64) for sc in (first, again, second)}
    assert len(names) == 1 and len(first.added) == 1 and again.added == [] and second.added == first.added
    with zipfile.ZipFile(first.added[0]) as zf:
        assert sorted(zf.namelist()) == sorted(p.name for p in models["two"].iterdir())


def test_a_network_family_scores_as_in_one_process(spark, trained, tmp_path):
    """The tutorial's network (torch) on the executors: the same probabilities as the one process."""
    pytest.importorskip("torch")
    from reviewsense.export import load_model, save_model
    from reviewsense.spark import predict

    save_model(trained[0], tmp_path / "seed")
    frame = _input(tmp_path, 600)
    df = spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False)).repartition(2)
    got = predict(df, tmp_path / "seed").toArrow().to_pandas().sort_values("id")
    want = load_model(tmp_path / "seed").predict_proba(frame["text"].fillna("").tolist())[:, 1]
    assert got["id"].tolist() == list(range(600))
    assert np.abs(got["probability"].to_numpy() - want).max() <= 1e-6
