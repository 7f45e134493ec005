"""Scoring on Apache Spark: :func:`predict` adds a model's result columns to a Spark DataFrame,
:func:`score_path` runs it as a job from file to file (``reviewsense predict --spark MASTER``).

Needs the ``spark`` extra (pyspark) and Java 17 or 21. The model folder travels to the executors
through Spark itself (``SparkContext.addArchive``); each Python worker loads it once, checks it
against the driver's manifest, and keeps it for every later batch and task (so numba's compiled
loops and the tokenizer's warm-up are paid once per worker). Batches go through Arrow
(``mapInArrow``) and are scored on one thread per Spark task, so executors are not oversubscribed.

Nothing else in the package imports this module (pyspark stays out of their import path); it
uses absolute imports because ``spark-submit`` may run this file as the job's script::

    spark-submit --master yarn .../reviewsense/spark.py --model DIR --input IN --output OUT
    spark-submit --master yarn .../reviewsense/spark.py train --data IN --run-dir RUN

(the second: ``reviewsense train --spark``, :mod:`reviewsense.spark_train`).
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import socket
import sys
import tempfile
import uuid
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reviewsense import errors
from reviewsense.errors import ConfigError, DataError, MissingDependencyError, OutputError, ReviewsenseError

INPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "json",
                 ".json": "json", ".ndjson": "json"}
OUTPUT_FORMATS = ("parquet", "jsonl")
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".snappy", ".lz4", ".zstd")
# one scoring thread per Spark task: the pools of the libraries a model may use, set in each worker
_ONE_THREAD = {"POLARS_MAX_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "REVIEWSENSE_THREADS": "1",
               "REVIEWSENSE_QUIET": "1"}
# pyspark's Python workers warn about pandas 3 on every Arrow call (mapInArrow itself uses no pandas)
_WORKER_WARNINGS = "ignore:PySpark does not yet fully support pandas:FutureWarning"

_MODELS: dict[tuple[str, str], Any] = {}  # per Python worker: (folder, manifest sha256) → the loaded model
_ARCHIVES: dict[str, str] = {}  # on the driver: manifest sha256 → the model folder's zip
_SHIPPED: set[tuple[str, str]] = set()  # (Spark application, manifest sha256) given the zip with addArchive


# -- on the executors --------------------------------------------------------------------------
def _worker_model(where: str, digest: str, shipped: bool) -> Any:
    """The model for this worker process: loaded, and checked against the driver's manifest, once."""
    key = (where, digest)
    if key not in _MODELS:
        for name, value in _ONE_THREAD.items():
            os.environ.setdefault(name, value)
        from pyspark import SparkFiles

        from reviewsense._fs import sha256_file
        from reviewsense.export import load_model
        from reviewsense.export.bundle import MANIFEST

        folder = Path(SparkFiles.get(where)) if shipped else Path(where)
        found = sha256_file(folder / MANIFEST) if (folder / MANIFEST).is_file() else "none"
        if found != digest:
            raise errors.ModelFileError(f"{folder / MANIFEST}: not the manifest the driver loaded (sha256 "
                                        f"{found[:12]}…, expected {digest[:12]}…)")
        model = load_model(folder)
        model.n_jobs = 1
        if "torch" in sys.modules:  # a network's family: torch's own pool too
            sys.modules["torch"].set_num_threads(1)
        _MODELS[key] = model
    return _MODELS[key]


