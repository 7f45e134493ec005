"""Shared fixtures: an isolated environment, a toy sentiment corpus, a fake IMDB archive.

Nothing here touches the network, the real user cache or ../shared.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import socket
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

# --------------------------------------------------------------------------------------
# isolation
# --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Quiet output, a private cache and no IMDB location inherited from the caller."""
    monkeypatch.setenv("REVIEWSENSE_QUIET", "1")
    monkeypatch.setenv("REVIEWSENSE_CACHE_DIR", str(tmp_path / "_cache"))
    monkeypatch.delenv("REVIEWSENSE_IMDB", raising=False)


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open an internet socket fails the test loudly; only this machine's
    loopback (a server a test started itself) may be reached."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise RuntimeError(f"tests must not use the network (tried to connect to {address!r})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


# --------------------------------------------------------------------------------------
# toy sentiment corpus
# --------------------------------------------------------------------------------------

POSITIVE = ["great", "excellent", "wonderful", "superb", "loved", "brilliant", "delightful"]
NEGATIVE = ["awful", "terrible", "boring", "worst", "hated", "dreadful", "dull"]
FILLER = ["the", "movie", "film", "plot", "actor", "scene", "was", "and", "it", "story", "a", "of"]


def make_toy_corpus(n: int = 200, seed: int = 0, signal: int = 2, filler: int = 8) -> tuple[list[str], list[int]]:
    """``n`` short texts, alternating negative/positive: filler words plus ``signal``
    sentiment words of the text's class. A bag-of-words model learns it almost perfectly."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(filler)]
        words += [rng.choice(POSITIVE if label else NEGATIVE) for _ in range(signal)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture
def toy_corpus() -> Callable[..., tuple[list[str], list[int]]]:
    return make_toy_corpus


SENTIMENT = (["great", "wonderful", "loved", "superb"], ["awful", "boring", "hated", "dull"],
             ["the", "film", "plot", "was", "acting", "and", "a", "story"])


def sentiment_dataset(n: int, seed: int, words=SENTIMENT, filler_count: int = 10, noise: float = 0.15):
    """A labelled :class:`Dataset` of ``n`` texts: ``filler_count`` filler words and two
    sentiment words of the label, shuffled; a share ``noise`` of texts also gets two words of
    the other side (label noise keeps probabilities away from 0 and 1)."""
    from reviewsense.data.dataset import Dataset

    positive, negative, filler = words
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = []
    for y in labels:
        chosen = list(rng.choice(filler, filler_count)) + list(rng.choice(positive if y else negative, 2))
        if noise and rng.random() < noise:
            chosen += list(rng.choice(negative if y else positive, 2))
        rng.shuffle(chosen)
        texts.append(" ".join(chosen))
    return Dataset(texts, labels)


@pytest.fixture(scope="session")
def sentiment_corpus() -> Callable[..., object]:
    """``sentiment_corpus(n, seed, words=..., filler_count=10, noise=0.15)`` → Dataset."""
    return sentiment_dataset


@pytest.fixture
def toy_dataset():
    from reviewsense.data.dataset import Dataset

    def build(n: int = 200, seed: int = 0, name: str = "toy"):
        texts, labels = make_toy_corpus(n, seed)
        return Dataset(texts=texts, labels=np.array(labels), name=name)

    return build


def write_toy_csv(path: Path, n: int = 300, seed: int = 0) -> Path:
    texts, labels = make_toy_corpus(n, seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
    return path


@pytest.fixture
def toy_csv(tmp_path) -> Path:
    return write_toy_csv(tmp_path / "toy.csv")


@pytest.fixture(scope="session")
def toy_csv_writer() -> Callable[..., Path]:
    """``write(path, n=300, seed=0)`` writes a toy corpus CSV (columns text,label)."""
    return write_toy_csv


@pytest.fixture(scope="session")
def toy_run(toy_csv_writer) -> Callable[..., tuple[Path, Path]]:
    """``toy_run(root, args)``: ``reviewsense train ARGS`` in this process on a toy corpus CSV
    written into ``root``, quiet and with its own cache; returns (data file, run folder)."""
    from reviewsense.cli import main

    def run(root: Path, args: list[str]) -> tuple[Path, Path]:
        data = toy_csv_writer(root / "toy.csv")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("REVIEWSENSE_QUIET", "1")
            mp.setenv("REVIEWSENSE_CACHE_DIR", str(root / "cache"))
            assert main(["train", "--data", str(data), "--run-dir", str(root / "run"), *args]) == 0
        return data, root / "run"

    return run


FAST_FIT = {"epochs": 12, "batch_size": 32, "learning_rate": 0.01, "seed": 0, "threads": 1}


@pytest.fixture(scope="session")
def trained():
    """A seed model trained once on the toy corpus: (predictor, history, train, validation)."""
    from reviewsense.data.dataset import Dataset, train_validation_split
    from reviewsense.models.seed import SeedParams, fit
    from reviewsense.training.torch_loop import FitOptions

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REVIEWSENSE_QUIET", "1")
        texts, labels = make_toy_corpus(300, seed=1)
        data = Dataset(texts=texts, labels=np.array(labels), name="toy")
        train, validation = train_validation_split(data, 0.2, seed=0)
        predictor, history = fit(train, validation, SeedParams(embedding_dim=16, hidden_units=8),
                                 FitOptions(**FAST_FIT))
    return predictor, history, train, validation


# --------------------------------------------------------------------------------------
# a fake IMDB archive (aclImdb_v1.tar.gz layout) and the same as an unpacked folder
# --------------------------------------------------------------------------------------

IMDB_REVIEWS: dict[str, bytes] = {
    "aclImdb/train/pos/3_9.txt": b"A wonderful film.<br />Loved it!",
    "aclImdb/train/pos/10_7.txt": b"Great acting and a great story.",
    "aclImdb/train/pos/2_8.txt": b"Superb caf\xe9 scene, not valid UTF-8.",
    "aclImdb/train/neg/1_2.txt": b"Boring and dull. The worst.",
    "aclImdb/train/neg/4_1.txt": b"Awful, simply awful.",
    "aclImdb/train/neg/12_3.txt": b"I hated every minute of it.",
    "aclImdb/train/unsup/5_0.txt": b"Saw it on a Tuesday.",
    "aclImdb/train/unsup/6_0.txt": b"The popcorn was salty.",
    "aclImdb/test/pos/0_10.txt": b"Brilliant from start to finish.",
    "aclImdb/test/pos/7_9.txt": b"Delightful and moving.",
    "aclImdb/test/neg/8_1.txt": b"Terrible script.",
    "aclImdb/test/neg/9_4.txt": b"Dreadful pacing, dull lead.",
}

IMDB_EXTRAS: dict[str, bytes] = {
    "aclImdb/README": b"Large Movie Review Dataset v1.0 (fake)\n",
    "aclImdb/imdb.vocab": b"the\nand\n",
    "aclImdb/train/urls_pos.txt": b"http://www.imdb.com/title/tt0000001/usercomments\n",
    "aclImdb/train/urls_neg.txt": b"http://www.imdb.com/title/tt0000002/usercomments\n",
    "aclImdb/test/urls_pos.txt": b"http://www.imdb.com/title/tt0000003/usercomments\n",
    "aclImdb/train/labeledBow.feat": b"9 0:1 1:2\n",
}

# Only in the archive: a path-traversal member and a symlink; both must be ignored.
IMDB_EVIL: dict[str, bytes] = {
    "../aclImdb/train/pos/99_10.txt": b"escaped the archive",
    "x/../aclImdb/train/neg/98_1.txt": b"dot-dot inside the path",
}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def write_imdb_archive(path: Path, reviews: dict[str, bytes] | None = None, evil: bool = True) -> Path:
    """A deterministic gzip'd tar in the official layout (byte-identical on every call)."""
    reviews = IMDB_REVIEWS if reviews is None else reviews
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in ("aclImdb/README", "aclImdb/imdb.vocab"):
            _add(tar, name, IMDB_EXTRAS[name])
        for name, data in reviews.items():
            _add(tar, name, data)
        for name, data in IMDB_EXTRAS.items():
            if name.startswith("aclImdb/train/") or name.startswith("aclImdb/test/"):
                _add(tar, name, data)
        if evil:
            for name, data in IMDB_EVIL.items():
                _add(tar, name, data)
            link = tarfile.TarInfo("aclImdb/train/pos/97_10.txt")
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            tar.addfile(link)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(buffer.getvalue())
    return path


