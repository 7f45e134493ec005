"""Scoring on Spark against one process: `reviewsense predict` on 1,000,000 generated rows.

    python bench/spark_predict.py [--model DIR] [--rows 1000000] [--masters 'local[1]' 'local[2]']

Writes a Parquet file of generated reviews (as bench/predict_stream.py: words of the model's own
vocabulary, 20-120 each, with an ``id`` column), then runs the real commands as child processes:
`reviewsense predict --input big.parquet --output one.parquet --keep-columns id` (one process),
and `reviewsense predict --spark MASTER …` for each master. Checks that Spark's output holds
every id once, in input order, with the one-process probabilities (max absolute difference), and
reports rows/s (the whole command: JVM start included), the peak RSS of the one process, of each
Spark Python worker (the largest) and of the JVM (driver and executor in local mode), sampled
from /proc. Then, on a tenth of the rows in one local[2] session, Arrow's two ways of handing
batches to Python: ``mapInArrow`` (what reviewsense.spark uses) and ``mapInPandas``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, machine, write_results  # noqa: E402
from predict_stream import generate  # noqa: E402


class PeakRSS:
    """Polls /proc for the process tree under ``root``: the high-water RSS (VmHWM) of each process."""

    def __init__(self, root: int):
        self.root, self.peaks, self.kinds = root, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
        found, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def _poll(self) -> None:
        while not self._stop.is_set():
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
                self.peaks[pid] = max(self.peaks.get(pid, 0), hwm)
                self.kinds[pid] = ("jvm" if "java" in cmdline.split(" ", 1)[0] else
                                   "python worker" if "pyspark.daemon" in cmdline else "driver")
            time.sleep(0.1)

    def stop(self) -> dict[str, int]:
        """Peak RSS in MB by kind: the largest process of each."""
        self._stop.set()
        self._thread.join()
        daemons = {pid for pid, kind in self.kinds.items() if kind == "python worker"}
        parents = {pid: int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                   for pid in daemons if Path(f"/proc/{pid}/stat").exists()}
        out: dict[str, int] = {}
        for pid, peak in self.peaks.items():
            kind = self.kinds[pid]
            if kind == "python worker" and parents.get(pid) not in daemons and pid in parents:
                kind = "pyspark daemon"  # the daemon forks the workers; its own memory is small
            out[kind] = max(out.get(kind, 0), round(peak / 1024))
        out["python workers"] = len([p for p in daemons if parents.get(p) in daemons])
        return out


def run(args: list[str], rows: int) -> dict:
    """One `reviewsense` command in a child process: wall seconds, rows/s, peak RSS by kind."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "reviewsense.cli", *args], stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "REVIEWSENSE_QUIET": "1"})
    peaks = PeakRSS(child.pid)
    _, err = child.communicate()
    seconds = time.perf_counter() - started
    memory = peaks.stop()
    if child.returncode:
        raise SystemExit(f"reviewsense {' '.join(args)} failed:\n{err}")
    return {"seconds": round(seconds, 1), "rows_per_s": round(rows / seconds), **memory}


def compare(one: Path, spark: Path, rows: int) -> dict:
    import pyarrow.dataset as ds

    a = ds.dataset(one).to_table(columns=["id", "probability"])
    b = ds.dataset(spark, format="parquet").to_table(columns=["id", "probability"])  # part files in name order
    ids = b.column("id").to_numpy()
    return {"rows_out": len(ids), "ids_in_order_once": bool(len(ids) == rows and (ids == np.arange(rows)).all()),
            "max_abs_diff": float(np.abs(a.column("probability").to_numpy() - b.column("probability").to_numpy())
                                  .max()) if len(ids) == rows else None}


