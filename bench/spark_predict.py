"""Scoring on Spark against one process: `reviewsense predict` on 1,000,000 generated rows.

    python bench/spark_predict.py [--model DIR] [--rows 1000000] [--masters 'local[1]' 'local[2]']

Writes a Parquet file of generated reviews (as bench/predict_stream.py: words of the model's own
vocabulary, 20-120 each, with an ``id`` column), then runs the real commands as child processes:
`reviewsense predict --input big.parquet --output one.parquet --keep-columns id` (one process),
and `reviewsense predict --spark MASTER …` for each master. Checks that Spark's output holds
every id once, in input order, with the one-process probabilities (max absolute difference), and
reports rows/s (the whole command: JVM start included), the peak RSS of the one process, of each
Spark Python worker (the largest) and of the JVM (driver and executor in local mode), sampled
from /proc. Each command also runs on 1,000 rows: its time is the fixed start-up (the process,
the JVM, the session, the model), and the rows/s after start-up are the rows over the difference.
Then, for each master in one session (start-up excluded: the second of two runs), Arrow's two
ways of handing batches to Python: ``mapInArrow`` (what reviewsense.spark uses) and ``mapInPandas``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, machine, write_results  # noqa: E402
from predict_stream import generate, model_and_vocabulary  # noqa: E402


class PeakRSS:
    """Polls /proc for the process tree under ``root``: the high-water RSS (VmHWM) of each process."""

    def __init__(self, root: int):
        self.root, self.peaks, self.kinds, self.parents = root, {}, {}, {}
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
                self.parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(self.parents[int(entry)], []).append(int(entry))
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
                                   "pyspark" if "pyspark.daemon" in cmdline else "driver")
            time.sleep(0.1)

    def stop(self) -> dict[str, int]:
        """Peak RSS in MB of the largest process of each kind, and how many Python workers ran."""
        self._stop.set()
        self._thread.join()
        out: dict[str, int] = {}
        workers = 0
        for pid, peak in self.peaks.items():
            kind = self.kinds[pid]
            if self.kinds.get(self.parents.get(pid, 0)) == "pyspark":  # forked by the daemon (its title may change)
                kind = "python worker"
                workers += 1
            elif kind == "pyspark":
                kind = "pyspark daemon"
            out[kind] = max(out.get(kind, 0), round(peak / 1024))
        out["python workers"] = workers
        return out


def run(args: list[str], rows: int, **env: str) -> dict:
    """One `reviewsense` command in a child process: wall seconds, rows/s, peak RSS by kind."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "reviewsense.cli", *args], stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "REVIEWSENSE_QUIET": "1", **env})
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


