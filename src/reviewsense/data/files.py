"""The user's own data: CSV, TSV, JSONL, Parquet, or one folder per class.

Policies (also in the README):
- texts that are empty or whitespace only are skipped, and the count is logged;
- a missing text (NaN/None/null) is an error naming the row;
- bytes that are not valid UTF-8 are replaced by U+FFFD, never a crash, and said: one warning per
  file (read without ``encoding``) with the count of texts that held them;
- a text over ``max_chars()`` characters (1,000,000 by default, ``$REVIEWSENSE_MAX_CHARS``)
  is an error naming the row: such a "review" is almost always a broken file (a missing
  quote that swallowed the rest of a CSV), and scoring it silently would hide that;
- a line is checked as it is read (:func:`max_line_bytes`): a file that inflates to one huge
  line is refused without being read whole;
- labels are mapped explicitly: 0/1, true/false, neg/pos and negative/positive are understood;
  any other pair of classes is declared with ``classes=("NEG", "POS")``; for evaluation, labels
  are matched to the model's classes by name (numbers by value), never by position;
- a text that is not a string (bytes, a number, a list, an object: Parquet or JSON types) is an
  error naming the row and the type, never its Python repr;
- duplicate column names (a CSV/TSV header, a Parquet schema, a key twice in a JSON line) are an
  error naming them, and one column cannot be both text and label (or group and text/label);
- ``.gz``, ``.bz2`` and ``.xz`` files (``.csv.gz``, ``.jsonl.xz``, ``.txt.bz2``…) are decompressed
  on the fly;
- text is UTF-8 unless a UTF-16/UTF-32 byte-order mark says otherwise or ``encoding`` is given;
  a CSV's separator is ``sep`` (``,`` for .csv, tab for .tsv), or, when the needed columns are
  not found with the default one, ``;``, tab or ``|`` if the header splits into them (logged);
- a folder per class is read recursively (hidden entries skipped, the count per class logged);
  a class folder that is not one of the two classes, a dangling link, a link into the other class
  folder (its texts would count twice, once per class) or an unreadable entry is an error naming
  it; files that are not ``.txt`` are skipped and counted in the log.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import functools
import io
import itertools
import json
import lzma
import math
import os
import stat
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar, cast

import numpy as np

from .._names import control_character
from ..errors import DataError
from ..progress import log, warn
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

_UNLABELLED_FOLDERS = {"unsup", "unlabelled", "unlabeled"}  # aclImdb/train/unsup: not a class

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


def text_lines(fh: IO[str], name: str | os.PathLike[str], limit: int) -> Iterator[str]:
    """The lines of a text stream without their line breaks, each checked against ``limit``
    characters as it is read: a longer line is refused naming it after ``limit`` characters,
    never read whole (a pipe or a compressed file can hold one line of any size)."""
    for lineno in itertools.count(1):
        line = fh.readline(limit + 2)  # room for "\r\n"
        if not line:
            return
        text = line.rstrip("\r\n")
        if len(text) > limit:
            raise DataError(f"{name}: line {lineno}: text of more than {limit:,} characters is over the limit "
                            "(raise the limit with REVIEWSENSE_MAX_CHARS)")
        yield text


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def as_text(value: Any, where: str, column: str, limit: int) -> str:
    """A present text value, checked: a string within the length limit; anything else (bytes,
    numbers, lists, objects from Parquet or JSON) is an error naming the row and the type, so
    that no model ever learns from a Python repr like ``b'I was…'``."""
    if isinstance(value, str):
        return check_length(value, where, limit)
    raise DataError(f"{where}: '{column}' is {type(value).__name__}, not text")


# -- bytes: compression and encodings -------------------------------------------------------------
T = TypeVar("T")
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")
# what a damaged compressed file raises while it is read (gzip, bz2, lzma, zlib; OSError for I/O)
_READ_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, lzma.LZMAError, zlib.error)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def read_error(path: str | os.PathLike[str], exc: BaseException) -> DataError:
    return DataError(f"{path}: cannot read ({_reason(exc)})")


def max_line_bytes() -> int:
    """The longest line read from a text file (CSV, TSV, JSONL, TXT), in bytes: 64 a character of
    :func:`max_chars` plus 1 MiB — room for the longest text in UTF-8 or JSON escapes and the row's
    other columns. Checked as the bytes arrive, so a compressed file that inflates to one huge
    line stops there, in bounded memory, instead of being read whole before its text is checked."""
    return 64 * max_chars() + (1 << 20)


class _LineBounded(io.RawIOBase):
    """A binary stream that refuses a line over ``limit`` bytes while reading it (one line naming
    the file and the line)."""

    def __init__(self, raw: BinaryIO, path: Path, limit: int) -> None:
        self.raw, self.path, self.limit = raw, path, limit
        self.run = 0  # bytes since the last line break
        self.line = 1

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.raw.read(len(view))
        n = len(data)
        view[:n] = data
        last = data.rfind(b"\n")
        if last < 0:
            self.run += n
        else:
            self.line += data.count(b"\n")
            self.run = n - last - 1
        if self.run > self.limit:
            chars = max_chars()
            raise DataError(f"{self.path}: line {self.line}: over {self.limit:,} bytes with no line break, over "
                            f"the limit for a text of {chars:,} characters (a file that inflates to one huge line, "
                            "or a broken one; raise the limit with REVIEWSENSE_MAX_CHARS)")
        return n

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
        super().close()


def open_binary(path: str | os.PathLike[str], lines: bool = True) -> BinaryIO:
    """The file's bytes, decompressed on the fly for ``.gz``, ``.bz2``, ``.xz`` (``.zst`` with the
    ``zstandard`` package). ``lines``: a text file, whose lines are bounded by :func:`max_line_bytes`
    as they are read (``False`` for binary formats such as Parquet)."""
    raw = _open_raw(Path(path))
    return cast(BinaryIO, io.BufferedReader(_LineBounded(raw, Path(path), max_line_bytes()))) if lines else raw


def _open_raw(path: Path) -> BinaryIO:
    kind = path.suffix.lower()
    if kind == ".gz":
        import gzip

        return cast(BinaryIO, gzip.open(path, "rb"))
    if kind == ".bz2":
        import bz2

        return cast(BinaryIO, bz2.open(path, "rb"))
    if kind == ".xz":
        return cast(BinaryIO, lzma.open(path, "rb"))
    if kind == ".zst":
        try:
            import zstandard
        except ImportError as exc:
            raise DataError(f"{path}: reading .zst files needs the zstandard package "
                            "(pip install zstandard), or decompress the file first") from exc
        return zstandard.open(path, "rb")
    return open(path, "rb")


def resolve_encoding(path: str | os.PathLike[str], encoding: str | None = None) -> str:
    """The encoding to read ``path`` with: ``encoding`` if given (checked), else UTF-16/UTF-32
    when the file starts with their byte-order mark, else UTF-8 (a UTF-8 mark is dropped)."""
    if encoding:
        name = _text_encoding(encoding)
        return "utf-8-sig" if name == "utf-8" else encoding
    try:
        with open_binary(path) as fh:
            head = fh.read(4)
    except _READ_ERRORS as exc:
        raise read_error(path, exc) from exc
    return _by_bom(head)


def _text_encoding(encoding: str) -> str:
    """The codec name of ``encoding`` if files can be read with it: bytes to text, undecodable
    bytes replaced (not rot13/base64/zlib/hex, which map bytes to bytes, nor punycode/idna/undefined,
    which refuse a replacing error handler); else a DataError naming the option and the value."""
    examples = "(for example utf-8, utf-16, cp1252, latin-1)"
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"unknown encoding '{encoding}' {examples}") from None
    try:  # an empty probe (valid in every encoding, nothing to count): does the codec take our error handler?
        usable = bool(getattr(info, "_is_text_encoding", True)) and info.incrementaldecoder is not None and \
            isinstance(info.incrementaldecoder(errors=REPLACE).decode(b"", final=True), str)
    except (UnicodeError, ValueError, TypeError):
        usable = False
    if not usable:
        raise DataError(f"--encoding '{encoding}': not a text encoding {examples}")
    return info.name


def _by_bom(head: bytes) -> str:
    """UTF-16/UTF-32 when ``head`` starts with their byte-order mark, else UTF-8 (a UTF-8 mark dropped)."""
    return next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8-sig")


# Bytes that do not decode become U+FFFD through this error handler, which also counts them (per
# thread), so that a file that is not UTF-8 read without --encoding is said, not silently mangled.
REPLACE = "reviewsense-replace"
_replaced = threading.local()


def _replace_counted(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _replaced.count = getattr(_replaced, "count", 0) + 1
    return "\ufffd", exc.end


codecs.register_error(REPLACE, _replace_counted)


def replaced_count() -> int:
    """How many undecodable byte sequences this thread has replaced by U+FFFD so far."""
    return getattr(_replaced, "count", 0)


class NotDecoded:
    """Watches one file's reading for bytes its encoding could not decode (now U+FFFD) and
    warns once, with the count of texts that hold them: texts with U+FFFD are counted only once
    a replacement was seen, so a valid file is never scanned and its own U+FFFD never blamed.
    A file read with an explicit ``encoding`` is read as the user said: no warning."""

    def __init__(self, path: Path | str, encoding: str | None) -> None:
        self.path, self.watch, self.start, self.texts = path, not encoding, replaced_count(), 0

    @property
    def seen(self) -> bool:
        return self.watch and replaced_count() > self.start

    def count(self, texts: Iterable[str]) -> None:
        if self.seen:  # whatever was decoded before the first replacement holds none
            self.texts += sum("\ufffd" in t for t in texts)

    def report(self) -> None:
        if self.seen:
            what = f"{self.texts:,} text(s) hold" if self.texts else "values other than the texts hold"
            warn(f"{self.path}: {what} bytes that are not UTF-8 (replaced by U+FFFD); "
                 "if the file is not UTF-8, give --encoding, e.g. cp1252")


def open_text(path: str | os.PathLike[str], encoding: str | None = None) -> IO[str]:
    """The file as text (decompressed, decoded per :func:`resolve_encoding`, bad bytes → U+FFFD,
    counted: see :class:`NotDecoded`)."""
    resolved = resolve_encoding(path, encoding)
    try:
        return io.TextIOWrapper(open_binary(path), encoding=resolved, errors=REPLACE)
    except _READ_ERRORS as exc:
        raise read_error(path, exc) from exc


def _decode(raw: bytes, encoding: str | None) -> str:
    if encoding is None:
        encoding = _by_bom(raw)
    return raw.decode(encoding, errors=REPLACE)


# -- tables: separators, headers, JSON lines --------------------------------------------------------
def _shown(sep: str) -> str:
    return "'\\t'" if sep == "\t" else repr(sep)


def separator(sep: str | None) -> str | None:
    """``sep`` checked: one character; ``\\t`` (typed as two characters) and ``tab`` mean a tab."""
    if sep is None:
        return None
    sep = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(sep, sep)
    if len(sep) != 1 or sep in "\"\r\n":
        raise DataError(f"--sep must be one character (such as ';', '|' or '\\t' for a tab), got {sep!r}")
    return sep


def check_unique(path: Path | str, names: Iterable[Any]) -> None:
    """Refuse a header that names two columns alike: pandas would rename one (``text.1``) and
    the other would be used without a word."""
    named = [str(n) for n in names if str(n).strip()]
    repeated = sorted({n for n in named if named.count(n) > 1})
    if repeated:
        raise DataError(f"{path}: duplicate column name(s) {', '.join(map(repr, repeated))} in the header; "
                        "give each column its own name")


def _peek_header(path: Path, sep: str, encoding: str) -> tuple[str, list[str]]:
    """The first non-blank line of a delimited file, and the header fields read with ``sep``."""
    try:
        with open_text(path, encoding) as fh:
            first = next((line for line in fh if line.strip()), "")
            if not first:
                return "", []
            fields = next(csv.reader(itertools.chain([first], fh), delimiter=sep), [])
    except (csv.Error, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:  # csv.Error and _READ_ERRORS
        raise read_error(path, exc) from exc
    return first.rstrip("\r\n"), fields


def _sniff(first: str, needed: Sequence[str], sep: str) -> str | None:
    for other in (";", "\t", "|", ","):
        if other != sep and other in first and all(c in next(csv.reader([first], delimiter=other)) for c in needed):
            return other
    return None


def _header_hint(first: str, sep: str) -> str:
    if "\x00" in first:
        return ("; the file looks like UTF-16 without a byte-order mark: give --encoding utf-16-le "
                "(or utf-16-be)")
    for other in (";", "\t", "|", ","):
        if other != sep and other in first:
            return f"; the header holds {_shown(other)}: if it separates the columns, give --sep {_shown(other)}"
    return ""


def prepare_delimited(path: Path, fmt: str, sep: str | None, encoding: str | None,
                      needed: Sequence[str] = (), choose: str | None = None) -> tuple[str, str] | None:
    """The separator and encoding to read a CSV/TSV file with, once its header is checked (no
    duplicate names; the ``needed`` columns present, trying ``;``, tab, ``|`` when the default
    separator does not find them). ``None`` for a file without a single line."""
    given = separator(sep)
    sep = given or ("\t" if fmt == "tsv" else ",")
    encoding = resolve_encoding(path, encoding)
    first, fields = _peek_header(path, sep, encoding)
    if not first:
        return None
    needed = [c for c in needed if c]
    if not all(c in fields for c in needed):
        other = None if given else _sniff(first, needed, sep)
        if other is None:
            missing = next(c for c in needed if c not in fields)
            choose = choose or ("choose it with --text-column" if len(needed) == 1 else
                                "choose them with --text-column/--label-column/--group-column")
            shown = ", ".join(f.replace("\x00", "") for f in fields)  # no NULs of UTF-16 read as UTF-8
            raise DataError(f"{path}: no '{missing}' column (columns: {shown}); {choose}"
                            f"{_header_hint(first, sep)}")
        log(f"{path}: columns separated by {_shown(other)}, not {_shown(sep)} (set it with --sep)")
        sep = other
        fields = _peek_header(path, sep, encoding)[1]
    check_unique(path, fields)
    return sep, encoding


def guarded(path: Path | str, items: Iterable[T]) -> Iterator[T]:
    """``items``, with a damaged compressed file (cut short, bad bytes) found while reading
    them turned into a one-line :class:`DataError` naming ``path``."""
    try:
        yield from items
    except _READ_ERRORS as exc:
        raise read_error(path, exc) from exc


def delimited_error(path: Path, fmt: str, exc: BaseException) -> DataError:
    return DataError(f"{path}: cannot read as {fmt} ({_reason(exc)}); check the separator (--sep) "
                     "and the encoding (--encoding)")


@functools.lru_cache(maxsize=64)
def _quoted(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def _repeated_keys(line: str) -> set[str]:
    top: list[tuple[str, Any]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        top[:] = items  # objects close inside out: the last one is the line's own object
        return dict(items)

    json.loads(line, object_pairs_hook=pairs)
    keys = [k for k, _ in top]
    return {k for k in keys if keys.count(k) > 1}


def json_problem(exc: json.JSONDecodeError) -> str:
    """What is wrong and where: ``Invalid control character at column 12``."""
    return f"{exc.msg}{'' if exc.msg.endswith(' at') else ' at'} column {exc.colno}"


def parse_json_line(line: str, path: Path | str, lineno: int, keys: Sequence[str] = ()) -> dict[str, Any]:
    """One JSON object; a key of ``keys`` given twice (``json`` would keep the last) is an error."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{lineno}: invalid JSON ({json_problem(exc)})") from exc
    except RecursionError:  # deeper than Python's parser can go: no text field is like that
        raise DataError(f"{path}:{lineno}: invalid JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
    for key in keys:
        if key and line.count(_quoted(key)) > 1 and key in _repeated_keys(line):
            raise DataError(f"{path}:{lineno}: key '{key}' appears more than once in the object")
    return obj


def _read_jsonl(path: Path, encoding: str | None = None, keys: Sequence[str] = ()) -> list[dict[str, Any]]:
    rows = []
    try:
        with open_text(path, encoding) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue  # blank lines (often a trailing one) hold no record
                rows.append(parse_json_line(line, path, lineno, keys))
    except _READ_ERRORS as exc:
        raise read_error(path, exc) from exc
    return rows


def parquet_source(path: Path) -> Any:
    """A Parquet file as pyarrow reads it: the path, or the decompressed bytes of a ``.parquet.gz``."""
    if path.suffix.lower() not in _COMPRESSED:
        return path
    try:
        with open_binary(path, lines=False) as fh:
            return io.BytesIO(fh.read())
    except _READ_ERRORS as exc:
        raise read_error(path, exc) from exc


def _read_parquet(path: Path, columns: Sequence[str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(parquet_source(path))
        names = file.schema_arrow.names
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several types for files that are not Parquet
        raise DataError(f"{path}: cannot read as parquet ({_reason(exc)})") from exc
    check_unique(path, names)
    wanted = list(dict.fromkeys(c for c in columns if c))
    try:  # only the columns in use, when they are all there (else all, for the error's column list)
        table = file.read(columns=wanted if wanted and all(c in names for c in wanted) else None)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as parquet ({_reason(exc)})") from exc
    # Python values, not pandas': bytes stay bytes and lists stay lists, so that they are refused
    return table.to_pylist()


def read_records(path: str | os.PathLike[str], fmt: str | None = None, *, sep: str | None = None,
                 encoding: str | None = None, columns: Sequence[str] = ()) -> tuple[list[dict[str, Any]], str]:
    """Read a table into a list of row dicts, and the word for its unit ('line' or 'row',
    counted from 1 without the header) used in error messages.

    ``columns`` are the ones the caller needs: a CSV/TSV without them is an error naming the
    columns found (after trying other separators when ``sep`` is not given), a JSON line that
    repeats one of them is an error, and Parquet reads only them."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    fmt = detect_format(path, fmt)
    if fmt == "folder":
        raise DataError(f"{path}: is a folder; give a file (.txt, .csv, .tsv, .jsonl or .parquet)")
    if fmt == "jsonl":
        return _read_jsonl(path, encoding, columns), "line"
    if fmt == "txt":
        try:
            with open_text(path, encoding) as fh:
                return [{"text": line} for line in text_lines(fh, path, max_chars())], "line"
        except _READ_ERRORS as exc:
            raise read_error(path, exc) from exc
    if fmt == "parquet":
        return _read_parquet(path, columns), "row"
    import pandas as pd

    setup = prepare_delimited(path, fmt, sep, encoding, columns)
    if setup is None:
        return [], "row"
    try:
        with open_binary(path) as fh:  # decompressed here, its lines bounded as they are read
            frame = pd.read_csv(
                fh,
                sep=setup[0],
                dtype=str,
                keep_default_na=False,  # an empty cell is an empty string: skipped like any empty text
                encoding=setup[1],
                encoding_errors=REPLACE,
            )
    except DataError:
        raise
    except Exception as exc:  # pandas raises many types for malformed files
        raise delimited_error(path, fmt, exc) from exc
    return frame.to_dict(orient="records"), "row"


def inferred_classes(values: Iterable[Any]) -> list[str] | None:
    """Three or more distinct labels are the classes, sorted (by value where all are numbers:
    star ratings ``1 … 10``); two are left to :func:`_label_mapper`, which needs to know which
    one is the positive class."""
    seen = sorted({str(v).strip() for v in values if not _missing(v)} - {""})
    lowered = {v.lower() for v in seen}
    if len(seen) < 3 or any(lowered <= neg | pos for neg, pos in _KNOWN_PAIRS):  # true/True/no: two classes
        return None
    try:
        return sorted(seen, key=float)
    except ValueError:
        return seen


def check_class_name(name: str, what: str) -> None:
    """Refuse a class name (a label, a class folder, a name of ``--classes``) holding a
    character that steers a terminal: the name is printed by ``info``, ``evaluate`` and ``predict``."""
    char = control_character(name)
    if char:
        raise DataError(f"{what} {name!r} holds the control character {char}; class names cannot (a tab, a "
                        "line break, an escape or a bidi control would be printed into the terminal)")


def _label_mapper(values: Sequence[Any], classes: Sequence[str] | None, where: str):
    if classes is not None:
        names = tuple(str(c) for c in classes)
        for name in names:
            check_class_name(name, "class")
        if len(names) < 2 or len(set(names)) != len(names):
            raise DataError(f"classes must be two or more different names (for two: negative first), got "
                            f"{list(classes)}")
        return {name: i for i, name in enumerate(names)}, names
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


def _check_roles(path: Path, text_column: str, label_column: str, group_column: str | None) -> None:
    """One column cannot play two parts: a text column that is also the label trains a model
    that reads the answer (a "perfect" score that means nothing)."""
    if text_column == label_column:
        raise DataError(f"{path}: the text column and label column are both '{text_column}'; "
                        "choose another --text-column or --label-column")
    for role, name in (("text", text_column), ("label", label_column)):
        if group_column == name:
            raise DataError(f"{path}: the group column '{group_column}' is also the {role} column; "
                            "choose another --group-column")


def load_table(
    path: str | os.PathLike[str],
    text_column: str = "text",
    label_column: str = "label",
    classes: Sequence[str] | None = None,
    fmt: str | None = None,
    group_column: str | None = None,
    *,
    sep: str | None = None,
    encoding: str | None = None,
    model_classes: Sequence[str] | None = None,
    allow_one_class: bool = False,
) -> Dataset:
    """Load labelled data from CSV/TSV/JSONL/Parquet (optionally .gz/.bz2/.xz) or a
    folder-per-class directory.

    For evaluation: ``model_classes``, the class names of the model that scores the data,
    map labels (or class folders) that are all among them by them, negative first, whatever
    their names (``classes``, when given, wins); ``allow_one_class`` accepts data of one
    class (training needs both).

    ``group_column`` names a column whose rows belong together (e.g. the product or movie
    reviewed): splits keep each group on one side. ``sep`` is a CSV's separator (default ``,``
    for .csv and tab for .tsv, with ``;``, tab or ``|`` tried when the columns are not found);
    ``encoding`` the text encoding (default UTF-8, or UTF-16/32 when the file starts with a
    byte-order mark).

    Examples
    --------
    >>> ds = load_table("reviews.csv", text_column="review", label_column="sentiment",
    ...                 classes=["bad", "good"])      # doctest: +SKIP
    >>> ds = load_table("avis.csv", sep=";", encoding="cp1252")      # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir() and detect_format(path, fmt) == "folder":
        if group_column:
            raise DataError(f"{path}: --group-column needs a table (CSV/TSV/JSONL/Parquet), not class folders")
        return load_folder(path, classes, encoding=encoding, model_classes=model_classes,
                           allow_one_class=allow_one_class)
    _check_roles(path, text_column, label_column, group_column)
    columns = [text_column, label_column, *([group_column] if group_column else [])]
    undecoded = NotDecoded(path, encoding)
    rows, unit = read_records(path, fmt, sep=sep, encoding=encoding, columns=columns)
    if not rows:
        raise DataError(f"{path}: no rows")
    for column in columns:
        if column not in rows[0]:
            raise DataError(
                f"{path}: no '{column}' column (columns: {', '.join(map(str, rows[0].keys()))}); "
                "choose them with --text-column/--label-column/--group-column"
            )
    values = [r.get(label_column) for r in rows]
    for i, value in enumerate(values):
        if not _missing(value):
            check_class_name(str(value).strip(), f"{path}: {unit} {i + 1}: label")
    table, names, exact = _label_table(values, classes, model_classes, str(path))
    if len(names) > 2:
        log(f"{path}: {len(names)} classes: {', '.join(names)}")
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
        key = key if exact else key.lower()
        if key not in table:
            raise DataError(f"{where}: label '{label}' is not one of the classes {list(names)}")
        text = as_text(text, where, text_column, limit)
        if not text.strip():
            skipped += 1
            continue
        texts.append(text)
        labels.append(table[key])
        if group_column:
            groups.append(str(group))
    data = _finish(path, texts, labels, names, skipped, allow_one_class)
    data.groups = groups if group_column else None
    undecoded.count(texts)
    undecoded.report()  # once the file is read: a refused file ends with its one error line
    return data


def _label_table(values: Sequence[Any], classes: Sequence[str] | None, model_classes: Sequence[str] | None,
                 where: str) -> tuple[dict[str, int], tuple[str, ...], bool]:
    """Label → class index, the class names, and whether the labels are looked up as they are
    (else lowercased: 0/1, true/false, neg/pos). ``classes`` win; then the model's classes
    where every label is one of them (:func:`match_classes`); else the labels' own classes."""
    if classes is None and model_classes is not None:
        seen = {str(v).strip() for v in values if not _missing(v)} - {""}
        table, unknown = match_classes(seen, model_classes)
        if seen and not unknown:
            return table, tuple(str(c) for c in model_classes), True
        if unknown and len(model_classes) > 2:  # no generic pair to fall back on: never the two-class advice
            raise unknown_labels(where, unknown, model_classes)
    classes = classes or inferred_classes(values)
    table, names = _label_mapper(values, classes, where)
    return table, names, classes is not None


def _number(name: str) -> float | None:
    try:
        value = float(name)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def match_classes(labels: Iterable[str], model_classes: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """Each label → the index of the model's class of that name: the same name, else the same
    number (``5``, ``5.0`` and ``05`` are class ``5``), else the one name that differs only in
    case; and the labels that match no class (sorted).

    >>> match_classes(["5.0", "1", "Neutral", "2"], ["1", "3", "5", "neutral"])
    ({'1': 0, '5.0': 2, 'Neutral': 3}, ['2'])
    """
    names = [str(c) for c in model_classes]
    index = {name: i for i, name in enumerate(names)}
    values = [_number(name) for name in names]
    table, unknown = {}, []
    for label in sorted(set(labels)):
        value = _number(label)
        by_value = [i for i, v in enumerate(values) if value is not None and v == value]
        by_case = [i for i, name in enumerate(names) if name.lower() == label.lower()]
        found = index.get(label, by_value[0] if len(by_value) == 1 else by_case[0] if len(by_case) == 1 else None)
        if found is None:
            unknown.append(label)
        else:
            table[label] = found
    return table, unknown


def unknown_labels(where: str, unknown: Sequence[str], model_classes: Sequence[str]) -> DataError:
    """The one line that refuses labels the model does not know."""
    shown = ", ".join(f"'{label}'" for label in list(unknown)[:10]) + (", …" if len(unknown) > 10 else "")
    return DataError(f"{where}: label{'s' if len(unknown) > 1 else ''} {shown} "
                     f"{'are not classes' if len(unknown) > 1 else 'is not a class'} of the model (its classes: "
                     f"{', '.join(map(str, model_classes))}); evaluate on data labelled with the model's classes "
                     "(some of them will do), or relabel the data")


def align_to_model(data: Dataset, model_classes: Sequence[str]) -> Dataset:
    """``data`` with its labels as indices of the model's classes, matched by name
    (:func:`match_classes`). A two-class model also takes two classes of other names as
    negative first (a generic pair such as 0/1, or names given with ``--classes``); labels
    the model does not know are refused (:class:`DataError`)."""
    model = tuple(str(c) for c in model_classes)
    if data.class_names == model:
        return data
    table, unknown = match_classes(data.class_names, model)
    if not unknown:
        index = np.array([table[name] for name in data.class_names], dtype=np.int16)
        labels = np.where(data.labels >= 0, index[np.maximum(data.labels, 0)], data.labels)
        return dataclasses.replace(data, labels=labels, class_names=model)
    if len(model) == 2 and len(data.class_names) == 2 and all(table.get(name, side) == side
                                                              for side, name in enumerate(data.class_names)):
        return dataclasses.replace(data, class_names=model)  # not where a name says the other side
    raise unknown_labels(data.name, unknown, model)


def _finish(path: Path, texts: list[str], labels: list[int], names: tuple[str, ...], skipped: int,
            allow_one_class: bool = False) -> Dataset:
    if skipped:
        log(f"{path}: skipped {skipped} empty text(s)")
    if not texts:
        raise DataError(f"{path}: no non-empty texts")
    present = set(labels)
    if len(present) < 2 and not allow_one_class:
        only = names[next(iter(present))]
        raise DataError(f"{path}: only one class ('{only}') is present; training needs two or more")
    labels_array = np.array(labels, dtype=np.int16)
    return Dataset(texts=texts, labels=labels_array, name=path.name, class_names=names, skipped=skipped)


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"{folder}: cannot read the folder ({_reason(exc)})") from exc


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _check_link(link: Path, own: str, others: dict[str, Path]) -> None:
    """Refuse a link whose target is in another class folder, or holds one (``..``): its texts
    would be read once per class, with both labels. Links within the own class folder, or out
    of the dataset folder, are fine."""
    target = Path(os.path.realpath(link))
    for name, other in others.items():
        if _within(target, other) or _within(other, target):
            raise DataError(f"{link}: symbolic link to '{os.readlink(link)}' leads into the class folder {name}/, "
                            f"whose texts would also count as '{own}'; remove the link")


def _class_files(folder: Path, others: dict[str, Path] | None = None,
                 not_txt: list[Path] | None = None) -> list[Path]:
    """The ``.txt`` files under a class folder, at any depth, in path order. Hidden entries are
    skipped and a link back up the tree is followed once; a dangling link, a link into one of
    the ``others`` class folders (resolved paths by name), an entry that cannot be read or a
    ``.txt`` that is not a regular file (a pipe would block) is an error naming it. Other files
    are skipped, and added to ``not_txt``."""
    files: list[Path] = []
    seen = {(st.st_dev, st.st_ino) for st in [folder.stat()]}

    def walk(directory: Path) -> None:
        for entry in _entries(directory):
            where = Path(entry.path)
            try:
                info = os.stat(where)  # follows links
            except OSError as exc:
                if entry.is_symlink():
                    raise DataError(f"{where}: broken symbolic link to '{os.readlink(where)}' ({_reason(exc)}); "
                                    "remove it or restore what it points to") from exc
                raise DataError(f"{where}: cannot read ({_reason(exc)})") from exc
            if others and entry.is_symlink():
                _check_link(where, folder.name, others)
            if stat.S_ISDIR(info.st_mode):
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    walk(where)
            elif entry.name.lower().endswith(".txt"):
                if not stat.S_ISREG(info.st_mode):
                    raise DataError(f"{where}: not a regular file (a pipe, socket or device); "
                                    "remove it from the class folder")
                files.append(where)
            elif not_txt is not None:
                not_txt.append(where)

    walk(folder)
    return files


def _model_folders(path: Path, subdirs: list[str], model_classes: Sequence[str]) -> dict[str, int] | None:
    """Class folder → the index of the model's class it names (:func:`match_classes`; an
    ``unsup/`` folder is skipped), when every folder names one; else None for a two-class
    model (its generic pairs, neg/pos…, are read as usual), and an error for more classes."""
    labelled = [d for d in subdirs if d.lower() not in _UNLABELLED_FOLDERS or d in model_classes]
    matched, unknown = match_classes(labelled, model_classes)
    if labelled and not unknown:
        return {d: matched[d] for d in labelled}
    if unknown and len(model_classes) > 2:
        raise unknown_labels(str(path), unknown, model_classes)
    return None


def _class_folders(path: Path, subdirs: list[str], classes: Sequence[str] | None
                   ) -> tuple[dict[str, int], tuple[str, ...]]:
    """Class folder → class index, and the class names: ``classes``, else the folders' own."""
    if classes is None and len(subdirs) > 2:
        unlabelled = [d for d in subdirs if d.lower() in _UNLABELLED_FOLDERS]
        if unlabelled:
            log(f"{path}: skipping {', '.join(f'{d}/' for d in unlabelled)} (unlabelled texts)")
            subdirs = [d for d in subdirs if d not in unlabelled]
        classes = inferred_classes(subdirs)
        if classes is not None:
            log(f"{path}: {len(classes)} class folders: {', '.join(classes)}")
    if classes is None:
        table, names = _label_mapper(subdirs, None, str(path))
        chosen = {d: table[d.lower()] for d in subdirs if d.lower() in table}
    else:
        table, names = _label_mapper([], classes, str(path))
        extra = [d for d in subdirs if d not in table]
        if extra:
            raise DataError(
                f"{path}: sub-folder(s) {', '.join(f'{d}/' for d in extra)} {'is' if len(extra) == 1 else 'are'} "
                f"not one of the declared classes {list(names)}; move {'it' if len(extra) == 1 else 'them'} out, "
                "or point --data at a folder that holds only the class folders")
        chosen = {d: table[d] for d in subdirs if d in table}
    return chosen, names


def load_folder(path: str | os.PathLike[str], classes: Sequence[str] | None = None,
                encoding: str | None = None, model_classes: Sequence[str] | None = None,
                allow_one_class: bool = False) -> Dataset:
    """One sub-folder per class (like ``aclImdb/train/{neg,pos}``), one ``.txt`` file per text,
    at any depth below the class folder (``pos/2019/x.txt`` is positive)."""
    path = Path(path)
    if encoding:
        encoding = resolve_encoding(path, encoding)
    subdirs = [e.name for e in _entries(path) if e.is_dir()]
    for name in subdirs:
        check_class_name(name, f"{path}: class folder")
    matched = _model_folders(path, subdirs, model_classes) if classes is None and model_classes else None
    if matched is not None:
        chosen, names = matched, tuple(str(c) for c in model_classes or ())
    else:
        chosen, names = _class_folders(path, subdirs, classes)
    if len(chosen) < 2 and not (allow_one_class and len(chosen) == 1):
        raise DataError(f"{path}: expected two class sub-folders or more (e.g. neg/ and pos/), found {subdirs}")
    texts, labels, skipped, limit, counts = [], [], 0, max_chars(), {}
    resolved = {sub: Path(os.path.realpath(path / sub)) for sub in chosen}
    not_txt: list[Path] = []
    undecoded: list[Path] = []  # files read without --encoding that held bytes not UTF-8
    for sub, label in chosen.items():
        others = {name: where for name, where in resolved.items() if name != sub}
        if (path / sub).is_symlink():  # neg -> pos: one folder, both labels
            _check_link(path / sub, sub, others)
        files = _class_files(path / sub, others, not_txt)
        counts[sub] = len(files)
        for file in files:
            try:
                raw = file.read_bytes()
            except OSError as exc:
                raise DataError(f"{file}: cannot read ({_reason(exc)})") from exc
            before = replaced_count()
            text = check_length(_decode(raw, encoding), str(file), limit)
            if not encoding and replaced_count() > before:
                undecoded.append(file)
            if not text.strip():
                skipped += 1
                continue
            texts.append(text)
            labels.append(label)
    log(f"{path}: read {sum(counts.values()):,} files: " + ", ".join(f"{d} {n:,}" for d, n in counts.items()))
    if not_txt:
        log(f"{path}: skipped {len(not_txt):,} file(s) that are not .txt (e.g. {not_txt[0].relative_to(path)})")
    data = _finish(path, texts, labels, names, skipped, allow_one_class)
    if undecoded:
        warn(f"{path}: {len(undecoded):,} text(s) hold bytes that are not UTF-8 (replaced by U+FFFD), "
             f"e.g. {undecoded[0].relative_to(path)}; if the files are not UTF-8, give --encoding, e.g. cp1252")
    return data


def read_texts(path: str | os.PathLike[str], text_column: str = "text", fmt: str | None = None, *,
               sep: str | None = None, encoding: str | None = None) -> list[str]:
    """Texts to score, from a .txt (one per line), CSV, TSV, JSONL or Parquet file (optionally
    compressed); a missing value is the empty text, a value that is not a string an error."""
    path = Path(path)
    undecoded = NotDecoded(path, encoding)
    rows, unit = read_records(path, fmt, sep=sep, encoding=encoding, columns=[text_column])
    texts, limit = [], max_chars()
    for i, row in enumerate(rows):
        if text_column not in row:
            raise DataError(f"{path}: {unit} {i + 1} has no '{text_column}' field (choose it with --text-column)")
        value = row[text_column]
        texts.append("" if _missing(value) else as_text(value, f"{path}: {unit} {i + 1}", text_column, limit))
    undecoded.count(texts)
    undecoded.report()
    return texts
