"""The user's own data: CSV, TSV, JSONL, Parquet, or one folder per class.

Policies (also in the README):
- texts that are empty or whitespace only are skipped, and the count is logged;
- a missing text (NaN/None/null) is an error naming the row;
- bytes that are not valid UTF-8 are replaced by U+FFFD, never a crash;
- a text over ``max_chars()`` characters (1,000,000 by default, ``$REVIEWSENSE_MAX_CHARS``)
  is an error naming the row: such a "review" is almost always a broken file (a missing
  quote that swallowed the rest of a CSV), and scoring it silently would hide that;
- labels are mapped explicitly: 0/1, true/false, neg/pos and negative/positive are understood;
  any other pair of classes is declared with ``classes=("NEG", "POS")``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..progress import log
from .dataset import Dataset

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "txt",
}

_KNOWN_PAIRS: list[tuple[set[str], set[str]]] = [
    ({"0", "0.0"}, {"1", "1.0"}),
    ({"false", "f", "no"}, {"true", "t", "yes"}),
    ({"neg", "negative"}, {"pos", "positive"}),
]


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in set(FORMATS.values()) | {"folder"}:
            raise DataError(f"{path}: unknown format '{fmt}' (choose csv, tsv, jsonl, parquet, txt, folder)")
        return fmt
    if path.is_dir():
        return "folder"
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        name = name.removesuffix(suffix)
    ext = Path(name).suffix
    if ext not in FORMATS:
        raise DataError(
            f"{path}: unknown file format '{ext or path.name}' "
            "(use .csv, .tsv, .jsonl, .parquet, .txt or a folder with one sub-folder per class)"
        )
    return FORMATS[ext]


DEFAULT_MAX_CHARS = 1_000_000


def max_chars() -> int:
    """The longest text accepted from a data file: ``$REVIEWSENSE_MAX_CHARS`` or 1,000,000."""
    value = os.environ.get("REVIEWSENSE_MAX_CHARS", "")
    if not value:
        return DEFAULT_MAX_CHARS
    if not value.isdigit() or int(value) < 1:
        raise DataError(f"REVIEWSENSE_MAX_CHARS must be a positive whole number, got '{value}'")
    return int(value)


def check_length(text: str, where: str, limit: int) -> str:
    if len(text) > limit:
        raise DataError(f"{where}: text of {len(text):,} characters is over the limit of {limit:,} (often a "
                        "broken quote that swallowed many rows; raise the limit with REVIEWSENSE_MAX_CHARS)")
    return text


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue  # blank lines (often a trailing one) hold no record
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
            rows.append(obj)
    return rows


def read_records(path: str | os.PathLike[str], fmt: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Read a table into a list of row dicts, and the word for its unit ('line' or 'row',
    counted from 1 without the header) used in error messages."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    fmt = detect_format(path, fmt)
    if fmt == "jsonl":
        return _read_jsonl(path), "line"
    if fmt == "txt":
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [{"text": line.rstrip("\r\n")} for line in fh], "line"
    import pandas as pd

    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(
                path,
                sep="\t" if fmt == "tsv" else ",",
                dtype=str,
                keep_default_na=False,  # an empty cell is an empty string: skipped like any empty text
                encoding="utf-8",
                encoding_errors="replace",
            )
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read as {fmt} ({reason})") from exc
    return frame.to_dict(orient="records"), "row"


def _label_mapper(values: Sequence[Any], classes: Sequence[str] | None, where: str):
    if classes is not None:
        if len(classes) != 2 or classes[0] == classes[1]:
            raise DataError(f"classes must be two different names (negative first), got {list(classes)}")
        table = {str(classes[0]): 0, str(classes[1]): 1}
        return table, (str(classes[0]), str(classes[1]))
    seen = {str(v).strip().lower() for v in values if not _missing(v)} - {""}
    for neg, pos in _KNOWN_PAIRS:
        if seen <= neg | pos:
            table = {v: 0 for v in neg} | {v: 1 for v in pos}
            names = ("negative", "positive") if "neg" in neg else ("0", "1") if "0" in neg else ("false", "true")
            return table, names
    raise DataError(
        f"{where}: labels {sorted(seen)[:5]} are not 0/1, true/false or neg/pos; "
        "declare the two classes (negative first) with --classes NEG,POS"
    )


def load_table(
    path: str | os.PathLike[str],
    text_column: str = "text",
    label_column: str = "label",
    classes: Sequence[str] | None = None,
    fmt: str | None = None,
    group_column: str | None = None,
) -> Dataset:
    """Load labelled data from CSV/TSV/JSONL/Parquet or a folder-per-class directory.

    ``group_column`` names a column whose rows belong together (e.g. the product or movie
    reviewed): splits keep each group on one side.

    Examples
    --------
    >>> ds = load_table("reviews.csv", text_column="review", label_column="sentiment",
    ...                 classes=["bad", "good"])      # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir() and detect_format(path, fmt) == "folder":
        if group_column:
            raise DataError(f"{path}: --group-column needs a table (CSV/TSV/JSONL/Parquet), not class folders")
        return load_folder(path, classes)
    rows, unit = read_records(path, fmt)
    if not rows:
        raise DataError(f"{path}: no rows")
    for column in (text_column, label_column, *([group_column] if group_column else [])):
        if column not in rows[0]:
            raise DataError(
                f"{path}: no '{column}' column (columns: {', '.join(map(str, rows[0].keys()))}); "
                "choose them with --text-column/--label-column/--group-column"
            )
    table, names = _label_mapper([r.get(label_column) for r in rows], classes, str(path))
    texts, labels, groups, skipped, limit = [], [], [], 0, max_chars()
    for i, row in enumerate(rows):
        where = f"{path}: {unit} {i + 1}"
        text, label = row.get(text_column), row.get(label_column)
        if _missing(text):
            raise DataError(f"{where}: '{text_column}' is missing")
        if _missing(label) or not str(label).strip():
            raise DataError(f"{where}: '{label_column}' is missing")
        group = row.get(group_column) if group_column else None
        if group_column and (_missing(group) or not str(group).strip()):
            raise DataError(f"{where}: '{group_column}' is missing")
        key = str(label).strip()
        key = key if classes is not None else key.lower()
        if key not in table:
            raise DataError(f"{where}: label '{label}' is not one of the classes {list(names)}")
        text = check_length(str(text), where, limit)
        if not text.strip():
            skipped += 1
            continue
        texts.append(text)
        labels.append(table[key])
        if group_column:
            groups.append(str(group))
    data = _finish(path, texts, labels, names, skipped)
    data.groups = groups if group_column else None
    return data


