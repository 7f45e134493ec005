"""The Large Movie Review Dataset (Maas et al. 2011), read from the official layout.

Reads either the ``aclImdb_v1.tar.gz`` archive itself, streamed (nothing is unpacked), or an
unpacked ``aclImdb/`` directory. Where the data comes from, in order: an explicit path,
``$REVIEWSENSE_IMDB``, the copy in the user cache, a download from the official URL.
"""

from __future__ import annotations

import dataclasses
import gzip
import heapq
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..progress import bar, log
from .dataset import UNLABELLED, Dataset
from .download import cache_dir, download
from .files import max_line_bytes

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
ARCHIVE_NAME = "aclImdb_v1.tar.gz"
SPLITS = ("train", "test", "unsup")
CLASS_NAMES = ("negative", "positive")
RATINGS = (1, 2, 3, 4, 7, 8, 9, 10)  # the star ratings of IMDB's labelled reviews (neg ≤ 4, pos ≥ 7)
RATING_CLASS_NAMES = tuple(str(r) for r in RATINGS)
LABEL_COLUMNS = ("label", "rating")  # what --label-column may name for IMDB

_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")
_URLS = re.compile(r"(?:^|/)aclImdb/(train|test)/urls_(pos|neg|unsup)\.txt$")
_MOVIE = re.compile(r"tt\d+")
_LABEL = {"pos": 1, "neg": 0, "unsup": UNLABELLED}
_EXPECTED = {"train": 25_000, "test": 25_000, "unsup": 50_000}


def resolve_source(path: str | os.PathLike[str] | None = None, allow_download: bool = True) -> Path:
    """Find the IMDB data: ``path``, then ``$REVIEWSENSE_IMDB``, the cache, a download."""
    for candidate, origin in ((path, "--data"), (os.environ.get("REVIEWSENSE_IMDB"), "REVIEWSENSE_IMDB")):
        if candidate:
            p = Path(candidate).expanduser()
            if not p.exists():
                raise DataError(f"{origin}: {p} does not exist")
            return p
    cached = cache_dir() / ARCHIVE_NAME
    if cached.exists():
        return cached
    if not allow_download:
        raise DataError(_offline_message("downloads are disabled"))
    try:
        return download(URL, cached, sha256=SHA256, what="IMDB archive")
    except DataError as exc:
        raise DataError(_offline_message(str(exc))) from exc


def _offline_message(reason: str) -> str:
    return (
        f"IMDB data not found and could not be downloaded ({reason}). Supply a copy of "
        f"{ARCHIVE_NAME} (or the unpacked aclImdb/ folder) with --data PATH or "
        f"REVIEWSENSE_IMDB=PATH, or put it at {cache_dir() / ARCHIVE_NAME}"
    )


def is_imdb_source(path: str | os.PathLike[str]) -> bool:
    """True for an archive, or a folder that is (or contains) the aclImdb layout."""
    p = Path(path)
    if p.is_file():
        return p.name.endswith((".tar.gz", ".tgz", ".tar"))
    return (p / "train" / "pos").is_dir() or (p / "aclImdb" / "train" / "pos").is_dir()


Member = tuple[str, Callable[[], bytes]]  # a file's name in the archive, and how to read its bytes (call it at once)


def _iter_archive(path: Path) -> Iterator[Member]:
    largest = max_line_bytes()
    try:
        # GzipFile (unlike tarfile's own "r|gz") checks the stream's end and CRC, so a
        # truncated or corrupted download is an error rather than silently fewer reviews.
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    if member.isfile() and member.size > largest:  # a bomb: refused before it is inflated
                        raise DataError(f"{path}: {member.name} is {member.size:,} bytes, over the {largest:,} of "
                                        "the longest text allowed (raise the limit with REVIEWSENSE_MAX_CHARS)")
                    # Regular files only: links and devices are never followed, and nothing is
                    # written to disk, so path-traversal member names cannot escape anywhere.
                    if member.isfile() and ".." not in member.name.split("/"):
                        fh = tar.extractfile(member)
                        if fh is not None:
                            yield member.name, fh.read
            # tarfile stops at the end-of-archive blocks; read on so that gzip reaches (and
            # verifies) its trailer — a file cut short by a few bytes is refused too.
            while stream.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{path}: not a readable IMDB archive ({exc or type(exc).__name__})") from exc


