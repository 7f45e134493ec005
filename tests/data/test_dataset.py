"""The Dataset container and the seeded train/validation split."""

from __future__ import annotations

import numpy as np
import pytest

from reviewsense.data.dataset import Dataset, train_validation_split
from reviewsense.errors import DataError


def _data(n=50):
    return Dataset(texts=[f"text {i}" for i in range(n)], labels=np.arange(n) % 2, name="d",
                   ids=[f"id{i}" for i in range(n)], ratings=np.arange(n) % 10)


def test_dataset_checks_lengths():
    with pytest.raises(ValueError, match="same length"):
        Dataset(texts=["a", "b"], labels=[1])


def test_subset_keeps_metadata_in_step():
    data = _data()
    part = data.subset([3, 7], name="p")
    assert part.texts == ["text 3", "text 7"]
    assert part.ids == ["id3", "id7"]
    assert part.labels.tolist() == [1, 1]
    assert part.ratings.tolist() == [3, 7]
    assert part.name == "p"


def test_split_sizes_by_count():
    train, val = train_validation_split(_data(50), 10, seed=0)
    assert (len(train), len(val)) == (40, 10)
    assert train.name == "d:train" and val.name == "d:validation"


@pytest.mark.parametrize(("fraction", "n_val"), [(0.2, 10), (0.5, 25), (0.02, 1), (0.98, 49)])
def test_split_sizes_by_fraction(fraction, n_val):
    train, val = train_validation_split(_data(50), fraction, seed=0)
    assert len(val) == n_val
    assert len(train) == 50 - n_val


def test_split_is_disjoint_complete_and_keeps_rows_together():
    data = _data(50)
    train, val = train_validation_split(data, 0.3, seed=3)
    assert not set(train.texts) & set(val.texts)
    assert sorted(train.texts + val.texts) == sorted(data.texts)
    for part in (train, val):
        for text, ident, label, rating in zip(part.texts, part.ids, part.labels, part.ratings, strict=True):
            i = int(text.split()[1])
            assert (ident, label, rating) == (f"id{i}", i % 2, i % 10)
    # rows keep their original relative order
    assert train.ids == sorted(train.ids, key=lambda s: int(s[2:]))


def test_split_is_seeded():
    data = _data(50)
    a = train_validation_split(data, 0.3, seed=1)
    b = train_validation_split(data, 0.3, seed=1)
    c = train_validation_split(data, 0.3, seed=2)
    assert a[1].texts == b[1].texts
    assert a[0].texts == b[0].texts
    assert a[1].texts != c[1].texts


@pytest.mark.parametrize("size", [0, 50, 51, -3, 0.0001, 1e6])
def test_split_rejects_sizes_that_do_not_fit(size):
    with pytest.raises(DataError, match="does not fit a training set of 50 rows"):
        train_validation_split(_data(50), size)


