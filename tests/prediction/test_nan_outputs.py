"""Never a bare ``NaN`` in JSON (issue: hardening, item 6, the runtime side): a model that
computes a NaN or infinite probability at run time (loading refuses those it finds with its
probe batch) makes ``predict`` and ``evaluate`` stop with one line naming the text, and no
output file; missing numbers of kept input columns are written as null."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from error_line import read_error_line

import reviewsense.export
from reviewsense.cli import main
from reviewsense.errors import ScoreError
from reviewsense.prediction.stream import Chunk, score_file

BAD = 2  # the index of the text whose probabilities are NaN


@pytest.fixture(scope="module")
def model(sentiment_corpus):
    from reviewsense.models.nblinear import NBLinearParams, fit

    return fit(sentiment_corpus(300, 0), sentiment_corpus(100, 1), NBLinearParams(hash_bits=12))[0]


@pytest.fixture
def broken(model, monkeypatch):
    """``model`` scoring text ``BAD`` (and every text holding "overflow") as NaN, and what
    ``load_model`` gives the CLI."""
    real_proba, real_logits = model.predict_proba, model.predict_logits

    def bad_rows(texts):
        return [i for i, text in enumerate(texts) if "overflow" in text]

    def proba(texts):
        p = np.array(real_proba(texts), dtype=np.float64)
        p[bad_rows(texts)] = np.nan
        return p

    def logits(texts):
        z = np.array(real_logits(texts), dtype=np.float64)
        z[bad_rows(texts)] = np.inf
        return z

    monkeypatch.setattr(model, "predict_proba", proba)
    monkeypatch.setattr(model, "predict_logits", logits)
    monkeypatch.setattr(reviewsense.export, "load_model", lambda *a, **k: model)
    return model


def _texts(n: int = 6) -> list[str]:
    return ["overflow " if i == BAD else f"a great film {i}" for i in range(n)]


@pytest.mark.parametrize("name", ["out.jsonl", "out.json", "out.csv", "out.parquet"])
def test_predict_refuses_a_nan_and_writes_no_file(broken, tmp_path, capsys, name):
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(_texts()) + "\n")
    out = tmp_path / name
    rc = main(["predict", "--model", "model", "--input", str(source), "--output", str(out)])
    line = read_error_line(capsys, rc)
    assert f"NaN or infinite probabilities for text {BAD + 1}" in line
    assert not out.exists() and list(tmp_path.iterdir()) == [source]  # nothing half-written either


@pytest.mark.parametrize("fmt", ["jsonl", "table"])
def test_predict_of_texts_given_as_arguments_refuses_a_nan(broken, tmp_path, capsys, fmt):
    rc = main(["predict", "--model", "model", "--format", fmt, *_texts()])
    assert f"for text {BAD + 1}" in read_error_line(capsys, rc)


def test_the_stream_names_the_text_across_chunks(broken):
    """Text numbers count from the start of the input, not of the chunk."""
    out = io.StringIO()
    chunks = iter([["a great film"] * 4, ["dull", "overflow"]])
    with pytest.raises(ScoreError, match="for text 6 "):
        score_file(broken, chunks, out)
    assert "NaN" not in out.getvalue() and out.getvalue().count("\n") == 4


def test_evaluate_refuses_infinite_logits(broken, tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(_texts(10))))
    rc = main(["evaluate", "--model", "model", "--data", str(data), "--json"])
    line = read_error_line(capsys, rc)
    assert f"NaN or infinite logits for text {BAD + 1}" in line


def test_kept_columns_with_missing_numbers_are_null_in_jsonl(model):
    """A kept column's NaN (pandas' missing value, a Parquet null read as NaN) is null, not NaN."""
    for classes in (model.class_names, ["a", "b", "c"]):
        out = io.StringIO()
        proba = (lambda t: np.full((len(t), 3), 1 / 3)) if len(classes) == 3 else model.predict_proba

        class Model:
            class_names = classes
            predict_proba = staticmethod(proba)

        score_file(Model(), iter([Chunk(["great", "dull"], {"score": [1.5, float("nan")],
                                                             "tags": [[float("inf")], {"x": 1}]})]), out,
                   keep=["score", "tags"])
        rows = [json.loads(line) for line in out.getvalue().splitlines()]  # strict JSON: no NaN, no Infinity
        assert "NaN" not in out.getvalue() and "Infinity" not in out.getvalue()
        assert [r["score"] for r in rows] == [1.5, None] and rows[0]["tags"] == [None]