def _score_batches(spec: dict[str, Any], batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow``'s function: each Arrow batch with the result columns added."""
    import numpy as np
    import pyarrow as pa

    from reviewsense.data.files import check_length, max_chars
    from reviewsense.models.base import check_finite
    from reviewsense.prediction.stream import result_arrays

    model = _worker_model(spec["model"], spec["digest"], spec["shipped"])
    limit, column = max_chars(), spec["text_col"]
    for batch in batches:
        texts = ["" if text is None else check_length(text, f"column '{column}'", limit)
                 for text in batch.column(column).to_pylist()]
        proba = model.predict_proba(texts) if texts else np.zeros((0, len(spec["classes"])))
        check_finite(proba, text=f"a text of column '{column}'")  # a NaN is no probability
        results = result_arrays(proba, spec["classes"], spec["threshold"])
        if spec["counter"] is not None:
            spec["counter"].add(len(texts))
        yield pa.RecordBatch.from_arrays([*batch.columns, *results.values()], names=[*batch.schema.names, *results])


# -- on the driver ------------------------------------------------------------------------------
def _pyspark():
    return errors.require("pyspark", "spark", "Scoring on Spark")


def _result_fields(class_names: Sequence[str]) -> list[Any]:
    from pyspark.sql import types as T

    many = len(class_names) > 2
    return [T.StructField("probability", T.DoubleType()),
            T.StructField("label", T.ShortType() if many else T.ByteType()),
            T.StructField("label_name", T.StringType()),
            *[T.StructField(f"probability_{name}", T.DoubleType()) for name in class_names if many]]


def _ship(sc, folder: Path, digest: str) -> str:
    """The model folder zipped (once per driver process) and added to the job with ``addArchive``
    (once per SparkContext): its name for ``SparkFiles.get``."""
    if digest not in _ARCHIVES:
        place = Path(tempfile.mkdtemp(prefix="reviewsense-spark-"))
        atexit.register(shutil.rmtree, place, True)
        archive = place / f"reviewsense-model-{digest[:16]}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:  # weights compress poorly
            for file in sorted(folder.iterdir()):
                if file.is_file():
                    zf.write(file, file.name)
        _ARCHIVES[digest] = str(archive)
    if (sc.applicationId, digest) not in _SHIPPED:
        sc.addArchive(_ARCHIVES[digest])
        _SHIPPED.add((sc.applicationId, digest))
    return Path(_ARCHIVES[digest]).name


def predict(df, model: str | os.PathLike[str], text_col: str = "text", threshold: float | None = None, *,
            ship: bool = True, counter: Any = None):
    """``df`` with the columns ``reviewsense predict`` writes added after its own: ``probability``,
    ``label`` and ``label_name``; more than two classes: the top label's probability and one
    ``probability_<class>`` column per class. ``threshold`` (two classes only, default 0.5): the
    probability at which label = 1. Lazy, like any DataFrame transformation; the rows
    keep their partitions and order.

    ``model`` is an exported model folder on the driver; it is loaded there (a bad folder fails
    here, on one line) and shipped to the executors with ``addArchive``. ``ship=False``: every
    executor reads ``model`` itself (a path all of them see, such as a shared file system).
    Missing texts (null) score as empty texts, like the one-process command. ``counter``: a
    Spark accumulator that each batch adds its row count to."""
    _pyspark()
    from pyspark.sql import types as T

    from reviewsense._fs import sha256_file
    from reviewsense.export import load_model
    from reviewsense.export.bundle import MANIFEST

    folder = Path(model).absolute()
    predictor = load_model(folder)
    if text_col not in df.columns:
        raise DataError(f"no '{text_col}' column (columns: {', '.join(df.columns)}; choose the text with text_col)")
    kind = df.schema[text_col].dataType
    if not isinstance(kind, T.StringType):
        raise DataError(f"column '{text_col}' is {kind.simpleString()}, not text (a string column is scored; "
                        "cast it, or choose another column)")
    if threshold is not None and not predictor.binary:
        raise ConfigError(f"threshold is for two-class models; this one has {predictor.n_classes} classes "
                          f"({', '.join(predictor.class_names)}) and labels each text with its top class")
    threshold = 0.5 if threshold is None else threshold
    if not 0 <= threshold <= 1:
        raise ConfigError(f"threshold must be from 0 to 1, got {threshold}")
    fields = _result_fields(predictor.class_names)
    clash = [f.name for f in fields if f.name in df.columns]
    if clash:
        raise ConfigError(f"the DataFrame already has a column named {', '.join(clash)}, which the results of this "
                          "model add: rename or drop it")
    digest = sha256_file(folder / MANIFEST)
    spec = {"model": _ship(df.sparkSession.sparkContext, folder, digest) if ship else str(folder), "digest": digest,
            "shipped": ship, "text_col": text_col, "threshold": threshold, "classes": list(predictor.class_names),
            "counter": counter}
    with warnings.catch_warnings():  # pandas 3: pyspark warns on every Arrow call, though mapInArrow uses no pandas
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
        return df.mapInArrow(functools.partial(_score_batches, spec), T.StructType([*df.schema.fields, *fields]))


# -- errors on one line -------------------------------------------------------------------------
_OURS = re.compile(r"reviewsense\.errors\.(\w+): (.+)")
_CAUSE = re.compile(r"^(?:Caused by: )?(?:[\w$]+\.)*(\w*(?:Exception|Error)): (.+)$")


def one_line(exc: BaseException) -> ReviewsenseError:
    """A failed Spark call as the project's error: the reviewsense error raised on an executor
    when there is one (its class and message), else the deepest cause Spark reports."""
    text = str(exc)
    ours = _OURS.findall(text)
    if ours:
        name, message = ours[-1]
        kind = getattr(errors, name, None)
        if isinstance(kind, type) and issubclass(kind, ReviewsenseError):
            return kind(message.strip())
    return DataError(f"the Spark job failed: {_cause(exc)}")


def _cause(exc: BaseException) -> str:
    """The deepest cause a Spark or Py4J exception names, else its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [m.group(2).strip() for line in lines if (m := _CAUSE.match(line))]
    return causes[-1] if causes else lines[0] if lines else type(exc).__name__


@contextmanager
def spark_errors() -> Iterator[None]:
    """Within the block, what Spark raises (from the JVM or a Python worker) becomes one line."""
    try:
        yield
    except ReviewsenseError:
        raise
    except Exception as exc:
        raise one_line(exc) from exc


# -- the job: file in, file out -----------------------------------------------------------------
def check_java() -> None:
    """Java must be there before Spark starts (else pyspark fails after a long wait and a traceback)."""
    home = os.environ.get("JAVA_HOME")
    if home:
        if not (Path(home) / "bin" / "java").is_file():
            raise MissingDependencyError(f"JAVA_HOME={home} has no bin/java; Spark needs Java 17 or 21")
    elif shutil.which("java") is None:
        raise MissingDependencyError("Spark needs Java 17 or 21 and there is no 'java' on PATH (install it, e.g. "
                                     "apt-get install openjdk-17-jre-headless, or set JAVA_HOME)")


_MASTER = re.compile(r"local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]|yarn|spark://\S+|k8s://\S+")


def check_master(master: str, timeout: float = 5.0) -> None:
    """A master Spark knows, with what it needs: yarn its configuration folder; a standalone master
    (``spark://host:port[,host:port]``) must answer before the job starts (Spark itself retries
    for about a minute, then fails with a stack trace)."""
    if not _MASTER.fullmatch(master):
        raise ConfigError(f"--spark {master}: not a Spark master (local[N], local[*], spark://HOST:PORT, yarn, "
                          "k8s://https://HOST:PORT; alone: the master spark-submit gives)")
    if master == "yarn" and not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
        raise ConfigError("--spark yarn needs HADOOP_CONF_DIR or YARN_CONF_DIR: the folder of the cluster's "
                          "configuration (core-site.xml, yarn-site.xml)")
    if not master.startswith("spark://"):
        return
    problems = []
    for part in master[len("spark://"):].split(","):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--spark {master}: a standalone master is spark://HOST:PORT")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return
        except OSError as exc:
            problems.append(f"{host}:{port}: {exc.strerror or exc}")
    raise ConfigError(f"cannot reach the Spark master {master} ({'; '.join(problems)})")


def _log_config() -> tuple[str, str | None]:
    """Spark's log level for a session this module starts ($REVIEWSENSE_SPARK_LOG, default off:
    a failure comes back as one line) and, unless $SPARK_CONF_DIR holds the user's own, a log4j2
    file that sets it from the JVM's start (else Spark logs its start-up at WARN)."""
    level = (os.environ.get("REVIEWSENSE_SPARK_LOG") or "off").upper()
    if level not in ("OFF", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE", "ALL"):
        raise ConfigError(f"REVIEWSENSE_SPARK_LOG={level.lower()}: choose off, error, warn, info or debug")
    if os.environ.get("SPARK_CONF_DIR"):
        return level, None
    place = Path(tempfile.mkdtemp(prefix="reviewsense-spark-log-"))
    atexit.register(shutil.rmtree, place, True)
    (place / "log4j2.properties").write_text(
        f"rootLogger.level = {level.lower()}\nrootLogger.appenderRef.stderr.ref = stderr\n"
        "appender.stderr.type = Console\nappender.stderr.name = stderr\nappender.stderr.target = SYSTEM_ERR\n"
        "appender.stderr.layout.type = PatternLayout\nappender.stderr.layout.pattern = spark: %p %c{1}: %m%n%ex\n")
    return level, f"-Dlog4j.configurationFile=file:{place / 'log4j2.properties'}"


def session(master: str | None, app: str = "reviewsense predict", console_progress: bool = True):
    """The active SparkSession, else a new one called ``app`` on ``master`` (None: spark-submit's
    or the default); returns (session, whether this call started it). ``console_progress``:
    Spark's progress bar on stderr (never with REVIEWSENSE_QUIET)."""
    _pyspark()
    from pyspark.sql import SparkSession

    from reviewsense.progress import quiet

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    check_java()
    level, java_options = _log_config()
    builder = SparkSession.builder.appName(app)
    if master:  # this process starts the JVM (under spark-submit it runs already)
        check_master(master)
        builder = builder.master(master)
        if java_options:
            builder = builder.config("spark.driver.extraJavaOptions", java_options)
    for name, value in _ONE_THREAD.items():
        builder = builder.config(f"spark.executorEnv.{name}", value)
    if quiet() or not console_progress:
        builder = builder.config("spark.ui.showConsoleProgress", "false")
    os.environ.setdefault("PYTHONWARNINGS", _WORKER_WARNINGS)  # local[N]: the workers inherit the driver's
    builder = builder.config("spark.executorEnv.PYTHONWARNINGS", os.environ["PYTHONWARNINGS"])
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        raise ConfigError(f"cannot start Spark (master {master or 'from spark-submit'}): {_cause(exc)}") from exc
    spark.sparkContext.setLogLevel(level)
    return spark, True


def table_format(path: str) -> str | None:
    """The format Spark reads ``path`` in, from its name (compressed or not): parquet, csv, tsv,
    json; None for any other name."""
    name = path.rstrip("/").lower()
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    return INPUT_FORMATS.get(Path(name).suffix)


def _input_format(path: str) -> str:
    fmt = table_format(path)
    if fmt is None:
        raise ConfigError(f"{path}: cannot tell its format; name it .parquet, .csv, .tsv or .jsonl (a file, or "
                          "a folder of such files)")
    return fmt


def output_format(path: str, fmt: str | None) -> str:
    """Parquet or JSONL, from ``--format`` or the output's name."""
    fmt = fmt or {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}.get(Path(path.rstrip("/")).suffix.lower())
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"{path}: a Spark job writes Parquet or JSONL (a folder of part files); name it "
                          ".parquet or .jsonl, or give --format parquet|jsonl")
    return fmt


