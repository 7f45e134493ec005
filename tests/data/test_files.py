"""The user's own data files: formats, label mapping, and the error messages."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from reviewsense.data.files import load_folder, load_table, read_texts
from reviewsense.errors import DataError

TEXTS = ["a great film", "an awful film", "loved it", "hated it"]
LABELS = [1, 0, 1, 0]


def _frame(texts=TEXTS, labels=LABELS, **extra):
    return pd.DataFrame({"text": texts, "label": labels, **extra})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet", ".csv.gz"])
def test_table_formats_load(tmp_path, suffix):
    frame = _frame()
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    data = load_table(path)
    assert data.texts == TEXTS
    assert data.labels.tolist() == LABELS
    assert data.name == path.name
    assert data.skipped == 0


def test_folder_per_class_loads(tmp_path):
    for label, names in (("neg", ["b.txt", "a.txt"]), ("pos", ["c.txt"])):
        (tmp_path / label).mkdir()
        for name in names:
            (tmp_path / label / name).write_text(f"{label} review {name}", encoding="utf-8")
    (tmp_path / "pos" / "notes.md").write_text("not a review")
    (tmp_path / ".hidden").mkdir()
    data = load_table(tmp_path)
    assert data.texts == ["neg review a.txt", "neg review b.txt", "pos review c.txt"]
    assert data.labels.tolist() == [0, 0, 1]
    assert data.class_names == ("negative", "positive")


def test_folder_with_declared_classes(tmp_path):
    for label in ("bad", "good"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "1.txt").write_text(f"{label} one")
    data = load_folder(tmp_path, classes=["bad", "good"])
    assert dict(zip(data.texts, data.labels.tolist(), strict=True)) == {"bad one": 0, "good one": 1}
    assert data.class_names == ("bad", "good")


def test_folder_without_two_classes(tmp_path):
    (tmp_path / "pos").mkdir()
    (tmp_path / "pos" / "1.txt").write_text("nice")
    with pytest.raises(DataError, match="two class sub-folders"):
        load_table(tmp_path)


@pytest.mark.parametrize(
    ("raw", "expected_names"),
    [
        (["0", "1", "1", "0"], ("0", "1")),
        (["false", "True", "TRUE", "no"], ("false", "true")),
        (["neg", "pos", "Positive", "negative"], ("negative", "positive")),
    ],
)
def test_known_label_pairs(tmp_path, raw, expected_names):
    path = tmp_path / "d.csv"
    _frame(labels=raw).to_csv(path, index=False)
    data = load_table(path)
    assert data.labels.tolist() == [0, 1, 1, 0]
    assert data.class_names == expected_names


def test_jsonl_boolean_labels(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"text": t, "label": bool(y)}) for t, y in zip(TEXTS, LABELS, strict=True))
                    + "\n\n")
    assert load_table(path).labels.tolist() == LABELS


def test_explicit_classes_and_custom_columns(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"review": TEXTS, "sentiment": ["good", "bad", "good", "bad"]}).to_csv(path, index=False)
    data = load_table(path, text_column="review", label_column="sentiment", classes=["bad", "good"])
    assert data.labels.tolist() == LABELS
    assert data.class_names == ("bad", "good")


def test_unknown_labels_without_classes_ask_for_classes(tmp_path):
    path = tmp_path / "d.csv"
    _frame(labels=["good", "bad", "good", "bad"]).to_csv(path, index=False)
    with pytest.raises(DataError, match="--classes"):
        load_table(path)


def test_label_outside_declared_classes_names_the_row(tmp_path):
    path = tmp_path / "d.csv"
    _frame(labels=["good", "bad", "meh", "bad"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"row 3: label 'meh' is not one of the classes"):
        load_table(path, classes=["bad", "good"])


def test_bad_classes_declaration(tmp_path):
    path = tmp_path / "d.csv"
    _frame().to_csv(path, index=False)
    with pytest.raises(DataError, match="two different names"):
        load_table(path, classes=["1", "1"])


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_table(tmp_path / "nope.csv")


def test_unknown_extension(tmp_path):
    path = tmp_path / "reviews.xlsx"
    path.write_bytes(b"whatever")
    with pytest.raises(DataError, match=r"unknown file format '\.xlsx'"):
        load_table(path)


@pytest.mark.parametrize(("column", "kwargs"), [("text", {}), ("label", {}), ("review", {"text_column": "review"})])
def test_missing_column(tmp_path, column, kwargs):
    path = tmp_path / "d.csv"
    frame = _frame()
    if column != "review":
        frame = frame.drop(columns=[column])
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=f"no '{column}' column") as info:
        load_table(path, **kwargs)
    assert "--text-column" in str(info.value)


def test_single_class(tmp_path):
    path = tmp_path / "d.csv"
    _frame(labels=[1, 1, 1, 1]).to_csv(path, index=False)
    with pytest.raises(DataError, match="only one class"):
        load_table(path)


def test_zero_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n")
    with pytest.raises(DataError, match="no rows"):
        load_table(path)


def test_only_empty_texts(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "  ", "label": 1}\n{"text": "", "label": 0}\n')
    with pytest.raises(DataError, match="no non-empty texts"):
        load_table(path)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_missing_text_names_the_row(tmp_path, fmt):
    path = tmp_path / f"d.{fmt}"
    frame = _frame(texts=["good", "bad", None, "fine"])
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    unit = "line" if fmt == "jsonl" else "row"
    with pytest.raises(DataError, match=f"{unit} 3: 'text' is missing"):
        load_table(path)


def test_empty_csv_cell_is_an_empty_text_skipped_and_counted(tmp_path):
    path = tmp_path / "d.csv"
    _frame(texts=["good", "bad", None, "fine"]).to_csv(path, index=False)
    data = load_table(path)
    assert data.skipped == 1
    assert data.texts == ["good", "bad", "fine"]


def test_empty_csv_label_cell_names_the_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,1\nbad,\n")
    with pytest.raises(DataError, match="row 2: 'label' is missing"):
        load_table(path)


def test_missing_label_names_the_row(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": null}\n')
    with pytest.raises(DataError, match="line 2: 'label' is missing"):
        load_table(path)


def test_invalid_json_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: invalid JSON"):
        load_table(path)


def test_empty_and_whitespace_texts_are_skipped_and_counted(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [("good", 1), ("", 0), ("bad", 0), ("   \n\t", 1), ("fine", 1)]
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    data = load_table(path)
    assert data.texts == ["good", "bad", "fine"]
    assert data.labels.tolist() == [1, 0, 1]
    assert data.skipped == 2


def test_whitespace_text_in_csv_is_skipped(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\ngood,1\n"   ",0\nbad,0\n')
    data = load_table(path)
    assert data.texts == ["good", "bad"]
    assert data.skipped == 1


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "folder"])
def test_invalid_utf8_is_replaced(tmp_path, fmt):
    bad = "caf\xe9 great".encode("latin-1")
    if fmt == "folder":
        for label, data in (("pos", bad), ("neg", b"dull")):
            (tmp_path / label).mkdir()
            (tmp_path / label / "1.txt").write_bytes(data)
        path = tmp_path
    elif fmt == "csv":
        path = tmp_path / "d.csv"
        path.write_bytes(b"text,label\n" + bad + b",1\ndull,0\n")
    else:
        path = tmp_path / "d.jsonl"
        path.write_bytes(b'{"text": "' + bad + b'", "label": 1}\n{"text": "dull", "label": 0}\n')
    data = load_table(path)
    assert "caf\ufffd great" in data.texts


def test_csv_with_newlines_quotes_and_commas_round_trips(tmp_path):
    texts = ['He said "wow",\nthen left.', "plain", 'multi\n\nline, "quoted"\ttab', "  padded  "]
    path = tmp_path / "d.csv"
    _frame(texts=texts).to_csv(path, index=False)
    assert load_table(path).texts == texts


def test_read_texts_for_prediction(tmp_path):
    txt = tmp_path / "in.txt"
    txt.write_text("first line\r\nsecond line\n\nfourth\n")
    assert read_texts(txt) == ["first line", "second line", "", "fourth"]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"review": "a"}\n{"review": null}\n')
    assert read_texts(jsonl, text_column="review") == ["a", ""]
    with pytest.raises(DataError, match="line 1 has no 'text' field"):
        read_texts(jsonl)


def test_csv_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\ngood,1\nbad,0\n")
    data = load_table(path)
    assert data.texts == ["good", "bad"]


def test_group_column_is_read_and_required_on_every_row(tmp_path):
    path = tmp_path / "r.csv"
    _frame(movie=[f"m{i % 2}" for i in range(len(TEXTS))]).to_csv(path, index=False)
    data = load_table(path, group_column="movie")
    assert data.groups == [f"m{i % 2}" for i in range(len(TEXTS))]
    assert load_table(path).groups is None
    with pytest.raises(DataError, match="no 'studio' column"):
        load_table(path, group_column="studio")
    _frame(movie=["m0", None] + ["m1"] * (len(TEXTS) - 2)).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"r\.csv: row 2: 'movie' is missing"):
        load_table(path, group_column="movie")