def _iter_directory(path: Path) -> Iterator[Member]:
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    for split, folder in (("train", "pos"), ("train", "neg"), ("train", "unsup"), ("test", "pos"), ("test", "neg")):
        sub = root / split / folder
        if not sub.is_dir():
            continue
        for file in sorted(sub.iterdir()):
            if file.is_file() and not file.is_symlink():
                yield f"aclImdb/{split}/{folder}/{file.name}", file.read_bytes
    for split in ("train", "test"):
        for file in sorted((root / split).glob("urls_*.txt")) if (root / split).is_dir() else ():
            if file.is_file() and not file.is_symlink():
                yield f"aclImdb/{split}/{file.name}", file.read_bytes


def _split_of(top: str, folder: str) -> str:
    return "unsup" if folder == "unsup" else top


def _groups(found: list[tuple[int, int, int, str]], split: str,
            movies: dict[tuple[str, str], list[str]]) -> list[str] | None:
    """The movie of each review, or None unless every review's is known."""
    top = "train" if split == "unsup" else split
    out = []
    for label, review_id, _, _ in found:
        folder = "pos" if label == 1 else "neg" if label == 0 else "unsup"
        urls = movies.get((top, folder))
        if urls is None or review_id >= len(urls):
            return None
        out.append(urls[review_id])
    return out


def read_imdb(path: str | os.PathLike[str], splits: Iterable[str] = ("train", "test")) -> dict[str, Dataset]:
    """Read the requested splits (``train``, ``test``, ``unsup``) of an IMDB archive or folder.

    Returns one :class:`Dataset` per split, rows sorted by (label, review id), with ``ids``
    and the star ``ratings`` parsed from ``<id>_<rating>.txt``, and ``groups``: the IMDb movie
    of each review (``tt…``, from ``urls_*.txt``, line N = review N) where the archive has
    them, so validation can hold out whole movies like the test split does. Texts are decoded
    as UTF-8; undecodable bytes become U+FFFD rather than failing.
    """
    path = Path(path)
    wanted = set(splits)
    unknown = wanted - set(SPLITS)
    if unknown:
        raise DataError(f"unknown IMDB split(s) {sorted(unknown)}; choose from {SPLITS}")
    rows: dict[str, list[tuple[int, int, int, str]]] = {s: [] for s in wanted}
    movies: dict[tuple[str, str], list[str]] = {}
    source = _iter_archive(path) if path.is_file() else _iter_directory(path)
    total = sum(_EXPECTED[s] for s in wanted)
    for name, read in bar(source, desc=f"reading {path.name}", unit=" files", total=total + 6):
        match = _MEMBER.search(name)
        if not match:
            urls = _URLS.search(name)
            if urls:
                lines = read().decode("utf-8", errors="replace").splitlines()
                movies[(urls.group(1), urls.group(2))] = [m.group(0) if (m := _MOVIE.search(u)) else u.strip()
                                                          for u in lines]
            continue
        top, folder, review_id, rating = match.groups()
        split = _split_of(top, folder)
        if split in rows:
            rows[split].append((_LABEL[folder], int(review_id), int(rating), _decode(read())))
    out: dict[str, Dataset] = {}
    for split in sorted(wanted, key=SPLITS.index):
        found = rows[split]
        if not found:
            raise DataError(f"{path}: no aclImdb/{split} reviews found (is this the IMDB archive?)")
        if split != "unsup" and len({r[0] for r in found}) < 2:
            raise DataError(f"{path}: aclImdb/{split} has only one class (pos/ or neg/ is missing)")
        if len(found) != _EXPECTED[split]:
            log(f"note: {path.name} has {len(found):,} {split} reviews (the official archive has {_EXPECTED[split]:,})")
        found.sort(key=lambda r: (r[0], r[1]))
        groups = _groups(found, split, movies)
        if groups is None and split == "train":
            log(f"note: {path.name} lacks complete aclImdb/train/urls_*.txt; validation is held out at random, "
                "not by movie")
        out[split] = _dataset(found, split, groups)
    return out


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _dataset(found: list[tuple[int, int, int, str]], split: str, groups: list[str] | None) -> Dataset:
    return Dataset(
        groups=groups,
        texts=[r[3] for r in found],
        labels=np.array([r[0] for r in found], dtype=np.int8),
        name=f"imdb:{split}",
        ids=[f"{split}/{'pos' if r[0] == 1 else 'neg' if r[0] == 0 else 'unsup'}/{r[1]}" for r in found],
        ratings=np.array([r[2] for r in found], dtype=np.int8),
        class_names=CLASS_NAMES,
    )


