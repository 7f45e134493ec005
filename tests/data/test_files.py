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
    with pytest.raises(DataError, match="two or more different names"):
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


# -- class folders: nested files, extra folders, broken entries -------------------------------


def _class_tree(root, per_leaf=2):
    """neg/ and pos/, each with files at the top and in two levels of sub-folders."""
    for label in ("neg", "pos"):
        for sub in ("", "2019", "2020/late"):
            folder = root / label / sub
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_leaf):
                (folder / f"{i}.txt").write_text(f"{label} {sub or 'top'} {i}", encoding="utf-8")
    return root


def test_folder_reads_nested_sub_folders_and_logs_the_counts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REVIEWSENSE_QUIET", "0")
    root = _class_tree(tmp_path / "data")
    (root / "pos" / "2019" / ".hidden").mkdir()
    (root / "pos" / "2019" / ".hidden" / "x.txt").write_text("never read")
    data = load_table(root)
    assert len(data) == 12
    assert data.labels.tolist() == [0] * 6 + [1] * 6
    assert "pos 2020/late 1" in data.texts and "never read" not in data.texts
    assert "read 12 files: neg 6, pos 6" in capsys.readouterr().err


def test_a_folder_outside_the_declared_classes_is_refused(tmp_path):
    root = _class_tree(tmp_path / "data", per_leaf=1)
    (root / "neutral").mkdir()
    (root / "neutral" / "1.txt").write_text("so so")
    with pytest.raises(DataError, match=r"sub-folder\(s\) neutral/ .*not one of the declared classes \['neg', 'pos'\]"):
        load_table(root, classes=["neg", "pos"])


def test_three_class_folders_are_three_classes_and_unsup_is_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REVIEWSENSE_QUIET", "0")
    root = _class_tree(tmp_path / "data", per_leaf=1)
    (root / "neutral").mkdir()
    (root / "neutral" / "1.txt").write_text("so so")
    (root / "unsup").mkdir()
    (root / "unsup" / "1.txt").write_text("no label")
    data = load_table(root)
    assert data.class_names == ("neg", "neutral", "pos")
    assert data.labels.tolist().count(1) == 1 and "no label" not in data.texts
    assert "skipping unsup/" in capsys.readouterr().err


def test_three_labels_are_three_classes_in_numeric_order(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"text": ["a", "b", "c", "d", "e"], "label": [10, 2, 1, 2, 10]}).to_csv(path, index=False)
    data = load_table(path)
    assert data.class_names == ("1", "2", "10")
    assert data.labels.tolist() == [2, 1, 0, 1, 2]


@pytest.mark.parametrize("kind", ["dangling", "loop", "fifo"])
def test_folder_with_a_broken_entry_names_it(tmp_path, kind):
    import os

    root = _class_tree(tmp_path / "data", per_leaf=1)
    bad = root / "pos" / "2019" / "bad.txt"
    if kind == "dangling":
        bad.symlink_to(tmp_path / "gone.txt")
    elif kind == "loop":
        bad.symlink_to(root / "pos" / "2019" / "other.txt")
        (root / "pos" / "2019" / "other.txt").symlink_to(bad)
    else:
        os.mkfifo(bad)
    with pytest.raises(DataError, match=r"bad\.txt: ") as info:
        load_table(root)
    assert "\n" not in str(info.value)


def test_folder_with_an_unreadable_entry_names_it(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    root = _class_tree(tmp_path / "data", per_leaf=1)
    (root / "neg" / "0.txt").chmod(0)
    (root / "pos" / "2019").chmod(0)
    try:
        with pytest.raises(DataError, match=r"cannot read"):
            load_table(root)
    finally:
        (root / "neg" / "0.txt").chmod(0o644)
        (root / "pos" / "2019").chmod(0o755)


# -- columns: duplicates, one column used twice --------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet"])
def test_duplicate_column_names_are_refused(tmp_path, fmt):
    path = tmp_path / f"d.{fmt}"
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table([["a", "b"], ["c", "d"], [1, 0]], names=["text", "text", "label"]), path)
    else:
        sep = "\t" if fmt == "tsv" else ","
        path.write_text(sep.join(["text", "label", "text"]) + "\n" + sep.join(["good", "1", "x"]) + "\n"
                        + sep.join(["bad", "0", "y"]) + "\n")
    with pytest.raises(DataError, match=r"d\.\w+: duplicate column name\(s\) 'text'"):
        load_table(path)


