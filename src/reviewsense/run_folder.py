"""The run folder: what may be written into it, what a run leaves there, and its model card."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import __version__
from ._fs import check_new_folder, remove_temporaries
from .errors import ConfigError
from .evaluation.metrics import format_confusion, format_per_class, is_multiclass
from .run_config import TrainConfig
from .training.history import History

# what a run writes into its folder; --overwrite removes those a new run does not write again
RUN_FILES = ("config.json", "metrics.json", "history.json", "history.csv", "loss.png", "accuracy.png",
             "reliability.png", "confusion.png", "by_length.png", "README.md", "model", "checkpoint")


def check_run_dir(run_dir: Path, overwrite: bool = False) -> None:
    """Refuse a run folder that is a file, or that holds anything (a previous run, the user's
    files) unless ``overwrite``: training never replaces a model without being asked to."""
    if not overwrite and run_dir.is_dir() and ((run_dir / "config.json").exists() or (run_dir / "model").exists()):
        unfinished = (run_dir / "checkpoint").exists()  # cleared when a run completes
        how = (f"finish it with --resume {run_dir}, " if unfinished else "") + "add --overwrite to replace it"
        raise ConfigError(f"{run_dir}: holds a {'stopped' if unfinished else 'previous'} run; {how}, "
                          "or choose another --run-dir")
    check_new_folder(run_dir, "--run-dir", overwrite=overwrite,
                     overwriting="write the run into it (files of the same names are replaced)")


@contextlib.contextmanager
def held(run_dir: Path, overwrite: bool = False) -> Iterator[None]:
    """This process's hold on ``run_dir`` while it trains into it: an exclusive lock on the
    folder itself (created if need be; no lock file is left), so a second ``train`` into the
    same folder stops in one line instead of mixing two runs. The folder is checked again once
    held (a run that ended meanwhile is not overwritten), and removed again if this run created
    it and leaves it empty (bad data)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no locking
        yield
        return
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir, os.O_RDONLY)
    except OSError:  # a file, or not writable: what check_run_dir says best
        check_run_dir(run_dir, overwrite)
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{run_dir}: another reviewsense train is writing into it; wait for it to end or "
                              "choose another --run-dir") from None
        try:
            check_run_dir(run_dir, overwrite)
            yield
        finally:
            if created:
                with contextlib.suppress(OSError):
                    run_dir.rmdir()  # only if empty: the run failed before writing anything
    finally:
        os.close(fd)


def remove_killed_writes(run_dir: Path) -> None:
    """Before an --overwrite or --resume run: remove the temporaries a killed run left while writing
    its own files (``.model.XXXXXXXX.tmp``, ``.metrics.json.XXXXXXXX.tmp``, ``.model.old`` …), and
    nothing else."""
    removed = remove_temporaries(run_dir, RUN_FILES, folders=("model", "checkpoint"))
    if removed:
        from .progress import log

        log(f"removed {len(removed)} temporar{'y' if len(removed) == 1 else 'ies'} of an interrupted write "
            f"from {run_dir}: {', '.join(removed)}")


def run_files(run_dir: Path) -> dict[str, tuple[int, int]]:
    """The run files in ``run_dir`` and their identity (inode, modification time)."""
    found = {}
    for name in RUN_FILES:
        with contextlib.suppress(OSError):
            info = (run_dir / name).lstat()
            found[name] = (info.st_ino, info.st_mtime_ns)
    return found


def remove_stale(run_dir: Path, before: dict[str, tuple[int, int]]) -> None:
    """After an --overwrite run: remove the previous run's files that this run did not write again
    (a seed run's loss.png beside an nblinear model would describe another model). Everything a run
    writes is a new file (written under a temporary name, then renamed), so an unchanged identity
    means a leftover."""
    import shutil

    now = run_files(run_dir)
    for name, identity in before.items():
        if now.get(name) == identity:
            path = run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def _spark_note(config: TrainConfig) -> str:
    return "" if config.spark is None else f" (fitted by Spark, master {config.spark or 'from spark-submit'})"


