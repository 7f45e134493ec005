"""Batch scoring of big files in constant memory: read a chunk, score it, write it, repeat.

``score_file`` reads Parquet (row-group batches), CSV/TSV (pandas chunks), JSONL or text
lines ``chunk_rows`` at a time, optionally scores the chunks on ``workers`` processes (each
loads the model once; at most two chunks per worker are in flight, so memory stays bounded
whatever the file size), and writes the rows in input order to JSONL or CSV, through a
temporary file renamed into place at the end.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO, TypeVar

import numpy as np

from .._fs import atomic_path
from ..data.files import (
    REPLACE,
    NotDecoded,
    _missing,
    as_text,
    check_unique,
    delimited_error,
    detect_format,
    guarded,
    max_chars,
    open_binary,
    open_text,
    parquet_source,
    parse_json_line,
    prepare_delimited,
    text_lines,
)
from ..errors import ConfigError, DataError
from ..models.base import DIGITS, ROW_FIELDS, check_finite, result_row
from ..progress import bar

CHUNK_ROWS = 32_768
T = TypeVar("T")
FIELDS = list(ROW_FIELDS)  # models.base.result_row's, written in bulk below
OUTPUT_FORMATS = ("jsonl", "csv", "parquet")


@dataclass
class Chunk:
    """Texts read together, with the input columns carried through to the output."""

    texts: list[str]
    columns: dict[str, list] = field(default_factory=dict)


# -- reading ---------------------------------------------------------------------------------
def _texts(values, path: Path, column: str, first_row: int, unit: str) -> list[str]:
    limit = max_chars()
    return ["" if _missing(value) else as_text(value, f"{path}: {unit} {first_row + i}", column, limit)
            for i, value in enumerate(values)]


def _chunked(texts: Iterator[T], chunk_rows: int) -> Iterator[list[T]]:
    """Consecutive lists of ``chunk_rows`` texts (the last one shorter)."""
    while chunk := list(itertools.islice(texts, chunk_rows)):
        yield chunk


def _lines(stream: IO[str], chunk_rows: int, name: str | os.PathLike[str] = "stdin") -> Iterator[list[str]]:
    return _chunked(text_lines(stream, name, max_chars()), chunk_rows)


def _with_columns(texts: Iterator[list[str]], keep: Sequence[str], text_column: str, path) -> Iterator:
    """Chunks of a source whose only column is the text (lines): ``keep`` may name just that."""
    other = [c for c in keep if c != text_column]
    if other:
        raise DataError(f"{path}: --keep-columns {','.join(other)}: lines of text have no column but "
                        f"'{text_column}'")
    return (Chunk(chunk, {text_column: chunk}) for chunk in texts) if keep else texts


def _jsonl_texts(path: Path, column: str, keep: Sequence[str] = (),
                 encoding: str | None = None) -> Iterator[tuple[str, list]]:
    with open_text(path, encoding) as fh:  # .gz/.bz2/.xz decompressed, UTF-16/32 found by their BOM
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            record = parse_json_line(line, path, lineno, (column, *keep))  # a key given twice is refused
            if column not in record:
                raise DataError(f"{path}:{lineno}: no '{column}' field (choose it with --text-column)")
            missing = [c for c in keep if c not in record]
            if missing:
                raise DataError(f"{path}:{lineno}: no '{missing[0]}' field to keep (--keep-columns)")
            text = _texts([record[column]], path, column, lineno, "line")[0]
            yield text, [record[c] for c in keep]


def _jsonl_chunks(path: Path, column: str, chunk_rows: int, keep: Sequence[str],
                  encoding: str | None = None) -> Iterator:
    for rows in _chunked(_jsonl_texts(path, column, keep, encoding), chunk_rows):
        texts = [text for text, _ in rows]
        yield Chunk(texts, {c: [kept[j] for _, kept in rows] for j, c in enumerate(keep)}) if keep else texts


def _open_parquet(path: Path, column: str, keep: Sequence[str] = ()):
    import pyarrow.parquet as pq

    try:  # no pre-buffering: with it, pyarrow's memory grows with the file instead of staying flat
        file = pq.ParquetFile(parquet_source(path), pre_buffer=False, buffer_size=1 << 20)
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several types for files that are not Parquet
        raise DataError(f"{path}: cannot read as parquet ({str(exc).splitlines()[0] if str(exc) else exc!r})") from exc
    check_unique(path, file.schema_arrow.names)  # pyarrow allows two columns of one name
    if column not in file.schema_arrow.names:
        raise DataError(f"{path}: no '{column}' column (columns: {', '.join(file.schema_arrow.names)}; "
                        "choose one with --text-column)")
    missing = [c for c in keep if c not in file.schema_arrow.names]
    if missing:
        raise DataError(f"{path}: no '{missing[0]}' column to keep (columns: {', '.join(file.schema_arrow.names)})")
    return file


def _parquet(file, path: Path, column: str, chunk_rows: int, keep: Sequence[str] = ()) -> Iterator:
    row = 1
    names = list(dict.fromkeys([column, *keep]))
    for batch in file.iter_batches(batch_size=chunk_rows, columns=names):
        values = batch.column(column).to_pylist()
        texts = _texts(values, path, column, row, "row")
        yield Chunk(texts, {c: batch.column(c) for c in keep}) if keep else texts  # Arrow: types kept
        row += len(values)


def _delimited(path: Path, column: str, chunk_rows: int, sep: str | None, keep: Sequence[str] = (),
               fmt: str = "csv", encoding: str | None = None) -> Iterator:
    import pandas as pd

    # the header checked first: no duplicate names, the columns there (a ';' or '|' separator is
    # found from it when ``sep`` is not given), the encoding from a byte-order mark
    setup = prepare_delimited(path, fmt, sep, encoding, [column, *keep], choose="choose the text with "
                              "--text-column" + (", the columns to keep with --keep-columns" if keep else ""))
    if setup is None:
        return
    sep, encoding = setup
    try:
        with open_binary(path) as fh:  # decompressed here, its lines bounded as they are read
            reader = pd.read_csv(fh, sep=sep, dtype=str, keep_default_na=False, encoding=encoding,
                                 encoding_errors=REPLACE, usecols=list(dict.fromkeys([column, *keep])),
                                 chunksize=chunk_rows)
            row = 1
            for frame in reader:
                texts = _texts(frame[column].tolist(), path, column, row, "row")
                yield Chunk(texts, {c: frame[c].tolist() for c in keep}) if keep else texts
                row += len(texts)
    except DataError:
        raise
    except ValueError as exc:
        if "usecols" in str(exc).lower() or "not in list" in str(exc):
            wanted = ", ".join(f"'{c}'" for c in dict.fromkeys([column, *keep]))
            raise DataError(f"{path}: no such column among {wanted} (choose the text with --text-column, "
                            "the columns to keep with --keep-columns)") from exc
        raise delimited_error(path, fmt, exc) from exc
    except Exception as exc:  # pandas' ParserError, a damaged .gz/.bz2/.xz
        raise delimited_error(path, fmt, exc) from exc


def _watched(chunks: Iterator, undecoded: NotDecoded) -> Iterator:
    """``chunks``, then one warning if bytes that are not UTF-8 were replaced by U+FFFD (their
    texts counted as they pass: no second reading of the file)."""
    for chunk in chunks:
        undecoded.count(_parts(chunk)[0])
        yield chunk
    undecoded.report()


def read_chunks(path: str | os.PathLike[str] | None, text_column: str = "text", chunk_rows: int = CHUNK_ROWS,
                stdin: TextIO | None = None, keep_columns: Sequence[str] = (), *, sep: str | None = None,
                encoding: str | None = None) -> tuple[Iterator, int | None]:
    """Chunks of texts from a file (``None`` or ``-``: lines of stdin), and the row count when
    the format tells it up front (Parquet) for the progress bar.

    A chunk is a list of texts, or with ``keep_columns`` a :class:`Chunk` that also holds those
    columns of the same rows (ids, the text…) to copy into the results. Files may be compressed
    (.gz, .bz2, .xz); ``sep`` and ``encoding`` are as for :func:`reviewsense.data.files.load_table`."""
    keep = list(keep_columns)
    if path is None or str(path) == "-":
        return _with_columns(_lines(stdin or sys.stdin, chunk_rows), keep, text_column, "stdin"), None
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    fmt = detect_format(path)
    if fmt == "parquet":
        file = _open_parquet(path, text_column, keep)
        return _parquet(file, path, text_column, chunk_rows, keep), file.metadata.num_rows
    if fmt in ("csv", "tsv"):
        return _watched(_delimited(path, text_column, chunk_rows, sep, keep, fmt=fmt, encoding=encoding),
                        NotDecoded(path, encoding)), None
    if fmt == "jsonl":
        return _watched(guarded(path, _jsonl_chunks(path, text_column, chunk_rows, keep, encoding)),
                        NotDecoded(path, encoding)), None
    if fmt == "txt":
        def lines() -> Iterator[list[str]]:
            with open_text(path, encoding) as fh:
                yield from _lines(fh, chunk_rows, path)
        return _watched(guarded(path, _with_columns(lines(), keep, text_column, path)),
                        NotDecoded(path, encoding)), None
    raise DataError(f"{path}: cannot score a {fmt}; give a file (.txt, .csv, .tsv, .jsonl, .parquet)")


# -- scoring (in this process or in workers) ---------------------------------------------------
_WORKER_MODEL: Any = None  # the model each worker process loads once


def _init_worker(model_dir: str, threads: int) -> None:
    os.environ["POLARS_MAX_THREADS"] = str(threads)  # this worker process's polars pool, before polars is imported
    os.environ["REVIEWSENSE_QUIET"] = "1"
    global _WORKER_MODEL
    from ..export import load_model

    _WORKER_MODEL = load_model(model_dir)
    _WORKER_MODEL.n_jobs = threads


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
    init: Any = _init_worker  # typeshed types the initializer as taking no arguments when initargs is inferred
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init, initargs=(model_dir, threads)) as pool:
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
class ResultWriter:
    """Result rows, chunk by chunk, as JSONL or CSV (to a text stream) or Parquet (to a binary one).

    Columns carried through from the input (``--keep-columns``) come first, then
    ``probability``, ``label`` and ``label_name``. More than two classes: ``probability`` is
    the top label's, and every class's probability follows, as ``probabilities`` (an object
    by class name) in JSONL and as one ``probability_<class>`` column per class in CSV and
    Parquet.
    """

    def __init__(self, out, fmt: str, class_names, threshold: float = 0.5, keep: Sequence[str] = ()):
        if fmt not in OUTPUT_FORMATS:
            raise ConfigError(f"unknown output format '{fmt}' (choose {', '.join(OUTPUT_FORMATS)})")
        self.out, self.fmt, self.threshold, self.keep = out, fmt, threshold, list(keep)
        self.class_names = list(class_names)
        self._parquet: Any = None  # pyarrow's ParquetWriter, made with the first chunk
        self.rows = 0  # rows written so far
        # more than two classes: every class's probability, one column each (CSV, Parquet)
        self.class_columns = [f"probability_{name}" for name in self.class_names] if len(self.class_names) > 2 else []
        taken = {*FIELDS, *self.class_columns, *(["probabilities"] if self.class_columns else [])}
        clash = [column for column in self.keep if column in taken]
        if clash:  # it would overwrite the kept data (JSONL, Parquet) or give two columns of one name (CSV)
            raise ConfigError(f"--keep-columns {','.join(clash)}: the results of this model have a field of that "
                              f"name ({', '.join(sorted(taken))}); rename the input column")
        if fmt == "csv":
            csv.writer(out, lineterminator="\n").writerow([*self.keep, *FIELDS, *self.class_columns])

    def write(self, proba: np.ndarray, extra: dict[str, Any] | None = None) -> None:
        """The rows of one chunk: ``proba`` is ``(n, n_classes)``, as ``Predictor.predict_proba`` gives it."""
        extra = {c: (col.to_pylist() if self.fmt != "parquet" and hasattr(col, "to_pylist") else col)
                 for c, col in (extra or {}).items()}
        if proba.ndim != 2 or proba.shape[1] != len(self.class_names):
            raise ValueError(f"probabilities of shape {proba.shape} for {len(self.class_names)} classes")
        check_finite(proba, offset=self.rows)  # a NaN is no probability, and no JSON
        self.rows += len(proba)
        if len(self.class_names) > 2 and self.fmt != "parquet":
            self._write_classes(proba, extra)
            return
        if self.fmt == "parquet":
            self._write_parquet(proba, extra)
            return
        positive = proba[:, 1]
        labels = (positive >= self.threshold).astype(np.int8)
        rounded = [round(p, DIGITS) for p in positive.tolist()]
        if self.fmt == "csv":
            names = [self.class_names[k] for k in labels.tolist()]
            kept = [[_cell(v) for v in extra[c]] for c in self.keep]
            csv.writer(self.out, lineterminator="\n").writerows(
                (*(col[i] for col in kept), rounded[i], int(labels[i]), names[i]) for i in range(len(rounded)))
        else:
            quoted = [json.dumps(n, ensure_ascii=False) for n in self.class_names]
            rows = [f'"probability": {p}, "label": {k}, "label_name": {quoted[k]}}}\n'
                    for p, k in zip(rounded, labels.tolist(), strict=True)]
            if self.keep:
                named = [(json.dumps(c, ensure_ascii=False), extra[c]) for c in self.keep]
                rows = ["".join(f"{key}: {_json(col[i])}, " for key, col in named)
                        + row for i, row in enumerate(rows)]
            self.out.write("".join("{" + row for row in rows))

    def _write_classes(self, proba: np.ndarray, extra: dict[str, Any]) -> None:
        """Rows of a model of more than two classes (JSONL, CSV): the top label and every class's probability."""
        rows = [result_row(p, self.class_names) for p in proba.tolist()]
        if self.fmt == "jsonl":
            named = [(c, extra[c]) for c in self.keep]
            self.out.write("".join(_json({**{c: col[i] for c, col in named}, **row}) + "\n"
                                   for i, row in enumerate(rows)))
            return
        kept = [[_cell(v) for v in extra[c]] for c in self.keep]
        csv.writer(self.out, lineterminator="\n").writerows(
            (*(col[i] for col in kept), row["probability"], row["label"], row["label_name"],
             *row["probabilities"].values()) for i, row in enumerate(rows))

    def _write_parquet(self, proba: np.ndarray, extra: dict[str, Any]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {c: _arrow_column(extra[c]) for c in self.keep}
        table = pa.table(columns | result_arrays(proba, self.class_names, self.threshold))
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.out, table.schema)
        self._parquet.write_table(table.cast(self._parquet.schema))

    def close(self, failed: bool = False) -> None:
        """Finish the output (Parquet's footer); after a failure, only release the writer."""
        if failed:
            if self._parquet is not None:
                with contextlib.suppress(Exception):
                    self._parquet.close()
                self._parquet = None
            return
        if self.fmt == "parquet" and self._parquet is None:  # no rows: still a valid, empty file with the columns
            self._write_parquet(np.zeros((0, len(self.class_names))), {c: [] for c in self.keep})
        if self._parquet is not None:
            self._parquet.close()


