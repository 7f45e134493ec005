"""What every benchmark script shares: where the data is, the machine line, the JSON file, a
contender run in its own child process, timed prediction, and the peers' recipes (TF-IDF +
logistic regression, fastText) so that every benchmark runs them the same way."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import queue as queues
import random
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = os.environ.get("REVIEWSENSE_IMDB", str(ROOT.parent / "shared/datasets/imdb/aclImdb_v1.tar.gz"))


def machine() -> dict[str, str]:
    return {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "python": platform.python_version()}


def write_results(path: str | Path, meta: dict, rows: list[dict]) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


# -- one contender per child process ------------------------------------------------------------


def run_forked(target: Callable[..., dict], *args: Any) -> dict:
    """``target(*args)`` in a forked child of this process (data already loaded is shared, not
    copied or reloaded) and its dict, with the child's own ``peak_rss_mb``; ``{"error": …}``
    if it raised (a peer that is not installed, a model that cannot do the task) or died."""
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_child, args=(target, args, results))
    child.start()
    row = None
    while row is None:
        try:
            row = results.get(timeout=5)
        except queues.Empty:
            if not child.is_alive():
                try:
                    row = results.get(timeout=1)
                except queues.Empty:
                    row = {"error": f"the child process died (exit code {child.exitcode})"}
    child.join()
    return row


def _child(target: Callable[..., dict], args: tuple, results) -> None:
    os.environ.setdefault("REVIEWSENSE_QUIET", "1")
    try:
        row = dict(target(*args))
        row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    except Exception as exc:
        row = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    results.put(row)


def predict_timed(predict: Callable[[Sequence[str]], Any], texts: Sequence[str], passes: int = 3) -> tuple[Any, float]:
    """What ``predict(texts)`` returns, and the median wall time of ``passes`` passes over
    ``texts`` (after a warm-up on 100 of them)."""
    predict(texts[:100])
    timings, out = [], None
    for _ in range(passes):
        started = time.perf_counter()
        out = predict(texts)
        timings.append(time.perf_counter() - started)
    return out, statistics.median(timings)


# -- reviewsense and the peers' recipes ---------------------------------------------------------


def fit_reviewsense(splits, model: str = "nblinear", preset: str | None = None, seed: int = 0):
    """What ``reviewsense train`` fits, on ``splits`` (a ``reviewsense.pipeline.Splits``): word
    vectors where the model uses them (pretrained on train + unlabelled reviews, cached), the
    model (``pipeline._fit``: e.g. ``nblinear.fit(train, validation, NBLinearParams())``) and
    its length calibration (``pipeline.calibrate``). Returns the ``Fitted``, the training
    seconds and the pretraining seconds."""
    from reviewsense.pipeline import TrainConfig, _fit, calibrate, resolve_vectors

    config = TrainConfig(model=model, preset=preset, seed=seed)
    started = time.perf_counter()
    vectors = resolve_vectors(config, splits)
    pretrain = time.perf_counter() - started
    fitted = _fit(config, splits, vectors)
    calibrate(fitted, splits, seed=config.seed)  # what `reviewsense train` does (length calibration)
    return fitted, time.perf_counter() - started - pretrain, pretrain



def tfidf_vectorizer():
    """scikit-learn's TF-IDF over word 1-2-grams (sublinear tf, n-grams of at least 2 texts)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def fasttext_clean(texts: Sequence[str]) -> list[str]:
    """fastText's input: the texts tokenized like reviewsense's (lowercased, HTML tags out,
    words and punctuation apart), tokens joined by spaces."""
    from reviewsense.text.ngrams import tokenize_batch

    return [" ".join(tokens) for tokens in tokenize_batch(texts).to_list()]


def fasttext_train(clean_texts: Sequence[str], labels: Sequence[int], folder: Path, seed: int = 0, **params: Any):
    """fastText supervised on ``fasttext_clean``'d texts, labels ``__label__<int>``: its training
    file shuffled (seeded: fastText reads it in order), every core, word bigrams unless
    ``params`` say otherwise."""
    import fasttext

    rows = [f"__label__{int(y)} {t}" for t, y in zip(clean_texts, labels, strict=True)]
    random.Random(seed).shuffle(rows)
    train_file = Path(folder) / "train.txt"
    train_file.write_text("\n".join(rows) + "\n")
    settings = {"wordNgrams": 2, "thread": os.cpu_count() or 1, "verbose": 0, "seed": seed, **params}
    return fasttext.train_supervised(str(train_file), **settings)
