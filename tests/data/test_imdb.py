"""Reading the IMDB archive/folder, finding it (resolve_source) and downloading it."""

from __future__ import annotations

import hashlib
import http.client
import urllib.request

import numpy as np
import pytest

from reviewsense.data import imdb
from reviewsense.data.download import download
from reviewsense.data.imdb import is_imdb_source, load_imdb, read_imdb, resolve_source
from reviewsense.errors import DataError

ALL = ("train", "test", "unsup")


def _assert_same(a, b):
    assert a.texts == b.texts
    assert a.ids == b.ids
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.ratings, b.ratings)
    assert a.class_names == b.class_names


def test_archive_and_folder_give_the_same_data(imdb_archive, imdb_folder):
    from_archive = read_imdb(imdb_archive, ALL)
    from_folder = read_imdb(imdb_folder, ALL)
    assert set(from_archive) == set(from_folder) == set(ALL)
    for split in ALL:
        _assert_same(from_archive[split], from_folder[split])


def test_folder_can_be_given_as_the_aclimdb_directory_itself(imdb_folder):
    _assert_same(read_imdb(imdb_folder / "aclImdb")["train"], read_imdb(imdb_folder)["train"])


def test_labels_ids_and_ratings_are_parsed_and_rows_sorted(imdb_archive):
    data = read_imdb(imdb_archive, ALL)
    train = data["train"]
    # negatives first, then positives; review ids in numeric (not string) order
    assert train.ids == ["train/neg/1", "train/neg/4", "train/neg/12",
                         "train/pos/2", "train/pos/3", "train/pos/10"]
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert train.ratings.tolist() == [2, 1, 3, 8, 9, 7]
    assert train.texts[train.ids.index("train/pos/3")] == "A wonderful film.<br />Loved it!"
    assert train.class_names == ("negative", "positive")
    assert train.labelled

    test = data["test"]
    assert test.ids == ["test/neg/8", "test/neg/9", "test/pos/0", "test/pos/7"]
    assert test.labels.tolist() == [0, 0, 1, 1]
    assert test.ratings.tolist() == [1, 4, 10, 9]

    unsup = data["unsup"]
    assert unsup.labels.tolist() == [-1, -1]
    assert unsup.ratings.tolist() == [0, 0]
    assert [i.rsplit("/", 1)[1] for i in unsup.ids] == ["5", "6"]
    assert not unsup.labelled


def test_default_splits_are_train_and_test(imdb_archive):
    assert set(read_imdb(imdb_archive)) == {"train", "test"}
    assert set(load_imdb(imdb_archive, allow_download=False)) == {"train", "test"}


def test_invalid_utf8_becomes_replacement_character(imdb_archive):
    train = read_imdb(imdb_archive)["train"]
    text = train.texts[train.ids.index("train/pos/2")]
    assert text == "Superb caf\ufffd scene, not valid UTF-8."


def test_traversal_and_symlink_members_are_ignored(imdb_archive):
    train = read_imdb(imdb_archive)["train"]
    ids = {i.rsplit("/", 1)[1] for i in train.ids}
    assert not ids & {"97", "98", "99"}
    assert len(train) == 6
    assert "escaped the archive" not in train.texts


def test_unknown_split_is_refused(imdb_archive):
    with pytest.raises(DataError, match="unknown IMDB split"):
        read_imdb(imdb_archive, ["train", "validation"])


@pytest.mark.parametrize("kind", ["archive", "folder"])
def test_missing_test_split_is_a_data_error(tmp_path, imdb_writer, kind):
    reviews = {k: v for k, v in imdb_writer["reviews"].items() if "/test/" not in k}
    target = tmp_path / ("a.tar.gz" if kind == "archive" else "unpacked")
    source = imdb_writer[kind](target, reviews)
    assert set(read_imdb(source, ["train"])) == {"train"}
    with pytest.raises(DataError, match="aclImdb/test"):
        read_imdb(source, ["train", "test"])


