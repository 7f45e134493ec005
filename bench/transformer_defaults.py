"""How the transformer family's defaults were chosen: validation accuracy of a few settings of
all-MiniLM-L6-v2 fine-tuning, on short and on long texts. No test review is read.

    python bench/transformer_defaults.py [--data PATH] [--study short,long]
                                         [--out bench/results/transformer_defaults.json]

- ``short``: the first 25 words of IMDB training reviews, labelled with their star rating (8
  classes: 1–4 and 7–10 stars; short, fine-grained, like five-class sentence sentiment):
  3,000 training and 1,000 validation snippets (other movies). Settings compared: pooling (mean
  of the token states, the way all-MiniLM-L6-v2 was pretrained, or the first token), learning
  rate (8e-5, 3e-5), each for 3 epochs with a 10 % warm-up and linear decay; the per-epoch
  validation accuracy shows how many epochs pay.
- ``long``: whole IMDB training reviews (two classes), 1,000 training and 500 validation
  reviews (other movies), 2 epochs, 128 tokens: the text's first tokens only, or its first
  quarter and last three quarters (Sun et al. 2019).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, ROOT, machine, write_results  # noqa: E402


def split_by_movie(data, n_train: int, n_validation: int, seed: int = 0):
    """Training and validation rows of ``data`` with no movie on both sides."""
    groups = np.asarray(data.groups) if data.groups is not None else np.arange(len(data))
    movies = np.random.default_rng(seed).permutation(np.unique(groups))
    rows = {m: np.flatnonzero(groups == m) for m in movies}
    train, validation = [], []
    for movie in movies:
        target = train if len(train) < n_train else validation
        target.extend(rows[movie].tolist())
        if len(validation) >= n_validation:
            break
    return np.array(train[:n_train]), np.array(validation[:n_validation])


def run(name: str, texts, labels, train, validation, settings: dict) -> dict:
    from reviewsense.data.dataset import Dataset
    from reviewsense.estimators import estimator_class

    classes = sorted(set(labels.tolist()))
    names = tuple(str(c) for c in classes)
    y = np.searchsorted(classes, labels)
    model = estimator_class("transformer")(random_state=0, length_calibration=False, verbose=True,
                                           early_stopping=False, **settings)
    started = time.perf_counter()
    model.fit_split(Dataset([texts[i] for i in train], y[train], class_names=names),
                    Dataset([texts[i] for i in validation], y[validation], class_names=names))
    history = model.history_.to_dict()["history"]
    row = {"study": name, **settings, "seconds": round(time.perf_counter() - started, 1),
           "val_accuracy_by_epoch": [round(a, 4) for a in history["val_accuracy"]],
           "val_loss_by_epoch": [round(v, 4) for v in history["val_loss"]]}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--study", default="short,long")
    parser.add_argument("--out", default=str(ROOT / "bench/results/transformer_defaults.json"))
    args = parser.parse_args()

    from reviewsense.data.imdb import read_imdb, resolve_source
    from reviewsense.models import transformer

    data = read_imdb(resolve_source(args.data), ["train"])["train"]
    rows = []
    if "short" in args.study:
        train, validation = split_by_movie(data, 3000, 1000, seed=0)
        snippets = [" ".join(t.replace("<br />", " ").split()[:25]) for t in data.texts]
        ratings = np.asarray(data.ratings)
        for settings in ({"pooling": "mean", "learning_rate": 8e-5}, {"pooling": "cls", "learning_rate": 8e-5},
                         {"pooling": "mean", "learning_rate": 3e-5}):
            rows.append(run("short", snippets, ratings, train, validation, settings | {"epochs": 3}))
    if "long" in args.study:
        train, validation = split_by_movie(data, 1000, 500, seed=1)
        labels = np.asarray(data.labels)
        for share in (1.0, 0.25):
            transformer.HEAD_SHARE = share
            rows.append(run("long", data.texts, labels, train, validation, {"max_length": 128, "epochs": 2}) |
                        {"head_share": share})
    print(f"\n{'study':<6} {'settings':<48} {'val accuracy by epoch':<28} {'seconds':>8}")
    for row in rows:
        shown = {k: v for k, v in row.items() if k not in ("study", "seconds", "val_accuracy_by_epoch",
                                                          "val_loss_by_epoch")}
        print(f"{row['study']:<6} {json.dumps(shown):<48} {str(row['val_accuracy_by_epoch']):<28} "
              f"{row['seconds']:>8}")
    write_results(args.out, machine(), rows)


if __name__ == "__main__":
    main()