def model_card(config: TrainConfig, source: str, rows: dict[str, int], metrics: dict[str, Any],
               history: History | None) -> str:
    test, val = metrics["test"], metrics["validation"]
    if history is None:
        stop = "no epochs (closed-form fit)"
    elif history.best_epoch:
        stop = f"early stopping restored epoch {history.best_epoch} of {history.epochs}"
    else:
        stop = f"{history.epochs} epochs, no early stopping"
    imdb = _trained_on_imdb(config)
    example = _EXAMPLES[imdb]
    return f"""# reviewsense run

- model family: `{"ensemble (--preset best)" if config.preset else config.model}`\
{f", embedding: `{config.vector_settings()[0]}`" if config.uses_word_vectors else ""}, {stop}
- data: `{source}` — train {rows['train']:,}, validation {rows['validation']:,}, test {rows['test']:,}\
{_spark_note(config)}
{_test_line(test)}
- validation accuracy {val['accuracy']:.2%}, loss {val['loss']:.4f}
{_length_line(metrics)}- trained in {metrics['timing']['train_seconds']:.1f} s with reviewsense {__version__}
{_per_class_section(test)}
{"![loss](loss.png) ![accuracy](accuracy.png)" if history is not None else ""}

Use it:

```python
import reviewsense
model = reviewsense.load("{Path(config.run_dir) / 'model'}")
model.predict_proba([{json.dumps(example, ensure_ascii=False)}])
```

or `reviewsense predict --model {Path(config.run_dir) / 'model'} {shlex.quote(example)}`.
Intended use: {_task(test)} of {"English movie reviews" if imdb else "texts"} similar to the training data. \
Scores on text from other domains are less reliable; check them on a labelled sample first.
"""


# the card's example text: never a text of the training data (it may be private), only a review
# of IMDB's kind for an IMDB model, else a short sentence that names no domain
_EXAMPLES = {True: "The movie was great!", False: "I really liked it."}


def _trained_on_imdb(config: TrainConfig) -> bool:
    """Whether the run read IMDB (no ``--data``, or its archive or folder) rather than the user's data."""
    from .data.imdb import is_imdb_source

    return config.data.path is None or is_imdb_source(config.data.path)


def _test_line(test: dict[str, Any]) -> str:
    """The model card's line of test metrics: of two classes (F1 of the positive class,
    macro-F1, ROC-AUC) or of more (macro-F1, the MAE of numbered classes, top-label ECE)."""
    def number(key: str) -> str:
        return "n/a" if test.get(key) is None else format(test[key], ".4f")

    line = f"- **test accuracy {test['accuracy']:.2%}**, loss {test['loss']:.4f}, "
    if not is_multiclass(test):
        return line + f"F1 {number('f1')}, macro-F1 {number('macro_f1')}, ROC-AUC {test['roc_auc']}"
    mae = "" if test.get("mae") is None else f", MAE {test['mae']:.4f} (classes as numbers)"
    return line + f"macro-F1 {number('macro_f1')}{mae}, top-label ECE {test['ece']:.4f}"


def _per_class_section(test: dict[str, Any]) -> str:
    """The test set's per-class table and confusion matrix (and its plot, ``confusion.png``)."""
    note = f"\n{test['note']}.\n" if test.get("note") and is_multiclass(test) else ""
    return (f"\nPer class (test):\n\n{format_per_class(test)}\n{note}\n"
            f"Confusion matrix (test; rows: true class, columns: predicted):\n\n{format_confusion(test)}\n\n"
            "![confusion matrix](confusion.png)\n")


def _task(test: dict[str, Any]) -> str:
    if not is_multiclass(test):
        return "binary sentiment"
    names = list(test["per_class"])
    return f"sentiment in {len(names)} classes ({', '.join(names)})"


def _length_line(metrics: dict[str, Any]) -> str:
    """The model card's line on short texts (``by_length.png``)."""
    buckets = metrics.get("by_length", {}).get("buckets")
    if not buckets:
        return ""
    worst = max(buckets, key=lambda b: buckets[b]["ece"])
    return (f"- by text length (spans of the test texts, 1 word to the whole text): ECE ≤ "
            f"{buckets[worst]['ece']:.3f} in every bucket (worst: {worst}); see `by_length.png`\n")