def read_imdb_head(path: str | os.PathLike[str], split: str, n: int) -> Dataset:
    """The first ``n`` reviews of one split in :func:`read_imdb`'s order (by label, then review
    id), read as a stream that stops as soon as they are known: the smallest label's reviews
    ``0 … n-1`` settle it (ids are unique per folder), so the official archive is read only up to
    them, not whole. Without ``groups`` (the movie links are not needed to look at reviews)."""
    path = Path(path)
    if split not in SPLITS:
        raise DataError(f"unknown IMDB split {split!r}; choose from {SPLITS}")
    first = _LABEL["unsup"] if split == "unsup" else _LABEL["neg"]
    best: list[tuple[int, int, int, bytes]] = []  # a max-heap (keys negated) of the n smallest (label, id)
    for name, read in _iter_archive(path) if path.is_file() else _iter_directory(path):
        match = _MEMBER.search(name)
        if not match or _split_of(match.group(1), match.group(2)) != split:
            continue
        label, review_id = _LABEL[match.group(2)], int(match.group(3))
        if len(best) == n and (label, review_id) > (-best[0][0], -best[0][1]):
            continue
        item = (-label, -review_id, int(match.group(4)), read())
        heapq.heappush(best, item) if len(best) < n else heapq.heapreplace(best, item)
        if len(best) == n and (-best[0][0], -best[0][1]) == (first, n - 1):
            break  # the n smallest keys are all ≥ (first, 0) and ≤ (first, n-1): they are settled
    if not best:
        raise DataError(f"{path}: no aclImdb/{split} reviews found (is this the IMDB archive?)")
    found = sorted((-lab, -rid, rating, _decode(raw)) for lab, rid, rating, raw in best)
    return _dataset(found, split, None)


def load_imdb(
    path: str | os.PathLike[str] | None = None,
    splits: Iterable[str] = ("train", "test"),
    allow_download: bool = True,
) -> dict[str, Dataset]:
    """Resolve the IMDB source (see :func:`resolve_source`) and read its splits.

    Examples
    --------
    >>> data = load_imdb("aclImdb_v1.tar.gz")            # doctest: +SKIP
    >>> len(data["train"]), len(data["test"])             # doctest: +SKIP
    (25000, 25000)
    """
    return read_imdb(resolve_source(path, allow_download=allow_download), splits)


def by_rating(ds: Dataset) -> Dataset:
    """The same reviews labelled with their star rating: 8 classes, ``class_names``
    ``("1", "2", "3", "4", "7", "8", "9", "10")``, each labelled row's label the index of its
    rating there. Unlabelled rows (the unsup split) stay unlabelled."""
    if ds.ratings is None:
        raise DataError(f"{ds.name}: no star ratings to label the reviews with")
    ratings = np.asarray(ds.ratings, dtype=np.int64)
    labelled = ds.labels >= 0
    index = np.full(max(RATINGS) + 1, -1, dtype=np.int16)
    index[list(RATINGS)] = np.arange(len(RATINGS))
    known = (ratings >= 0) & (ratings < len(index))
    labels = np.where(known, index[np.where(known, ratings, 0)], -1).astype(np.int16)
    bad = labelled & (labels < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        where = ds.ids[row] if ds.ids else f"row {row}"
        raise DataError(f"{ds.name}: {where} has star rating {int(ratings[row])}, not one of IMDB's "
                        f"{', '.join(RATING_CLASS_NAMES)}")
    return dataclasses.replace(ds, labels=np.where(labelled, labels, UNLABELLED), class_names=RATING_CLASS_NAMES)


def check_label_column(label_column: str) -> None:
    """Refuse a ``--label-column`` IMDB does not have (before its 100,000 files are read)."""
    if label_column not in LABEL_COLUMNS:
        raise DataError(f"--label-column {label_column!r} does not apply to IMDB: choose 'label' "
                        "(negative/positive) or 'rating' (the star ratings 1-4 and 7-10, 8 classes)")


def with_labels(ds: Dataset, label_column: str) -> Dataset:
    """IMDB reviews labelled as ``label_column`` says: ``label`` (negative/positive, as read)
    or ``rating`` (:func:`by_rating`); anything else is refused."""
    check_label_column(label_column)
    return by_rating(ds) if label_column == "rating" else ds
