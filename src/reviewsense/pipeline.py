"""The whole job, stage by stage: data → vectorizer → model → train → evaluate → plots →
export, everything written into one run folder.

    run/
      config.json         every setting, so the run can be repeated
      history.json/.csv   per-epoch loss, accuracy, val_loss, val_accuracy
      metrics.json        {"validation": {...}, "test": {...}, "timing": {...}}
      loss.png, accuracy.png  (families trained in epochs)
      reliability.png     calibration of the test probabilities (with its ECE)
      by_length.png       test accuracy and ECE against text length (metrics.json: "by_length")
      model/              the export (see reviewsense.export)
      README.md           a short model card
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from ._fs import check_writable, fingerprint, write_json, write_text
from .data.dataset import MIN_TEST_ROWS, Dataset, check_split, train_validation_split
from .data.download import cache_dir
from .errors import ConfigError, DataError
from .models.base import Predictor
from .models.seed import SeedParams
from .progress import log, warn
from .training.checkpoint import Checkpoint, Interrupted, check_stop, stop_on_signals
from .training.history import EarlyStopping, History
from .training.torch_loop import FitOptions

MODELS = ("seed", "nblinear")


@dataclass
class DataSpec:
    """Where the data comes from. ``path=None`` means IMDB from its usual places."""

    path: str | None = None
    test_path: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    classes: list[str] | None = None
    validation_size: float | int | None = None  # None: IMDB → 10,000; own data → 20 %
    test_size: float | int = 0.2  # own data without --test-data: rows (or share) held out before anything else
    allow_download: bool = True
    group_column: str | None = None  # own data: rows that belong together (one product, one movie…)
    random_split: bool = False  # hold out random rows even where rows have groups (IMDB: movies)
    sep: str | None = None  # own CSV files: the separator (None: by extension, or found from the header)
    encoding: str | None = None  # own files: the text encoding (None: UTF-8, or UTF-16/32 by byte-order mark)


@dataclass
class TrainConfig:
    run_dir: str = "runs/imdb"
    data: DataSpec = field(default_factory=DataSpec)
    # The default family is the most accurate and fastest one (README, bench/); the seed
    # model — the tutorial's network — is `model="seed"`.
    model: str = "nblinear"
    # The seed defaults are the best seed-model settings found on IMDB validation data (README):
    # in-domain word2vec vectors, unigrams + bigrams, 200k tokens, Adam at 3e-3, early stopping.
    embedding: str = "word2vec"  # scratch | word2vec | fasttext | PATH to vectors | sentence:ENCODER
    pretrain_epochs: int = 5
    params: SeedParams = field(default_factory=lambda: SeedParams(max_tokens=200_000, ngrams=2, embedding_dim=100))
    epochs: int = 40
    batch_size: int = 512
    learning_rate: float = 3e-3
    early_stopping: bool = True
    patience: int = 3
    seed: int = 0
    threads: int | None = None
    linear: dict[str, Any] = field(default_factory=dict)  # nblinear settings (NBLinearParams fields)
    preset: str | None = None  # "best": stacked nblinear + cnn (word2vec) ensemble
    # honest probabilities at every text length: a calibration fitted on spans of the
    # validation reviews (models/calibration.py); False keeps the model's own scores
    length_calibration: bool = True
    cnn: dict[str, Any] = field(default_factory=dict)  # the preset's network (CNNParams fields)

    @property
    def uses_word_vectors(self) -> bool:
        """Whether a network over word vectors is trained (the seed model, --preset best's CNN):
        then ``embedding`` says where its vectors come from."""
        return self.model == "seed" or self.preset == "best"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The inverse of ``asdict`` (a run's ``config.json``), refusing unknown fields."""
        try:
            spec = dict(data["data"])
            spec.setdefault("random_split", True)  # runs from before the split by group were split at random
            return cls(**{**data, "data": DataSpec(**spec), "params": SeedParams(**data["params"])})
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"not a reviewsense run configuration ({exc})") from exc


@dataclass
class Splits:
    train: Dataset
    validation: Dataset
    test: Dataset
    unlabelled: Dataset | None
    source: str