class _FileSystem:
    """Hadoop's file system for a path (local, HDFS, S3…), through the JVM: what Spark reads and writes."""

    def __init__(self, spark, path: str):
        jvm = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path
        self.fs = self._path(path).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def qualified(self, path: str) -> str:
        return str(self.fs.makeQualified(self._path(path)).toString())

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(self._path(path)))

    def rename(self, source: str, target: str) -> bool:
        return bool(self.fs.rename(self._path(source), self._path(target)))

    def delete(self, path: str) -> None:
        self.fs.delete(self._path(path), True)


def _read(spark, path: str, fmt: str, sep: str | None, encoding: str | None):
    from reviewsense.data.files import separator

    reader = spark.read
    if fmt in ("csv", "tsv"):  # every column as text, quotes doubled as in RFC 4180, texts over several lines
        reader = reader.options(header=True, multiLine=True, escape='"', mode="FAILFAST",
                                sep=separator(sep) or ("\t" if fmt == "tsv" else ","), encoding=encoding or "UTF-8")
        return reader.csv(path)
    if fmt == "json":
        return reader.options(mode="FAILFAST", encoding=encoding or "UTF-8").json(path)
    return reader.parquet(path)


def score_path(master: str | None, model: str, source: str, target: str, *, text_col: str = "text",
               keep: Sequence[str] = (), threshold: float | None = None, fmt: str | None = None, sep: str | None = None,
               encoding: str | None = None) -> int:
    """Score the texts of ``source`` (a Parquet, CSV, TSV or JSONL file or folder of them, on any
    file system Spark reads) into ``target``, a folder of Parquet or JSONL part files in the order
    of the input's partitions; returns the row count. The job writes to a hidden folder beside
    ``target`` and renames it into place when it succeeds: a failed job leaves nothing there."""
    out_fmt = output_format(target, fmt)
    in_fmt = _input_format(source)
    if sep is not None and in_fmt not in ("csv", "tsv"):
        raise ConfigError("--sep applies to a CSV or TSV input")
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    spark, started = session(master)
    try:
        with spark_errors():
            return _run(spark, model, source, target, in_fmt, out_fmt, text_col, list(keep), threshold, sep,
                        encoding)
    finally:
        if started:
            spark.stop()


