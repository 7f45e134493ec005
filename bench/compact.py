"""How much an nblinear model holds: pickle size, memory of a many-class fit, and the default
model's accuracy and training time on IMDB (issue "One way in", item 6: compact linear models).

    python bench/compact.py [--data PATH] [--only pickle classes imdb] [--classes 200]
                            [--memory-cap-mb 8000] [--before bench/results/compact-before.json]
                            [--probabilities FILE.npz] [--out bench/results/compact.json]

Parts (``--only`` takes these keys), each in a process of its own:

- ``pickle``: ``NBLinearClassifier().fit`` on IMDB's 25,000 training reviews (the defaults:
  2**24 hashed buckets, 20 % held out at random): the size of ``pickle.dumps(model)`` against
  that of its export folder (``model.save``); target: pickle < 2 × export.
- ``classes``: ``NBLinearClassifier().fit`` on 4,000 short generated texts of ``--classes``
  classes (200) in a fresh Python process: its peak RSS (``ru_maxrss``, imports included) and
  wall time; target < 2 GB. This process watches the child's RSS and stops it past
  ``--memory-cap-mb`` (reported as "stopped"), so that a version that needs tens of GB does
  not take the machine down.
- ``imdb``: ``reviewsense train``'s default model as bench/compare.py fits it (10,000 training
  reviews held out by movie, refit on all 25,000, length calibration): test accuracy, training
  wall and CPU seconds, predict reviews/s (median of three passes over the 25,000 test
  reviews, from the loaded export), peak RSS, export and pickle MB.

``--before FILE``: the JSON this script wrote on the code before the change (run it with
``PYTHONPATH`` pointing at that checkout's ``src``), shown side by side. ``--probabilities``
saves the test probabilities of both IMDB models, to compare two versions' predictions.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, ROOT, fit_reviewsense, machine, predict_timed, run_forked, write_results  # noqa: E402

DATA: dict = {}
PROBABILITIES: dict[str, np.ndarray] = {}


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _fit_seconds(fit) -> tuple[object, float, float]:
    """``fit()``, its wall and CPU seconds (every thread of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fit()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure_pickle() -> dict:
    from reviewsense import NBLinearClassifier

    train, test = DATA["train"], DATA["test"]
    model, wall, cpu = _fit_seconds(lambda: NBLinearClassifier().fit(list(train.texts), train.labels.tolist()))
    probabilities = model.predict_proba(list(test.texts))[:, 1]
    with tempfile.TemporaryDirectory() as tmp:
        export = _folder_bytes(model.save(Path(tmp) / "model"))
    size = len(pickle.dumps(model))
    accuracy = float(((probabilities >= 0.5) == (test.labels == 1)).mean())
    return {"pickle_mb": round(size / 1e6, 2), "export_mb": round(export / 1e6, 2),
            "pickle_per_export": round(size / export, 2), "fit_seconds": round(wall, 1),
            "fit_cpu_seconds": round(cpu, 1), "test_accuracy": round(accuracy, 5),
            "kept_columns": int(len(model.predictor_.tensors()["coef_index"])), "_probabilities": probabilities}


def measure_imdb() -> dict:
    from reviewsense.export import load_model, save_model
    from reviewsense.pipeline import Splits

    splits = Splits(DATA["train_split"], DATA["validation"], DATA["test"], None, "imdb")
    cpu = time.process_time()
    fitted, seconds, _ = fit_reviewsense(splits, "nblinear")
    cpu = time.process_time() - cpu
    test = DATA["test"]
    with tempfile.TemporaryDirectory() as tmp:
        save_model(fitted.predictor, Path(tmp) / "model")
        export = _folder_bytes(Path(tmp) / "model")
        loaded = load_model(Path(tmp) / "model")
    probabilities, predict_seconds = predict_timed(loaded.predict_proba, list(test.texts))
    return {"test_accuracy": round(float(((probabilities >= 0.5) == (test.labels == 1)).mean()), 5),
            "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu, 1),
            "predict_reviews_per_second": round(len(test) / predict_seconds),
            "export_mb": round(export / 1e6, 2), "pickle_mb": round(len(pickle.dumps(fitted.predictor)) / 1e6, 2),
            "_probabilities": probabilities}


# -- many classes, in a fresh process ------------------------------------------------------------


def generated_texts(n: int, classes: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Short texts (4-15 words): filler words and two of the text's class's six words, plus a
    word of another class in one text of five (label noise)."""
    rng = random.Random(seed)
    filler = [f"word{i}" for i in range(2000)]
    own = [[f"c{c}w{j}" for j in range(6)] for c in range(classes)]
    texts, labels = [], []
    for _ in range(n):
        y = rng.randrange(classes)
        words = rng.choices(filler, k=rng.randint(2, 13)) + rng.choices(own[y], k=2)
        if rng.random() < 0.2:
            words.append(rng.choice(own[rng.randrange(classes)]))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(f"class {y}")
    return texts, labels


def classes_child(texts: int, classes: int) -> None:
    """In the child process: fit, then print one JSON line (its own peak RSS)."""
    os.environ.setdefault("REVIEWSENSE_QUIET", "1")
    from reviewsense import NBLinearClassifier

    x, y = generated_texts(texts, classes)
    model, wall, cpu = _fit_seconds(lambda: NBLinearClassifier().fit(x, y))
    kept = model.predictor_.tensors()["coef_index"]
    print(json.dumps({"fit_seconds": round(wall, 1), "fit_cpu_seconds": round(cpu, 1), "kept_columns": len(kept),
                      "train_accuracy": round(float(model.score(x, y)), 4), "pickle_mb":
                      round(len(pickle.dumps(model)) / 1e6, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure_classes(texts: int, classes: int, cap_mb: int) -> dict:
    cmd = [sys.executable, __file__, "--classes-child", str(texts), str(classes)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started, most = time.perf_counter(), 0.0
    while child.poll() is None:
        most = max(most, _rss_mb(child.pid))
        if most > cap_mb:
            child.kill()
            child.communicate()
            return {"stopped": f"RSS passed {cap_mb:,} MB after {time.perf_counter() - started:.0f} s",
                    "peak_rss_mb": round(most)}
        time.sleep(0.2)
    out, err = child.communicate()
    if child.returncode:
        return {"error": (err.strip().splitlines() or [f"exit code {child.returncode}"])[-1]}
    return json.loads(out.strip().splitlines()[-1])


# -- the table -----------------------------------------------------------------------------------

ROWS = [  # (part, key, label, unit)
    ("pickle", "pickle_mb", "IMDB `NBLinearClassifier().fit`: pickle", "MB"),
    ("pickle", "export_mb", "… its export folder", "MB"),
    ("pickle", "pickle_per_export", "… pickle ÷ export (target < 2)", "×"),
    ("pickle", "fit_seconds", "… fit wall time", "s"),
    ("pickle", "fit_cpu_seconds", "… fit CPU time", "s"),
    ("pickle", "test_accuracy", "… test accuracy", ""),
    ("classes", "peak_rss_mb", "{classes} classes, {texts:,} short texts: peak RSS (target < 2,000)", "MB"),
    ("classes", "fit_seconds", "… fit wall time", "s"),
    ("classes", "pickle_mb", "… pickle", "MB"),
    ("imdb", "test_accuracy", "IMDB `reviewsense train` default: test accuracy", ""),
    ("imdb", "train_seconds", "… training wall time", "s"),
    ("imdb", "train_cpu_seconds", "… training CPU time", "s"),
    ("imdb", "predict_reviews_per_second", "… predict reviews/s", ""),
    ("imdb", "peak_rss_mb", "… peak RSS", "MB"),
    ("imdb", "export_mb", "… export", "MB"),
    ("imdb", "pickle_mb", "… pickled predictor", "MB"),
]


def _cell(part: dict | None, key: str) -> str:
    if not part:
        return "-"
    if "stopped" in part and key != "peak_rss_mb":
        return "stopped"
    if key == "peak_rss_mb" and "stopped" in part:
        return f"> {part[key]:,} (stopped)"
    if "error" in part:
        return f"error: {part['error']}"
    value = part.get(key)
    if value is None:
        return "-"
    if key == "test_accuracy":
        return f"{value:.2%}"
    return f"{value:,}"


def print_table(meta: dict, results: dict, before: dict | None) -> None:
    print(f"\n{meta['date']}, {meta['machine']}, {meta['memory_gib']} GiB RAM, Python {meta['python']}\n")
    columns = (["before", "after"] if before else ["measured"])
    print("| measure | " + " | ".join(columns) + " | unit |")
    print("|---|" + "---|" * len(columns) + "---|")
    for part, key, label, unit in ROWS:
        if part not in results and not (before and part in before):
            continue
        cells = ([_cell(before.get(part), key)] if before else []) + [_cell(results.get(part), key)]
        print(f"| {label.format(**meta['classes_data'])} | " + " | ".join(cells) + f" | {unit} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="IMDB archive or aclImdb/ folder")
    parser.add_argument("--only", nargs="*", choices=["pickle", "classes", "imdb"], help="parts to run (default all)")
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--memory-cap-mb", type=int, default=8000, help="stop the many-class fit past this RSS")
    parser.add_argument("--before", help="JSON of a run on the code before the change, shown side by side")
    parser.add_argument("--probabilities", help="save the IMDB models' test probabilities to this .npz")
    parser.add_argument("--out", default=str(ROOT / "bench/results/compact.json"))
    parser.add_argument("--classes-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.classes_child:
        classes_child(*args.classes_child)
        return

    parts = args.only or ["pickle", "classes", "imdb"]
    results: dict[str, dict] = {}
    if "classes" in parts:  # first: before IMDB is loaded into this process
        results["classes"] = measure_classes(args.texts, args.classes, args.memory_cap_mb)
        print(f"classes: {results['classes']}", file=sys.stderr, flush=True)
    if "pickle" in parts or "imdb" in parts:
        from reviewsense.data import read_imdb, train_validation_split

        data = read_imdb(args.data, ("train", "test"))
        DATA.update(train=data["train"], test=data["test"])
        DATA["train_split"], DATA["validation"] = train_validation_split(data["train"], 10_000, seed=0)
    for part, measure in (("pickle", measure_pickle), ("imdb", measure_imdb)):
        if part in parts:  # one after the other: the CPU is shared
            row = run_forked(_keep_probabilities, measure)
            if "_probabilities" in row:
                PROBABILITIES[part] = np.asarray(row.pop("_probabilities"))
            results[part] = row
            print(f"{part}: {row}", file=sys.stderr, flush=True)
    if args.probabilities and PROBABILITIES:
        np.savez(args.probabilities, **PROBABILITIES)
    meta = {**machine(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "classes_data": {"classes": args.classes, "texts": args.texts}}
    before = json.loads(Path(args.before).read_text())["results"][0] if args.before else None
    print_table(meta, results, before)
    write_results(args.out, meta, [results])


def _keep_probabilities(measure) -> dict:
    """``measure()`` with its probabilities as a list (they cross the process boundary)."""
    row = measure()
    row["_probabilities"] = row["_probabilities"].tolist()
    return row


if __name__ == "__main__":
    main()
