"""Labelled data for evaluation: labels named like the model's classes, and data of one class."""

from __future__ import annotations

import pytest

from reviewsense.data.files import load_folder, load_table
from reviewsense.errors import DataError


def _csv(path, rows):
    path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    return path


def test_labels_named_like_the_models_classes_map_by_them(tmp_path):
    path = _csv(tmp_path / "d.csv", [("fine film", "good"), ("dull film", "bad"), ("great", "good")])
    data = load_table(path, model_classes=("bad", "good"))
    assert data.labels.tolist() == [1, 0, 1] and data.class_names == ("bad", "good")
    # a model trained with the classes the other way round reads them its way
    assert load_table(path, model_classes=("good", "bad")).labels.tolist() == [0, 1, 0]
    with pytest.raises(DataError, match="--classes NEG,POS"):  # without the model: nothing says which is which
        load_table(path)


def test_generic_labels_keep_their_meaning_for_a_model_of_other_names(tmp_path):
    path = _csv(tmp_path / "d.csv", [("fine film", "1"), ("dull film", "0")])
    data = load_table(path, model_classes=("bad", "good"))
    assert data.labels.tolist() == [1, 0] and data.class_names == ("0", "1")


def test_given_classes_win_over_the_models(tmp_path):
    path = _csv(tmp_path / "d.csv", [("fine film", "great"), ("dull film", "awful")])
    data = load_table(path, classes=["awful", "great"], model_classes=("negative", "positive"))
    assert data.labels.tolist() == [1, 0]


def test_one_class_is_refused_for_training_and_accepted_for_evaluation(tmp_path):
    path = _csv(tmp_path / "d.csv", [("dull film", "bad"), ("awful", "bad")])
    with pytest.raises(DataError, match="only one class \\('bad'\\) is present"):
        load_table(path, classes=["bad", "good"])
    data = load_table(path, model_classes=("bad", "good"), allow_one_class=True)
    assert data.labels.tolist() == [0, 0] and data.class_names == ("bad", "good")


def test_a_folder_of_one_class_for_evaluation(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "1.txt").write_text("a fine film")
    with pytest.raises(DataError, match="expected two class sub-folders"):
        load_folder(tmp_path, classes=["bad", "good"])
    data = load_folder(tmp_path, classes=["bad", "good"], allow_one_class=True)
    assert data.labels.tolist() == [1]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "2.txt").write_text("a dull film")
    data = load_table(tmp_path, model_classes=("bad", "good"))
    assert sorted(zip(data.texts, data.labels.tolist(), strict=True)) == [("a dull film", 0), ("a fine film", 1)]
