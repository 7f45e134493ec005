"""The Spark tests' session: one ``local[2]`` session for the whole folder, loopback only.

Skipped without pyspark or Java, unless REVIEWSENSE_REQUIRE_SPARK=1 (CI), where they must run."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRED = os.environ.get("REVIEWSENSE_REQUIRE_SPARK", "") not in ("", "0")


def _needs(what: str) -> None:
    if REQUIRED:
        pytest.fail(f"{what} (REVIEWSENSE_REQUIRE_SPARK=1: the Spark tests must run here)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def spark():
    """One local[2] session for the folder: loopback only, no web UI, small Arrow batches (several per task)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        _needs("pyspark is not installed (the 'spark' extra)")
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        _needs("no Java (Spark needs Java 17 or 21)")
    saved = {name: os.environ.get(name) for name in ("SPARK_LOCAL_IP", "PYTHONWARNINGS")}
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ.setdefault("PYTHONWARNINGS", "ignore:PySpark does not yet fully support pandas:FutureWarning")
    session = (SparkSession.builder.master("local[2]").appName("reviewsense tests")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.shuffle.partitions", "2").config("spark.default.parallelism", "2")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "500")
               .config("spark.sql.files.maxPartitionBytes", "64k").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
