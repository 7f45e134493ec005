"""Batch scoring at scale: `reviewsense predict` on 1,000,000 generated rows, constant memory.

    python bench/predict_stream.py [--model DIR] [--rows 1000000] [--workers 1 2]

Writes a Parquet file of generated reviews (words drawn from the model's own vocabulary,
Zipf-like frequencies, 20-120 words each: no review text from any dataset), then runs the
real command, `reviewsense predict --input big.parquet --output scores.jsonl`, as a child
process, for a tenth of the rows and for all of them, with each ``--workers`` setting.
Reports rows/s and the peak RSS of the largest process (getrusage of the children, which
includes the worker processes): flat memory means the peak does not grow with the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, machine, write_results  # noqa: E402


def generate(path: Path, rows: int, vocabulary: list[str], seed: int = 0, batch: int = 100_000,
             ids: bool = False) -> None:
    """``rows`` reviews into ``path`` (column ``text``; with ``ids``, first an ``id`` column: 0, 1, 2…)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    words = np.array(vocabulary[2:20_002], dtype=object)
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    schema = pa.schema([*([("id", pa.int64())] if ids else []), ("text", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            lengths = rng.integers(20, 121, n)
            drawn = words[rng.choice(len(words), int(lengths.sum()), p=weights)]
            ends = np.cumsum(lengths)
            texts = [" ".join(drawn[e - k : e]) for e, k in zip(ends, lengths, strict=True)]
            writer.write_table(pa.table({**({"id": np.arange(start, start + n)} if ids else {}), "text": texts},
                                        schema=schema))


def run_predict(model: str, source: Path, workers: int, out: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reviewsense.cli", "predict", "--model", model, "--input", str(source),
                    "--output", str(out), "--workers", str(workers)], check=True,
                   env={**os.environ, "REVIEWSENSE_QUIET": "1"})
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, max over all waited children
    with open(out, "rb") as fh:
        rows = sum(1 for _ in fh)
    return {"rows": rows, "workers": workers, "seconds": round(seconds, 1), "rows_per_s": round(rows / seconds),
            "peak_rss_mb": round(peak / 1024), "peak_grew": peak > before}


def model_and_vocabulary(model: str | None, data: str, tmp: Path) -> tuple[str, list[str]]:
    """The model folder (with none given, the default model trained on ``data`` into ``tmp``) and its vocabulary."""
    from reviewsense.export import load_model

    if model is None:
        subprocess.run([sys.executable, "-m", "reviewsense.cli", "train", "--data", data, "--run-dir",
                        str(tmp / "run")], check=True, env={**os.environ, "REVIEWSENSE_QUIET": "1"})
        model = str(tmp / "run" / "model")
    return model, load_model(model).vectorizer.vocabulary_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder (default: train the default model on IMDB first)")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results/predict_stream.json"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, vocabulary = model_and_vocabulary(args.model, args.data, tmp)
        small, big = tmp / "small.parquet", tmp / "big.parquet"
        started = time.perf_counter()
        generate(small, args.rows // 10, vocabulary)
        generate(big, args.rows, vocabulary)
        print(f"generated {args.rows:,} + {args.rows // 10:,} rows in {time.perf_counter() - started:.0f} s "
              f"({big.stat().st_size / 1e6:.0f} MB Parquet)", flush=True)
        rows = []
        # each measurement in a fresh child of a fresh interpreter, so ru_maxrss is that run's peak
        for workers in args.workers:
            for source in (small, big):
                code = ("import json, sys; sys.path.insert(0, sys.argv[5]); from predict_stream import run_predict; "
                        "from pathlib import Path; print(json.dumps(run_predict(sys.argv[1], Path(sys.argv[2]), "
                        "int(sys.argv[3]), Path(sys.argv[4]))))")
                result = subprocess.run([sys.executable, "-c", code, model, str(source), str(workers),
                                         str(tmp / "scores.jsonl"), str(Path(__file__).resolve().parent)],
                                        check=True, capture_output=True, text=True)
                rows.append(json.loads(result.stdout))
                rows[-1].pop("peak_grew")
                print(json.dumps(rows[-1]), flush=True)

    print("\n| rows | workers | seconds | rows/s | peak RSS (largest process) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rows']:,} | {r['workers']} | {r['seconds']} | {r['rows_per_s']:,} | {r['peak_rss_mb']:,} MB |")
    write_results(args.out, {**machine(), "model": args.model or "default model trained on IMDB",
                             "rows": "generated: 20-120 words each from the model's vocabulary"}, rows)


if __name__ == "__main__":
    main()