def test_split_with_one_class_is_a_data_error(tmp_path, imdb_writer):
    reviews = {k: v for k, v in imdb_writer["reviews"].items() if "/test/neg/" not in k}
    source = imdb_writer["archive"](tmp_path / "a.tar.gz", reviews)
    with pytest.raises(DataError, match="only one class"):
        read_imdb(source)


def test_garbage_file_is_a_data_error(tmp_path):
    bad = tmp_path / "aclImdb_v1.tar.gz"
    bad.write_bytes(b"this is not a tar file at all" * 50)
    with pytest.raises(DataError, match="not a readable IMDB archive"):
        read_imdb(bad)


def test_corrupted_compressed_bytes_are_a_data_error(tmp_path, imdb_archive):
    raw = bytearray(imdb_archive.read_bytes())
    for i in range(40, len(raw) - 40, 7):
        raw[i] ^= 0xFF
    bad = tmp_path / "corrupt.tar.gz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError):
        read_imdb(bad)


def test_archive_cut_in_half_is_a_data_error(tmp_path, imdb_archive):
    raw = imdb_archive.read_bytes()
    bad = tmp_path / "half.tar.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError):
        read_imdb(bad)


def test_every_truncation_of_the_archive_is_refused(tmp_path, imdb_archive):
    raw = imdb_archive.read_bytes()
    bad = tmp_path / "cut.tar.gz"
    silent = []
    for cut in np.linspace(20, len(raw) - 1, 25).astype(int):
        bad.write_bytes(raw[:cut])
        try:
            data = read_imdb(bad, ALL)
        except DataError:
            continue
        silent.append((int(cut), {k: len(v) for k, v in data.items()}))
    assert not silent, f"truncated archives read without error: {silent}"


def test_is_imdb_source(imdb_archive, imdb_folder, tmp_path):
    assert is_imdb_source(imdb_archive)
    assert is_imdb_source(imdb_folder)
    assert is_imdb_source(imdb_folder / "aclImdb")
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\nok,1\n")
    assert not is_imdb_source(csv)
    assert not is_imdb_source(tmp_path / "nowhere")


# -- where the data comes from ---------------------------------------------------------------


