"""The in-memory dataset every stage passes along, and the train/validation split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from ..progress import log, warn

UNLABELLED = -1


@dataclass
class Dataset:
    """Texts with class labels: ``labels[i]`` is the index of row ``i``'s class in
    ``class_names`` (-1 = unlabelled). Two classes are the common case (``class_names[0]``
    the negative class, ``class_names[1]`` the positive one); any number ≥ 2 is allowed.

    ``ids``, ``ratings`` and ``groups`` are optional per-row metadata (IMDB review id, star
    rating, and the movie it reviews). Rows of one group (e.g. reviews of one movie) share
    words that say nothing about sentiment elsewhere — names, plot — so splits keep each group
    on one side (:func:`train_validation_split`).
    """

    texts: list[str]
    labels: np.ndarray
    name: str = "data"
    ids: list[str] | None = None
    ratings: np.ndarray | None = None
    class_names: tuple[str, ...] = ("negative", "positive")
    skipped: int = field(default=0, compare=False)
    groups: list[str] | None = None
    weights: np.ndarray | None = None  # each row's weight in training (sample_weight, class_weight); None: 1

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int16)
        self.class_names = tuple(self.class_names)
        if len(self.labels) != len(self.texts):
            raise ValueError("texts and labels must have the same length")
        if self.groups is not None and len(self.groups) != len(self.texts):
            raise ValueError("texts and groups must have the same length")
        if self.weights is not None and len(self.weights) != len(self.texts):
            raise ValueError("texts and weights must have the same length")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int] | np.ndarray, name: str | None = None) -> Dataset:
        index = np.asarray(index, dtype=np.int64)
        return Dataset(
            texts=[self.texts[i] for i in index],
            labels=self.labels[index],
            name=name or self.name,
            ids=None if self.ids is None else [self.ids[i] for i in index],
            ratings=None if self.ratings is None else self.ratings[index],
            class_names=self.class_names,
            groups=None if self.groups is None else [self.groups[i] for i in index],
            weights=None if self.weights is None else self.weights[index],
        )

    @property
    def labelled(self) -> bool:
        return bool(len(self)) and bool((self.labels >= 0).all())


def resolve_size(size: int | float, total: int, what: str) -> int:
    """Turn an absolute count or a fraction in (0, 1) into a row count, checking bounds."""
    n = int(round(size * total)) if isinstance(size, float) and 0 < size < 1 else int(size)
    if n < 1 or n >= total:
        raise DataError(
            f"{what} of {size} does not fit a training set of {total} rows "
            f"(give a count between 1 and {total - 1} or a fraction between 0 and 1)"
        )
    return n


def train_validation_split(
    data: Dataset, validation_size: int | float = 10_000, seed: int = 0, by_group: bool = True,
    what: str = "--validation-size", stratify: bool = False,
) -> tuple[Dataset, Dataset]:
    """Hold out ``validation_size`` rows of ``data`` after a seeded shuffle.

    The default is the tutorial's split: 10,000 of IMDB's 25,000 training reviews. When the
    rows have ``groups`` (and ``by_group``), whole groups are held out — shuffled groups are
    taken until they hold ``validation_size`` rows — so no group is on both sides. IMDB's
    test reviews are of other movies than its training reviews; a validation split by movie
    measures the same thing, while a random one rewards memorizing movie names (on IMDB it
    reads 1.5 points higher than the grouped one). ``what`` names the size in errors.

    ``stratify`` (rows, not groups): every class is held out in its share of the data (its
    count rounded, the remainders given to the classes they favour most), so a rare class is
    not left out of a small held-out set by chance.
    """
    n_val = resolve_size(validation_size, len(data), what)
    rng = np.random.default_rng(seed)
    if by_group and data.groups is not None:
        if stratify:
            raise DataError(f"{what}: --stratify holds out rows, but these rows have groups (--group-column, or "
                            "IMDB's movies) and whole groups are held out; add --random-split to stratify rows")
        return _group_split(data, n_val, rng, f"{what} of {validation_size}")
    if stratify and data.labelled:
        held = stratified_rows(data.labels, n_val, rng)
    else:
        held = rng.permutation(len(data))[:n_val]
    keep = np.ones(len(data), dtype=bool)
    keep[held] = False
    return data.subset(np.flatnonzero(keep), f"{data.name}:train"), data.subset(
        np.sort(held), f"{data.name}:validation"
    )


def stratified_rows(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` row numbers drawn at random within each class, each class getting its share of
    ``n`` (``n · count / total``, rounded down, plus one for the classes of the largest
    remainders, ties broken at random)."""
    classes, counts = np.unique(labels, return_counts=True)
    share = n * counts / counts.sum()
    take = np.floor(share).astype(np.int64)
    shuffled = rng.permutation(len(classes))
    by_remainder = shuffled[np.argsort(-(share - take)[shuffled], kind="stable")]
    take[by_remainder[: n - int(take.sum())]] += 1
    return np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take,
                                                                                           strict=True)])