def _finish(path: Path, texts: list[str], labels: list[int], names: tuple[str, str], skipped: int) -> Dataset:
    if skipped:
        log(f"{path}: skipped {skipped} empty text(s)")
    if not texts:
        raise DataError(f"{path}: no non-empty texts")
    present = set(labels)
    if len(present) < 2:
        only = names[next(iter(present))]
        raise DataError(f"{path}: only one class ('{only}') is present; binary training needs both")
    labels_array = np.array(labels, dtype=np.int8)
    return Dataset(texts=texts, labels=labels_array, name=path.name, class_names=names, skipped=skipped)


def load_folder(path: str | os.PathLike[str], classes: Sequence[str] | None = None) -> Dataset:
    """One sub-folder per class (like ``aclImdb/train/{neg,pos}``), one ``.txt`` file per text."""
    path = Path(path)
    subdirs = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        table, names = _label_mapper(subdirs, None, str(path))
        chosen = [d for d in subdirs if d.lower() in table]
    else:
        table, names = _label_mapper([], classes, str(path))
        chosen = [d for d in subdirs if d in table]
        table = {k.lower(): v for k, v in table.items()}
    if len(chosen) != 2:
        raise DataError(f"{path}: expected two class sub-folders (e.g. neg/ and pos/), found {subdirs}")
    texts, labels, skipped, limit = [], [], 0, max_chars()
    for sub in chosen:
        for file in sorted((path / sub).glob("*.txt")):
            text = check_length(file.read_bytes().decode("utf-8", errors="replace"), str(file), limit)
            if not text.strip():
                skipped += 1
                continue
            texts.append(text)
            labels.append(table[sub.lower()])
    return _finish(path, texts, labels, names, skipped)


def read_texts(path: str | os.PathLike[str], text_column: str = "text", fmt: str | None = None) -> list[str]:
    """Texts to score, from a .txt (one per line), CSV, TSV, JSONL or Parquet file."""
    path = Path(path)
    rows, unit = read_records(path, fmt)
    texts, limit = [], max_chars()
    for i, row in enumerate(rows):
        if text_column not in row:
            raise DataError(f"{path}: {unit} {i + 1} has no '{text_column}' field (choose it with --text-column)")
        value = row[text_column]
        texts.append("" if _missing(value) else check_length(str(value), f"{path}: {unit} {i + 1}", limit))
    return texts