def load_splits(spec: DataSpec, seed: int = 0, want_unsup: bool = False) -> Splits:
    """Train/validation/test for IMDB (its own test split) or the user's files."""
    from .data.files import load_table
    from .data.imdb import is_imdb_source, read_imdb, resolve_source

    if spec.path is None or is_imdb_source(spec.path):
        if spec.group_column:
            raise DataError("--group-column is for your own data: IMDB is split by movie already")
        source: Path | str = resolve_source(spec.path, allow_download=spec.allow_download)
        splits = ("train", "test", "unsup") if want_unsup else ("train", "test")
        data = read_imdb(source, splits)
        train_full, test, unsup = data["train"], data["test"], data.get("unsup")
        if spec.test_path:
            test = load_table(spec.test_path, spec.text_column, spec.label_column, spec.classes, sep=spec.sep,
                              encoding=spec.encoding)
        default_val: float | int = 10_000
    else:
        source = spec.path
        train_full = load_table(spec.path, spec.text_column, spec.label_column, spec.classes,
                                group_column=spec.group_column, sep=spec.sep, encoding=spec.encoding)
        unsup = None
        if spec.test_path:
            test = load_table(spec.test_path, spec.text_column, spec.label_column, spec.classes, sep=spec.sep,
                              encoding=spec.encoding)
        else:
            train_full, test = train_validation_split(train_full, spec.test_size, seed=seed + 1,
                                                     by_group=not spec.random_split, what="--test-size")
            test.name = f"{Path(spec.path).name}:test"
            check_split(train_full, test, "--test-size", spec.test_size, held_both=False, min_held=MIN_TEST_ROWS)
        default_val = 0.2
    validation_size = spec.validation_size if spec.validation_size is not None else default_val
    if isinstance(validation_size, int) and validation_size >= len(train_full) and spec.validation_size is None:
        validation_size = 0.2
    train, validation = train_validation_split(train_full, validation_size, seed=seed,
                                               by_group=not spec.random_split)
    check_split(train, validation, "--validation-size", validation_size)
    _warn_overlap(train_full, test)
    return Splits(train, validation, test, unsup, str(source))


def _warn_overlap(train: Dataset, test: Dataset) -> None:
    seen = set(train.texts)
    shared = sum(1 for t in test.texts if t in seen)
    if shared:
        warn(f"{shared:,} test text(s) also appear in the training data; test metrics will be optimistic")


def resolve_vectors(config: TrainConfig, splits: Splits):
    """The pretrained word vectors for ``--embedding``, or None for 'scratch'."""
    from .text.word_vectors import load_word_vectors, pretrain

    choice = config.embedding
    if not config.uses_word_vectors or choice == "scratch" or choice.startswith("sentence:"):
        return None
    if choice in ("word2vec", "fasttext"):
        # Unlabelled text only: the training split and IMDB's unsup reviews, never test.
        texts = list(splits.train.texts) + (list(splits.unlabelled.texts) if splits.unlabelled else [])
        settings: dict[str, Any] = {"method": choice, "dim": config.params.embedding_dim,
                                    "epochs": config.pretrain_epochs, "seed": config.seed}
        cached = cache_dir() / "vectors" / fingerprint(texts, json.dumps(settings, sort_keys=True))[:20]
        if (cached / "vectors.json").is_file():
            log(f"using cached {choice} vectors from {cached}")
            return load_word_vectors(cached)
        vectors = pretrain(texts, method=choice, dim=settings["dim"], epochs=settings["epochs"], seed=config.seed)
        vectors.save(cached)
        return vectors
    return load_word_vectors(choice)


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def _model_card(config: TrainConfig, splits: Splits, metrics: dict[str, Any], history: History | None) -> str:
    test, val = metrics["test"], metrics["validation"]
    if history is None:
        stop = "no epochs (closed-form fit)"
    elif history.best_epoch:
        stop = f"early stopping restored epoch {history.best_epoch} of {history.epochs}"
    else:
        stop = f"{history.epochs} epochs, no early stopping"
    return f"""# reviewsense run

- model family: `{"ensemble (--preset best)" if config.preset else config.model}`\
{f", embedding: `{config.embedding}`" if config.uses_word_vectors else ""}, {stop}
- data: `{splits.source}` — train {len(splits.train):,}, validation {len(splits.validation):,}, \
test {len(splits.test):,}
- **test accuracy {test['accuracy']:.2%}**, loss {test['loss']:.4f}, \
F1 {'n/a' if test['f1'] is None else format(test['f1'], '.4f')}, ROC-AUC {test['roc_auc']}
- validation accuracy {val['accuracy']:.2%}, loss {val['loss']:.4f}
{_length_line(metrics)}- trained in {metrics['timing']['train_seconds']:.1f} s with reviewsense {__version__}

{"![loss](loss.png) ![accuracy](accuracy.png)" if history is not None else ""}

Use it:

```python
import reviewsense
model = reviewsense.load("{Path(config.run_dir) / 'model'}")
model.predict_proba(["The movie was great!"])
```

or `reviewsense predict --model {Path(config.run_dir) / 'model'} "The movie was great!"`.
Intended use: binary sentiment of English reviews similar to the training data. Scores on
text from other domains are less reliable; check them on a labelled sample first.
"""