@pytest.fixture
def cached_archive(imdb_writer, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("REVIEWSENSE_CACHE_DIR", str(cache))
    cache.mkdir()
    return imdb_writer["archive"](cache / imdb.ARCHIVE_NAME)


def test_resolve_source_prefers_explicit_path(tmp_path, imdb_archive, imdb_folder, cached_archive, monkeypatch):
    monkeypatch.setenv("REVIEWSENSE_IMDB", str(imdb_folder))
    assert resolve_source(imdb_archive, allow_download=False) == imdb_archive


def test_resolve_source_then_environment(imdb_folder, cached_archive, monkeypatch):
    monkeypatch.setenv("REVIEWSENSE_IMDB", str(imdb_folder))
    assert resolve_source(None, allow_download=False) == imdb_folder


def test_resolve_source_then_cache(cached_archive):
    assert resolve_source(None, allow_download=False) == cached_archive
    assert load_imdb(allow_download=False)["train"].ids[0] == "train/neg/1"


def test_resolve_source_missing_explicit_path(tmp_path):
    with pytest.raises(DataError, match="--data") as info:
        resolve_source(tmp_path / "missing.tar.gz")
    assert "does not exist" in str(info.value)


def test_resolve_source_environment_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("REVIEWSENSE_IMDB", str(tmp_path / "gone"))
    with pytest.raises(DataError, match="REVIEWSENSE_IMDB"):
        resolve_source(None, allow_download=False)


def test_no_copy_and_downloads_disabled_explains_how_to_supply_data():
    with pytest.raises(DataError) as info:
        resolve_source(None, allow_download=False)
    message = str(info.value)
    assert "REVIEWSENSE_IMDB" in message
    assert "--data" in message
    assert "downloads are disabled" in message


def test_resolve_source_downloads_into_the_cache(tmp_path, imdb_writer, monkeypatch):
    origin = imdb_writer["archive"](tmp_path / "origin.tar.gz")
    monkeypatch.setattr(imdb, "URL", origin.as_uri())
    monkeypatch.setattr(imdb, "SHA256", hashlib.sha256(origin.read_bytes()).hexdigest())
    cache = tmp_path / "dl-cache"
    monkeypatch.setenv("REVIEWSENSE_CACHE_DIR", str(cache))
    path = resolve_source(None, allow_download=True)
    assert path == cache / imdb.ARCHIVE_NAME
    assert path.read_bytes() == origin.read_bytes()
    assert len(read_imdb(path)["test"]) == 4


def test_failed_download_mentions_offline_options(tmp_path, imdb_writer, monkeypatch):
    origin = imdb_writer["archive"](tmp_path / "origin.tar.gz")
    monkeypatch.setattr(imdb, "URL", origin.as_uri())
    monkeypatch.setattr(imdb, "SHA256", "0" * 64)
    with pytest.raises(DataError) as info:
        resolve_source(None, allow_download=True)
    assert "checksum mismatch" in str(info.value)
    assert "REVIEWSENSE_IMDB" in str(info.value)


# -- download() -------------------------------------------------------------------------------


def test_download_with_correct_checksum(tmp_path):
    source = tmp_path / "payload.bin"
    source.write_bytes(b"payload " * 1000)
    dest = tmp_path / "cache" / "sub" / "payload.bin"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert download(source.as_uri(), dest, sha256=digest) == dest
    assert dest.read_bytes() == source.read_bytes()
    assert not dest.with_name(dest.name + ".part").exists()


def test_download_with_wrong_checksum_leaves_nothing(tmp_path):
    source = tmp_path / "payload.bin"
    source.write_bytes(b"payload " * 1000)
    dest = tmp_path / "cache" / "payload.bin"
    with pytest.raises(DataError, match="checksum mismatch"):
        download(source.as_uri(), dest, sha256="f" * 64)
    assert not dest.exists()
    assert not dest.with_name(dest.name + ".part").exists()
    assert list(dest.parent.iterdir()) == []


def test_download_of_missing_url_is_a_data_error(tmp_path):
    dest = tmp_path / "cache" / "x.bin"
    with pytest.raises(DataError, match="download of"):
        download((tmp_path / "nope.bin").as_uri(), dest)
    assert not dest.exists()
    assert not dest.with_name("x.bin.part").exists()


class _Response:
    """A fake HTTP response that sends ``blocks`` and then fails with ``error``."""

    def __init__(self, blocks, error):
        self.blocks, self.error, self.headers = list(blocks), error, {"Content-Length": "4096"}

    def read(self, _size):
        if self.blocks:
            return self.blocks.pop(0)
        raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("error", [http.client.IncompleteRead(b"x" * 10, 2000), ConnectionResetError("reset"),
                                   TimeoutError("timed out")])
def test_interrupted_download_is_cleaned_up(tmp_path, monkeypatch, error):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _Response([b"x" * 1024], error))
    dest = tmp_path / "cache" / "archive.tar.gz"
    with pytest.raises(DataError, match="failed: .*run again to retry"):
        download("https://example.invalid/archive.tar.gz", dest, sha256="0" * 64)
    assert list(dest.parent.iterdir()) == []


def test_ctrl_c_during_download_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _Response([b"x" * 1024], KeyboardInterrupt()))
    dest = tmp_path / "cache" / "archive.tar.gz"
    with pytest.raises(KeyboardInterrupt):
        download("https://example.invalid/archive.tar.gz", dest)
    assert list(dest.parent.iterdir()) == []


