"""The torch loop on a GPU against the CPU: ``reviewsense train`` of the networks trained in epochs
(``seed``, ``cnn``) with ``--device cuda`` and ``--device cpu`` on the same data, split and seed.

    python bench/torch_device.py --train TRAIN.csv[.gz] --test TEST.csv[.gz] [--out results.json]

Each run is a real ``reviewsense train`` (one process each, word vectors from scratch so no
pretraining is timed). The table gives the whole fit's time (vectorizing, the loop, the length
calibration), the loop's examples per second (epochs × training rows / the seconds of its
epoch lines, each of which also scores the validation split) and the test accuracy. On a machine without a GPU
the cuda rows are skipped.
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

from _common import machine, write_results

RUNS = {  # family → its flags (the same on both devices), and epochs per device
    "seed": (["--model", "seed", "--embedding", "scratch", "--no-early-stopping"], {"cuda": 10, "cpu": 10}),
    "cnn": (["--model", "cnn", "--embedding", "scratch", "--no-early-stopping"], {"cuda": 3, "cpu": 1}),
}


def run(family: str, device: str, args, root: Path) -> dict:
    flags, epochs = RUNS[family]
    run_dir = root / f"{family}-{device}"
    command = [sys.executable, "-m", "reviewsense", "train", "--data", args.train, "--test-data", args.test,
               "--random-split", "--validation-size", str(args.validation_size), "--run-dir", str(run_dir), *flags,
               "--epochs", str(epochs[device]), "--device", device, "--seed", "0"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "REVIEWSENSE_QUIET": "0"},
                          timeout=args.timeout)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"family": family, "device": device, "error": done.stderr.strip().splitlines()[-1:]}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # the loop's own time: the "Epoch k/n - 1.2s - …" lines (training and scoring the validation split)
    epoch_seconds = sum(float(line.split(" - ")[1].rstrip("s")) for line in done.stderr.splitlines()
                        if line.startswith("Epoch "))
    n_train = training_rows(run_dir)
    return {"family": family, "device": device, "epochs": metrics["epochs"]["run"],
            "train_seconds": metrics["timing"]["train_seconds"], "epoch_seconds": round(epoch_seconds, 2),
            "examples_per_second": round(metrics["epochs"]["run"] * n_train / epoch_seconds, 1),
            "test_accuracy": round(metrics["test"]["accuracy"], 4), "wall_seconds": round(wall, 1)}


def training_rows(run_dir: Path) -> int:
    manifest = json.loads((run_dir / "model" / "manifest.json").read_text())
    return int(manifest["training"]["rows"]["train"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "torch_device.json"))
    parser.add_argument("--timeout", type=int, default=400)
    parser.add_argument("--validation-size", type=int, default=5000)
    parser.add_argument("--only", choices=list(RUNS), action="append")
    args = parser.parse_args()
    import torch

    devices = (["cuda"] if torch.cuda.is_available() else []) + ["cpu"]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for family in args.only or list(RUNS):
            for device in devices:
                row = run(family, device, args, Path(root))
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| family | device | epochs | fit s | loop s | examples/s | test acc. |\n|---|---|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['family']} | {row['device']} | error: {row['error']} | | | | |")
        else:
            print(f"| {row['family']} | {row['device']} | {row['epochs']} | {row['train_seconds']:.1f} | "
                  f"{row['epoch_seconds']:.1f} | "
                  f"{row['examples_per_second']:,.0f} | {row['test_accuracy']:.2%} |")
    write_results(args.out, {**machine(), "gpu": gpu, "torch": torch.__version__}, rows)


if __name__ == "__main__":
    main()
