"""The whole job, stage by stage: data → vectorizer → model → train → evaluate → plots →
export, everything written into one run folder.

    run/
      config.json         every setting, so the run can be repeated
      history.json/.csv   per-epoch loss, accuracy, val_loss, val_accuracy
      metrics.json        {"validation": {...}, "test": {...}, "timing": {...}}
      loss.png, accuracy.png  (families trained in epochs)
      reliability.png     calibration of the test probabilities (with its ECE)
      confusion.png       the test set's confusion matrix (per-class metrics: metrics.json, README.md)
      by_length.png       test accuracy and ECE against text length (metrics.json: "by_length")
      model/              the export (see reviewsense.export)
      README.md           a short model card
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._fs import write_json, write_text
from .data.splits import DataSpec, Splits, load_splits
from .errors import ConfigError
from .models.registry import Fitted
from .progress import log
from .run_config import TrainConfig, resume_config
from .run_folder import check_run_dir, held, model_card, peak_rss_mb, remove_killed_writes, remove_stale, run_files
from .training import distributed
from .training.checkpoint import Checkpoint, Interrupted, check_stop, stop_on_signals

if TYPE_CHECKING:
    from .data.dataset import Dataset
    from .estimators import TextClassifier
    from .models.base import Predictor

__all__ = ["DataSpec", "Fitted", "Splits", "TrainConfig", "build_estimator", "calibrate", "load_splits",
           "resolve_vectors", "resume_config", "train"]


def resolve_vectors(config: TrainConfig, splits: Splits):
    """The pretrained word vectors the run's ``embedding`` names (None for 'scratch'): pretrained
    on the training split and IMDB's unlabelled reviews (never test), cached."""
    from .data.download import cache_dir
    from .text.word_vectors import vectors_for

    if not config.uses_word_vectors:
        return None
    choice, dim = config.vector_settings()
    texts = list(splits.train.texts) + (list(splits.unlabelled.texts) if splits.unlabelled else [])
    return vectors_for(choice, texts, dim, seed=config.seed, epochs=config.pretrain_epochs,
                       cache=cache_dir() / "vectors")


def calibrate(fitted: Fitted, splits: Splits, seed: int = 0) -> None:
    """Fit the length calibration on spans of the validation reviews, scored by the model
    that did not see them, and give it to both models."""
    from .models.calibration import calibrate_by_length

    calibrate_by_length(fitted.predictor, fitted.held_out or fitted.predictor, splits.train.labels, splits.validation,
                        seed=seed)


def build_estimator(config: TrainConfig) -> TextClassifier:
    """The estimator ``reviewsense train`` fits: the family's own, with the run's settings (the
    same class and ``fit`` a Python user has)."""
    from .estimators import StackedClassifier, estimator_class

    common: dict[str, Any] = {"length_calibration": config.length_calibration, "random_state": config.seed,
              "n_jobs": config.n_jobs, "class_weight": config.class_weight}

    def member(name: str) -> TextClassifier:
        own = {k: tuple(v) if isinstance(v, list) else v for k, v in config.params_of(name).items()}
        return estimator_class(name)(**own, random_state=config.seed, n_jobs=config.n_jobs)

    if config.family == "ensemble":
        return StackedClassifier(*(member(name) for name in config.families[1:]), **common)
    own = {k: tuple(v) if isinstance(v, list) else v for k, v in config.params_of(config.family).items()}
    return estimator_class(config.family)(**own, **common)


