"""Training the default model on Apache Spark: ``reviewsense train --spark MASTER``.

The NB-weighted n-gram logistic regression of :mod:`reviewsense.models.nblinear`, fitted where
the data is, in passes over its partitions (each pass a Spark job; the texts are tokenized on
the executors, one thread per task):

1. **vocabulary**: each partition's word counts, summed; the words sorted as one process sorts
   them, so the vocabulary is that of ``NgramVectorizer.adapt`` on all the texts, whatever the
   partitioning;
2. **naive-Bayes counts**: per partition, how many texts of each class (and split) have each
   n-gram column, summed as integers: identical to the counts of one process. The columns in
   at least ``min_df`` training texts are kept and numbered 1, 2, … (:class:`KeptColumns`);
3. **logistic regression**: scipy's L-BFGS on the driver, the loss and gradient of each of its
   steps summed over the cached partitions (``treeReduce``). The objective is the one liblinear
   minimises in one process: L2 on the weights and the intercept, the NB-scaled n-gram counts,
   random spans of the texts at ``span_weight``; one model per class against the rest for more
   than two classes (all fitted by the same passes);
4. **calibration**: Platt (vector) scaling on the validation scores; the length calibration on
   spans of at most 20,000 validation texts (one process takes the same sample); then the refit
   on train + validation.

The driver holds what grows with the model (the counts and weights of the kept columns, at most
``vocabulary + 2**hash_bits`` of them), never the data. The result is an ordinary export bundle:
loading it needs neither Spark nor this module.
"""

from __future__ import annotations

import functools
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ..data.dataset import Dataset
from ..errors import ConfigError, DataError
from ..models.nblinear import (
    NBLinearParams,
    NBLinearPredictor,
    calibrate,
    kept_columns,
    make_predictor,
    ratio_from_counts,
    strength,
)
from ..progress import log
from ..text.columns import KeptColumns
from ..text.ngrams import NgramVectorizer, add_word_counts, word_counts

if TYPE_CHECKING:
    from ..data.splits import DataSpec, Splits
    from ..run_config import TrainConfig

CHUNK = 5_000  # rows a task vectorizes at once
SAMPLE = 20_000  # validation texts the length calibration cuts spans of (one process samples as many)
TRAIN, VALIDATION = 0, 1


@dataclass
class SparkData:
    """Train, validation and test as Spark DataFrames of ``text`` (string) and ``label`` (the
    class index), with what the driver needs to know of them."""

    train: Any
    validation: Any
    test: Any
    class_names: tuple[str, ...]
    source: str
    rows: dict[str, int]  # rows of each split
    labelled: np.ndarray  # rows of each class in train + validation
    validation_sample: Dataset  # at most SAMPLE validation texts: the length calibration's
    test_sample: Dataset  # the test texts that the metrics by length cut spans of


# -- on the executors ---------------------------------------------------------------------------
def _chunks(rows: Iterable[Any]) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """A partition's rows (text, label, part) in chunks of CHUNK: texts, labels, parts."""
    texts: list[str] = []
    labels: list[int] = []
    parts: list[int] = []
    for text, label, part in rows:
        texts.append(text)
        labels.append(label)
        parts.append(part)
        if len(texts) == CHUNK:
            yield texts, np.asarray(labels, dtype=np.int64), np.asarray(parts, dtype=np.int8)
            texts, labels, parts = [], [], []
    if texts:
        yield texts, np.asarray(labels, dtype=np.int64), np.asarray(parts, dtype=np.int8)


def _features(vectorizer: Any, params: NBLinearParams, seed: int, index: int,
              chunks: Iterable[tuple[list[str], np.ndarray, np.ndarray]]) -> Iterator[dict[str, Any]]:
    """Each chunk's n-gram counts (all columns), and those of random spans of its texts."""
    from ..data.spans import cut_spans

    vec: NgramVectorizer = vectorizer.value
    for k, (texts, labels, parts) in enumerate(chunks):
        out = {"X": vec.transform(texts), "y": labels, "part": parts}
        if params.span_weight:
            data = Dataset(texts, labels, class_names=tuple(map(str, range(int(labels.max()) + 1))))
            spans = cut_spans(data, windows=params.span_windows, full=False,
                              seed=zlib.crc32(f"{seed}:{index}:{k}".encode()))
            origin = np.asarray(spans.data.groups or [], dtype=np.int64)
            out |= {"S": vec.transform(spans.data.texts), "sy": labels[origin], "spart": parts[origin]}
        yield out