def in_session(model: str, source: Path, master: str, out: Path) -> list[dict]:
    """In one session, start-up excluded (the second of two runs): Parquet in, the id and the results
    out to Parquet, through mapInArrow (reviewsense.spark.predict) and through mapInPandas (the same
    model cache and result columns); the peak RSS of each Python worker."""
    from pyspark.sql import SparkSession
    from pyspark.sql import types as T

    from reviewsense._fs import sha256_file
    from reviewsense.export import load_model
    from reviewsense.spark import _result_fields, _ship, _worker_model, predict

    peaks = PeakRSS(os.getpid())
    spark = (SparkSession.builder.master(master).config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.parquet(str(source))
    rows, partitions = df.count(), df.rdd.getNumPartitions()
    classes = list(load_model(model).class_names)
    digest = sha256_file(Path(model) / "manifest.json")
    name = _ship(spark.sparkContext, Path(model).absolute(), digest)

    def pandas_batches(frames):
        import pyarrow as pa

        from reviewsense.prediction.stream import result_arrays

        scorer = _worker_model(name, digest, True)
        for frame in frames:
            table = pa.table(result_arrays(scorer.predict_proba(frame["text"].fillna("").tolist()), classes))
            yield frame.assign(**{c: table.column(c).to_pandas() for c in table.column_names})

    results = []
    for method, scored in (("mapInArrow", lambda: predict(df, model)),
                           ("mapInPandas", lambda: df.mapInPandas(pandas_batches, T.StructType(
                               [*df.schema.fields, *_result_fields(classes)])))):
        for _ in range(2):  # the first run of each loads the model in the workers
            started = time.perf_counter()
            scored().select("id", "probability", "label", "label_name").write.mode("overwrite").parquet(str(out))
            seconds = time.perf_counter() - started
        results.append({"run": f"Spark {master}, in session", "method": method, "rows": rows,
                        "partitions": partitions, "seconds": round(seconds, 1), "rows_per_s": round(rows / seconds)})
        print(json.dumps(results[-1]), flush=True)
    spark.stop()
    memory = peaks.stop()
    for r in results:
        r.update({"python worker": memory.get("python worker"), "python workers": memory["python workers"]})
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder (default: train the default model on IMDB first)")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--masters", nargs="+", default=["local[1]", "local[2]"])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results/spark_predict.json"))
    args = ap.parse_args()

    os.environ.setdefault("PYTHONWARNINGS", "ignore:PySpark does not yet fully support pandas:FutureWarning")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, vocabulary = model_and_vocabulary(args.model, args.data, tmp)
        big, small = tmp / "big.parquet", tmp / "small.parquet"
        started = time.perf_counter()
        generate(big, args.rows, vocabulary, ids=True)
        generate(small, 1_000, vocabulary, seed=1, ids=True)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.0f} s "
              f"({big.stat().st_size / 1e6:.0f} MB Parquet)", flush=True)
        runs = [("one process, 1 thread", [], {"REVIEWSENSE_THREADS": "1"}), ("one process", [], {}),
                *[(f"Spark {master}", ["--spark", master], {}) for master in args.masters]]
        rows = []
        for label, extra, env in runs:
            (tmp / "out").mkdir()
            measured = [run(["predict", "--model", model, "--input", str(source), "--keep-columns", "id", *extra,
                             "--output", str(tmp / "out" / f"{source.stem}.parquet")], n, **env)
                        for source, n in ((small, 1_000), (big, args.rows))]
            # the same command on 1,000 rows: the fixed start-up (process, JVM, session, model), then the speed
            scoring = measured[1]["seconds"] - measured[0]["seconds"]  # ≤ 0: too noisy a machine to tell
            rows.append({"run": label, **measured[1], "startup_s": measured[0]["seconds"],
                         "scoring_rows_per_s": round(args.rows / scoring) if scoring > 0 else None,
                         **(compare(tmp / "one.parquet", tmp / "out" / "big.parquet", args.rows) if extra else {})})
            if label == "one process":
                (tmp / "out" / "big.parquet").rename(tmp / "one.parquet")
            shutil.rmtree(tmp / "out")
            print(json.dumps(rows[-1]), flush=True)
        ways = [r for master in args.masters for r in in_session(model, big, master, tmp / "session.parquet")]

    print(f"\n| {args.rows:,} rows | rows/s (whole command) | seconds | start-up (s) | rows/s after start-up | "
          "peak RSS: the process / each Python worker | Python workers | JVM peak RSS | ids once, in order | "
          "max abs diff vs one process |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        worker = r.get("python worker", r.get("driver"))
        jvm = f"{r['jvm']:,} MB" if "jvm" in r else "–"
        speed = f"{r['scoring_rows_per_s']:,}" if r["scoring_rows_per_s"] else "–"
        print(f"| {r['run']} | {r['rows_per_s']:,} | {r['seconds']} | {r['startup_s']} | {speed} "
              f"| {worker:,} MB | {r['python workers'] if 'jvm' in r else '–'} | {jvm} | "
              f"{r.get('ids_in_order_once', '–')} | {r.get('max_abs_diff', '–')} |")
    print("\n| in one session, start-up excluded | hand-over | partitions | rows/s | seconds | peak RSS per Python "
          "worker | Python workers |\n|---|---|---|---|---|---|---|")
    for w in ways:
        print(f"| {w['run']} | {w['method']} | {w['partitions']} | {w['rows_per_s']:,} | {w['seconds']} | "
              f"{w['python worker']:,} MB | {w['python workers']} |")
    write_results(args.out, {**machine(), "model": args.model or "default model trained on IMDB",
                             "rows": "generated: 20-120 words each from the model's vocabulary"},
                  rows + ways)


if __name__ == "__main__":
    main()
