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

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ._fs import fingerprint, write_json, write_text
from .data.download import cache_dir
from .data.splits import DataSpec, Splits, load_splits
from .models.registry import FitJob, Fitted, family
from .progress import log
from .training.checkpoint import Checkpoint, Interrupted, check_stop, stop_on_signals
from .training.config import TrainConfig, resume_config
from .training.history import EarlyStopping
from .training.run_folder import check_run_dir, model_card, peak_rss_mb, remove_stale, run_files
from .training.torch_loop import FitOptions

__all__ = ["DataSpec", "Fitted", "Splits", "TrainConfig", "calibrate", "load_splits", "resolve_vectors",
           "resume_config", "train"]


def resolve_vectors(config: TrainConfig, splits: Splits):
    """The pretrained word vectors for ``--embedding``, or None for 'scratch'."""
    from .text.word_vectors import load_word_vectors, pretrain

    choice = config.embedding
    if not config.uses_word_vectors or choice == "scratch" or choice.startswith("sentence:"):
        return None
    if choice in ("word2vec", "fasttext"):
        # Unlabelled text only: the training split and IMDB's unsup reviews, never test.
        texts = list(splits.train.texts) + (list(splits.unlabelled.texts) if splits.unlabelled else [])
        settings: dict[str, Any] = {"method": choice, "dim": config.embedding_dim,
                                    "epochs": config.pretrain_epochs, "seed": config.seed}
        cached = cache_dir() / "vectors" / fingerprint(texts, json.dumps(settings, sort_keys=True))[:20]
        if (cached / "vectors.json").is_file():
            log(f"using cached {choice} vectors from {cached}")
            return load_word_vectors(cached)
        vectors = pretrain(texts, method=choice, dim=settings["dim"], epochs=settings["epochs"], seed=config.seed)
        vectors.save(cached)
        return vectors
    return load_word_vectors(choice)


def calibrate(fitted: Fitted, splits: Splits, seed: int = 0) -> None:
    """Fit the length calibration on spans of the validation reviews, scored by the model
    that did not see them, and give it to both models."""
    from .models.calibration import calibrate_by_length

    calibrate_by_length(fitted.predictor, fitted.held_out or fitted.predictor, splits.train.labels, splits.validation,
                        seed=seed)


def _fit(config: TrainConfig, splits: Splits, vectors, checkpoint: Checkpoint | None = None) -> Fitted:
    """Train the configured family, through the registry (reviewsense.models.registry)."""
    options = FitOptions(epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                         seed=config.seed, threads=config.threads, checkpoint=checkpoint,
                         early_stopping=EarlyStopping(patience=config.patience) if config.early_stopping else None)
    settings = {name: config.params_of(name) for name in config.families}
    job = FitJob(splits.train, splits.validation, options, vectors, settings)
    name = config.family
    declared = family(name)
    assert declared.fit is not None  # TrainConfig.check: a trainable family
    return declared.fit(job, job.params(name))


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run the whole job and return ``metrics.json``'s content.

    A run folder that already holds something is refused unless ``overwrite`` (or ``resume``).
    SIGINT/SIGTERM during training write ``RUN/checkpoint`` and raise :class:`Interrupted`;
    ``train(config, resume=True)`` (``reviewsense train --resume RUN``) continues from it and
    ends with the same model and metrics as an uninterrupted run with the same seed."""
    from .evaluation.metrics import evaluate
    from .evaluation.plots import plot_history
    from .export.bundle import save_model
    config.check()
    run_dir = Path(config.run_dir)
    check_run_dir(run_dir, overwrite=overwrite or resume)
    started = time.perf_counter()
    previous = run_files(run_dir) if overwrite else {}
    want_unsup = config.uses_word_vectors and config.embedding in ("word2vec", "fasttext")
    splits = load_splits(config.data, seed=config.seed, want_unsup=want_unsup)
    log(f"data: train {len(splits.train):,}, validation {len(splits.validation):,}, test {len(splits.test):,}"
        f" from {splits.source}")
    loaded = time.perf_counter()
    checkpoint = Checkpoint(run_dir / "checkpoint")
    if not resume:
        checkpoint.clear()  # a new run never continues an old one by accident
    config_dict = asdict(config)
    # what this run set over each trained family's defaults (train's own and the given ones)
    config_dict["settings"] = {name: config.params_of(name) for name in config.families}
    write_json(run_dir / "config.json", config_dict)  # first: --resume rebuilds the run from it
    vectors = resolve_vectors(config, splits)
    pretrained = time.perf_counter()
    with stop_on_signals():
        try:
            fitted = _fit(config, splits, vectors, checkpoint)
            check_stop("after training, before evaluation")  # a stop asked during a closed-form fit
            if config.length_calibration:
                log("calibrating on spans of the validation reviews (1 word to the whole review)")
                calibrate(fitted, splits, seed=config.seed)
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
                         "history": history.to_dict() if history else None}, overwrite=overwrite or resume)
    metrics["timing"]["total_seconds"] = round(time.perf_counter() - started, 2)
    metrics["peak_rss_mb"] = peak_rss_mb()
    write_json(run_dir / "metrics.json", metrics)
    write_text(run_dir / "README.md", model_card(config, splits, metrics, history))
    checkpoint.clear()
    if overwrite:
        remove_stale(run_dir, previous)
    return metrics

