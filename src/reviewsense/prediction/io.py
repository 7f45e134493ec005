"""Prediction I/O: texts from arguments, files or stdin; results to JSONL, CSV or the terminal."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .._fs import atomic_path, is_stream
from ..data.files import read_texts
from ..errors import ConfigError, DataError
from ..models.base import Predictor, check_finite, result_row

# output file extensions and the format each one means
OUTPUT_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet",
                   ".pq": "parquet"}


def gather_texts(
    args: Sequence[str], input_path: str | None, text_column: str, stdin: TextIO | None = None, **read_options
) -> list[str]:
    """Texts given as arguments, else from ``--input`` (``-`` = stdin), else stdin lines."""
    if args and input_path:
        raise DataError("give texts as arguments or with --input, not both")
    if args:
        return list(args)
    stream = stdin if stdin is not None else sys.stdin
    if input_path and input_path != "-":
        return read_texts(input_path, text_column=text_column, **read_options)  # sep, encoding
    if input_path is None and stream.isatty():
        raise DataError("no texts to score: pass them as arguments, with --input FILE, or on stdin")
    return [line.rstrip("\r\n") for line in stream]


def result_rows(predictor: Predictor, texts: Sequence[str], threshold: float = 0.5) -> list[dict]:
    """One :func:`~reviewsense.models.base.result_row` per text, in order (a NaN or infinite
    probability is a :class:`~reviewsense.errors.ScoreError`)."""
    proba = predictor.predict_proba(texts)
    check_finite(proba)
    return [result_row(p, predictor.class_names, threshold) for p in proba.tolist()]


def output_format(path: str | None, fmt: str | None) -> str:
    """The format asked for, else the one ``path``'s extension names (JSONL for stdout, a pipe or
    a device); an unknown extension is refused rather than written as JSONL under a wrong name."""
    if fmt:
        return fmt
    if path is None or path == "-":
        return "jsonl"
    name = Path(path)
    compressed = name.suffix.lower() in (".gz", ".bz2", ".xz")
    suffix = name.with_suffix("").suffix.lower() if compressed else name.suffix.lower()
    if suffix in OUTPUT_SUFFIXES:
        if compressed and OUTPUT_SUFFIXES[suffix] == "parquet":
            raise ConfigError(f"{path}: Parquet is compressed inside already; drop {name.suffix!r}")
        return OUTPUT_SUFFIXES[suffix]
    if is_stream(Path(path)):
        return "jsonl"
    raise ConfigError(f"{path}: unknown output extension {suffix!r} (use .jsonl, .csv or .parquet, "
                      "or choose with --format)" if suffix else
                      f"{path}: no extension to tell the output format (use .jsonl, .csv or .parquet, "
                      "or choose with --format)")


def render(rows: Sequence[dict], fmt: str) -> str:
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["probability", "label", "label_name"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    return "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows)


def render_table(texts: Sequence[str], rows: Sequence[dict], width: int = 70) -> str:
    lines = []
    for text, row in zip(texts, rows, strict=True):
        short = " ".join(text.split())
        if len(short) > width:
            short = short[: width - 1] + "…"
        lines.append(f"{row['probability']:.4f}  {row['label_name']:<9} {short}")
    return "\n".join(lines)


def write_output(text: str, path: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