def _run(spark, model: str, source: str, target: str, in_fmt: str, out_fmt: str, text_col: str, keep: list[str],
         threshold: float | None, sep: str | None, encoding: str | None) -> int:
    from pyspark.sql import functions as F

    fs_in, fs_out = _FileSystem(spark, source), _FileSystem(spark, target)
    if not fs_in.exists(source):
        raise DataError(f"{source}: no such file or directory")
    if fs_in.qualified(source) == fs_out.qualified(target):
        raise OutputError(f"{target}: is the input")
    if fs_out.exists(target):
        raise OutputError(f"{target}: already exists; a Spark job writes a new folder (remove it, or choose "
                          "another --output)")
    df = _read(spark, source, in_fmt, sep, encoding)
    wanted = list(dict.fromkeys([text_col, *keep]))
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise DataError(f"{source}: no '{missing[0]}' column (columns: {', '.join(df.columns)}; choose the text "
                        "with --text-column, the columns to keep with --keep-columns)")
    counted = spark.sparkContext.accumulator(0)
    try:
        scored = predict(df.select(*[F.col(_quoted(c)) for c in wanted]), model, text_col, threshold, counter=counted)
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None
    added = scored.columns[len(wanted):]  # probability, label, label_name, then one per class (> 2 classes)
    classes = added[3:] if out_fmt == "jsonl" else []
    if classes and "probabilities" in keep:
        raise ConfigError("--keep-columns probabilities: the JSONL results of this model have a field of that name; "
                          "rename the input column")
    columns = [F.col(_quoted(c)) for c in [*keep, *added] if c not in classes]
    if classes:  # as the one-process JSONL: every class's probability in one object
        columns.append(F.struct(*[F.col(_quoted(c)).alias(c[len("probability_"):]) for c in classes])
                       .alias("probabilities"))
    out = scored.select(*columns)
    parent, name = target.rstrip("/").rpartition("/")[::2]
    temporary = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.tmp" if parent else f".{name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        writer = out.write.mode("errorifexists")
        if out_fmt == "jsonl":
            writer.option("ignoreNullFields", "false").json(temporary)
        else:
            writer.parquet(temporary)
        if fs_out.exists(target) or not fs_out.rename(temporary, target):
            raise OutputError(f"{target}: could not move the finished job's output into place (it appeared "
                              "meanwhile, or the file system refused the rename)")
    except BaseException:
        fs_out.delete(temporary)
        raise
    return int(counted.value)


def _quoted(name: str) -> str:
    """A column name as Spark's ``col`` reads it literally (dots and backticks included)."""
    return "`" + name.replace("`", "``") + "`"


if __name__ == "__main__":  # spark-submit …/reviewsense/spark.py [train] [options]: the master from spark-submit
    from reviewsense.cli import main

    command = sys.argv[1:2] == ["train"]
    sys.exit(main(["train" if command else "predict", "--spark", *sys.argv[1 + command :]]))
