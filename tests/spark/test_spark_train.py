"""Training the default model on Spark (``reviewsense.models.nblinear_spark``, ``train --spark``): the
vocabulary and naive-Bayes counts of one process whatever the partitioning, a fit that agrees
with one process's, the run folder, and an export that loads without pyspark."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from error_line import read_error_line

from reviewsense.cli import main
from reviewsense.data.dataset import Dataset
from reviewsense.models import nblinear
from reviewsense.text.ngrams import NgramVectorizer

pytestmark = [pytest.mark.spark, pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")]
SIGNS = {0: ["awful", "boring", "dull", "not good"], 1: ["okay", "uneven", "average"], 2: ["great", "superb", "loved"]}
FILLER = ["the", "film", "plot", "acting", "a", "was", "and", "it", "é", "ünïcode", "!", "<br />", "Naïve"]


def _data(n: int, classes: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    kinds = [0, 2] if classes == 2 else [0, 1, 2]
    texts = [" ".join([*rng.choice(FILLER, rng.integers(0, 12)), *rng.choice(SIGNS[kinds[y]], rng.integers(0, 3)),
                       f"w{rng.integers(0, 300)}"]) for y in labels.tolist()]
    return texts, labels


def _spark_data(spark, train: Dataset, validation: Dataset, partitions: int):
    from reviewsense.models.nblinear_spark import SparkData

    def frame(data: Dataset):
        table = pa.table({"text": data.texts, "label": data.labels.astype(np.int32)})
        return spark.createDataFrame(table).repartition(partitions)

    return SparkData(frame(train), frame(validation), frame(validation), train.class_names, "generated",
                     {"train": len(train), "validation": len(validation), "test": len(validation)},
                     np.bincount(np.r_[train.labels, validation.labels]), validation, validation)


@pytest.mark.parametrize("classes", [2, 3])
def test_vocabulary_and_naive_bayes_counts_are_one_process_s_whatever_the_partitioning(spark, classes):
    from reviewsense.models.nblinear_spark import _both, _chunks, _features, document_counts, vocabulary

    texts, labels = _data(1_500, classes, seed=classes)
    names = tuple(str(c) for c in range(classes))
    train, validation = Dataset(texts[:1_000], labels[:1_000], class_names=names), \
        Dataset(texts[1_000:], labels[1_000:], class_names=names)
    params = nblinear.NBLinearParams(hash_bits=12)
    reference = NgramVectorizer(ngrams=3, hash_bits=12).adapt(texts)
    present = reference.transform(texts).sign()
    expected = np.concatenate([nblinear.class_counts(present[:1_000], train.labels, classes),
                               nblinear.class_counts(present[1_000:], validation.labels, classes)]).T
    for partitions in (1, 3, 8):
        data = _spark_data(spark, train, validation, partitions)
        chunks = _both(data).rdd.mapPartitions(_chunks)
        vectorizer = vocabulary(chunks, params)
        assert vectorizer.vocabulary_ == reference.vocabulary_
        shared = spark.sparkContext.broadcast(vectorizer)
        features = chunks.mapPartitionsWithIndex(functools.partial(_features, shared, params, 0))
        columns, table = document_counts(features, classes)
        assert table.dtype == np.int64
        assert np.array_equal(columns, np.flatnonzero(expected.any(axis=1)))
        assert np.array_equal(table[:, : 2 * classes], expected[columns])  # texts of each split and class
        assert not table[:, 2 * classes :].any()  # spans are counted only for --min-df 1


def test_the_distributed_gradient_is_the_gradient_of_the_loss():
    """The per-block loss and gradient (what the executors sum) against finite differences."""
    import scipy.sparse as sp

    from reviewsense.models.nblinear_spark import _loss_and_gradient

    class Shared:  # a broadcast variable's stand-in
        def __init__(self, value):
            self.value = value

    rng = np.random.default_rng(0)
    X = sp.random(40, 7, density=0.4, format="csr", random_state=1) * 3
    y, w = rng.integers(0, 3, 40), rng.uniform(0.05, 1, 40)
    targets = np.arange(3)
    folded, intercept = rng.normal(size=(7, 3)), rng.normal(size=3)
    loss, gw, gb = _loss_and_gradient(Shared((folded, intercept)), targets, (X, y, w))
    step = 1e-6
    for i, j in [(0, 0), (3, 1), (6, 2)]:
        bumped = folded.copy()
        bumped[i, j] += step
        moved = _loss_and_gradient(Shared((bumped, intercept)), targets, (X, y, w))[0]
        assert (moved[j] - loss[j]) / step == pytest.approx(gw[i, j], rel=1e-4, abs=1e-6)
    bumped = intercept.copy()
    bumped[1] += step
    assert (_loss_and_gradient(Shared((folded, bumped)), targets, (X, y, w))[0][1] - loss[1]) / step == \
        pytest.approx(gb[1], rel=1e-4)


@pytest.mark.parametrize("classes", [2, 3])
def test_the_fit_agrees_with_one_process(spark, classes):
    from reviewsense.models.nblinear_spark import fit_nblinear

    texts, labels = _data(3_000, classes, seed=10 + classes)
    names = tuple(f"c{c}" for c in range(classes))
    train, validation = Dataset(texts[:1_600], labels[:1_600], class_names=names), \
        Dataset(texts[1_600:2_200], labels[1_600:2_200], class_names=names)
    test = Dataset(texts[2_200:], labels[2_200:], class_names=names)
    params = nblinear.NBLinearParams(hash_bits=14)
    ours, held_out = fit_nblinear(_spark_data(spark, train, validation, 3), params)
    theirs, their_held_out = nblinear.fit(train, validation, params)
    assert np.array_equal(ours._kept.columns, theirs._kept.columns)  # the same columns survive min_df
    for a, b in ((ours, theirs), (held_out, their_held_out)):
        pa_, pb = a.predict_proba(test.texts), b.predict_proba(test.texts)
        assert (pa_.argmax(axis=1) == pb.argmax(axis=1)).mean() >= 0.97
        accuracy = [(p.argmax(axis=1) == test.labels).mean() for p in (pa_, pb)]
        assert abs(accuracy[0] - accuracy[1]) <= 0.02
        assert accuracy[0] > 1.5 / classes


def test_train_cli_on_a_table_spark_reads_exports_a_model_that_loads_without_pyspark(spark, tmp_path):
    texts, labels = _data(2_400, 3, seed=5)
    frame = pd.DataFrame({"review": texts, "stars": np.array(["1", "3", "5"])[labels]})
    frame.loc[7, "review"] = "   "  # blank: skipped, with a word
    frame.to_json(tmp_path / "reviews.jsonl", orient="records", lines=True, force_ascii=False)
    run = tmp_path / "run"
    assert main(["train", "--spark", "local[2]", "--data", str(tmp_path / "reviews.jsonl"), "--text-column", "review",
                 "--label-column", "stars", "--hash-bits", "14", "--run-dir", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert config["spark"] == "local[2]" and config["settings"]["nblinear"]["hash_bits"] == 14
    assert metrics["test"]["accuracy"] > 0.6 and set(metrics["test"]["per_class"]) == {"1", "3", "5"}
    rows = json.loads((run / "model" / "manifest.json").read_text())["training"]["rows"]
    assert sum(rows.values()) == 2_399  # every row but the blank one, on exactly one side
    assert 0.1 < rows["test"] / 2_399 < 0.3 and 0.1 < rows["validation"] / (rows["train"] + rows["validation"]) < 0.3
    for name in ("reliability.png", "confusion.png", "by_length.png", "README.md"):
        assert (run / name).is_file()
    probe = ("import sys; sys.modules['pyspark'] = None; import reviewsense; "
             f"m = reviewsense.load({str(run / 'model')!r}); "
             "p = m.predict_proba(['great superb film', 'awful boring plot']); "
             "print(list(m.class_names), p.argmax(axis=1).tolist(), sys.modules['pyspark'])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["['1',", "'3',", "'5']", "[2,", "0]", "None"]


def test_rows_are_held_out_by_their_text_whatever_the_partitioning(spark, tmp_path):
    from reviewsense.data.splits import DataSpec
    from reviewsense.spark_train import read_splits

    texts, labels = _data(1_000, 2, seed=8)
    texts = texts + texts[:300]  # copies of 300 texts
    frame = pd.DataFrame({"text": texts, "label": np.r_[labels, labels[:300]]})
    frame.to_parquet(tmp_path / "one.parquet")
    shuffled = frame.sample(frac=1, random_state=0)
    (tmp_path / "many.parquet").mkdir()
    for i in range(4):
        shuffled.iloc[i::4].to_parquet(tmp_path / "many.parquet" / f"part-{i}.parquet")
    sides = []
    for name in ("one.parquet", "many.parquet"):
        data = read_splits(spark, DataSpec(path=str(tmp_path / name)), seed=3)
        split = {side: set(r["text"] for r in getattr(data, side).collect())
                 for side in ("train", "validation", "test")}
        assert not (split["train"] & split["test"]) and not (split["train"] & split["validation"])
        assert not (split["validation"] & split["test"])
        sides.append(split)
    assert sides[0] == sides[1]
    frame["product"] = [f"p{i % 40}" for i in range(len(frame))]  # --group-column: each group on one side
    frame["text"] = frame["text"] + " " + frame["product"]  # a text names its group
    frame.to_parquet(tmp_path / "grouped.parquet")
    data = read_splits(spark, DataSpec(path=str(tmp_path / "grouped.parquet"), group_column="product"), seed=3)
    groups = [{r["text"].rsplit(" ", 1)[1] for r in getattr(data, side).collect()}
              for side in ("train", "validation", "test")]
    assert all(groups) and sum(map(len, groups)) == len(set.union(*groups)) == 40


def test_errors_are_one_line(spark, tmp_path, capsys):
    frame = pd.DataFrame({"text": [f"{word} {i}" for i in range(50) for word in ("great", "awful")],
                          "label": ["pos", "neg"] * 50, "n": [1, 2] * 50})
    frame.to_parquet(tmp_path / "ok.parquet")
    base = ["train", "--spark", "local[2]", "--run-dir", str(tmp_path / "run")]
    cases = [
        (["--model", "cnn"], "--spark trains the default model (nblinear), not --model cnn"),
        (["--class-weight", "balanced"], "--class-weight is not available with --spark"),
        (["--data", str(tmp_path / "missing.parquet")], "missing.parquet: no such file or directory"),
        (["--data", str(tmp_path / "ok.parquet"), "--text-column", "n"], "column 'n' is bigint, not text"),
        (["--data", str(tmp_path / "ok.parquet"), "--label-column", "stars"], "no 'stars' column"),
        (["--data", str(tmp_path / "ok.parquet"), "--classes", "bad,good"], "label 'neg' is not one of the classes"),
        (["--data", str(tmp_path / "ok.parquet"), "--stratify"], "--stratify: a Spark job holds out rows by a hash"),
        (["--data", str(tmp_path / "ok.parquet"), "--min-df", "500"], "--min-df 500: no n-gram occurs in at least"),
    ]
    for args, expected in cases:
        line = read_error_line(capsys, main([*base, *args]))
        assert expected in line, (args, line)
    assert not (tmp_path / "run" / "model").exists()


def test_a_spark_run_is_not_resumed(tmp_path, capsys):
    from reviewsense._fs import write_json
    from reviewsense.run_config import TrainConfig

    write_json(tmp_path / "config.json", TrainConfig(run_dir=str(tmp_path), spark="local[2]").record())
    line = read_error_line(capsys, main(["train", "--resume", str(tmp_path)]))
    assert "a run trained on Spark cannot be resumed" in line


def test_spark_submit_s_script_trains_when_told_to():
    """``spark-submit …/reviewsense/spark.py train …`` is ``reviewsense train --spark …``; without
    ``train``, ``predict --spark …``."""
    for first, usage in ((["train"], "usage: reviewsense train"), ([], "usage: reviewsense predict")):
        done = subprocess.run([sys.executable, "-m", "reviewsense.spark", *first, "--help"], capture_output=True,
                              text=True, check=True)
        assert done.stdout.startswith(usage) and "--spark [MASTER]" in done.stdout
