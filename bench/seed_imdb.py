"""Benchmark of the seed model on the real IMDB archive (issue: end-to-end pipeline).

Runs, on the same split, the tutorial recipe (embedding from scratch, 40 epochs, batch 512,
no early stopping) and the best seed settings (chosen on validation), each through the
same `reviewsense train` pipeline, and reports test accuracy, wall times and peak RSS.

    python bench/seed_imdb.py [--data PATH] [--out bench/results/seed_imdb.json]

Prints a Markdown table and writes JSON. Each configuration runs in its own process, so
peak RSS is per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, ROOT, machine, write_results  # noqa: E402

CONFIGS = {
    "tutorial recipe (scratch, 40 epochs, no early stopping)": [
        "--model", "seed", "--embedding", "scratch", "--ngrams", "1", "--max-tokens", "20000", "--embedding-dim", "50",
        "--learning-rate", "0.001", "--no-early-stopping", "--epochs", "40", "--batch-size", "512",
    ],
    "best seed settings (`reviewsense train --model seed`)": ["--model", "seed"],
}


def run(name: str, args: list[str], data: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "reviewsense", "train", "--data", data, "--run-dir", str(run_dir), *args]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, REVIEWSENSE_QUIET="1"))
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed:\n{proc.stderr[-2000:]}")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        model_bytes = sum(f.stat().st_size for f in (run_dir / "model").iterdir())
    timing = metrics["timing"]
    return {
        "name": name,
        "args": args,
        "test_accuracy": metrics["test"]["accuracy"],
        "test_loss": metrics["test"]["loss"],
        "validation_accuracy": metrics["validation"]["accuracy"],
        "epochs": metrics["epochs"],
        "train_plus_evaluate_seconds": round(timing["train_seconds"] + timing["evaluate_seconds"], 1),
        "pretrain_seconds": timing["pretrain_seconds"],
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": metrics.get("peak_rss_mb"),
        "model_mb": round(model_bytes / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--out", default=str(ROOT / "bench/results/seed_imdb.json"))
    args = parser.parse_args()
    rows = [run(name, cfg, args.data) for name, cfg in CONFIGS.items()]
    meta = machine()
    print(f"IMDB test set (25,000 reviews), {meta['date']}, {meta['machine']}\n")
    print("| configuration | test acc. | test loss | val acc. | epochs (best) | pretrain s | train+eval s "
          "| wall s | peak RSS MB | model MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['test_accuracy']:.2%} | {r['test_loss']:.4f} | {r['validation_accuracy']:.2%} "
              f"| {r['epochs']['run']} ({r['epochs']['best'] or '-'}) | {r['pretrain_seconds']} "
              f"| {r['train_plus_evaluate_seconds']} | {r['wall_seconds']} | {r['peak_rss_mb']} | {r['model_mb']} |")
    write_results(args.out, meta, rows)


if __name__ == "__main__":
    main()
