"""One export format for every model family: a folder that a fresh process can load.

    model/
      manifest.json       format + version, family, class names, config, metrics,
                          how it was trained, and the SHA-256 and size of every file
      vectorizer.json     the TextVectorizer (plain JSON), for families that have one
      model.safetensors   the weights
      tokenizer.json …    the family's own extra files, if any (format version 4)

Loading checks the format version and every checksum, reads only the files the manifest
lists, refuses pickles and path tricks, and never executes anything from the folder.

A family that needs more than weights and a vectorizer (a Hugging Face tokenizer and its
config, say) returns them from :meth:`Predictor.extra_files` (name → bytes) and gets them
back, verified, in :meth:`Predictor.from_export`. Their names are plain file names inside
the folder (no folders, no hidden names, none of the three above, no pickle-like suffix:
``.bin``, ``.pt``, ``.pkl``…); the manifest lists each with its SHA-256 and size. Such a
model is written as format version 4 (older reviewsense versions refuse it by its version
instead of failing on the files); a model without extra files keeps the lowest version
that holds it (2, or 3 for more than two classes). A transformer family would do::

    def extra_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.tokenizer.save_pretrained(tmp)   # tokenizer.json, tokenizer_config.json, vocab.txt …
            return packed(tmp)

    @classmethod
    def from_export(cls, vectorizer, config, tensors, class_names, files):
        with unpacked(files) as folder:           # the verified bytes, in a fresh temporary folder
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        ...

(:func:`~reviewsense.models.base.packed`, :func:`~reviewsense.models.base.unpacked`): no pickle,
no remote code, and what the tokenizer reads is exactly the bytes that were verified.

Saving never destroys what is not a model: ``save_model(predictor, path)`` writes a new
folder or fills an empty one; a folder holding a saved model is replaced (atomically) only
with ``overwrite=True``; any other folder with something in it, the working folder, the
home folder, a file or a symbolic link is refused and left as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._fs import atomic_dir, check_save_folder, sha256_file, write_json
from .._names import control_character
from ..errors import ModelFileError, OutputError
from ..models.base import Predictor
from ..models.calibration import SoftmaxLengthCalibration, calibration_from_dict
from ..models.registry import check_family, predictor_class
from ..text import load_vectorizer

FORMAT = "reviewsense-model"
# 2: the manifest may hold a length calibration (1: none; still read); 3: more than two
# classes (softmax logits, a "length_softmax" calibration); 4: the family's own extra files
# (Predictor.extra_files), or a model that scores only through its length calibration (an
# ensemble whose stack it is: no stack weights). A model is written with the lowest version
# that holds it, so two-class exports of neither kind still load in reviewsense versions that read 2.
FORMAT_VERSION = 4
EXTRA_FILES_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
MANIFEST = "manifest.json"
WEIGHTS, VECTORIZER = "model.safetensors", "vectorizer.json"
_OWN_FILES = (WEIGHTS, VECTORIZER)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".joblib", ".npy", ".npz", ".bin", ".ckpt")
# real manifests: 4 KB (nblinear, two classes) to 12 KB (an 8-class ensemble); a test set's confusion
# matrix (K² counts) is the part that grows: 4 MiB holds it up to about a thousand classes
_MAX_MANIFEST_BYTES = 4 << 20
_MAX_MANIFEST_DEPTH = 32
SAVED_MODEL = "a saved reviewsense model"  # what save refuses to replace without overwrite=True


def save_model(predictor: Predictor, path: str | os.PathLike[str], metrics: dict[str, Any] | None = None,
               training: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``predictor`` to the folder ``path`` (parents created): a new or empty folder, or,
    with ``overwrite``, one that holds a saved model, replaced atomically once the new export is
    complete. Any other folder with something in it, the working or home folder, a file or a
    symbolic link is refused (:class:`OutputError`) and left untouched."""
    path = Path(path)
    extra = _extra_files(predictor)
    check_save_folder(path, overwrite, _is_export, SAVED_MODEL)  # before any work: nothing is touched
    try:
        return _write_model(predictor, path, extra, metrics, training, overwrite)
    except OSError as exc:  # a full disk, a quota: one line, and atomic_dir has left nothing behind
        raise OutputError(f"{path}: cannot write the model ({exc.strerror or exc})") from exc
    except Exception as exc:
        from safetensors import SafetensorError

        if not isinstance(exc, SafetensorError):
            raise
        reason = "No space left on device" if "No space left" in str(exc) else str(exc).splitlines()[0]
        raise OutputError(f"{path}: cannot write the model ({reason})") from exc