def _length_line(metrics: dict[str, Any]) -> str:
    """The model card's line on short texts (``by_length.png``)."""
    buckets = metrics.get("by_length", {}).get("buckets")
    if not buckets:
        return ""
    worst = max(buckets, key=lambda b: buckets[b]["ece"])
    return (f"- by text length (spans of the test texts, 1 word to the whole text): ECE ≤ "
            f"{buckets[worst]['ece']:.3f} in every bucket (worst: {worst}); see `by_length.png`\n")


@dataclass
class Fitted:
    predictor: Predictor
    history: History | None = None  # families trained in epochs
    held_out: Predictor | None = None  # the model that did not see the validation labels, if not ``predictor``

    def calibrate(self, splits: Splits, seed: int = 0) -> None:
        """Fit the length calibration on spans of the validation reviews, scored by the model
        that did not see them, and give it to both models."""
        from .models.calibration import fit_length_calibration

        held_out = self.held_out or self.predictor
        labelled = np.concatenate([splits.train.labels, splits.validation.labels])
        calibration = fit_length_calibration(held_out, splits.validation, labelled, seed=seed)
        held_out.length_calibration = calibration
        # a refit model has its own bias: the empty text keeps the prior with it too
        self.predictor.length_calibration = replace(calibration, empty=self.predictor.raw_scores([""])[0][0])


def _fit(config: TrainConfig, splits: Splits, vectors, checkpoint: Checkpoint | None = None) -> Fitted:
    """Train the configured family; the one place that knows which families exist."""
    options = FitOptions(epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                         seed=config.seed, threads=config.threads, checkpoint=checkpoint,
                         early_stopping=EarlyStopping(patience=config.patience) if config.early_stopping else None)
    if config.preset == "best":
        return _fit_best(config, splits, vectors, options)
    if config.model == "nblinear":
        from .models import nblinear

        predictor, held_out = nblinear.fit(splits.train, splits.validation, nblinear.NBLinearParams(**config.linear))
        return Fitted(predictor, held_out=held_out)
    if config.embedding.startswith("sentence:"):
        from .models import sentence

        sentence_params = sentence.SentenceParams(encoder=config.embedding.removeprefix("sentence:"),
                                                  hidden_units=config.params.hidden_units)
        return Fitted(*sentence.fit(splits.train, splits.validation, sentence_params, options))
    from .models import seed

    return Fitted(*seed.fit(splits.train, splits.validation, config.params, options, vectors))


def _cnn_params(config: TrainConfig):
    """The preset's network settings, checked (before any data is read, and again at fit time)."""
    from .models.cnn import CNNParams

    try:
        return CNNParams(**config.cnn).check()
    except TypeError as exc:
        raise ConfigError(f"the 'cnn' settings hold an unknown field ({exc})") from None


