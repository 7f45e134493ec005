"""Batch scoring of files in chunks: every format, input order, workers, bad files."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from reviewsense.data.dataset import Dataset
from reviewsense.errors import DataError
from reviewsense.export import save_model
from reviewsense.models import nblinear
from reviewsense.prediction.stream import read_chunks, score_file, score_to_path

WORDS = ["great", "awful", "film", "the", "plot", "loved", "dull", "was"]


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(0, 12))) for _ in range(n)]


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    texts = _texts(300, 1)
    labels = np.array([t.count("great") + t.count("loved") > t.count("awful") + t.count("dull") for t in texts],
                      dtype=int)
    labels[rng.random(300) < 0.1] ^= 1
    return nblinear.fit(Dataset(texts[:200], labels[:200]), Dataset(texts[200:], labels[200:]),
                        nblinear.NBLinearParams(hash_bits=10))[0]


def _write(path, texts, fmt):
    frame = pd.DataFrame({"id": range(len(texts)), "review": texts})
    if fmt == "parquet":
        frame.to_parquet(path, row_group_size=7)
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["parquet", "csv", "tsv", "jsonl", "txt"])
def test_every_format_streams_in_input_order(model, tmp_path, fmt):
    texts = _texts(103) + ['quoted "great", with a\nnewline', "é ünïcode loved"] if fmt != "txt" else _texts(103)
    path = _write(tmp_path / f"in.{fmt}", texts, fmt)
    chunks, total = read_chunks(path, "review" if fmt != "txt" else "text", chunk_rows=10)
    assert total == (len(texts) if fmt == "parquet" else None)
    out = io.StringIO()
    assert score_file(model, chunks, out) == len(texts)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    expected = model.positive_proba(texts)
    np.testing.assert_allclose([r["probability"] for r in rows], expected, atol=1e-6)
    assert [r["label"] for r in rows] == [int(p >= 0.5) for p in expected]


def test_chunks_are_bounded(tmp_path):
    path = _write(tmp_path / "in.parquet", _texts(95), "parquet")
    sizes = [len(c) for c in read_chunks(path, "review", chunk_rows=20)[0]]
    assert sizes == [20, 20, 20, 20, 15]


def test_csv_output_and_threshold(model, tmp_path):
    texts = _texts(30)
    out = io.StringIO()
    score_file(model, read_chunks(_write(tmp_path / "in.csv", texts, "csv"), "review", 8)[0], out, fmt="csv",
               threshold=0.99)
    frame = pd.read_csv(io.StringIO(out.getvalue()))
    assert list(frame.columns) == ["probability", "label", "label_name"]
    assert (frame["label"] == (frame["probability"] >= 0.99)).all()
    assert set(frame["label_name"]) <= {"negative", "positive"}


def test_workers_keep_the_order(model, tmp_path):
    model_dir = tmp_path / "model"
    save_model(model, model_dir)
    texts = _texts(500, 3)
    path = _write(tmp_path / "in.jsonl", texts, "jsonl")
    single, multi = io.StringIO(), io.StringIO()
    score_file(model, read_chunks(path, "review", 37)[0], single)
    score_file(model, read_chunks(path, "review", 37)[0], multi, workers=2, model_dir=str(model_dir))
    assert multi.getvalue() == single.getvalue()


def test_output_file_appears_only_when_complete(model, tmp_path):
    def failing():
        yield ["great film"]
        raise DataError("broken on chunk 2")

    dest = tmp_path / "out.jsonl"
    dest.write_text("previous\n")
    with pytest.raises(DataError):
        score_to_path(model, failing(), str(dest))
    assert dest.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
    assert score_to_path(model, iter([["great"], ["dull"]]), str(dest)) == 2
    assert len(dest.read_text().splitlines()) == 2


def test_missing_values_score_as_empty_text(model, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": null}\n{"text": "great"}\n\n{"text": ""}\n')
    chunks, _ = read_chunks(path)
    assert [t for c in chunks for t in c] == ["", "great", ""]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("in.jsonl", '{"text": "ok"}\n{"text": \n', r"in.jsonl:2: invalid JSON"),
    ("in.jsonl", '{"text": "ok"}\n{"review": "x"}\n', r"in.jsonl:2: no 'text' field"),
    ("in.jsonl", '{"text": 3}\n', r"line 1: 'text' is int, not text"),
    ("in.csv", "review\nfine\n", r"no 'text' column"),
    ("in.parquet", "not parquet at all", r"cannot read as parquet"),
    ("in.xlsx", "x", r"unknown file format"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        chunks, _ = read_chunks(path)
        list(chunks)


def test_missing_parquet_column_lists_the_columns(tmp_path):
    path = _write(tmp_path / "in.parquet", ["a"], "parquet")
    with pytest.raises(DataError, match=r"no 'text' column \(columns: id, review"):
        list(read_chunks(path)[0])


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_chunks(tmp_path / "nope.csv")


def test_stdin_lines():
    chunks, total = read_chunks("-", stdin=io.StringIO("a\nb\r\nc"), chunk_rows=2)
    assert total is None and list(chunks) == [["a", "b"], ["c"]]


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.bz2", ".jsonl.xz", ".txt.gz", ".csv.gz"])
def test_compressed_files_stream(tmp_path, suffix):
    import bz2
    import gzip
    import lzma

    texts = _texts(25) + ["é ünïcode loved"]
    plain = _write(tmp_path / ("plain." + suffix.split(".")[1]), texts, suffix.split(".")[1])
    opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[suffix.rsplit(".", 1)[1]]
    path = tmp_path / f"in{suffix}"
    with opener(path, "wb") as fh:
        fh.write(plain.read_bytes())
    chunks, _ = read_chunks(path, "text" if suffix.startswith(".txt") else "review", chunk_rows=10)
    assert [t for c in chunks for t in c] == texts


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".txt"])
def test_utf16_with_a_byte_order_mark_streams(tmp_path, suffix):
    texts = ["déjà vu", "awful ☹", "fine"]
    path = tmp_path / f"in{suffix}"
    if suffix == ".txt":
        content = "".join(t + "\n" for t in texts)
    elif suffix == ".csv":
        content = "text\n" + "".join(t + "\n" for t in texts)
    else:
        content = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    path.write_bytes(content.encode("utf-16"))
    assert [t for c in read_chunks(path)[0] for t in c] == texts


def test_separator_and_encoding_stream(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes("id;text\n1;caf\xe9, nice\n2;bad\n".encode("cp1252"))
    chunks, _ = read_chunks(path, sep=";", encoding="cp1252")
    assert [t for c in chunks for t in c] == ["caf\xe9, nice", "bad"]
    chunks, _ = read_chunks(path, encoding="cp1252")  # ';' found from the header
    assert [t for c in chunks for t in c] == ["caf\xe9, nice", "bad"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id;review\n1;x\n")
    with pytest.raises(DataError, match=r"no 'text' column.*--sep ';'"):
        list(read_chunks(bad)[0])


def test_duplicate_text_column_is_refused_when_streaming(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("text,id,text\na,1,b\n")
    with pytest.raises(DataError, match=r"duplicate column name\(s\) 'text'"):
        list(read_chunks(path)[0])
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"text": "a", "text": "b"}\n')
    with pytest.raises(DataError, match=r"in\.jsonl:1: key 'text' appears more than once"):
        list(read_chunks(jsonl)[0])


def test_invalid_json_names_the_column_when_streaming(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "tab\there"}\n')
    with pytest.raises(DataError, match=r"in\.jsonl:2: invalid JSON \(Invalid control character at column 14\)$"):
        list(read_chunks(path)[0])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".txt", ".csv.gz"])
def test_a_file_that_is_not_utf8_streams_with_one_warning(tmp_path, capsys, suffix):
    import gzip

    texts = ["caf\xe9 great", "dull", "fine"] * 3 + ["na\xefve"]  # 4 texts with a cp1252 byte
    if suffix == ".jsonl":
        content = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    elif suffix == ".txt":
        content = "".join(t + "\n" for t in texts)
    else:
        content = "id,text\n" + "".join(f"{i},{t}\n" for i, t in enumerate(texts))
    raw = content.encode("cp1252")
    path = tmp_path / f"in{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    chunks, _ = read_chunks(path, chunk_rows=3, keep_columns=["text"])
    read = [t for c in chunks for t in c.texts]
    assert read[0] == "caf\ufffd great" and read[-1] == "na\ufffdve"
    assert capsys.readouterr().err.strip().splitlines() == [
        f"reviewsense: warning: {path}: 4 text(s) hold bytes that are not UTF-8 (replaced by U+FFFD); "
        "if the file is not UTF-8, give --encoding, e.g. cp1252"]
    chunks, _ = read_chunks(path, chunk_rows=3, encoding="cp1252")  # read as the user said: no warning
    assert [t for c in chunks for t in c] == texts
    assert capsys.readouterr().err == ""


def test_a_utf8_file_streams_without_a_warning(tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text("caf\ufffd great\nfine\n", encoding="utf-8")
    assert [t for c in read_chunks(path)[0] for t in c] == ["caf\ufffd great", "fine"]
    assert capsys.readouterr().err == ""