def result_arrays(proba: np.ndarray, class_names: Sequence[str], threshold: float = 0.5) -> dict[str, Any]:
    """The result columns of ``proba`` (``(n, n_classes)``) as Arrow arrays, as Parquet and Spark get them:
    ``probability`` (rounded to :data:`~reviewsense.models.base.DIGITS` decimals), ``label`` and
    ``label_name``; more than two classes: the top label's, then one ``probability_<class>`` per class."""
    import pyarrow as pa

    names = list(class_names)
    if len(names) <= 2:
        positive = proba[:, 1]
        labels = (positive >= threshold).astype(np.int8)
        return {"probability": pa.array([round(p, DIGITS) for p in positive.tolist()], pa.float64()),
                "label": pa.array(labels, pa.int8()),
                "label_name": pa.array([names[k] for k in labels.tolist()], pa.string())}
    rows = [result_row(p, names) for p in proba.tolist()]
    each = np.array([list(row["probabilities"].values()) for row in rows], dtype=np.float64).reshape(
        len(rows), len(names))  # rounded once, by result_row
    return {"probability": pa.array([row["probability"] for row in rows], pa.float64()),
            "label": pa.array([row["label"] for row in rows], pa.int16()),
            "label_name": pa.array([row["label_name"] for row in rows], pa.string()),
            **{f"probability_{name}": pa.array(each[:, k], pa.float64()) for k, name in enumerate(names)}}