def write_imdb_folder(root: Path, reviews: dict[str, bytes] | None = None) -> Path:
    """The same reviews unpacked under ``root/aclImdb``; returns ``root``."""
    reviews = IMDB_REVIEWS if reviews is None else reviews
    for name, data in {**IMDB_EXTRAS, **reviews}.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


@pytest.fixture
def imdb_archive(tmp_path) -> Path:
    return write_imdb_archive(tmp_path / "aclImdb_v1.tar.gz")


@pytest.fixture
def imdb_folder(tmp_path) -> Path:
    return write_imdb_folder(tmp_path / "unpacked")


@pytest.fixture(scope="session")
def imdb_writer():
    """Factories for tests that need a modified archive or folder."""
    return {"archive": write_imdb_archive, "folder": write_imdb_folder, "reviews": IMDB_REVIEWS}


@pytest.fixture(scope="session")
def tiny_encoder_writer() -> Callable[..., Path]:
    """``write(folder, **options)``: a tiny random BERT ``save_pretrained`` folder whose vocabulary
    holds the toy corpora's words (tests/tiny_encoder.py); skipped without transformers."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_encoder import write_tiny_encoder  # tests/tiny_encoder.py

    words = {*POSITIVE, *NEGATIVE, *FILLER, *(w for group in SENTIMENT for w in group)}
    return lambda folder, **options: write_tiny_encoder(folder, words, **options)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory, tiny_encoder_writer) -> Path:
    """A tiny random BERT ``save_pretrained`` folder (with dropout, like a real one)."""
    return tiny_encoder_writer(tmp_path_factory.mktemp("encoder") / "tiny-bert")