def test_movie_of_each_review_comes_from_the_url_files(tmp_path, imdb_writer):
    reviews = imdb_writer["reviews"]
    archive = imdb_writer["folder"](tmp_path / "unpacked", {
        **reviews,
        # line N of urls_<label>.txt is the page of review N: 13 lines cover ids 0..12
        "aclImdb/train/urls_pos.txt": "".join(f"http://www.imdb.com/title/tt{i % 3:07d}/usercomments\n"
                                              for i in range(13)).encode(),
        "aclImdb/train/urls_neg.txt": "".join(f"http://www.imdb.com/title/tt{10 + i % 2:07d}/usercomments\n"
                                              for i in range(13)).encode(),
    })
    train = read_imdb(archive, ["train", "test"])["train"]
    ids = [int(i.rsplit("/", 1)[1]) for i in train.ids]
    assert train.groups == [f"tt{10 + i % 2:07d}" if label == 0 else f"tt{i % 3:07d}"
                            for i, label in zip(ids, train.labels, strict=True)]
    # the fixture's test urls file covers only review 0: without every movie, no groups
    assert read_imdb(archive, ["test"])["test"].groups is None


@pytest.mark.parametrize("n", [1, 2, 3, 5, 100])
@pytest.mark.parametrize("source", ["archive", "folder"])
def test_head_is_the_first_rows_of_the_full_read(imdb_archive, imdb_folder, source, n):
    path = imdb_archive if source == "archive" else imdb_folder
    full = read_imdb(path, ALL)
    for split in ALL:
        head = imdb.read_imdb_head(path, split, n)
        rows = min(n, len(full[split]))
        assert head.ids == full[split].ids[:rows] and head.texts == full[split].texts[:rows]
        np.testing.assert_array_equal(head.labels, full[split].labels[:rows])
        np.testing.assert_array_equal(head.ratings, full[split].ratings[:rows])


def test_head_stops_reading_once_its_rows_are_settled(tmp_path, imdb_writer, monkeypatch):
    """Reviews neg/0 and neg/1 come first: `data head -n 2` reads no further member (the big
    archive is not read whole to show a few reviews)."""
    reviews = {f"aclImdb/train/neg/{i}_2.txt": f"review {i}".encode() for i in range(2)}
    reviews |= {f"aclImdb/train/{folder}/{i}_{r}.txt": b"later" for i in range(2, 40)
                for folder, r in (("neg", 3), ("pos", 8))}
    archive = imdb_writer["archive"](tmp_path / "a.tar.gz", reviews, evil=False)
    read: list[str] = []
    members = imdb._iter_archive

    def counting(path):
        for name, reader in members(path):
            read.append(name)
            yield name, reader

    monkeypatch.setattr(imdb, "_iter_archive", counting)
    head = imdb.read_imdb_head(archive, "train", 2)
    assert head.texts == ["review 0", "review 1"] and head.ids == ["train/neg/0", "train/neg/1"]
    assert read[-1] == "aclImdb/train/neg/1_2.txt"
    # a review not among the first: the whole split is read to be sure
    assert imdb.read_imdb_head(archive, "train", 3).ids == ["train/neg/0", "train/neg/1", "train/neg/2"]


def test_head_of_a_split_the_archive_lacks_is_one_line(tmp_path, imdb_writer):
    archive = imdb_writer["archive"](tmp_path / "a.tar.gz", {"aclImdb/test/neg/0_2.txt": b"x"}, evil=False)
    with pytest.raises(DataError, match="no aclImdb/train reviews found"):
        imdb.read_imdb_head(archive, "train", 2)


def test_an_archive_member_over_the_limit_is_refused_before_it_is_inflated(tmp_path, imdb_writer, monkeypatch):
    monkeypatch.setenv("REVIEWSENSE_MAX_CHARS", "10")  # files of up to 640 bytes + 1 MiB
    reviews = {**imdb_writer["reviews"], "aclImdb/train/pos/5_9.txt": b"great " * 400_000}
    archive = imdb_writer["archive"](tmp_path / "a.tar.gz", reviews, evil=False)
    assert archive.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"aclImdb/train/pos/5_9.txt is 2,400,000 bytes, over the 1,049,216"):
        read_imdb(archive)