def _write_model(predictor: Predictor, path: Path, extra: dict[str, bytes], metrics: dict[str, Any] | None,
                 training: dict[str, Any] | None, overwrite: bool) -> Path:
    from safetensors.numpy import save_file

    files = [WEIGHTS]
    with atomic_dir(path) as tmp:
        if predictor.vectorizer is not None:
            predictor.vectorizer.save(tmp / VECTORIZER)
            files.append(VECTORIZER)
        tensors = {k: np.ascontiguousarray(v) for k, v in predictor.tensors().items()}
        save_file(tensors, str(tmp / WEIGHTS), metadata={"family": predictor.family})
        for name, data in extra.items():
            (tmp / name).write_bytes(data)
            files.append(name)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION if extra or predictor.needs_length_calibration
            else 2 if predictor.binary else 3,
            "family": predictor.family,
            "reviewsense_version": __version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "class_names": list(predictor.class_names),
            "output": "probability of class_names[1] = sigmoid(logit)" if predictor.binary
            else "probabilities of class_names = softmax(logits)",
            "config": predictor.config,
            # logit = prior + Σ slope_j(n)·(raw_j − empty_j) + shift(n), n = tokens (reviewsense.models.calibration)
            "length_calibration": predictor.length_calibration.to_dict() if predictor.length_calibration else None,
            "vocabulary_size": predictor.vectorizer.vocabulary_size if predictor.vectorizer else None,
            "metrics": metrics or {},
            "training": training or {},
            "files": {name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
                      for name in files},
        }
        write_json(tmp / MANIFEST, manifest)
        check_save_folder(path, overwrite, _is_export, SAVED_MODEL)  # again just before the swap
    return path


def _is_export(folder: Path) -> bool:
    """Whether ``folder`` holds a saved model: a ``manifest.json`` (a regular file) of this
    format, of any version."""
    file = folder / MANIFEST
    try:
        if file.is_symlink() or not file.is_file() or file.stat().st_size > _MAX_MANIFEST_BYTES:
            return False
        manifest = json.loads(file.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def _unsafe_name(name: Any) -> str | None:
    """Why ``name`` cannot be an extra file of an export, or None if it can."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        return "not a plain file name: letters, digits, '.', '_', '-', not starting with '.', no folders"
    if name.lower() in (MANIFEST, *_OWN_FILES):
        return "a name the format uses itself"
    if name.lower().endswith(_PICKLE_SUFFIXES):
        return f"a pickle-like suffix ({', '.join(_PICKLE_SUFFIXES)} are refused)"
    return None


def _extra_files(predictor: Predictor) -> dict[str, bytes]:
    """The predictor's :meth:`~Predictor.extra_files`, checked (a family's mistake is refused
    before anything is written)."""
    extra = predictor.extra_files()
    where = f"{type(predictor).__name__}.extra_files()"
    if not isinstance(extra, Mapping):
        raise TypeError(f"{where} must return a dict of file name → bytes, not {type(extra).__name__}")
    seen: set[str] = set()
    for name, data in extra.items():
        reason = _unsafe_name(name)
        if reason:
            raise ValueError(f"{where}: file name {name!r} is {reason}")
        if name.lower() in seen:
            raise ValueError(f"{where}: two files named {name!r} (ignoring case)")
        seen.add(name.lower())
        if not isinstance(data, bytes):
            raise TypeError(f"{where}: {name!r} must be bytes, not {type(data).__name__}")
    return dict(extra)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the model folder ``path``, read within bounds (a regular file of at most
    4 MiB, JSON nested at most 32 deep) and checked by :func:`check_manifest`; else
    :class:`ModelFileError`. Loading and ``reviewsense info`` both read it here."""
    path = Path(path)
    file = path / MANIFEST
    if not path.is_dir():
        raise ModelFileError(f"{path}: not a model folder (expected a directory with {MANIFEST})")
    if file.is_symlink():
        raise ModelFileError(f"{file}: is a symbolic link; a model folder holds its files themselves")
    if not file.is_file():
        raise ModelFileError(f"{path}: no {MANIFEST} (is this a reviewsense export?)")
    try:  # never a FIFO or a link put there since, never more than the bound read
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ModelFileError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ModelFileError(f"{path}: no {MANIFEST} (is this a reviewsense export?)")
        raw = fh.read(_MAX_MANIFEST_BYTES + 1)
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise ModelFileError(f"{file}: too large to be a manifest (over {_MAX_MANIFEST_BYTES >> 20} MiB)")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{file}: not valid JSON ({exc})") from exc
    except RecursionError:
        manifest = None
    if manifest is None or _depth(manifest) > _MAX_MANIFEST_DEPTH:
        raise ModelFileError(f"{file}: not a manifest (JSON nested too deeply: over {_MAX_MANIFEST_DEPTH} levels)")
    try:
        return check_manifest(manifest)
    except ModelFileError as exc:
        raise ModelFileError(f"{file}: {exc}") from None


