"""``reviewsense train --spark``: the run of :func:`reviewsense.pipeline.train` with the default
model fitted by Spark (:mod:`reviewsense.models.nblinear_spark`): the data read by Spark (or, for
IMDB and class folders, by this process and handed to Spark), the fit, the evaluation on the
executors, the run folder and its export, which loads without Spark."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .data.dataset import Dataset
from .errors import ConfigError, DataError
from .models.nblinear_spark import SAMPLE, SparkData, fit_nblinear, logits_of
from .progress import log
from .spark import _quoted

if TYPE_CHECKING:
    from .data.splits import DataSpec, Splits
    from .run_config import TrainConfig


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

    from .evaluation.by_length import MAX_TEXTS

    if spec.stratify:
        raise ConfigError("--stratify: a Spark job holds out rows by a hash of their text (or --group-column), "
                          "which keeps each class near its share on large data; drop --stratify")
    assert spec.path is not None
    main, classes = _read_labelled(spark, spec.path, spec, None)
    names = classes[0]
    key = "text" if spec.group_column is None else "group"
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
    ``group``; and its classes: the names, the label table and whether labels are looked up as
    they are (else lowercased), as one process maps them (``classes``: the training data's)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from .data.files import _label_table, check_class_name
    from .spark import _FileSystem, _input_format, _read

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
    text = F.col(_quoted(spec.text_column))
    tally = df.groupBy("_label").agg(F.count(F.lit(1)).alias("rows"), F.count_if(text.isNull()).alias("missing"),
                                     F.count_if(F.trim(text) == "").alias("blank")).collect()  # one pass
    seen = {r["_label"]: r["rows"] for r in tally}
    texts_missing, blank = (sum(r[what] for r in tally) for what in ("missing", "blank"))
    bad = seen.pop(None, 0) + seen.pop("", 0)
    if bad:
        raise DataError(f"{path}: '{spec.label_column}' is missing in {bad:,} row(s)")
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
                    *([F.col(_quoted(spec.group_column)).cast("string").alias("group")] if spec.group_column else []))
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



# -- the run ---------------------------------------------------------------------------------
def load(spark: Any, spec: DataSpec, seed: int = 0) -> SparkData:
    """The splits of a run on Spark: a table Spark reads (:func:`read_splits`), else (IMDB, class
    folders) the splits one process makes, handed to Spark."""
    from .data.imdb import is_imdb_source
    from .data.splits import load_splits
    from .spark import table_format

    if spec.path is not None and not is_imdb_source(spec.path) and table_format(spec.path) is not None:
        return read_splits(spark, spec, seed)
    return from_splits(spark, load_splits(spec, seed=seed))


def train(config: TrainConfig, overwrite: bool = False) -> dict[str, Any]:
    """``reviewsense train --spark``: the run folder of :func:`reviewsense.pipeline.train`, its
    model fitted by Spark on ``config.spark`` (a master; "": the active session's or
    spark-submit's); returns ``metrics.json``'s content."""
    from .run_folder import held

    config.check()
    if config.spark is None:
        raise ConfigError("reviewsense.spark_train.train needs config.spark: the Spark master (\"\": spark-submit's)")
    with held(Path(config.run_dir), overwrite):
        return _train(config, overwrite)


def _train(config: TrainConfig, overwrite: bool) -> dict[str, Any]:
    from ._fs import write_json
    from .models.calibration import calibrate_by_length
    from .models.registry import Fitted, family
    from .pipeline import write_run
    from .run_folder import check_run_dir, remove_killed_writes, run_files
    from .spark import session, spark_errors

    run_dir = Path(config.run_dir)
    check_run_dir(run_dir, overwrite=overwrite)
    if overwrite:
        remove_killed_writes(run_dir)
    previous = run_files(run_dir) if overwrite else {}
    started = time.perf_counter()
    params = family("nblinear").make_params(config.params_of("nblinear"))
    # pandas 3: pyspark warns on import, though nothing here uses its pandas API; the fit logs its own progress
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    spark, ours = session(config.spark or None, app="reviewsense train", console_progress=False)
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