def methods(model: str, source: Path, threads: int = 2) -> list[dict]:
    """mapInArrow (reviewsense.spark.predict) against mapInPandas, same model and worker cache, a noop sink."""
    from pyspark.sql import SparkSession

    from reviewsense.spark import _result_fields, _ship, _worker_model, predict

    spark = (SparkSession.builder.master(f"local[{threads}]").config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    from pyspark.sql import types as T

    from reviewsense._fs import sha256_file
    from reviewsense.export import load_model

    df = spark.read.parquet(str(source))
    rows = df.count()
    classes = list(load_model(model).class_names)
    digest = sha256_file(Path(model) / "manifest.json")
    name = _ship(spark.sparkContext, Path(model).absolute(), digest)

    def pandas_batches(frames):
        import pyarrow as pa

        from reviewsense.prediction.stream import result_arrays

        scorer = _worker_model(name, digest, True)
        for frame in frames:
            texts = frame["text"].fillna("").tolist()
            table = pa.table(result_arrays(scorer.predict_proba(texts), classes))
            yield frame.assign(**{c: table.column(c).to_pandas() for c in table.column_names})

    out = []
    for method, scored in (("mapInArrow", lambda: predict(df, model)),
                           ("mapInPandas", lambda: df.mapInPandas(pandas_batches, T.StructType(
                               [*df.schema.fields, *_result_fields(classes)])))):
        for _ in range(2):  # the first run of each loads the model in the workers
            started = time.perf_counter()
            scored().write.format("noop").mode("overwrite").save()
            seconds = time.perf_counter() - started
        out.append({"method": method, "rows": rows, "seconds": round(seconds, 1),
                    "rows_per_s": round(rows / seconds)})
        print(json.dumps(out[-1]), flush=True)
    spark.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder (default: train the default model on IMDB first)")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--masters", nargs="+", default=["local[1]", "local[2]"])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results/spark_predict.json"))
    args = ap.parse_args()

    from reviewsense.export import load_model

    os.environ.setdefault("PYTHONWARNINGS", "ignore:PySpark does not yet fully support pandas:FutureWarning")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            subprocess.run([sys.executable, "-m", "reviewsense.cli", "train", "--data", args.data, "--run-dir",
                            str(tmp / "run")], check=True, env={**os.environ, "REVIEWSENSE_QUIET": "1"})
            model = str(tmp / "run" / "model")
        vocabulary = load_model(model).vectorizer.vocabulary_
        big, small = tmp / "big.parquet", tmp / "small.parquet"
        started = time.perf_counter()
        generate(big, args.rows, vocabulary, ids=True)
        generate(small, args.rows // 10, vocabulary, seed=1, ids=True)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.0f} s "
              f"({big.stat().st_size / 1e6:.0f} MB Parquet)", flush=True)
        common = ["predict", "--model", model, "--input", str(big), "--keep-columns", "id"]
        rows = [{"run": "one process", **run([*common, "--output", str(tmp / "one.parquet")], args.rows)}]
        print(json.dumps(rows[-1]), flush=True)
        for master in args.masters:
            out = tmp / f"spark-{master.strip('[]').replace('[', '-')}.parquet"
            rows.append({"run": f"Spark {master}", **run([*common, "--spark", master, "--output", str(out)],
                                                         args.rows), **compare(tmp / "one.parquet", out, args.rows)})
            print(json.dumps(rows[-1]), flush=True)
        ways = methods(model, small)

    print("\n| run | rows/s | seconds | peak RSS: one process / Python worker (largest) | JVM peak RSS | "
          "ids once, in order | max abs diff vs one process |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        worker = r.get("python worker", r.get("driver"))
        jvm = f"{r['jvm']:,} MB" if "jvm" in r else "–"
        print(f"| {r['run']} | {r['rows_per_s']:,} | {r['seconds']} | {worker:,} MB | {jvm} | "
              f"{r.get('ids_in_order_once', '–')} | "
              f"{r.get('max_abs_diff', '–')} |")
    print(f"\n| Arrow hand-over, local[2], {ways[0]['rows']:,} rows, noop sink | rows/s |\n|---|---|")
    for w in ways:
        print(f"| {w['method']} | {w['rows_per_s']:,} |")
    write_results(args.out, {**machine(), "model": args.model or "default model trained on IMDB",
                             "rows": "generated: 20-120 words each from the model's vocabulary"},
                  rows + ways)


if __name__ == "__main__":
    main()