def test_duplicate_key_in_a_jsonl_record_is_refused(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0, "text": "c"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: key 'text' appears more than once"):
        load_table(path)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"text_column": "label", "label_column": "label"}, r"text column and label column are both 'label'"),
    ({"group_column": "text"}, r"group column 'text' is also the text column"),
    ({"group_column": "label"}, r"group column 'label' is also the label column"),
])
def test_one_column_in_two_roles_is_refused(tmp_path, kwargs, message):
    path = tmp_path / "d.csv"
    _frame().to_csv(path, index=False)
    with pytest.raises(DataError, match=message):
        load_table(path, **kwargs)


# -- texts that are not text ----------------------------------------------------------------------


@pytest.mark.parametrize(("value", "kind"), [(b"I was moved", "bytes"), (["a", "b"], "list"), (7, "int"),
                                             ({"a": 1}, "dict")])
@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_text_values_that_are_not_text_are_refused(tmp_path, fmt, value, kind):
    path = tmp_path / f"d.{fmt}"
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        column = pa.array([value, value, value]) if kind != "int" else pa.array([value] * 3)
        pq.write_table(pa.table({"text": column, "label": [1, 0, 1]}), path)
    elif kind == "bytes":
        pytest.skip("JSON has no bytes")
    else:
        path.write_text("".join(json.dumps({"text": v, "label": y}) + "\n" for v, y in [("ok", 0), (value, 1)]))
    unit, row = ("row", 1) if fmt == "parquet" else ("line", 2)
    with pytest.raises(DataError, match=fr"{unit} {row}: 'text' is {kind}, not text"):
        load_table(path)
    with pytest.raises(DataError, match=fr"{unit} {row}: 'text' is {kind}, not text"):
        read_texts(path)


# -- compression, encodings, separators ---------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.bz2", ".jsonl.xz", ".tsv.bz2", ".csv.xz", ".parquet.gz"])
def test_compressed_files_load(tmp_path, suffix):
    import bz2
    import gzip
    import lzma

    plain = tmp_path / ("plain" + suffix.rsplit(".", 1)[0])
    frame = _frame()
    if ".jsonl" in suffix:
        frame.to_json(plain, orient="records", lines=True)
    elif ".parquet" in suffix:
        frame.to_parquet(plain)
    else:
        frame.to_csv(plain, sep="\t" if ".tsv" in suffix else ",", index=False)
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}["." + suffix.rsplit(".", 1)[1]]
    path = tmp_path / f"d{suffix}"
    with opener(path, "wb") as fh:
        fh.write(plain.read_bytes())
    data = load_table(path)
    assert data.texts == TEXTS and data.labels.tolist() == LABELS


def test_compressed_texts_to_score(tmp_path):
    import gzip

    path = tmp_path / "in.txt.gz"
    path.write_bytes(gzip.compress("first\nsecond é\n".encode()))
    assert read_texts(path) == ["first", "second é"]
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "a"}\n{"text": "b"}\n'))
    assert read_texts(path) == ["a", "b"]


def test_corrupted_compressed_file_is_one_line(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"d\.jsonl\.gz: cannot read"):
        load_table(path)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-16-be"])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".csv.gz"])