def _group_split(data: Dataset, n_val: int, rng: np.random.Generator, what: str) -> tuple[Dataset, Dataset]:
    """Shuffled whole groups, taken until they hold ``n_val`` rows, are held out."""
    assert data.groups is not None
    number = {name: i for i, name in enumerate(sorted(set(data.groups)))}  # sorted: the same split everywhere
    group_of = np.fromiter((number[g] for g in data.groups), dtype=np.int64, count=len(data))
    sizes = np.bincount(group_of, minlength=len(number))
    order = rng.permutation(len(number))
    taken = order[: int(np.searchsorted(np.cumsum(sizes[order]), n_val)) + 1]
    held = np.isin(group_of, taken)
    if held.all():
        raise DataError(f"{what} leaves no group for training ({len(number)} groups in {len(data)} rows)")
    if held.sum() > 1.2 * n_val:
        log(f"note: holding out whole groups took {int(held.sum()):,} rows for {what} (asked: {n_val:,})")
    train, val = data.subset(np.flatnonzero(~held), f"{data.name}:train"), \
        data.subset(np.flatnonzero(held), f"{data.name}:validation")
    if data.labelled:
        for part, side in ((train, "training"), (val, "held-out")):
            if len(set(part.labels.tolist())) < 2:
                raise DataError(f"{what}: the {side} groups hold only one class ({len(number)} groups in "
                                f"{len(data)} rows); use more groups, another --seed, or --random-split")
    return train, val


MIN_TEST_ROWS = 5  # a held-out test set smaller than this measures nothing (one row: accuracy 0 or 1)


def check_split(train: Dataset, held: Dataset, what: str, size: int | float, held_both: bool = True,
                min_held: int = 1) -> None:
    """Refuse a split of labelled data that leaves nothing to learn from or to measure with:
    a training side of one class, a held-out side under ``min_held`` rows or, with
    ``held_both``, of one class (a held-out test set of one class is only warned about:
    its metrics say what they cannot define). ``what`` and ``size`` name the option."""
    if not (train.labelled and held.labelled):
        return
    if len(held) < min_held:
        raise DataError(f"{what} of {size} holds out {len(held)} row(s) of {len(train) + len(held)}: too few to "
                        f"measure anything (at least {min_held}); hold out more, or give a test file")
    missing = sorted(set(held.labels.tolist()) - set(train.labels.tolist()))
    if missing and len(train.class_names) > 2:  # a class the model could never learn
        names = ", ".join(f"'{train.class_names[c]}'" for c in missing)
        raise DataError(f"{what} of {size} leaves no training row of class {names} (all its rows are held out); "
                        "give more rows of it, or hold out fewer")
    for part, side in ((train, "training"), (held, "held-out")):
        present = sorted(set(part.labels.tolist()))
        if len(present) > 1:
            continue
        only = part.class_names[present[0]]
        if side == "held-out" and not held_both:
            warn(f"the {what} split holds one class only ('{only}', {len(part)} rows): "
                 "ROC-AUC and the metrics of the other class are undefined")
            continue
        advice = "hold out fewer rows" if side == "training" else "hold out more rows"
        raise DataError(f"{what} of {size} leaves the {side} split {len(part)} row(s) of one class only "
                        f"('{only}'); {advice}, or use more data")
