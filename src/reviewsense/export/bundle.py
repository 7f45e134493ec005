"""One export format for every model family: a folder that a fresh process can load.

    model/
      manifest.json       format + version, family, class names, config, metrics,
                          how it was trained, and the SHA-256 and size of every file
      vectorizer.json     the TextVectorizer (plain JSON), for families that have one
      model.safetensors   the weights

Loading checks the format version and every checksum, reads only the files the manifest
lists, refuses pickles and path tricks, and never executes anything from the folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._fs import atomic_dir, sha256_file, write_json
from ..errors import ModelFileError
from ..models.base import Predictor, predictor_class
from ..models.calibration import SoftmaxLengthCalibration, calibration_from_dict
from ..text import load_vectorizer

FORMAT = "reviewsense-model"
# 2: the manifest may hold a length calibration (1: none; still read); 3: more than two
# classes (softmax logits, a "length_softmax" calibration); 4: a model that scores only through
# its length calibration (an ensemble whose stack it is: no stack weights). A model is written
# with the lowest version that holds it, so two-class exports still load in reviewsense
# versions that read 2.
FORMAT_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
MANIFEST = "manifest.json"
WEIGHTS, VECTORIZER = "model.safetensors", "vectorizer.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".joblib", ".npy", ".npz", ".bin", ".ckpt")
_MAX_MANIFEST_BYTES = 16 << 20


def save_model(predictor: Predictor, path: str | os.PathLike[str], metrics: dict[str, Any] | None = None,
               training: dict[str, Any] | None = None) -> Path:
    """Write ``predictor`` to the folder ``path`` atomically (an existing export there is
    replaced only once the new one is complete)."""
    from safetensors.numpy import save_file

    path = Path(path)
    files = [WEIGHTS]
    with atomic_dir(path) as tmp:
        if predictor.vectorizer is not None:
            predictor.vectorizer.save(tmp / VECTORIZER)
            files.append(VECTORIZER)
        tensors = {k: np.ascontiguousarray(v) for k, v in predictor.tensors().items()}
        save_file(tensors, str(tmp / WEIGHTS), metadata={"family": predictor.family})
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION if predictor.needs_length_calibration else 2 if predictor.binary else 3,
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
    return path


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    file = path / MANIFEST
    if not path.is_dir():
        raise ModelFileError(f"{path}: not a model folder (expected a directory with {MANIFEST})")
    if not file.is_file():
        raise ModelFileError(f"{path}: no {MANIFEST} (is this a reviewsense export?)")
    if file.stat().st_size > _MAX_MANIFEST_BYTES:
        raise ModelFileError(f"{file}: too large to be a manifest")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{file}: not a reviewsense model manifest")
    if manifest.get("format_version") not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{file}: format version {manifest.get('format_version')!r} is not supported by reviewsense "
            f"{__version__} (supports {', '.join(map(str, READABLE_VERSIONS))})"
        )
    names = manifest.get("class_names")
    most = 2 if manifest["format_version"] < 3 else 10_000
    if not (isinstance(names, list) and 2 <= len(names) <= most and all(isinstance(n, str) and n.strip()
                                                                     for n in names)
            and len(set(names)) == len(names)):
        shown = json.dumps(names, ensure_ascii=False)
        wanted = "two different names, negative first" if most == 2 else "two or more different names"
        raise ModelFileError(f"{file}: 'class_names' must be {wanted} (got "
                             f"{shown[:60] + '…' if len(shown) > 60 else shown})")
    return manifest


def _verify_files(path: Path, manifest: dict[str, Any]) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict) or WEIGHTS not in files or not set(files) <= {WEIGHTS, VECTORIZER}:
        raise ModelFileError(f"{path / MANIFEST}: 'files' must list {WEIGHTS} (and {VECTORIZER}), nothing else")
    for entry in path.iterdir():
        if entry.name.lower().endswith(_PICKLE_SUFFIXES):
            raise ModelFileError(f"{entry}: model folders must not contain pickle/binary blobs; refusing to load")
    for name, info in files.items():
        if not _SAFE_NAME.match(name):
            raise ModelFileError(f"{path / MANIFEST}: unsafe file name {name!r}")
        file = path / name
        if file.is_symlink() or not file.is_file():
            raise ModelFileError(f"{file}: missing (or not a regular file)")
        if not isinstance(info, dict) or file.stat().st_size != info.get("bytes"):
            raise ModelFileError(f"{file}: size does not match the manifest (truncated or replaced?)")
        if sha256_file(file) != info.get("sha256"):
            raise ModelFileError(f"{file}: SHA-256 does not match the manifest (corrupted or edited)")


def load_model(path: str | os.PathLike[str]) -> Predictor:
    """Load an exported model folder; raises :class:`ModelFileError` if anything is off."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    manifest = read_manifest(path)
    _verify_files(path, manifest)
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
        predictor = cls.from_tensors(vectorizer, manifest["config"], tensors, manifest["class_names"])
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
    predictor.metadata = manifest
    return predictor