def test_byte_order_marks_select_the_encoding(tmp_path, encoding, suffix):
    import gzip

    texts = ["déjà vu, great", "awful ☹", "loved it", "hated it"]
    if suffix == ".jsonl":
        content = "".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n"
                          for t, y in zip(texts, LABELS, strict=True))
    else:
        content = _frame(texts=texts).to_csv(index=False)
    raw = content.encode(encoding)
    if encoding == "utf-16-be":
        raw = b"\xfe\xff" + raw
    path = tmp_path / f"d{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    assert load_table(path).texts == texts


def test_explicit_encoding_and_separator(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text;label\ncaf\xe9, nice;1\nbad;0\n".encode("cp1252"))
    data = load_table(path, sep=";", encoding="cp1252")
    assert data.texts == ["caf\xe9, nice", "bad"]
    with pytest.raises(DataError, match="unknown encoding 'klingon'"):
        load_table(path, sep=";", encoding="klingon")
    with pytest.raises(DataError, match="--sep must be one character"):
        load_table(path, sep=";;")
    tsv = tmp_path / "d.txt.csv"
    tsv.write_text("text\tlabel\ngood\t1\nbad\t0\n")
    assert load_table(tsv, sep="\\t").texts == ["good", "bad"]


@pytest.mark.parametrize("encoding", ["rot13", "base64", "zlib", "hex", "bz2", "uu", "punycode", "idna", "undefined"])
def test_codecs_that_are_not_text_encodings_are_refused(tmp_path, encoding):
    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,1\nbad,0\n")
    with pytest.raises(DataError, match=f"--encoding '{encoding}': not a text encoding"):
        load_table(path, encoding=encoding)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-7", "cp1252", "latin-1", "UTF8", "ascii"])
def test_text_encodings_are_accepted(tmp_path, encoding):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\ngood,1\nbad,0\n".encode(encoding))
    assert load_table(path, encoding=encoding).texts == ["good", "bad"]


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_separator_is_detected_from_the_header(tmp_path, monkeypatch, capsys, sep):
    monkeypatch.setenv("REVIEWSENSE_QUIET", "0")
    path = tmp_path / "d.csv"
    path.write_text(f"text{sep}label\ngreat, really{sep}1\nbad{sep}0\nok, fine{sep}1\n")
    data = load_table(path)
    assert data.texts == ["great, really", "bad", "ok, fine"]
    assert "separator" in capsys.readouterr().err
    assert read_texts(path) == ["great, really", "bad", "ok, fine"]


def test_separator_that_cannot_be_detected_is_a_hint(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("review;sentiment\ngreat;1\nbad;0\n")
    with pytest.raises(DataError, match=r"no 'text' column .*--sep ';'"):
        load_table(path)


def test_utf16_without_byte_order_mark_is_a_hint(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\ngood,1\nbad,0\n".encode("utf-16-le"))
    with pytest.raises(DataError, match=r"--encoding utf-16-le"):
        load_table(path)
    assert load_table(path, encoding="utf-16-le").texts == ["good", "bad"]


def test_parse_error_is_one_line_with_a_hint(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"unclosed quote,1\n')
    with pytest.raises(DataError, match=r"d\.csv: cannot read as csv .*--sep.*--encoding") as info:
        load_table(path)
    assert "\n" not in str(info.value)


def test_run_configs_without_sep_and_encoding_still_load():
    from dataclasses import asdict

    from reviewsense.pipeline import DataSpec, TrainConfig

    saved = asdict(TrainConfig(data=DataSpec(path="avis.csv", sep=";", encoding="cp1252")))
    assert TrainConfig.from_dict(saved).data.sep == ";"
    del saved["data"]["sep"], saved["data"]["encoding"]  # a config.json written before these fields
    spec = TrainConfig.from_dict(saved).data
    assert spec.sep is None and spec.encoding is None and spec.path == "avis.csv"


# -- class folders: links into the other class, files that are not .txt ---------------------------


@pytest.mark.parametrize("kind", ["folder", "file", "root", "class folder"])
def test_folder_link_into_the_other_class_folder_is_refused(tmp_path, kind):
    root = _class_tree(tmp_path / "data", per_leaf=1)
    if kind == "folder":  # every positive text would also count as negative
        (root / "neg" / "a").mkdir()
        link, target = root / "neg" / "a" / "x", "../../pos"
    elif kind == "file":
        link, target = root / "neg" / "y.txt", "../pos/0.txt"
    elif kind == "root":  # the dataset folder holds the other class folder
        link, target = root / "neg" / "all", ".."
    else:
        import shutil

        shutil.rmtree(root / "neg")
        link, target = root / "neg", "pos"
    link.symlink_to(target)
    with pytest.raises(DataError) as info:
        load_table(root)
    message = str(info.value)
    assert f"{link}: symbolic link to '{target}'" in message and "pos/" in message, message
    assert "\n" not in message


def test_folder_links_within_the_class_or_outside_the_data_are_followed(tmp_path):
    root = _class_tree(tmp_path / "data", per_leaf=1)
    (root / "pos" / "again").symlink_to("2019")  # inside its own class folder: read (once)
    outside = tmp_path / "more"
    outside.mkdir()
    (outside / "m.txt").write_text("an outside positive")
    (root / "pos" / "more").symlink_to(outside)  # outside the dataset folder: read
    data = load_table(root)
    assert data.labels.tolist().count(1) == 4 and "an outside positive" in data.texts


def test_folder_files_that_are_not_txt_are_skipped_and_counted(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REVIEWSENSE_QUIET", "0")
    root = _class_tree(tmp_path / "data", per_leaf=1)
    (root / "neg" / "r1.md").write_text("not read")
    (root / "pos" / "2019" / "r1").write_text("not read either")
    data = load_table(root)
    assert len(data) == 6 and "not read" not in data.texts
    err = capsys.readouterr().err
    assert "data: skipped 2 file(s) that are not .txt (e.g. neg/r1.md)" in err, err


# -- JSON lines: where the line is broken ----------------------------------------------------------


def test_invalid_json_names_the_column(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "a", "label": 1}\n{"text": "tab\there", "label": 0}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: invalid JSON \(Invalid control character at column 14\)$"):
        load_table(path)
    path.write_text('{"text": oops}\n')
    with pytest.raises(DataError, match=r"invalid JSON \(Expecting value at column 10\)$"):
        read_texts(path)


# -- bytes that are not UTF-8: replaced, and said once per file -------------------------------------

NOT_UTF8 = "reviewsense: warning: {}: {} text(s) hold bytes that are not UTF-8 (replaced by U+FFFD); " \
           "if the file is not UTF-8, give --encoding, e.g. cp1252"


def _cp1252(path, fmt):
    rows = [("caf\xe9 great", 1), ("dull", 0), ("na\xefve, awful", 0), ("fine", 1)]
    if fmt == "jsonl":
        content = "".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows)
    elif fmt == "txt":
        content = "".join(t + "\n" for t, _ in rows)
    else:
        content = "text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows)
    path.write_bytes(content.encode("cp1252"))
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "txt"])
def test_a_file_that_is_not_utf8_is_read_with_one_warning(tmp_path, capsys, fmt):
    path = _cp1252(tmp_path / f"d.{fmt}", fmt)
    if fmt == "txt":
        texts = read_texts(path)
    else:
        texts = load_table(path).texts
        assert read_texts(path) == texts
    assert texts[0] == "caf\ufffd great" and texts[2] == "na\ufffdve, awful"
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [NOT_UTF8.format(path, 2)] * (1 if fmt == "txt" else 2)  # load_table, read_texts
    # decoded as the user said: no warning
    assert load_table(path, encoding="cp1252").texts[0] == "caf\xe9 great" if fmt != "txt" else True
    assert read_texts(path, encoding="utf-8")[0] == "caf\ufffd great"
    assert capsys.readouterr().err == ""


def test_a_folder_of_files_that_are_not_utf8_warns_once(tmp_path, capsys):
    root = _class_tree(tmp_path / "data", per_leaf=1)
    (root / "neg" / "0.txt").write_bytes("caf\xe9 dull".encode("cp1252"))
    (root / "pos" / "0.txt").write_bytes("na\xefve, great".encode("cp1252"))
    data = load_table(root)
    assert "caf\ufffd dull" in data.texts
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"reviewsense: warning: {root}: 2 text(s) hold bytes that are not UTF-8 (replaced by "
                     f"U+FFFD), e.g. neg/0.txt; if the files are not UTF-8, give --encoding, e.g. cp1252"]
    assert "caf\xe9 dull" in load_table(root, encoding="cp1252").texts
    assert capsys.readouterr().err == ""


def test_a_utf8_file_holding_the_replacement_character_is_not_warned_about(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("text,label\ncaf\ufffd great,1\ndull,0\n", encoding="utf-8")
    assert load_table(path).texts[0] == "caf\ufffd great"
    assert capsys.readouterr().err == ""


def test_an_error_after_bytes_that_are_not_utf8_is_still_one_line(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\ncaf\xe9 great,1\ndull,\n".encode("cp1252"))
    with pytest.raises(DataError, match="row 2: 'label' is missing"):
        load_table(path)
    assert capsys.readouterr().err == ""


def test_json_nested_too_deeply_is_one_line_naming_the_line(tmp_path):
    """100,000 nested arrays in a JSONL line: Python's parser recurses; it is a DataError, not a RecursionError."""
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "good", "label": 1}\n{"text": ' + deep + ', "label": 0}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: invalid JSON \(nested too deeply\)"):
        load_table(path)


BOMB_HEADERS = {".txt": b"", ".jsonl": b'{"label": 1, "text": "', ".csv": b"label,text\n1,",
                ".tsv": b"label\ttext\n1\t"}


def _bomb(path, head: bytes, size: int):
    """A file that inflates to ``head`` and one line of ``size`` bytes with no line break."""
    import bz2
    import gzip

    opener = bz2.open if path.suffix == ".bz2" else gzip.open
    block = b"great film " * 100_000
    with opener(path, "wb") as fh:
        fh.write(head)
        for _ in range(size // len(block)):
            fh.write(block)
    return path


@pytest.mark.parametrize("kind", [".txt", ".jsonl", ".csv", ".tsv"])
@pytest.mark.parametrize("compression", [".gz", ".bz2"])
@pytest.mark.parametrize("reader", ["train", "score"])
def test_a_compressed_file_that_inflates_to_one_huge_line_stops_early(tmp_path, monkeypatch, kind, compression,
                                                                      reader):
    """A few kB that inflate to 8 MB of one line: refused naming the line after reading about
    the limit (1,000 characters here), never the whole line — memory stays flat."""
    from reviewsense.data import files
    from reviewsense.prediction.stream import read_chunks

    monkeypatch.setenv("REVIEWSENSE_MAX_CHARS", "1000")
    path = _bomb(tmp_path / f"bomb{kind}{compression}", BOMB_HEADERS[kind], 8_000_000)
    assert path.stat().st_size < 50_000
    inflated = [0]
    opened = files._open_raw

    def counted(p):
        raw = opened(p)
        read = raw.read

        def counting(size=-1):
            data = read(size)
            inflated[0] += len(data)
            return data
        raw.read = counting
        return raw

    monkeypatch.setattr(files, "_open_raw", counted)
    with pytest.raises(DataError, match=r"bomb.*: line [12]: .*over the limit"):
        if reader == "train":
            load_table(path)
        else:
            for _ in read_chunks(path)[0]:
                pass
    assert inflated[0] < 3_000_000  # the limit is 64 bytes a character + 1 MiB; the line is 8 MB
