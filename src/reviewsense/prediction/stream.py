"""Batch scoring of big files in constant memory: read a chunk, score it, write it, repeat.

``score_file`` reads Parquet (row-group batches), CSV/TSV (pandas chunks), JSONL or text
lines ``chunk_rows`` at a time, optionally scores the chunks on ``workers`` processes (each
loads the model once; at most two chunks per worker are in flight, so memory stays bounded
whatever the file size), and writes the rows in input order to JSONL or CSV, through a
temporary file renamed into place at the end.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from .._fs import atomic_path
from ..data.files import _missing, check_length, detect_format, max_chars
from ..errors import DataError
from ..progress import bar

CHUNK_ROWS = 32_768
FIELDS = ["probability", "label", "label_name"]


# -- reading ---------------------------------------------------------------------------------
def _texts(values, path: Path, column: str, first_row: int, unit: str) -> list[str]:
    out, limit = [], max_chars()
    for i, value in enumerate(values):
        if _missing(value):
            out.append("")
        elif isinstance(value, str):
            out.append(check_length(value, f"{path}: {unit} {first_row + i}", limit))
        else:
            raise DataError(f"{path}: {unit} {first_row + i}: '{column}' is {type(value).__name__}, not text")
    return out


def _chunked(texts: Iterator[str], chunk_rows: int) -> Iterator[list[str]]:
    """Consecutive lists of ``chunk_rows`` texts (the last one shorter)."""
    while chunk := list(itertools.islice(texts, chunk_rows)):
        yield chunk


def _lines(stream: TextIO, chunk_rows: int) -> Iterator[list[str]]:
    limit, name = max_chars(), getattr(stream, "name", "stdin")
    texts = (check_length(line.rstrip("\r\n"), f"{name}: line {lineno}", limit)
             for lineno, line in enumerate(stream, 1))
    return _chunked(texts, chunk_rows)


def _jsonl_texts(path: Path, column: str) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or column not in record:
                raise DataError(f"{path}:{lineno}: no '{column}' field (choose it with --text-column)")
            yield from _texts([record[column]], path, column, lineno, "line")


def _open_parquet(path: Path, column: str):
    import pyarrow.parquet as pq

    try:  # no pre-buffering: with it, pyarrow's memory grows with the file instead of staying flat
        file = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    except Exception as exc:  # pyarrow raises several types for files that are not Parquet
        raise DataError(f"{path}: cannot read as parquet ({str(exc).splitlines()[0] if str(exc) else exc!r})") from exc
    if column not in file.schema_arrow.names:
        raise DataError(f"{path}: no '{column}' column (columns: {', '.join(file.schema_arrow.names)}; "
                        "choose one with --text-column)")
    return file


def _parquet(file, path: Path, column: str, chunk_rows: int) -> Iterator[list[str]]:
    row = 1
    for batch in file.iter_batches(batch_size=chunk_rows, columns=[column]):
        values = batch.column(0).to_pylist()
        yield _texts(values, path, column, row, "row")
        row += len(values)


def _delimited(path: Path, column: str, chunk_rows: int, sep: str) -> Iterator[list[str]]:
    import pandas as pd

    try:
        reader = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8",
                             encoding_errors="replace", usecols=[column], chunksize=chunk_rows)
        row = 1
        for frame in reader:
            texts = frame[column].tolist()
            yield _texts(texts, path, column, row, "row")
            row += len(texts)
    except DataError:
        raise
    except ValueError as exc:
        if "usecols" in str(exc).lower() or "not in list" in str(exc):
            raise DataError(f"{path}: no '{column}' column (choose it with --text-column)") from exc
        raise DataError(f"{path}: cannot read as csv ({str(exc).splitlines()[0]})") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: cannot read as csv ({str(exc).splitlines()[0]})") from exc


def read_chunks(path: str | os.PathLike[str] | None, text_column: str = "text", chunk_rows: int = CHUNK_ROWS,
                stdin: TextIO | None = None) -> tuple[Iterator[list[str]], int | None]:
    """Chunks of texts from a file (``None`` or ``-``: lines of stdin), and the row count when
    the format tells it up front (Parquet) for the progress bar."""
    if path is None or str(path) == "-":
        return _lines(stdin or sys.stdin, chunk_rows), None
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    fmt = detect_format(path)
    if fmt == "parquet":
        file = _open_parquet(path, text_column)
        return _parquet(file, path, text_column, chunk_rows), file.metadata.num_rows
    if fmt in ("csv", "tsv"):
        return _delimited(path, text_column, chunk_rows, "\t" if fmt == "tsv" else ","), None
    if fmt == "jsonl":
        return _chunked(_jsonl_texts(path, text_column), chunk_rows), None
    if fmt == "txt":
        def lines() -> Iterator[list[str]]:
            with open(path, encoding="utf-8", errors="replace") as fh:
                yield from _lines(fh, chunk_rows)
        return lines(), None
    raise DataError(f"{path}: cannot score a {fmt}; give a file (.txt, .csv, .tsv, .jsonl, .parquet)")


# -- scoring (in this process or in workers) ---------------------------------------------------
_WORKER_MODEL = None


def _init_worker(model_dir: str, threads: int) -> None:
    os.environ["REVIEWSENSE_THREADS"] = str(threads)
    os.environ["POLARS_MAX_THREADS"] = str(threads)  # before polars is imported by the model
    os.environ["REVIEWSENSE_QUIET"] = "1"
    global _WORKER_MODEL
    from ..export import load_model

    _WORKER_MODEL = load_model(model_dir)


def _worker_proba(texts: list[str]) -> np.ndarray:
    return _WORKER_MODEL.predict_proba(texts)


def _ordered(fn: Callable[[list[str]], np.ndarray], chunks: Iterator[list[str]], workers: int, model_dir: str | None
             ) -> Iterator[tuple[list[str], np.ndarray]]:
    if workers <= 1:
        for chunk in chunks:
            yield chunk, fn(chunk)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # no fork: polars' thread pool does not survive one
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(model_dir, threads)) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append((chunk, pool.submit(_worker_proba, chunk)))
            if len(pending) >= 2 * workers:  # bounded: reading never runs far ahead of scoring
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


# -- writing ---------------------------------------------------------------------------------
def format_rows(proba: np.ndarray, class_names, threshold: float, fmt: str) -> str:
    labels = (proba >= threshold).astype(np.int8)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows((round(float(p), 6), int(k), class_names[int(k)]) for p, k in zip(proba, labels, strict=True))
        return buffer.getvalue()
    names = [json.dumps(n, ensure_ascii=False) for n in class_names]
    return "".join(f'{{"probability": {round(float(p), 6)}, "label": {int(k)}, "label_name": {names[int(k)]}}}\n'
                   for p, k in zip(proba, labels, strict=True))


def score_file(predictor, chunks: Iterator[list[str]], out: TextIO, fmt: str = "jsonl", threshold: float = 0.5,
               workers: int = 1, model_dir: str | None = None, total: int | None = None) -> int:
    """Score every chunk and write its rows to ``out`` in input order; returns the row count."""
    if fmt == "csv":
        out.write(",".join(FIELDS) + "\n")
    rows = 0
    with bar(total=total, unit=" rows", desc="scoring") as progress:
        for chunk, proba in _ordered(predictor.predict_proba, chunks, workers, model_dir):
            out.write(format_rows(proba, predictor.class_names, threshold, fmt))
            rows += len(chunk)
            progress.update(len(chunk))
    return rows


def score_to_path(predictor, chunks, path: str, **kwargs) -> int:
    """:func:`score_file` into ``path`` via a temporary file: no half-written output on a crash."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        return score_file(predictor, chunks, fh, **kwargs)