def _fit_best(config: TrainConfig, splits: Splits, vectors, options: FitOptions) -> Fitted:
    """The most accurate preset: the NB-weighted linear model (n-grams, labelled data) and a
    convolutional network over word2vec vectors pretrained on the unlabelled reviews, stacked
    by a logistic regression fitted on their validation logits."""
    from .models import cnn, ensemble, nblinear

    params = _cnn_params(config)
    linear, linear_held_out = nblinear.fit(splits.train, splits.validation, nblinear.NBLinearParams(**config.linear))
    linear_logits = linear_held_out.predict_logits(splits.validation.texts)
    # the network's own schedule: CNNParams, with what --epochs, --batch-size, --learning-rate
    # and --patience set for the preset (the CLI puts them in config.cnn)
    options = replace(options, epochs=params.epochs, batch_size=params.batch_size,
                      learning_rate=params.learning_rate, eval_batch_size=512,
                      early_stopping=EarlyStopping(patience=params.patience) if config.early_stopping else None)
    neural, history, neural_logits = cnn.fit(splits.train, splits.validation, params, options, vectors)
    member_logits = np.column_stack([linear_logits, neural_logits])
    model = ensemble.stack([linear, neural], member_logits, splits.validation.labels, splits.train.class_names)
    log(f"stacked ensemble: {ensemble.describe(model)}")
    held_out = ensemble.EnsemblePredictor([linear_held_out, neural], model.weights, model.bias,
                                          splits.train.class_names)
    return Fitted(model, history, held_out)


# what a run writes into its folder; --overwrite removes those a new run does not write again
RUN_FILES = ("config.json", "metrics.json", "history.json", "history.csv", "loss.png", "accuracy.png",
             "reliability.png", "by_length.png", "README.md", "model", "checkpoint")


