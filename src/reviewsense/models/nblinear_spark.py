"""The default model fitted by Apache Spark (``reviewsense train --spark MASTER``, whose run is
:mod:`reviewsense.spark_train`).

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
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..data.dataset import Dataset
from ..progress import log
from ..text.columns import KeptColumns
from ..text.ngrams import NgramVectorizer, add_word_counts, word_counts
from .nblinear import (
    NBLinearParams,
    NBLinearPredictor,
    calibrate,
    kept_columns,
    make_predictor,
    ratio_from_counts,
    strength,
)

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
    """Two blocks' losses and gradients summed, into ``a``'s arrays."""
    for mine, theirs in zip(a, b, strict=True):
        mine += theirs
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