def _depth(value: Any) -> int:
    """How deep ``value`` (parsed JSON) nests lists and objects (iteratively: no recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            todo.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _is_int(value: Any, least: int = 0, most: int = 1 << 62) -> bool:
    return type(value) is int and least <= value <= most  # noqa: E721 (not a bool)


def check_manifest(manifest: Any) -> dict[str, Any]:
    """``manifest`` if every field that loading and ``info`` read has its type and bounds: the
    format and a readable version, the family (and an ensemble's members'), the class names
    (different, none blank or holding a control character), ``files`` (name → SHA-256 and
    size), ``config``, ``vocabulary_size``, ``length_calibration``, ``metrics``, ``training``,
    ``created`` and ``reviewsense_version``. Else :class:`ModelFileError` naming the field.
    The one check of both, so that ``info`` never describes a folder that loading refuses."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError("not a reviewsense model manifest")
    version = manifest.get("format_version")
    if not _is_int(version) or version not in READABLE_VERSIONS:
        raise ModelFileError(f"format version {json.dumps(version)[:40]} is not supported by reviewsense "
                             f"{__version__} (supports {', '.join(map(str, READABLE_VERSIONS))})")
    _check_class_names(manifest.get("class_names"), version)
    check_family(manifest.get("family"))
    config = manifest.get("config")
    if not isinstance(config, dict):
        raise ModelFileError(f"'config' must be an object (got {_kind(config)})")
    if manifest["family"] == "ensemble":
        members = config.get("members")
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise ModelFileError("an ensemble's 'config' must list its 'members' (objects)")
        for i, member in enumerate(members, 1):
            try:
                if check_family(member.get("family")) == "ensemble":
                    raise ModelFileError("an ensemble cannot be a member of an ensemble")
            except ModelFileError as exc:
                raise ModelFileError(f"member {i}: {exc}") from None
    _check_files(manifest.get("files"), version)
    if manifest.get("vocabulary_size") is not None and not _is_int(manifest["vocabulary_size"], 0, 1 << 40):
        raise ModelFileError(f"'vocabulary_size' must be a count of words (got "
                             f"{json.dumps(manifest['vocabulary_size'])[:40]})")
    for key, kinds in (("metrics", dict), ("training", dict),
                       ("created", str), ("reviewsense_version", str)):
        if manifest.get(key) is not None and not isinstance(manifest[key], kinds):
            raise ModelFileError(f"'{key}' must be {'an object' if kinds is dict else 'a string'} "
                                 f"(got {_kind(manifest[key])})")
    for split, values in manifest.get("metrics", {}).items():
        if not isinstance(values, dict):
            raise ModelFileError(f"'metrics.{split}' must be an object (got {_kind(values)})")
    return manifest


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def _check_class_names(names: Any, version: int) -> None:
    most = 2 if version < 3 else 10_000
    if not (isinstance(names, list) and 2 <= len(names) <= most
            and all(isinstance(n, str) and n.strip() for n in names)
            and len(set(names)) == len(names)):
        shown = json.dumps(names)
        wanted = "two different names, negative first" if most == 2 else "two or more different names"
        raise ModelFileError(f"'class_names' must be {wanted} (got {shown[:60] + '…' if len(shown) > 60 else shown})")
    for name in names:
        char = control_character(name)
        if char:
            raise ModelFileError(f"class name {name!r} holds the control character {char}")


def _check_files(files: Any, version: int) -> None:
    """``files``: the weights (and the vectorizer; other files from version 4 on), each with
    its SHA-256 (64 hex digits) and size in bytes."""
    extra_allowed = version >= EXTRA_FILES_VERSION
    if not isinstance(files, dict) or WEIGHTS not in files or (not extra_allowed and not set(files) <= {*_OWN_FILES}):
        raise ModelFileError(f"'files' must list {WEIGHTS} (and {VECTORIZER})" + ("" if extra_allowed else
                                                                                  ", nothing else"))
    if len(files) > 1000:
        raise ModelFileError(f"'files' lists {len(files)} files (at most 1000)")
    for name, entry in files.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) and _is_int(entry.get("bytes"))):
            raise ModelFileError(f"'files' entry {name!r} must hold its 'sha256' (64 hex digits) and "
                                 "'bytes' (a size)")


