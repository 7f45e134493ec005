"""Prediction I/O: where texts come from and how results are written."""

from __future__ import annotations

import csv
import io
import json

import pytest

from reviewsense.errors import DataError
from reviewsense.prediction.io import (
    gather_texts,
    output_format,
    render,
    render_table,
    result_rows,
    write_output,
)

ROWS = [
    {"probability": 0.912345, "label": 1, "label_name": "positive"},
    {"probability": 0.1, "label": 0, "label_name": "negative"},
]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_render_jsonl():
    out = render(ROWS, "jsonl")
    assert out.endswith("\n")
    assert [json.loads(line) for line in out.splitlines()] == ROWS


def test_render_csv():
    out = render(ROWS, "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["probability", "label", "label_name"]
    assert rows == [{"probability": "0.912345", "label": "1", "label_name": "positive"},
                    {"probability": "0.1", "label": "0", "label_name": "negative"}]


def test_render_table_shortens_long_texts():
    table = render_table(["fine", "word " * 40], ROWS, width=20)
    first, second = table.splitlines()
    assert first.startswith("0.9123  positive") and first.endswith("fine")
    assert second.startswith("0.1000  negative")
    assert second.endswith("…") and len(second.split("  ", 2)[-1].strip()) <= 20


@pytest.mark.parametrize(("path", "fmt", "expected"), [
    ("out.csv", None, "csv"), ("out.CSV", None, "csv"), ("out.jsonl", None, "jsonl"), (None, None, "jsonl"),
    ("out.csv", "jsonl", "jsonl"),
])
def test_output_format(path, fmt, expected):
    assert output_format(path, fmt) == expected


def test_result_rows(trained):
    predictor, *_ = trained
    rows = result_rows(predictor, ["great excellent superb", "awful terrible worst", ""])
    assert [r["label"] for r in rows[:2]] == [1, 0]
    assert [r["label_name"] for r in rows[:2]] == ["positive", "negative"]
    assert all(0 <= r["probability"] <= 1 for r in rows)
    strict = result_rows(predictor, ["great excellent superb"], threshold=1.01)
    assert strict[0]["label"] == 0


def test_gather_texts_from_arguments():
    assert gather_texts(["one", "two"], None, "text", stdin=io.StringIO("ignored\n")) == ["one", "two"]


def test_gather_texts_from_a_file(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"review": "first"}\n{"review": "second"}\n')
    assert gather_texts([], str(path), "review") == ["first", "second"]


def test_gather_texts_from_stdin():
    assert gather_texts([], None, "text", stdin=io.StringIO("first\r\nsecond\n\nlast")) == [
        "first", "second", "", "last"]
    assert gather_texts([], "-", "text", stdin=io.StringIO("dash means stdin\n")) == ["dash means stdin"]
    assert gather_texts([], "-", "text", stdin=_Terminal("explicit dash reads a terminal too\n")) == [
        "explicit dash reads a terminal too"]


def test_gather_texts_refuses_arguments_and_input(tmp_path):
    with pytest.raises(DataError, match="not both"):
        gather_texts(["a"], str(tmp_path / "in.txt"), "text", stdin=io.StringIO(""))


def test_gather_texts_with_nothing_to_read_from_a_terminal():
    with pytest.raises(DataError, match="no texts to score"):
        gather_texts([], None, "text", stdin=_Terminal())


def test_gather_texts_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        gather_texts([], str(tmp_path / "missing.txt"), "text")


def test_write_output_is_atomic(tmp_path):
    target = tmp_path / "sub" / "out.jsonl"
    write_output(render(ROWS, "jsonl"), str(target))
    assert [json.loads(line) for line in target.read_text().splitlines()] == ROWS
    assert [p.name for p in target.parent.iterdir()] == ["out.jsonl"]


def test_python_the_cli_and_the_http_api_write_the_same_rows(trained):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from reviewsense.prediction.stream import score_file
    from reviewsense.serving.app import create_app

    predictor = trained[0]
    texts = ["great excellent superb", "awful terrible worst", "", "a film"]
    for threshold in (0.5, 0.3):
        rows = result_rows(predictor, texts, threshold)
        out = io.StringIO()
        score_file(predictor, iter([texts]), out, threshold=threshold)
        assert [json.loads(line) for line in out.getvalue().splitlines()] == rows
        answer = TestClient(create_app(predictor)).post("/v1/predict", json={"texts": texts, "threshold": threshold})
        assert answer.json()["predictions"] == rows