def check_run_dir(run_dir: Path, overwrite: bool = False) -> None:
    """Refuse a run folder that is a file, or that holds anything (a previous run, the user's
    files) unless ``overwrite``: training never replaces a model without being asked to."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: exists and is not a folder; give --run-dir a folder name")
    check_writable(run_dir, folder=True)
    if overwrite or not run_dir.is_dir():
        return
    found = sorted(p.name for p in run_dir.iterdir())
    if not found:
        return
    if "config.json" in found or "model" in found:
        unfinished = (run_dir / "checkpoint").exists()  # cleared when a run completes
        how = (f"finish it with --resume {run_dir}, " if unfinished else "") + "add --overwrite to replace it"
        raise ConfigError(f"{run_dir}: holds a {'stopped' if unfinished else 'previous'} run; {how}, "
                          "or choose another --run-dir")
    shown = ", ".join(found[:3]) + (", …" if len(found) > 3 else "")
    raise ConfigError(f"{run_dir}: folder is not empty ({shown}); choose a new --run-dir, or add --overwrite to "
                      "write the run into it (files of the same names are replaced)")


def _run_files(run_dir: Path) -> dict[str, tuple[int, int]]:
    """The run files in ``run_dir`` and their identity (inode, modification time)."""
    found = {}
    for name in RUN_FILES:
        with contextlib.suppress(OSError):
            info = (run_dir / name).lstat()
            found[name] = (info.st_ino, info.st_mtime_ns)
    return found


def _remove_stale(run_dir: Path, before: dict[str, tuple[int, int]]) -> None:
    """After an --overwrite run: remove the previous run's files that this run did not write again
    (a seed run's loss.png beside an nblinear model would describe another model). Everything a run
    writes is a new file (written under a temporary name, then renamed), so an unchanged identity
    means a leftover."""
    import shutil

    now = _run_files(run_dir)
    for name, identity in before.items():
        if now.get(name) == identity:
            path = run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run the whole job and return ``metrics.json``'s content.

    A run folder that already holds something is refused unless ``overwrite`` (or ``resume``).
    SIGINT/SIGTERM during training write ``RUN/checkpoint`` and raise :class:`Interrupted`;
    ``train(config, resume=True)`` (``reviewsense train --resume RUN``) continues from it and
    ends with the same model and metrics as an uninterrupted run with the same seed."""
    from .evaluation.metrics import evaluate
    from .evaluation.plots import plot_history
    from .export.bundle import save_model
    if config.model not in MODELS:
        raise ConfigError(f"unknown model family '{config.model}' (available: {', '.join(MODELS)})")
    if config.cnn and config.preset != "best":
        raise ConfigError("the 'cnn' settings are for --preset best's network")
    if config.preset == "best":
        _cnn_params(config)
    run_dir = Path(config.run_dir)
    check_run_dir(run_dir, overwrite=overwrite or resume)
    started = time.perf_counter()
    previous = _run_files(run_dir) if overwrite else {}
    want_unsup = config.uses_word_vectors and config.embedding in ("word2vec", "fasttext")
    splits = load_splits(config.data, seed=config.seed, want_unsup=want_unsup)
    log(f"data: train {len(splits.train):,}, validation {len(splits.validation):,}, test {len(splits.test):,}"
        f" from {splits.source}")
    loaded = time.perf_counter()
    checkpoint = Checkpoint(run_dir / "checkpoint")
    if not resume:
        checkpoint.clear()  # a new run never continues an old one by accident
    config_dict = asdict(config)
    write_json(run_dir / "config.json", config_dict)  # first: --resume rebuilds the run from it
    vectors = resolve_vectors(config, splits)
    pretrained = time.perf_counter()
    with stop_on_signals():
        try:
            fitted = _fit(config, splits, vectors, checkpoint)
            check_stop("after training, before evaluation")  # a stop asked during a closed-form fit
            if config.length_calibration:
                log("calibrating on spans of the validation reviews (1 word to the whole review)")
                fitted.calibrate(splits, seed=config.seed)
        except Interrupted as exc:
            if not checkpoint.exists():  # stopped before any resumable state: resuming starts over
                checkpoint.save({}, {"stage": "start"})
            raise Interrupted(f"{exc}; resume with: reviewsense train --resume {run_dir}") from None
    predictor, history = fitted.predictor, fitted.history
    trained = time.perf_counter()
    metrics: dict[str, Any] = {
        "validation": evaluate(fitted.held_out or predictor, splits.validation),
        "test": evaluate(predictor, splits.test, reliability_plot=str(run_dir / "reliability.png")),
    }
    from .evaluation.by_length import by_length, plot_by_length

    metrics["by_length"] = by_length(predictor.predict_proba, splits.test, seed=config.seed)
    plot_by_length({predictor.family: metrics["by_length"]}, run_dir / "by_length.png", title="test spans")
    evaluated = time.perf_counter()
    metrics["timing"] = {
        "load_seconds": round(loaded - started, 2),
        "pretrain_seconds": round(pretrained - loaded, 2),
        "train_seconds": round(trained - pretrained, 2),
        "evaluate_seconds": round(evaluated - trained, 2),
    }
    if history is not None:  # families trained in epochs have a training curve
        metrics["epochs"] = {"run": history.epochs, "best": history.best_epoch}
        write_json(run_dir / "history.json", history.to_dict())
        write_text(run_dir / "history.csv", history.to_csv())
        plot_history(history, run_dir, title=predictor.family)
    save_model(predictor, run_dir / "model", metrics={"test": metrics["test"], "validation": metrics["validation"]},
               training={"config": config_dict, "data": splits.source,
                         "rows": {"train": len(splits.train), "validation": len(splits.validation),
                                  "test": len(splits.test)},
                         "history": history.to_dict() if history else None})
    metrics["timing"]["total_seconds"] = round(time.perf_counter() - started, 2)
    metrics["peak_rss_mb"] = _peak_rss_mb()
    write_json(run_dir / "metrics.json", metrics)
    write_text(run_dir / "README.md", _model_card(config, splits, metrics, history))
    checkpoint.clear()
    if overwrite:
        _remove_stale(run_dir, previous)
    return metrics


def resume_config(run_dir: str | Path) -> TrainConfig:
    """The configuration of an interrupted run, for ``train(config, resume=True)``."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.json)")
    if not Checkpoint(run_dir / "checkpoint").exists():
        done = (run_dir / "metrics.json").is_file()
        raise ConfigError(f"{run_dir}: nothing to resume ({'the run finished' if done else 'no checkpoint'})")
    try:
        data = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{run_dir / 'config.json'}: unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{run_dir / 'config.json'}: not a run configuration")
    config = TrainConfig.from_dict(data)
    config.run_dir = str(run_dir)
    return config
