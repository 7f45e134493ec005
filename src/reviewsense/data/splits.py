"""Which rows train, which validate, which test: IMDB's own test split, or the user's files held out by group."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..progress import warn
from .dataset import MIN_TEST_ROWS, Dataset, check_split, train_validation_split


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
    stratify: bool | None = None  # rows held out in each class's share; None: when rows (not groups) are held out
    sep: str | None = None  # own CSV files: the separator (None: by extension, or found from the header)
    encoding: str | None = None  # own files: the text encoding (None: UTF-8, or UTF-16/32 by byte-order mark)


@dataclass
class Splits:
    train: Dataset
    validation: Dataset
    test: Dataset
    unlabelled: Dataset | None
    source: str


def load_splits(spec: DataSpec, seed: int = 0, want_unsup: bool = False) -> Splits:
    """Train/validation/test for IMDB (its own test split) or the user's files."""
    from ..data.files import load_table
    from ..data.imdb import check_label_column, is_imdb_source, read_imdb, resolve_source, with_labels

    if spec.path is None or is_imdb_source(spec.path):
        if spec.group_column:
            raise DataError("--group-column is for your own data: IMDB is split by movie already")
        check_label_column(spec.label_column)
        source: Path | str = resolve_source(spec.path, allow_download=spec.allow_download)
        splits = ("train", "test", "unsup") if want_unsup else ("train", "test")
        data = {name: with_labels(ds, spec.label_column) for name, ds in read_imdb(source, splits).items()}
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
                                                     by_group=not spec.random_split, what="--test-size",
                                                     stratify=_stratify(spec, train_full))
            test.name = f"{Path(spec.path).name}:test"
            check_split(train_full, test, "--test-size", spec.test_size, held_both=False, min_held=MIN_TEST_ROWS)
        default_val = 0.2
    if spec.classes:
        _check_declared_classes(train_full, source)
    validation_size = spec.validation_size if spec.validation_size is not None else default_val
    if isinstance(validation_size, int) and validation_size >= len(train_full) and spec.validation_size is None:
        validation_size = 0.2
    train, validation = train_validation_split(train_full, validation_size, seed=seed,
                                               by_group=not spec.random_split, stratify=_stratify(spec, train_full))
    check_split(train, validation, "--validation-size", validation_size)
    _warn_overlap(train_full, test)
    return Splits(train, validation, test, unsup, str(source))


def _stratify(spec: DataSpec, data: Dataset) -> bool:
    """``--stratify`` as given; by default, whenever rows (not whole groups) are held out."""
    if spec.stratify is not None:
        return spec.stratify
    return data.groups is None or spec.random_split


def _check_declared_classes(data: Dataset, source: Path | str) -> None:
    """Every class ``--classes`` declares has a row in the training data: a model could never
    learn (nor predict) one without, and the user most likely mistyped it."""
    import numpy as np

    counts = np.bincount(np.asarray(data.labels), minlength=len(data.class_names))
    missing = [name for name, count in zip(data.class_names, counts, strict=True) if count == 0]
    if missing:
        found = ", ".join(name for name, count in zip(data.class_names, counts, strict=True) if count)
        raise DataError(f"{source}: --classes names {', '.join(map(repr, missing))}, but no row has that label "
                        f"(labels found: {found})")


def _warn_overlap(train: Dataset, test: Dataset) -> None:
    seen = set(train.texts)
    shared = sum(1 for t in test.texts if t in seen)
    if shared:
        warn(f"{shared:,} test text(s) also appear in the training data; test metrics will be optimistic")

