"""IMDB's star ratings as labels: ``--label-column rating`` (8 classes, 1-4 and 7-10)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from error_line import read_error_line

from reviewsense.cli import main
from reviewsense.data.dataset import Dataset
from reviewsense.data.imdb import RATING_CLASS_NAMES, by_rating, read_imdb, with_labels
from reviewsense.data.splits import DataSpec, load_splits
from reviewsense.errors import DataError

ALL = ("train", "test", "unsup")
STARS = ("1", "2", "3", "4", "7", "8", "9", "10")


def _bigger_imdb(writer, root, per_rating: int = 6, test_per_rating: int = 2, kind: str = "folder"):
    """An unpacked fake IMDB with every rating several times (made-up texts), and the movie of
    each review in urls_*.txt (4 reviews a movie), so validation is held out by movie."""
    reviews: dict[str, bytes] = {}
    for top, count in (("train", per_rating), ("test", test_per_rating)):
        ids = {"pos": 0, "neg": 0}
        for _ in range(count):
            for rating in (1, 2, 3, 4, 7, 8, 9, 10):
                folder = "pos" if rating >= 7 else "neg"
                review_id = ids[folder]
                ids[folder] += 1
                reviews[f"aclImdb/{top}/{folder}/{review_id}_{rating}.txt"] = f"{top} {folder} {rating} stars".encode()
        for folder, n in ids.items():
            offset = 0 if top == "train" else 5000  # test movies are not training movies
            lines = [f"http://www.imdb.com/title/tt{offset + (i // 4) * 2 + (folder == 'pos'):07d}/usercomments"
                     for i in range(n)]
            reviews[f"aclImdb/{top}/urls_{folder}.txt"] = ("\n".join(lines) + "\n").encode()
    for i in range(3):
        reviews[f"aclImdb/train/unsup/{i}_0.txt"] = b"unrated"
    reviews["aclImdb/train/urls_unsup.txt"] = b"http://www.imdb.com/title/tt0009999/usercomments\n" * 3
    return writer[kind](root, reviews)


# -- by_rating / with_labels ------------------------------------------------------------------


def test_by_rating_labels_each_review_with_the_index_of_its_stars(imdb_archive):
    data = read_imdb(imdb_archive, ALL)
    train = by_rating(data["train"])
    assert RATING_CLASS_NAMES == STARS
    assert train.class_names == STARS
    assert data["train"].ratings.tolist() == [2, 1, 3, 8, 9, 7]
    assert train.labels.tolist() == [1, 0, 2, 5, 6, 4]
    assert [train.class_names[k] for k in train.labels] == [str(r) for r in train.ratings]
    # everything but the labels and their names is the same
    assert train.texts == data["train"].texts and train.ids == data["train"].ids
    np.testing.assert_array_equal(train.ratings, data["train"].ratings)
    assert train.labelled

    test = by_rating(data["test"])
    assert test.labels.tolist() == [0, 3, 7, 6]  # ratings 1, 4, 10, 9

    unsup = by_rating(data["unsup"])
    assert unsup.labels.tolist() == [-1, -1] and not unsup.labelled
    assert data["train"].class_names == ("negative", "positive")  # the input is not changed


def test_with_labels_keeps_label_and_refuses_other_columns(imdb_archive):
    train = read_imdb(imdb_archive)["train"]
    assert with_labels(train, "label") is train
    assert with_labels(train, "rating").class_names == STARS
    with pytest.raises(DataError) as info:
        with_labels(train, "stars")
    message = str(info.value)
    assert "\n" not in message
    assert "'stars'" in message and "'label'" in message and "'rating'" in message


def test_by_rating_refuses_a_rating_imdb_does_not_have(imdb_writer, tmp_path):
    reviews = {**imdb_writer["reviews"], "aclImdb/train/pos/20_5.txt": b"five stars is not an IMDB class"}
    train = read_imdb(imdb_writer["archive"](tmp_path / "odd.tar.gz", reviews))["train"]
    with pytest.raises(DataError, match=r"train/pos/20 has star rating 5, not one of IMDB's 1, 2, 3, 4, 7, 8, 9, 10"):
        by_rating(train)


def test_by_rating_needs_ratings():
    with pytest.raises(DataError, match="no star ratings"):
        by_rating(Dataset(["a", "b"], np.array([0, 1]), name="mine"))


# -- load_splits --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["archive", "folder"])
def test_load_splits_with_label_column_rating(kind, imdb_writer, tmp_path):
    path = _bigger_imdb(imdb_writer, tmp_path / ("imdb.tar.gz" if kind == "archive" else "imdb"), kind=kind)
    splits = load_splits(DataSpec(path=str(path), label_column="rating", random_split=True, validation_size=8),
                         seed=0, want_unsup=True)
    for part in (splits.train, splits.validation, splits.test):
        assert part.class_names == STARS
        assert [STARS[k] for k in part.labels] == [str(r) for r in part.ratings]
    assert sorted(splits.test.labels.tolist()) == sorted(list(range(8)) * 2)  # two test reviews of each rating
    assert splits.unlabelled is not None and (splits.unlabelled.labels == -1).all()


def test_a_rating_held_out_whole_is_refused(imdb_archive):
    """The small archive has one review of some ratings: held out, no model could learn them."""
    with pytest.raises(DataError, match="leaves no training row of class"):
        load_splits(DataSpec(path=str(imdb_archive), label_column="rating", random_split=True, validation_size=2),
                    seed=0)


def test_rating_split_is_the_label_split(imdb_writer, tmp_path):
    """The same rows train, validate and test whichever labels they carry (held out by movie)."""
    root = _bigger_imdb(imdb_writer, tmp_path / "imdb")
    by_label = load_splits(DataSpec(path=str(root), validation_size=0.25), seed=3)
    by_stars = load_splits(DataSpec(path=str(root), label_column="rating", validation_size=0.25), seed=3)
    for name in ("train", "validation", "test"):
        label_part, star_part = getattr(by_label, name), getattr(by_stars, name)
        assert star_part.ids == label_part.ids
        assert star_part.class_names == STARS
        assert [STARS[k] for k in star_part.labels] == [str(r) for r in star_part.ratings]
        # rating ≥ 7 ⇔ positive: the 8 classes refine the 2
        np.testing.assert_array_equal(star_part.labels >= 4, label_part.labels == 1)
    assert by_stars.train.groups is not None and by_stars.validation.groups is not None
    assert not set(by_stars.train.groups) & set(by_stars.validation.groups)
    assert len(set(by_stars.train.labels.tolist())) == 8


def test_load_splits_refuses_another_label_column_before_reading(imdb_archive, monkeypatch):
    from reviewsense.data import imdb

    def never(*args, **kwargs):
        raise AssertionError("the archive was read")

    monkeypatch.setattr(imdb, "read_imdb", never)
    with pytest.raises(DataError, match=r"choose 'label' \(negative/positive\) or 'rating'"):
        load_splits(DataSpec(path=str(imdb_archive), label_column="sentiment"))


def test_own_data_with_a_column_named_rating_is_read_as_any_label_column(toy_csv, tmp_path):
    own = tmp_path / "own.csv"
    own.write_text(toy_csv.read_text().replace("text,label", "text,rating", 1))
    splits = load_splits(DataSpec(path=str(own), label_column="rating"))
    assert splits.train.class_names == load_splits(DataSpec(path=str(toy_csv))).train.class_names
    assert splits.train.ratings is None


# -- the command line ---------------------------------------------------------------------------


def test_data_describe_with_label_column_rating(imdb_archive, capsys):
    assert main(["data", "describe", "--data", str(imdb_archive), "--label-column", "rating", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert list(info["classes"]) == list(STARS)
    assert {k: v["count"] for k, v in info["classes"].items()} == {
        "1": 1, "2": 1, "3": 1, "4": 0, "7": 1, "8": 1, "9": 1, "10": 0}
    assert main(["data", "head", "--data", str(imdb_archive), "--label-column", "rating", "--split", "test",
                 "-n", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["test/neg/8  [1] Terrible script."]


@pytest.mark.parametrize("command", [["data", "describe"], ["train", "--run-dir", "RUN"]])
def test_cli_refuses_other_label_columns_for_imdb(command, imdb_archive, tmp_path, capsys):
    argv = [str(tmp_path / "run") if a == "RUN" else a for a in command]
    rc = main([*argv, "--data", str(imdb_archive), "--label-column", "stars"])
    line = read_error_line(capsys, rc)
    assert "'label'" in line and "'rating'" in line


def test_train_passes_label_column_to_the_data_spec(imdb_writer, tmp_path, monkeypatch):
    from reviewsense import pipeline

    seen = {}

    class Stop(Exception):
        pass

    def fake_train(config, **kwargs):
        seen["spec"] = config.data
        seen["splits"] = load_splits(config.data, seed=config.seed)
        raise Stop

    monkeypatch.setattr(pipeline, "train", fake_train)
    with pytest.raises(Stop):
        main(["train", "--data", str(_bigger_imdb(imdb_writer, tmp_path / "imdb")), "--label-column", "rating",
              "--run-dir", str(tmp_path / "run"), "--validation-size", "8", "--random-split"])
    assert seen["spec"].label_column == "rating"
    assert seen["splits"].train.class_names == STARS


@pytest.mark.parametrize(("command", "expected"), [
    (["train"], ["--label-column rating", "IMDB: label (negative/positive) or rating"]),
    (["data"], ["data describe --label-column rating"]),
    (["data", "describe"], ["IMDB: label (negative/positive) or rating"]),
    (["data", "head"], ["IMDB: label (negative/positive) or rating"]),
])
def test_help_mentions_the_rating_labels(command, expected, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in expected:
        assert words in text