def _verify_files(path: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    """Check every file the manifest lists (a safe name; a regular file of that size and
    SHA-256) and that the folder holds no pickle-like file. Files it does not list are not read.
    Returns the extra files' contents, read once: what the family gets is what was verified."""
    files = manifest["files"]  # checked by check_manifest
    for entry in path.iterdir():
        if entry.name.lower().endswith(_PICKLE_SUFFIXES):
            raise ModelFileError(f"{entry}: model folders must not contain pickle/binary blobs; refusing to load")
    extra = {}
    for name, info in files.items():
        reason = None if name in _OWN_FILES else _unsafe_name(name)
        if reason:
            raise ModelFileError(f"{path / MANIFEST}: unsafe file name {name!r} ({reason})")
        content = _verified(path / name, info, keep=name not in _OWN_FILES)
        if content is not None:
            extra[name] = content
    return extra


def _verified(file: Path, info: Any, keep: bool) -> bytes | None:
    """Check ``file`` against its manifest entry ``info``: a regular file (never a link, a FIFO
    or a device) of that size and SHA-256. Its content if ``keep``."""
    if file.is_symlink():
        raise ModelFileError(f"{file}: is a symbolic link; a model folder holds its files themselves")
    if not file.is_file():
        raise ModelFileError(f"{file}: missing (or not a regular file)")
    try:  # a link or a FIFO put there since: refused, never waited on
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ModelFileError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    digest, kept = hashlib.sha256(), []
    with os.fdopen(fd, "rb") as fh:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ModelFileError(f"{file}: missing (or not a regular file)")
        if not isinstance(info, dict) or status.st_size != info.get("bytes"):
            raise ModelFileError(f"{file}: size does not match the manifest (truncated or replaced?)")
        while block := fh.read(1 << 20):
            digest.update(block)
            if keep:
                kept.append(block)
    if digest.hexdigest() != info.get("sha256"):
        raise ModelFileError(f"{file}: SHA-256 does not match the manifest (corrupted or edited)")
    return b"".join(kept) if keep else None


def load_model(path: str | os.PathLike[str]) -> Predictor:
    """Load an exported model folder; raises :class:`ModelFileError` if anything is off."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    manifest = read_manifest(path)
    extra = _verify_files(path, manifest)
    try:
        cls = predictor_class(manifest.get("family"))
    except ModelFileError as exc:
        raise ModelFileError(f"{path / MANIFEST}: {exc}") from None
    vectorizer = load_vectorizer(path / VECTORIZER) if VECTORIZER in manifest["files"] else None
    try:
        tensors = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path / WEIGHTS}: unreadable weights ({exc})") from exc
    try:
        predictor = cls.from_export(vectorizer, manifest["config"], tensors, manifest["class_names"], extra)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path / MANIFEST}: invalid model configuration ({exc})") from exc
    if manifest.get("length_calibration") is not None:
        try:
            calibration = calibration_from_dict(manifest["length_calibration"])
        except ModelFileError as exc:
            raise ModelFileError(f"{path / MANIFEST}: {exc}") from None
        if calibration.scores != predictor.raw_score_count:
            raise ModelFileError(f"{path / MANIFEST}: the length calibration reads {calibration.scores} score(s), "
                                 f"the model gives {predictor.raw_score_count}")
        if isinstance(calibration, SoftmaxLengthCalibration) != (not predictor.binary) or (
                isinstance(calibration, SoftmaxLengthCalibration) and calibration.classes != predictor.n_classes):
            raise ModelFileError(f"{path / MANIFEST}: the length calibration does not fit a model of "
                                 f"{predictor.n_classes} classes")
        predictor.length_calibration = calibration
    if predictor.needs_length_calibration and predictor.length_calibration is None:
        raise ModelFileError(f"{path / MANIFEST}: this {predictor.family} model scores through its length "
                             "calibration, and the manifest has none")
    _check_finite(predictor, path)
    predictor.metadata = manifest
    return predictor


# texts of 0, 1, 2, a few and some hundred words: a calibration's pieces by length, every weight's use
_PROBES = ("", "good", "not bad", "a film of the year, and the worst acting ever seen", " ".join(["word"] * 400))


def _check_finite(predictor: Predictor, path: Path) -> None:
    """Refuse a model whose numbers overflow (weights or a calibration of 1e308, checksums
    recomputed): it would load and score every text NaN — label 0, a bare NaN in JSON, a 500
    from the server. A probe batch of texts of every length must give finite probabilities."""
    import warnings

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        proba = predictor.predict_proba(list(_PROBES))
    if not np.isfinite(proba).all():
        raise ModelFileError(f"{path}: the model computes NaN or infinite probabilities (its weights or its length "
                             "calibration overflow): it cannot score")