def _fit(config: TrainConfig, splits: Splits, vectors, checkpoint: Checkpoint | None = None) -> Fitted:
    """Train the configured family through its estimator's ``fit_split``: the same checks, fit and
    length calibration as ``Estimator.fit`` from Python."""
    size = config.data.validation_size if config.data.validation_size is not None else "(default)"
    estimator = build_estimator(config)
    return estimator._fit_split(splits.train, splits.validation, vectors=vectors, checkpoint=checkpoint,
                                what="--validation-size", size=size)


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run the whole job and return ``metrics.json``'s content.

    A run folder that already holds something is refused unless ``overwrite`` (or ``resume``).
    SIGINT/SIGTERM during training write ``RUN/checkpoint`` and raise :class:`Interrupted`;
    ``train(config, resume=True)`` (``reviewsense train --resume RUN``) continues from it and
    ends with the same model and metrics as an uninterrupted run with the same seed.

    Under ``torchrun`` (docs/distributed.md) every process trains its share of each batch and
    rank 0 alone writes the run folder; the other ranks return an empty dict after training."""
    config.check()
    if config.spark is not None:  # nblinear fitted by Spark
        raise ConfigError("a run on Spark (spark set) is trained by reviewsense.spark_train.train(config)")
    if distributed.active():
        _check_distributed(config)
    with distributed.session(), held(Path(config.run_dir), overwrite or resume) if distributed.is_main() else \
            contextlib.nullcontext():  # rank 0 alone writes: it alone holds the folder
        return _train(config, resume, overwrite)


def _check_distributed(config: TrainConfig) -> None:
    """Under torchrun: only families trained in epochs (the torch loop) train on several processes."""
    from .models.registry import families, family

    single = [name for name in config.families if not family(name).epochs]
    if single:
        what = "--preset best" if config.preset else f"--model {config.model}"
        able = ", ".join(name for name, declared in families().items() if declared.epochs and declared.standalone)
        raise ConfigError(f"{what} is not trained in epochs: run it without torchrun (torchrun trains {able} on "
                          "several processes)")


def distributed_record(config: TrainConfig) -> dict[str, int]:
    """What config.json records of a torchrun job: the processes and the global batch size
    (each process trains on about batch_size / world_size examples of each batch)."""
    return {"world_size": distributed.world_size(), "global_batch_size": int(config.resolved()[config.family]
                                                                             ["batch_size"])}


def _train(config: TrainConfig, resume: bool, overwrite: bool) -> dict[str, Any]:
    main = distributed.is_main()  # without torchrun: the one process
    run_dir = Path(config.run_dir)
    check_run_dir(run_dir, overwrite=overwrite or resume)  # on every rank, before rank 0 writes (after main_first)
    started = time.perf_counter()
    if main and (overwrite or resume):
        remove_killed_writes(run_dir)
    previous = run_files(run_dir) if overwrite and main else {}
    want_unsup = config.pretrains_vectors
    with distributed.main_first():  # a download: once
        splits = load_splits(config.data, seed=config.seed, want_unsup=want_unsup)
    log(f"data: train {len(splits.train):,}, validation {len(splits.validation):,}, test {len(splits.test):,}"
        f" from {splits.source}")
    loaded = time.perf_counter()
    checkpoint = Checkpoint(run_dir / "checkpoint")
    config_dict = config.record()  # every parameter of each trained family, defaults included
    if distributed.active():
        config_dict["distributed"] = distributed_record(config)
    if main:
        if not resume:
            checkpoint.clear()  # a new run never continues an old one by accident
        write_json(run_dir / "config.json", config_dict)  # first: --resume rebuilds the run from it
    with distributed.main_first():  # pretrained word vectors: rank 0 fills the cache, the others read it
        vectors = resolve_vectors(config, splits)
    pretrained = time.perf_counter()
    with stop_on_signals():
        try:
            fitted = _fit(config, splits, vectors, checkpoint)
            check_stop("after training, before evaluation")  # a stop asked during a closed-form fit
        except Interrupted as exc:
            if main and not checkpoint.exists():  # stopped before any resumable state: resuming starts over
                checkpoint.save({}, {"stage": "start"})
            raise Interrupted(f"{exc}; resume with: reviewsense train --resume {run_dir}") from None
    if not main:
        return {}

    def scored(split: str, model: Predictor) -> tuple[Any, Any]:
        data = getattr(splits, split)
        return data.labels, np.asarray(model.predict_logits(data.texts))

    times = {"started": started, "loaded": loaded, "pretrained": pretrained, "trained": time.perf_counter()}
    rows = {"train": len(splits.train), "validation": len(splits.validation), "test": len(splits.test)}
    return write_run(config, fitted, scored, splits.test, splits.source, rows, times, overwrite=overwrite,
                     resume=resume, previous=previous, config_dict=config_dict)


def write_run(config: TrainConfig, fitted: Fitted, scored: Callable[[str, Predictor], tuple[Any, Any]],
              test: Dataset, source: str, rows: dict[str, int], times: dict[str, float], *, overwrite: bool,
              resume: bool = False, previous: dict[str, Any] | None = None,
              config_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a fitted model, plot, export it and write the rest of the run folder; returns
    ``metrics.json``'s content. ``scored(split, model)``: the labels of the split ("validation"
    or "test") and the model's logits of its texts; ``test``: the test texts (or a sample of
    them) that the metrics by length cut spans of; ``times``: when the run started, its data
    was loaded, its vectors pretrained and its model trained (``time.perf_counter``)."""
    from .evaluation.by_length import by_length, plot_by_length
    from .evaluation.metrics import evaluate_logits
    from .evaluation.plots import plot_confusion, plot_history
    from .export.bundle import save_model

    run_dir = Path(config.run_dir)
    config_dict = config_dict if config_dict is not None else config.record()
    predictor, history = fitted.predictor, fitted.history
    held_out = fitted.held_out or predictor
    metrics: dict[str, Any] = {
        "validation": evaluate_logits(held_out, *scored("validation", held_out)),
        "test": evaluate_logits(predictor, *scored("test", predictor),
                                reliability_plot=str(run_dir / "reliability.png")),
    }
    plot_confusion(metrics["test"], run_dir / "confusion.png", title=f"test, {predictor.family}")
    metrics["by_length"] = by_length(predictor.predict_proba, test, seed=config.seed)
    plot_by_length({predictor.family: metrics["by_length"]}, run_dir / "by_length.png", title="test spans")
    evaluated = time.perf_counter()
    metrics["timing"] = {
        "load_seconds": round(times["loaded"] - times["started"], 2),
        "pretrain_seconds": round(times["pretrained"] - times["loaded"], 2),
        "train_seconds": round(times["trained"] - times["pretrained"], 2),
        "evaluate_seconds": round(evaluated - times["trained"], 2),
    }
    if history is not None:  # families trained in epochs have a training curve
        metrics["epochs"] = {"run": history.epochs, "best": history.best_epoch}
        write_json(run_dir / "history.json", history.to_dict())
        write_text(run_dir / "history.csv", history.to_csv())
        plot_history(history, run_dir, title=predictor.family)
    save_model(predictor, run_dir / "model", metrics={"test": metrics["test"], "validation": metrics["validation"]},
               training={"config": config_dict, "data": source, "rows": rows,
                         "history": history.to_dict() if history else None}, overwrite=overwrite or resume)
    metrics["timing"]["total_seconds"] = round(time.perf_counter() - times["started"], 2)
    metrics["peak_rss_mb"] = peak_rss_mb()
    write_json(run_dir / "metrics.json", metrics)
    write_text(run_dir / "README.md", model_card(config, source, rows, metrics, history))
    Checkpoint(run_dir / "checkpoint").clear()
    if overwrite:
        remove_stale(run_dir, previous or {})
    return metrics