def _cell(value: Any) -> Any:
    """A kept input value in a CSV cell: text and numbers as they are, anything nested as JSON."""
    if value is None:
        return ""
    if isinstance(value, str | int | float | bool):
        return value
    return _json(value)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite number in it (pandas' missing value) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _json(value: Any) -> str:
    """A value as JSON, never a bare ``NaN``: a kept input column's missing numbers are null."""
    return json.dumps(_finite(value), ensure_ascii=False, default=str, allow_nan=False)


def _arrow_column(values):
    """A kept column for Parquet: Arrow columns (from a Parquet input) keep their type; values
    from JSONL, CSV or text lines, whose types may change from row to row, are written as text
    (JSON for anything but a string), so every chunk has the same schema."""
    import pyarrow as pa

    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    return pa.array([v if v is None or isinstance(v, str) else _json(v)
                     for v in values], pa.string())


def _parts(chunk) -> tuple[list[str], dict[str, list]]:
    return (chunk.texts, chunk.columns) if isinstance(chunk, Chunk) else (chunk, {})


def score_file(predictor, chunks: Iterator, out, fmt: str = "jsonl", threshold: float = 0.5,
               workers: int = 1, model_dir: str | None = None, total: int | None = None,
               keep: Sequence[str] = ()) -> int:
    """Score every chunk and write its rows to ``out`` in input order; returns the row count.

    ``out`` is a text stream for JSONL and CSV, a binary one for Parquet; ``chunks`` are lists
    of texts, or :class:`Chunk` s that carry the ``keep`` columns through."""
    writer = ResultWriter(out, fmt, predictor.class_names, threshold, keep)
    pending: deque = deque()

    def texts_of(items: Iterator) -> Iterator[list[str]]:
        for chunk in items:
            texts, extra = _parts(chunk)
            pending.append(extra)
            yield texts

    rows = 0
    try:
        with bar(total=total, unit=" rows", desc="scoring") as progress:
            for chunk, proba in _ordered(predictor.predict_proba, texts_of(chunks), workers, model_dir):
                writer.write(proba, pending.popleft())
                rows += len(chunk)
                progress.update(len(chunk))
    except BaseException:
        writer.close(failed=True)
        raise
    writer.close()
    return rows


def score_to_path(predictor, chunks, path: str, **kwargs) -> int:
    """:func:`score_file` into ``path`` via a temporary file: no half-written output on a crash.

    A FIFO or a device (``/dev/stdout``) is written through; a symlink's target is replaced;
    a ``.gz``, ``.bz2`` or ``.xz`` name is compressed so."""
    binary = kwargs.get("fmt") == "parquet"
    with atomic_path(path) as tmp, open_compressed(tmp, compression(path), binary) as fh:
        return score_file(predictor, chunks, fh, **kwargs)


COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


def compression(path: str | os.PathLike[str]) -> str | None:
    """The compression a file name asks for (``scores.jsonl.gz``: gzip), or None."""
    return COMPRESSIONS.get(Path(path).suffix.lower())


def open_compressed(path: Path, method: str | None, binary: bool) -> IO[Any]:
    """``path`` opened for writing, through ``method`` (gzip, bz2, lzma) when given."""
    import importlib

    opener = open if method is None else importlib.import_module(method).open
    return opener(path, "wb") if binary else opener(path, "wt", encoding="utf-8", newline="")
