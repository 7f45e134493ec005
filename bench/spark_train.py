"""Training the default model on Spark against one process: `reviewsense train` on IMDB.

    python bench/spark_train.py [--data IMDB] [--masters 'local[1]' 'local[2]'] [--parquet]

Runs the real commands as child processes on the same data and split (IMDB's 25,000 training
reviews, 10,000 of them held out by movie for validation, its 25,000 test reviews): `reviewsense
train` (one process, the default model) and `reviewsense train --spark MASTER` for each master.
Reports the wall time of the whole command (JVM start included), the fit's own time (metrics.json:
train_seconds), test accuracy and ROC-AUC, the peak RSS of the driver, of the largest Python
worker and of the JVM, and how the Spark model compares with the one-process one: the same
vocabulary and the same kept n-gram columns (which follow from identical naive-Bayes counts), the
share of test reviews given the same label and the largest probability difference.

``--parquet`` also writes IMDB's train and test splits to Parquet and trains from them with
``--data train.parquet --test-data test.parquet`` on the last master: the path of a table Spark
reads itself (validation rows held out by a hash of their text, not by movie).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, machine, write_results  # noqa: E402
from spark_predict import run  # noqa: E402


def trained(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"train_s": metrics["timing"]["train_seconds"], "accuracy": round(metrics["test"]["accuracy"], 4),
            "roc_auc": round(metrics["test"]["roc_auc"], 4)}


def compare(one: Path, other: Path, texts: list[str]) -> dict:
    """How a Spark model compares with the one-process model."""
    from safetensors.numpy import load_file

    import reviewsense

    same_vocabulary = json.loads((one / "vectorizer.json").read_text()) == \
        json.loads((other / "vectorizer.json").read_text())
    columns = [load_file(str(folder / "model.safetensors"))["coef_index"] for folder in (one, other)]
    a, b = (reviewsense.load(folder).predict_proba(texts)[:, 1] for folder in (one, other))
    return {"same_vocabulary": same_vocabulary, "same_kept_columns": bool(np.array_equal(*columns)),
            "kept_columns": len(columns[1]), "same_label": round(float(((a >= 0.5) == (b >= 0.5)).mean()), 4),
            "max_probability_diff": round(float(np.abs(a - b).max()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--masters", nargs="+", default=["local[1]", "local[2]"])
    parser.add_argument("--parquet", action="store_true", help="also train from Parquet files Spark reads")
    parser.add_argument("--out", default="bench/results/spark_train.json")
    args = parser.parse_args()

    from reviewsense.data.imdb import read_imdb, resolve_source

    test = read_imdb(resolve_source(args.data), ["test"])["test"]
    work = Path(tempfile.mkdtemp(prefix="spark-train-"))
    results = []
    runs = [("one process", [])] + [(f"Spark {m}", ["--spark", m]) for m in args.masters]
    for name, extra in runs:
        run_dir = work / name.replace(" ", "-").replace("[", "").replace("]", "")
        print(f"{name} ...", flush=True)
        row = {"run": name, **run(["train", "--data", args.data, "--run-dir", str(run_dir), *extra], 25_000),
               **trained(run_dir)}
        row.pop("rows_per_s")
        if extra:
            row |= compare(work / "one-process" / "model", run_dir / "model", test.texts)
        results.append(row)
        print("  ", row, flush=True)
    if args.parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for split in ("train", "test"):
            data = read_imdb(resolve_source(args.data), [split])[split]
            pq.write_table(pa.table({"text": data.texts, "label": np.array(data.class_names)[data.labels]}),
                           work / f"{split}.parquet")
        run_dir = work / "parquet"
        print("Parquet ...", flush=True)
        row = {"run": f"Spark {args.masters[-1]}, Parquet (hash split)",
               **run(["train", "--spark", args.masters[-1], "--data", str(work / "train.parquet"), "--test-data",
                      str(work / "test.parquet"), "--validation-size", "10000", "--run-dir", str(run_dir)], 25_000),
               **trained(run_dir)}
        row.pop("rows_per_s")
        results.append(row)
        print("  ", row, flush=True)

    keys = ["run", "seconds", "train_s", "accuracy", "roc_auc", "driver", "python worker", "jvm", "same_vocabulary",
            "same_kept_columns", "same_label", "max_probability_diff"]
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in results:
        print("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |")
    write_results(args.out, {**machine(), "data": "IMDB: train 15,000 / validation 10,000 (by movie) / test 25,000"},
                  results)


if __name__ == "__main__":
    main()
