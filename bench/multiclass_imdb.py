"""IMDB's star ratings as 8 classes (1-4 and 7-10): reviewsense against its peers, one split for all.

    pip install -c constraints.txt -e ".[all,bench]"
    python bench/multiclass_imdb.py [--data PATH] [--only tfidf,fasttext] [--limit N] [--seed 0]
                                    [--out bench/results/multiclass_imdb.json]

The split is reviewsense's own (``load_splits(DataSpec(label_column="rating"), seed)``, what
``reviewsense train --label-column rating`` trains on): IMDB's 25,000 training reviews less a
validation split of about 10,000 held out whole movies at a time, like the test split; the
25,000 test reviews score every entry once. Entries (``--only`` takes these keys):

- ``nblinear``: the reviewsense default model, fitted and length-calibrated as ``reviewsense
  train`` does (``nblinear.fit(train, validation, NBLinearParams())``, which refits on train +
  validation after calibrating, then ``pipeline.calibrate``);
- ``seed``: the tutorial's network (``--model seed``: word2vec pretrained on train + unsup,
  cached; validation for early stopping and the calibration);
- ``tfidf``: scikit-learn TF-IDF (word 1-2-grams, sublinear tf, min_df 2) + multinomial
  LogisticRegression (lbfgs), C chosen on validation;
- ``fasttext``: fastText supervised, word bigrams, epochs and learning rate chosen on validation.

The peers choose their settings on validation (a grid: each setting trained on the training
split), then train their final model with those settings on train + validation, as
reviewsense's default refits: every entry's final model has seen the same labels. A
reviewsense model that cannot do the task (logits not of shape (n, 8)) or fails is reported
as "not run: <reason>". Each entry runs in its own forked child (peak RSS is its own).

Reported per entry: test accuracy, macro-F1, MAE in stars (|predicted rating − true rating|),
pos/neg accuracy (the 8 classes folded into ≤ 4 / ≥ 7), training wall time of the final model
(vectorizing included; a peer's settings search and word-vector pretraining apart), batch prediction throughput
(median of three passes over the test reviews, from raw strings), peak RSS. ``--limit N``
keeps about N reviews of each split (the same share of each class) for a quick smoke run,
and writes its own JSON file. Rows of entries not run keep their earlier figures in the JSON
when the split is the same.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_DATA,
    ROOT,
    fasttext_clean,
    fasttext_train,
    fit_reviewsense,
    machine,
    predict_timed,
    run_forked,
    tfidf_vectorizer,
    write_results,
)

DATA: dict = {}
TFIDF_C = (1.0, 3.0, 10.0, 30.0)
FASTTEXT_GRID = tuple((epoch, lr) for epoch in (5, 10, 20) for lr in (0.1, 0.25, 0.5))

Predict = Callable[[Sequence[str]], np.ndarray]  # texts → class indices


def scores(predicted: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, macro-F1, MAE in stars and pos/neg accuracy of class indices against labels."""
    from sklearn.metrics import f1_score

    from reviewsense.data.imdb import RATINGS

    stars = np.asarray(RATINGS)
    predicted, labels = np.asarray(predicted, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    positive = stars >= 7
    return {
        "accuracy": round(float((predicted == labels).mean()), 5),
        "macro_f1": round(float(f1_score(labels, predicted, average="macro", labels=range(len(stars)),
                                         zero_division=0)), 5),
        "mae_stars": round(float(np.abs(stars[predicted] - stars[labels]).mean()), 4),
        "pos_neg_accuracy": round(float((positive[predicted] == positive[labels]).mean()), 5),
    }


# -- the entries: each trains and returns (predict, what to report) ---------------------------


def _reviewsense(model: str) -> Callable[[Path], tuple[Predict, dict]]:
    def run(tmp: Path) -> tuple[Predict, dict]:
        from reviewsense.pipeline import Splits

        train, validation = DATA["train"], DATA["validation"]
        splits = Splits(train, validation, DATA["test"], DATA.get("unsup"), "imdb")
        fitted, seconds, pretrain = fit_reviewsense(splits, model, seed=DATA["seed"])
        predictor = fitted.predictor
        k = len(train.class_names)
        shape = np.shape(predictor.predict_logits(validation.texts[:2]))
        if shape != (2, k):
            raise ValueError(f"{model} gives logits of shape {shape} for 2 texts, not (2, {k}): not multiclass yet")

        def predict(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(predictor.predict_logits(texts)).argmax(axis=1)

        refit = fitted.held_out is not None and fitted.held_out is not predictor
        return predict, {"train_seconds": seconds, "pretrain_seconds": pretrain,
                         "labels_seen": "train + validation (refit)" if refit else "train",
                         "validation": scores(np.asarray((fitted.held_out or predictor).predict_logits(
                             validation.texts)).argmax(axis=1), validation.labels)}

    return run


def sklearn_tfidf_lr(tmp: Path) -> tuple[Predict, dict]:
    """TF-IDF fitted on the training split once; one LogisticRegression per C of the grid, the
    most accurate on validation kept."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train, validation = DATA["train"], DATA["validation"]
    started = time.perf_counter()
    vectorizer = tfidf_vectorizer()
    features = vectorizer.fit_transform(train.texts)
    vectorize_seconds = time.perf_counter() - started
    held = vectorizer.transform(validation.texts)
    grid: dict[str, dict] = {}
    best = None  # (validation accuracy, setting, model, fit seconds): only the best model is kept
    for c in TFIDF_C:
        fit_started = time.perf_counter()
        model = LogisticRegression(C=c, max_iter=1000).fit(features, train.labels)
        fit_seconds = time.perf_counter() - fit_started
        key = f"C={c:g}"
        grid[key] = scores(model.predict(held), validation.labels)
        print(f"  tfidf {key}: validation {grid[key]}", file=sys.stderr, flush=True)
        if best is None or grid[key]["accuracy"] > best[0]:
            best = (grid[key]["accuracy"], key, model, fit_seconds)
    assert best is not None
    _, key, model, _ = best
    # the final model: the chosen C on train + validation, as reviewsense's refit does
    refit_started = time.perf_counter()
    final = make_pipeline(tfidf_vectorizer(), LogisticRegression(C=model.C, max_iter=1000))
    final.fit(list(train.texts) + list(validation.texts), np.concatenate([train.labels, validation.labels]))
    return final.predict, {"train_seconds": time.perf_counter() - refit_started,
                           "search_seconds": time.perf_counter() - started - vectorize_seconds, "settings": key,
                           "labels_seen": "train + validation (refit)", "validation": grid[key], "grid": grid}


def fasttext_bigrams(tmp: Path) -> tuple[Predict, dict]:
    """fastText supervised (word bigrams, input tokenized like reviewsense's), one model per
    (epochs, learning rate) of the grid, the most accurate on validation kept."""
    train, validation = DATA["train"], DATA["validation"]
    started = time.perf_counter()
    clean_train = fasttext_clean(train.texts)
    clean_seconds = time.perf_counter() - started
    clean_validation = fasttext_clean(validation.texts)

    def classes(model, clean: list[str]) -> np.ndarray:
        labels, _ = model.predict(clean, k=1)
        return np.array([int(lab[0].removeprefix("__label__")) for lab in labels])

    grid: dict[str, dict] = {}
    best = None  # (validation accuracy, setting, model, fit seconds): only the best model is kept
    for epoch, lr in FASTTEXT_GRID:
        key = f"epoch={epoch} lr={lr:g}"
        fit_started = time.perf_counter()
        model = fasttext_train(clean_train, train.labels, tmp, seed=DATA["seed"], epoch=epoch, lr=lr)
        fit_seconds = time.perf_counter() - fit_started
        grid[key] = scores(classes(model, clean_validation), validation.labels)
        print(f"  fasttext {key}: validation {grid[key]}", file=sys.stderr, flush=True)
        if best is None or grid[key]["accuracy"] > best[0]:
            best = (grid[key]["accuracy"], key, model, fit_seconds)
        del model
    assert best is not None
    _, key, _, _ = best
    epoch, lr = next(setting for setting in FASTTEXT_GRID if f"epoch={setting[0]} lr={setting[1]:g}" == key)
    # the final model: the chosen settings on train + validation, as reviewsense's refit does
    refit_started = time.perf_counter()
    chosen = fasttext_train(fasttext_clean(list(train.texts) + list(validation.texts)),
                            np.concatenate([train.labels, validation.labels]), tmp, seed=DATA["seed"], epoch=epoch,
                            lr=lr)
    return (lambda texts: classes(chosen, fasttext_clean(texts))), {
        "train_seconds": time.perf_counter() - refit_started,
        "search_seconds": time.perf_counter() - started - clean_seconds, "settings": key,
        "labels_seen": "train + validation (refit)", "validation": grid[key], "grid": grid}


ENTRIES: dict[str, tuple[str, Callable[[Path], tuple[Predict, dict]]]] = {
    "nblinear": ("reviewsense default (nblinear)", _reviewsense("nblinear")),
    "seed": ("reviewsense seed (tutorial's network)", _reviewsense("seed")),
    "tfidf": ("scikit-learn TF-IDF(1,2)+LR", sklearn_tfidf_lr),
    "fasttext": ("fastText bigrams", fasttext_bigrams),
}


def _measure(key: str) -> dict:
    """Train one entry and score it on the test split, in its own child process."""
    with tempfile.TemporaryDirectory() as tmp:
        predict, info = ENTRIES[key][1](Path(tmp))
        test = DATA["test"]
        predicted, seconds = predict_timed(predict, test.texts)
    return {**scores(predicted, test.labels), "train_seconds": round(info.pop("train_seconds"), 1),
            **{k: round(info.pop(k), 1) for k in ("search_seconds", "pretrain_seconds") if k in info},
            "predict_reviews_per_second": round(len(test.texts) / seconds), **info}


# -- data, table, JSON ---------------------------------------------------------------------------


def limited(data, n: int | None, seed: int):
    """About ``n`` rows of ``data`` (seeded), the same share of each class (unlabelled rows: at random)."""
    if n is None or n >= len(data):
        return data
    rng = np.random.default_rng(seed)
    take = []
    for label in np.unique(data.labels):
        rows = np.flatnonzero(data.labels == label)
        take.append(rng.choice(rows, max(1, round(n * len(rows) / len(data))), replace=False))
    return data.subset(np.sort(np.concatenate(take)))


def _keys(only: list[str] | None) -> list[str]:
    if not only:
        return list(ENTRIES)
    keys = [k.strip().lower() for word in only for k in word.split(",") if k.strip()]
    unknown = sorted(set(keys) - set(ENTRIES))
    if unknown:
        raise SystemExit(f"--only: unknown {', '.join(unknown)} (choose from {', '.join(ENTRIES)})")
    return [k for k in ENTRIES if k in keys]


def _merge(out: Path, split: dict, rows: list[dict]) -> list[dict]:
    """This run's rows, and the earlier rows of entries not run now if they had the same split."""
    try:
        earlier = json.loads(out.read_text())
    except (OSError, ValueError):
        return rows
    if earlier.get("meta", {}).get("split") != split:
        return rows
    ran = {r["key"] for r in rows}
    kept = [r for r in earlier.get("results", []) if r.get("key") not in ran and r.get("key") in ENTRIES]
    return sorted(rows + kept, key=lambda r: list(ENTRIES).index(r["key"]))


def print_table(rows: list[dict], split: dict, meta: dict, reference: str) -> None:
    print(f"IMDB star ratings, 8 classes (1-4, 7-10): test set ({split['test']:,} reviews); trained on "
          f"{split['train']:,}, settings chosen on {split['validation']:,} held out by movie (seed {split['seed']}"
          f"{', --limit ' + str(split['limit']) if split['limit'] else ''}); {meta['date']}, {meta['machine']}\n")
    print("| entry | test acc. | macro-F1 | MAE (stars) | pos/neg acc. | train s | predict reviews/s | peak RSS MB "
          "| chosen on validation | labels seen |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['name']} | not run: {r['error']} | | | | | | | | |")
            continue
        extra = ", ".join(f"{r[key]} {what}" for key, what in (("pretrain_seconds", "pretraining"),
                                                               ("search_seconds", "whole search"))
                          if r.get(key))
        train = f"{r['train_seconds']}" + (f" ({extra})" if extra else "")
        dated = "" if r.get("date") == meta["date"] else f" ({r.get('date')})"
        print(f"| {r['name']}{dated} | {r['accuracy']:.2%} | {r['macro_f1']:.4f} | {r['mae_stars']:.3f} | "
              f"{r['pos_neg_accuracy']:.2%} | {train} | {r['predict_reviews_per_second']:,} | {r['peak_rss_mb']} "
              f"| {r.get('settings', '-')} | {r['labels_seen']} |")
    print(f"\n{reference}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="IMDB archive or aclImdb/ folder")
    parser.add_argument("--only", nargs="*", metavar="KEY", help=f"entries to run ({', '.join(ENTRIES)}; "
                        "comma- or space-separated; default: all)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="about N reviews of each split, the same share of each class (a smoke run)")
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (reviewsense's --seed; default 0)")
    parser.add_argument("--out", default=None, help="JSON results (default bench/results/multiclass_imdb.json; "
                        "with --limit N: multiclass_imdb.limit-N.json)")
    args = parser.parse_args()
    if args.limit is not None and args.limit < 10:
        parser.error("--limit: at least 10")
    keys = _keys(args.only)
    out = Path(args.out or ROOT / "bench/results" / (f"multiclass_imdb.limit-{args.limit}.json" if args.limit
                                                     else "multiclass_imdb.json"))

    from reviewsense.data.imdb import RATING_CLASS_NAMES
    from reviewsense.data.splits import DataSpec, load_splits

    splits = load_splits(DataSpec(path=args.data, label_column="rating", allow_download=False), seed=args.seed,
                         want_unsup="seed" in keys)
    DATA.update(seed=args.seed, **{name: limited(getattr(splits, part), args.limit, args.seed)
                                   for name, part in (("train", "train"), ("validation", "validation"),
                                                      ("test", "test"))})
    if splits.unlabelled is not None:
        DATA["unsup"] = limited(splits.unlabelled, args.limit, args.seed)
    train, test = DATA["train"], DATA["test"]
    split = {"seed": args.seed, "limit": args.limit, "train": len(train), "validation": len(DATA["validation"]),
             "test": len(test), "classes": list(RATING_CLASS_NAMES)}
    counts = np.bincount(train.labels, minlength=len(RATING_CLASS_NAMES))
    common = int(counts.argmax())
    baseline = scores(np.full(len(test), common), test.labels)
    reference = (f"For reference: always the most frequent training rating (rating {RATING_CLASS_NAMES[common]}) "
                 f"scores {baseline['accuracy']:.2%} accuracy, macro-F1 {baseline['macro_f1']:.4f}, "
                 f"MAE {baseline['mae_stars']:.3f} stars.")
    meta = machine()
    rows = []
    for key in keys:
        print(f"running {key} …", file=sys.stderr, flush=True)
        rows.append({"key": key, "name": ENTRIES[key][0], "date": meta["date"], **run_forked(_measure, key)})
        print(f"done: {json.dumps({k: v for k, v in rows[-1].items() if k != 'grid'})}", file=sys.stderr, flush=True)
    rows = _merge(out, split, rows)
    print_table(rows, split, meta, reference)
    write_results(out, {**meta, "task": "IMDB star ratings as 8 classes", "split": split,
                        "most_frequent_rating": {"rating": RATING_CLASS_NAMES[common], **baseline}}, rows)


if __name__ == "__main__":
    main()