def _grouped(n_groups=40, seed=0):
    """Groups of 1..8 rows, like reviews of one movie."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, size=n_groups)
    groups = [f"g{g}" for g, size in enumerate(sizes) for _ in range(size)]
    n = len(groups)
    return Dataset(texts=[f"text {i}" for i in range(n)], labels=np.arange(n) % 2, name="d", groups=groups)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("size", [0.1, 0.3, 40])
def test_grouped_split_keeps_every_group_on_one_side(seed, size):
    data = _grouped(seed=seed)
    train, val = train_validation_split(data, size, seed=seed)
    assert not set(train.groups) & set(val.groups)
    assert sorted(train.texts + val.texts) == sorted(data.texts)
    wanted = round(size * len(data)) if isinstance(size, float) else size
    # whole groups are added until the target is reached: at most one group (≤ 8 rows) over
    assert wanted <= len(val) < wanted + 8
    for part in (train, val):  # groups travel with their rows
        assert all(data.groups[int(t.split()[1])] == g for t, g in zip(part.texts, part.groups, strict=True))


def test_grouped_split_is_seeded_and_can_be_turned_off():
    data = _grouped()
    a, b = train_validation_split(data, 0.3, seed=1)[1], train_validation_split(data, 0.3, seed=1)[1]
    assert a.texts == b.texts
    assert train_validation_split(data, 0.3, seed=2)[1].texts != a.texts
    _, rows = train_validation_split(data, 0.3, seed=1, by_group=False)
    assert len(rows) == round(0.3 * len(data))
    assert set(rows.groups) & set(train_validation_split(data, 0.3, seed=1, by_group=False)[0].groups)


def test_grouped_split_that_leaves_no_training_group_is_refused():
    data = Dataset(texts=list("abcdef"), labels=[0, 1] * 3, groups=["x"] * 3 + ["y"] * 3)
    with pytest.raises(DataError, match="leaves no group for training"):
        train_validation_split(data, 4, seed=0)  # one movie holds 3 rows: 4 takes both


def test_groups_must_match_the_rows():
    with pytest.raises(ValueError, match="groups"):
        Dataset(texts=["a", "b"], labels=[0, 1], groups=["x"])


def test_grouped_split_with_one_class_on_a_side_is_one_line_naming_the_option():
    # each author wrote reviews of one label only: some seeds leave one class on a side
    data = Dataset(texts=[f"t{i}" for i in range(12)], labels=[0] * 6 + [1] * 6,
                   groups=["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"] * 3)
    failures = 0
    for seed in range(20):
        try:
            train, val = train_validation_split(data, 3, seed=seed, what="--test-size")
        except DataError as exc:
            failures += 1
            assert str(exc).startswith("--test-size of 3: the ") and "only one class" in str(exc)
            assert "--random-split" in str(exc)
        else:
            assert len(set(val.labels.tolist())) == 2 and len(set(train.labels.tolist())) == 2
    assert failures == 20  # one 3-row group of one author is always a one-class held-out side


def test_grouped_split_notes_when_whole_groups_overshoot(capsys, monkeypatch):
    monkeypatch.setenv("REVIEWSENSE_QUIET", "0")
    data = Dataset(texts=[f"t{i}" for i in range(40)], labels=[0, 1] * 20, groups=["big"] * 30 + ["s"] * 10)
    sizes = {len(train_validation_split(data, 5, seed=seed)[1]) for seed in range(10)}
    assert sizes == {10, 30}  # whichever group comes first is held out whole
    assert "took 30 rows for --validation-size of 5 (asked: 5)" in capsys.readouterr().err


# -- stratified hold-outs ----------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from reviewsense.data.dataset import stratified_rows  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(counts=st.lists(st.integers(1, 40), min_size=2, max_size=6), fraction=st.floats(0.01, 0.99),
       seed=st.integers(0, 2**16))
def test_stratified_rows_give_each_class_its_share(counts, fraction, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    n = max(1, min(len(labels) - 1, int(round(fraction * len(labels)))))
    held = stratified_rows(labels, n, np.random.default_rng(seed))
    assert len(held) == n == len(set(held.tolist()))
    per_class = np.bincount(labels[held], minlength=len(counts))
    share = n * np.array(counts) / len(labels)
    assert (per_class >= np.floor(share)).all() and (per_class <= np.ceil(share)).all()


def test_a_rare_class_is_held_out_in_its_share_whatever_the_seed():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    data = Dataset(texts=[f"t{i}" for i in range(100)], labels=labels, class_names=("a", "b", "c"))
    for seed in range(20):
        train, held = train_validation_split(data, 0.1, seed=seed, by_group=False, stratify=True)
        assert np.bincount(held.labels, minlength=3).tolist() == [9, 1, 0]  # c's 0.1 row stays in training
        assert sorted(train.texts + held.texts) == sorted(data.texts)
    plain = [np.bincount(train_validation_split(data, 0.1, seed=s, by_group=False)[1].labels, minlength=3)[1]
             for s in range(20)]
    assert set(plain) != {1}  # at random, b's share varies: why stratifying is the default for own data


def test_stratify_with_whole_groups_is_refused():
    data = Dataset(texts=[f"t{i}" for i in range(20)], labels=np.arange(20) % 2,
                   groups=[f"g{i // 2}" for i in range(20)])
    with pytest.raises(DataError, match="--stratify holds out rows.*add --random-split"):
        train_validation_split(data, 0.2, stratify=True)
    train, held = train_validation_split(data, 0.2, by_group=False, stratify=True)
    assert np.bincount(held.labels).tolist() == [2, 2]