def _document_counts(classes: int, spans: bool, chunk: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Keys ``column * slots + slot`` and how many texts have them: slot ``part * classes + label``
    for the texts, ``2 * classes + part`` for the spans (with ``spans``)."""
    slots = 2 * classes + 2
    X = chunk["X"]  # canonical CSR: one entry per text and column
    row = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    keys = [X.indices.astype(np.int64) * slots + (chunk["part"].astype(np.int64) * classes + chunk["y"])[row]]
    if spans and "S" in chunk:
        S = chunk["S"]
        row = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
        keys.append(S.indices.astype(np.int64) * slots + (2 * classes + chunk["spart"].astype(np.int64))[row])
    return np.unique(np.concatenate(keys), return_counts=True)


def _add_counts(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two sets of (sorted distinct keys, counts) summed (integers: exact)."""
    keys, counts = np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(counts, starts) if len(keys) else counts


def _block(kept: Any, parts: tuple[int, ...], span_weight: float, chunk: dict[str, Any]) -> tuple[Any, ...]:
    """The rows of a fit from a chunk: its texts of ``parts`` and their spans, on the kept columns;
    their labels and weights."""
    cols: KeptColumns = kept.value
    mine = np.isin(chunk["part"], parts)
    X, y, w = [cols.compact(chunk["X"][mine])], [chunk["y"][mine]], [np.ones(int(mine.sum()))]
    if span_weight and "S" in chunk:
        theirs = np.isin(chunk["spart"], parts)
        X.append(cols.compact(chunk["S"][theirs]))
        y.append(chunk["sy"][theirs])
        w.append(np.full(int(theirs.sum()), span_weight))
    return sp.vstack(X, format="csr"), np.concatenate(y), np.concatenate(w)


def _loss_and_gradient(state: Any, targets: np.ndarray, block: tuple[Any, ...]) -> tuple[Any, ...]:
    """A block's weighted logistic losses (one per model) and their gradients: by the folded
    weights ``(kept, models)`` and by the intercepts."""
    from scipy.special import expit, log_expit

    folded, intercept = state.value
    X, y, w = block
    z = X @ folded + intercept
    positive = y[:, None] == targets
    loss = -(w[:, None] * log_expit(np.where(positive, z, -z))).sum(axis=0)
    g = w[:, None] * (expit(z) - positive)
    return loss, np.asarray(X.T @ g), g.sum(axis=0)


def _add_gradients(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    a[0].__iadd__(b[0])
    a[1].__iadd__(b[1])
    a[2].__iadd__(b[2])
    return a


def _scores(kept: Any, weights: Any, chunk: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Linear scores ``(texts, models)`` of a chunk's validation texts, and their labels."""
    coef, intercept = weights.value
    mine = chunk["part"] == VALIDATION
    return np.asarray(kept.value.compact(chunk["X"][mine]) @ coef.T) + intercept, chunk["y"][mine]


def _logits(model: Any, rows: Iterable[Any]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    predictor = model.value
    for texts, labels, _ in _chunks(rows):
        yield labels, np.asarray(predictor.predict_logits(texts))


# -- on the driver ----------------------------------------------------------------------------
def _both(data: SparkData) -> Any:
    from pyspark.sql import functions as F

    return (data.train.select("text", "label", F.lit(TRAIN).alias("part"))
            .unionByName(data.validation.select("text", "label", F.lit(VALIDATION).alias("part"))))


def vocabulary(chunks: Any, params: NBLinearParams) -> NgramVectorizer:
    """The vectorizer of ``chunks`` (an RDD of :func:`_chunks`): its words counted per chunk, summed."""
    counts = chunks.map(lambda chunk: word_counts(chunk[0])).treeReduce(add_word_counts)
    return NgramVectorizer(ngrams=params.ngrams, hash_bits=params.hash_bits, binary=params.binary).adapt_counts(counts)


def document_counts(features: Any, classes: int, spans: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The naive-Bayes counts of an RDD of :func:`_features`: the columns that occur (sorted) and,
    for each, ``(columns, 2 * classes + 2)`` counts: of training texts of each class, of
    validation texts of each class, then (with ``spans``) of training and validation spans."""
    keys, counts = features.map(functools.partial(_document_counts, classes, spans)).treeReduce(_add_counts)
    slots = 2 * classes + 2
    columns, row = np.unique(keys // slots, return_inverse=True)
    table = np.zeros((len(columns), slots), dtype=np.int64)
    table[row, keys % slots] = counts
    return columns, table


@dataclass
class _Fit:
    kept: KeptColumns
    coef: np.ndarray  # (models, kept columns), NB ratios folded in
    intercept: np.ndarray  # (models,)


def _fit(sc: Any, features: Any, columns: np.ndarray, table: np.ndarray, parts: tuple[int, ...], classes: int,
         n_features: int, params: NBLinearParams, texts: int) -> _Fit:
    """The logistic regression(s) of the texts of ``parts`` (and their spans)."""
    from pyspark import StorageLevel
    from scipy.optimize import minimize

    mine = np.concatenate([np.arange(p * classes, (p + 1) * classes) for p in parts])
    df = table[:, mine].sum(axis=1)
    in_spans = table[:, [2 * classes + p for p in parts]].sum(axis=1) if params.min_df == 1 else None
    chosen = kept_columns(df, params.min_df, texts, in_spans)
    kept = KeptColumns(columns[chosen], n_features)
    counts = table[chosen][:, mine].reshape(len(chosen), len(parts), classes).sum(axis=1).T  # (classes, kept)
    if classes == 2:
        ratio = ratio_from_counts(counts[1], counts[0], params.alpha, n_features)[None, :]
        targets = np.array([1])
    else:
        ratio = np.stack([ratio_from_counts(counts[c], counts.sum(axis=0) - counts[c], params.alpha, n_features)
                          for c in range(classes)])
        targets = np.arange(classes)
    ratio = ratio.astype(np.float64)
    models, width = ratio.shape
    shared = sc.broadcast(kept)
    blocks = features.map(functools.partial(_block, shared, parts, params.span_weight)).persist(
        StorageLevel.MEMORY_AND_DISK)
    C = strength(params, classes)
    log(f"fitting NB-weighted logistic regression on {len(kept):,} n-gram columns" +
        ("" if classes == 2 else f", one per class against the rest ({classes} classes)"))
    started, calls = time.perf_counter(), [0]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: models * width].reshape(models, width), theta[models * width :]
        state = sc.broadcast(((ratio * w).T.copy(), b))
        try:
            loss, gw, gb = blocks.map(functools.partial(_loss_and_gradient, state, targets)).treeReduce(_add_gradients)
        finally:
            state.destroy()
        calls[0] += 1
        value = 0.5 * float(theta @ theta) + C * float(loss.sum())
        return value, np.concatenate([(w + C * ratio * gw.T).ravel(), b + C * gb])

    steps = [0]

    def progress(theta: np.ndarray) -> None:
        steps[0] += 1
        if steps[0] % 25 == 0:
            log(f"  L-BFGS step {steps[0]}: {calls[0]} passes, {time.perf_counter() - started:.0f} s")

    try:
        result = minimize(objective, np.zeros(models * (width + 1)), jac=True, method="L-BFGS-B",
                          callback=progress, options={"maxiter": params.max_iter})
    finally:
        blocks.unpersist()
        shared.destroy()
    if result.nit >= params.max_iter:
        log(f"note: the logistic regression stopped at max_iter {params.max_iter} before converging "
            "(the weights are used as they are)")
    log(f"  fitted in {result.nit} L-BFGS steps ({calls[0]} passes over the data, "
        f"{time.perf_counter() - started:.0f} s)")
    w, b = result.x[: models * width].reshape(models, width), result.x[models * width :]
    return _Fit(kept, (ratio * w).astype(np.float32), b.astype(np.float32))


def fit_nblinear(data: SparkData, params: NBLinearParams, seed: int = 0) -> tuple[NBLinearPredictor,
                                                                                   NBLinearPredictor]:
    """Fit on ``data.train``, calibrate on ``data.validation``, then (``refit``) fit again on
    both, as :func:`reviewsense.models.nblinear.fit` does in one process. Returns the predictor
    and the model that did not see the validation labels."""
    from pyspark import StorageLevel

    classes = len(data.class_names)
    spark = data.train.sparkSession
    sc = spark.sparkContext
    chunks = _both(data).rdd.mapPartitions(_chunks).persist(StorageLevel.MEMORY_AND_DISK)
    features = None
    try:
        vectorizer = vocabulary(chunks, params)
        log(f"vocabulary: {vectorizer.vocabulary_size:,} words + hashed 2..{params.ngrams}-grams")
        shared = sc.broadcast(vectorizer)
        features = chunks.mapPartitionsWithIndex(functools.partial(_features, shared, params, seed)).persist(
            StorageLevel.MEMORY_AND_DISK)
        columns, table = document_counts(features, classes, spans=params.min_df == 1)
        chunks.unpersist()
        log(f"naive-Bayes counts: {len(columns):,} n-gram columns occur in the {data.rows['train']:,} training "
            f"and {data.rows['validation']:,} validation texts")
        first = _fit(sc, features, columns, table, (TRAIN,), classes, vectorizer.n_features, params,
                     data.rows["train"])
        kept, weights = sc.broadcast(first.kept), sc.broadcast((first.coef, first.intercept))
        scored = features.map(functools.partial(_scores, kept, weights)).collect()
        kept.destroy()
        weights.destroy()
        calibration = calibrate(np.concatenate([s for s, _ in scored]), np.concatenate([y for _, y in scored]))
        held_out = make_predictor(vectorizer, params, data.class_names, first.kept, first.coef, first.intercept,
                                  calibration)
        if not params.refit:
            return held_out, held_out
        log(f"refitting on train + validation ({data.rows['train'] + data.rows['validation']:,} texts)")
        final = _fit(sc, features, columns, table, (TRAIN, VALIDATION), classes, vectorizer.n_features, params,
                     data.rows["train"] + data.rows["validation"])
        return make_predictor(vectorizer, params, data.class_names, final.kept, final.coef, final.intercept,
                              calibration), held_out
    finally:
        chunks.unpersist()
        if features is not None:
            features.unpersist()


def logits_of(df: Any, model: Any) -> tuple[np.ndarray, np.ndarray]:
    """The labels of ``df`` (``text``, ``label``) and ``model``'s logits of its texts, scored on the executors."""
    from pyspark.sql import functions as F

    shared = df.sparkSession.sparkContext.broadcast(model)
    try:
        parts = df.select("text", "label", F.lit(0)).rdd.mapPartitions(functools.partial(_logits, shared)).collect()
    finally:
        shared.destroy()
    width = () if model.binary else (model.n_classes,)
    labels = np.concatenate([y for y, _ in parts]) if parts else np.zeros(0, dtype=np.int64)
    return labels, np.concatenate([z for _, z in parts]) if parts else np.zeros((0, *width))


# -- the data --------------------------------------------------------------------------------
def from_splits(spark: Any, splits: Splits) -> SparkData:
    """Splits this process read (IMDB, class folders) as DataFrames, cut into the session's
    default parallelism in their order."""
    import pyarrow as pa

    def frame(data: Dataset) -> Any:
        table = pa.table({"text": pa.array(data.texts, pa.string()), "label": pa.array(data.labels.astype(np.int32))})
        return spark.createDataFrame(table).repartition(spark.sparkContext.defaultParallelism)

    labelled = np.bincount(np.concatenate([splits.train.labels, splits.validation.labels]).astype(np.int64),
                           minlength=len(splits.train.class_names))
    return SparkData(frame(splits.train), frame(splits.validation), frame(splits.test), splits.train.class_names,
                     splits.source, {"train": len(splits.train), "validation": len(splits.validation),
                                     "test": len(splits.test)}, labelled, splits.validation, splits.test)


def read_splits(spark: Any, spec: DataSpec, seed: int = 0) -> SparkData:
    """The user's table (Parquet, CSV, TSV, JSONL: a file or a folder, on any file system Spark
    reads), labels mapped to classes as in one process, rows held out by a hash of their text
    (or of ``group_column``): a row's side does not depend on the partitioning, and copies of
    one text are never on both sides."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..evaluation.by_length import MAX_TEXTS

    if spec.stratify:
        raise ConfigError("--stratify: a Spark job holds out rows by a hash of their text (or --group-column), "
                          "which keeps each class near its share on large data; drop --stratify")
    assert spec.path is not None
    main, classes = _read_labelled(spark, spec.path, spec, None)
    names = classes[0]
    key = "text" if spec.group_column is None else spec.group_column
    if spec.test_path:
        test = _read_labelled(spark, spec.test_path, spec, classes)[0].select("text", "label")
    else:
        share = _share(main, spec.test_size, "--test-size")
        held = _unit(key, seed + 1) < share
        test, main = main.where(held).select("text", "label"), main.where(~held)
    share = _share(main, spec.validation_size if spec.validation_size is not None else 0.2, "--validation-size")
    held = _unit(key, seed) < share
    train = main.where(~held).select("text", "label").persist(StorageLevel.MEMORY_AND_DISK)
    validation = main.where(held).select("text", "label").persist(StorageLevel.MEMORY_AND_DISK)
    test = test.persist(StorageLevel.MEMORY_AND_DISK)
    counts = {(r["side"], r["label"]): r["count"] for r in
              train.withColumn("side", F.lit("train")).unionByName(validation.withColumn("side", F.lit("validation")))
              .unionByName(test.withColumn("side", F.lit("test"))).groupBy("side", "label").count().collect()}
    per = {side: np.array([counts.get((side, c), 0) for c in range(len(names))]) for side in
           ("train", "validation", "test")}
    rows = {side: int(per[side].sum()) for side in per}
    missing = [name for c, name in enumerate(names) if not per["train"][c]]
    if missing:
        raise DataError(f"{spec.path}: no training rows of class {', '.join(missing)} (after holding out validation "
                        "and test rows)")
    for side, what in (("validation", "--validation-size"), ("test", "--test-size")):
        if not rows[side]:
            raise DataError(f"{spec.path}: the {side} split is empty; raise {what}")
    return SparkData(train, validation, test, names, spec.path, rows, per["train"] + per["validation"],
                     _sample(validation, rows["validation"], SAMPLE, seed, names, f"{spec.path}:validation"),
                     _sample(test, rows["test"], MAX_TEXTS, seed, names, f"{spec.path}:test"))


def _unit(column: str, seed: int) -> Any:
    """A number in [0, 1) from a hash of ``column`` and ``seed``: the same for the same value."""
    from pyspark.sql import functions as F

    return (F.xxhash64(F.lit(seed), F.col(_quoted(column))).bitwiseAND(F.lit((1 << 53) - 1)) / float(1 << 53))


def _share(df: Any, size: float | int, what: str) -> float:
    """``size`` (rows, or a fraction of them) as a fraction of ``df``'s rows."""
    if isinstance(size, float):
        if not 0 < size < 1:
            raise ConfigError(f"{what} {size}: a fraction is between 0 and 1")
        return size
    total = df.count()
    if not 0 < size < total:
        raise ConfigError(f"{what} {size:,}: the data has {total:,} rows")
    return size / total


def _read_labelled(spark: Any, path: str, spec: DataSpec, classes: tuple[tuple[str, ...], dict[str, int], bool] | None
                   ) -> tuple[Any, tuple[tuple[str, ...], dict[str, int], bool]]:
    """``path`` read by Spark: ``text``, ``label`` (the class index) and, with ``group_column``,
    the group; and its classes: the names, the label table and whether labels are looked up as
    they are (else lowercased), as one process maps them (``classes``: the training data's)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from ..data.files import _label_table, check_class_name
    from ..spark import _FileSystem, _input_format, _read

    fmt = _input_format(path)
    if spec.sep is not None and fmt not in ("csv", "tsv"):
        raise ConfigError("--sep applies to a CSV or TSV input")
    if not _FileSystem(spark, path).exists(path):
        raise DataError(f"{path}: no such file or directory")
    df = _read(spark, path, fmt, spec.sep, spec.encoding)
    wanted = [spec.text_column, spec.label_column, *([spec.group_column] if spec.group_column else [])]
    for column in wanted:
        if column not in df.columns:
            raise DataError(f"{path}: no '{column}' column (columns: {', '.join(df.columns)}); choose them with "
                            "--text-column/--label-column/--group-column")
    kind = df.schema[spec.text_column].dataType
    if not isinstance(kind, T.StringType):
        raise DataError(f"{path}: column '{spec.text_column}' is {kind.simpleString()}, not text")
    label = F.trim(F.col(_quoted(spec.label_column)).cast("string"))
    df = df.select(*[F.col(_quoted(c)) for c in wanted]).withColumn("_label", label)
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    seen = {r["_label"]: r["count"] for r in df.groupBy("_label").count().collect()}
    bad = seen.pop(None, 0) + seen.pop("", 0)
    if bad:
        raise DataError(f"{path}: '{spec.label_column}' is missing in {bad:,} row(s)")
    texts_missing = df.where(F.col(_quoted(spec.text_column)).isNull()).count()
    if texts_missing:
        raise DataError(f"{path}: '{spec.text_column}' is missing in {texts_missing:,} row(s)")
    if classes is None:
        for value in seen:
            check_class_name(value, f"{path}: label")
        table, names, exact = _label_table(list(seen), spec.classes, None, path)
        if len(names) > 2:
            log(f"{path}: {len(names)} classes: {', '.join(names)}")
    else:
        names, table, exact = classes
    mapped = {value: table.get(value if exact else value.lower()) for value in seen}
    unknown = sorted(value for value, index in mapped.items() if index is None)
    if unknown:
        raise DataError(f"{path}: label '{unknown[0]}' is not one of the classes {list(names)}")
    lookup = F.create_map(*[F.lit(x) for value, index in mapped.items() for x in (value, index)])
    out = df.select(F.col(_quoted(spec.text_column)).alias("text"), lookup[F.col("_label")].cast("int").alias("label"),
                    *([F.col(_quoted(spec.group_column)).cast("string")] if spec.group_column else []))
    blank = out.where(F.trim(F.col("text")) == "").count()
    if blank:
        log(f"{path}: skipped {blank:,} row(s) whose text is blank")
        out = out.where(F.trim(F.col("text")) != "")
    return out, (tuple(names), table, exact)


def _sample(df: Any, rows: int, most: int, seed: int, names: tuple[str, ...], name: str) -> Dataset:
    """At most ``most`` rows of ``df`` (a seeded sample of larger ones), in memory."""
    if rows > most:
        df = df.sample(fraction=min(1.0, 1.1 * most / rows), seed=seed).limit(most)
    got = df.select("text", "label").collect()
    return Dataset([r["text"] for r in got], np.array([r["label"] for r in got]), name=name, class_names=names)


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# -- the run ---------------------------------------------------------------------------------
def load(spark: Any, spec: DataSpec, seed: int = 0) -> SparkData:
    """The splits of a run on Spark: a table Spark reads (:func:`read_splits`), else (IMDB, class
    folders) the splits one process makes, handed to Spark."""
    from ..data.imdb import is_imdb_source
    from ..data.splits import load_splits
    from ..spark import COMPRESSED, INPUT_FORMATS

    name = (spec.path or "").rstrip("/").lower()
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    if spec.path is not None and not is_imdb_source(spec.path) and Path(name).suffix in INPUT_FORMATS:
        return read_splits(spark, spec, seed)
    return from_splits(spark, load_splits(spec, seed=seed))


def train_on_spark(config: TrainConfig, overwrite: bool) -> dict[str, Any]:
    """``reviewsense train --spark``: the run folder of :func:`reviewsense.pipeline.train`,
    its model fitted by Spark."""
    from .._fs import write_json
    from ..models.calibration import calibrate_by_length
    from ..models.registry import Fitted, family
    from ..pipeline import write_run
    from ..run_folder import check_run_dir, remove_killed_writes, run_files
    from ..spark import session, spark_errors

    run_dir = Path(config.run_dir)
    check_run_dir(run_dir, overwrite=overwrite)
    if overwrite:
        remove_killed_writes(run_dir)
    previous = run_files(run_dir) if overwrite else {}
    started = time.perf_counter()
    params = family("nblinear").make_params(config.params_of("nblinear"))
    spark, ours = session(config.spark or None, app="reviewsense train")
    try:
        with spark_errors():
            data = load(spark, config.data, config.seed)
            log(f"data: train {data.rows['train']:,}, validation {data.rows['validation']:,}, "
                f"test {data.rows['test']:,} from {data.source} (on Spark, {spark.sparkContext.master})")
            loaded = time.perf_counter()
            config_dict = config.record()
            write_json(run_dir / "config.json", config_dict)
            predictor, held_out = fit_nblinear(data, params, config.seed)
            if config.length_calibration:
                log(f"calibrating on spans of {len(data.validation_sample):,} validation texts (1 word to the whole "
                    "text)")
                calibrate_by_length(predictor, held_out, None, data.validation_sample, seed=config.seed,
                                    counts=data.labelled)
            times = {"started": started, "loaded": loaded, "pretrained": loaded, "trained": time.perf_counter()}
            return write_run(config, Fitted(predictor, held_out=held_out),
                             lambda split, model: logits_of(getattr(data, split), model), data.test_sample,
                             data.source, data.rows, times, overwrite=overwrite, previous=previous,
                             config_dict=config_dict)
    finally:
        if ours:
            spark.stop()
