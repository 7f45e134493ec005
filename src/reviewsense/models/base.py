"""The one interface every model family's predictor exposes (numpy-only inference, so
exported models load without torch). The families themselves are listed and declared in
:mod:`reviewsense.models.registry`.

What a predictor saves: its vectorizer, its arrays (:meth:`Predictor.tensors`, into
``model.safetensors``), its ``config`` (JSON), and any files of its own
(:meth:`Predictor.extra_files`: name → bytes, e.g. a Hugging Face tokenizer's
``tokenizer.json``, ``tokenizer_config.json``, ``vocab.txt`` and a ``config.json``); loading
gives them back, checksums verified, to :meth:`Predictor.from_export`. A library that writes
and reads a folder works through :func:`packed` (a folder's files as bytes, after
``tokenizer.save_pretrained(tmp)``) and :func:`unpacked` (the verified bytes in a temporary
folder, for ``AutoTokenizer.from_pretrained(folder, local_files_only=True)``): no pickle and
no remote code ever (see :mod:`reviewsense.export.bundle` for the names allowed).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.special import expit, softmax

from ..errors import ConfigError, ModelFileError, ScoreError, TextTypeError
from ..progress import settings
from .calibration import LengthCalibration, SoftmaxLengthCalibration
from .explanation import Attribution, Explanation, explain

BATCH = 4096

# one result row, the same from Python, the CLI (JSONL, CSV, Parquet) and the HTTP API
ROW_FIELDS = ("probability", "label", "label_name")
DIGITS = 6  # probabilities are written rounded to this many decimals


def result_row(probabilities: Sequence[float], class_names: Sequence[str],
               threshold: float = 0.5) -> dict[str, Any]:
    """One text's result from its row of :meth:`Predictor.predict_proba` (every class's
    probability, in ``class_names`` order). Two classes: ``{"probability", "label",
    "label_name"}``, the probability of ``class_names[1]`` and label 1 when it is ≥
    ``threshold``. More classes: the top label, its probability, and ``probabilities``, every
    class's by name.

    >>> result_row([0.1, 0.9], ["neg", "pos"])
    {'probability': 0.9, 'label': 1, 'label_name': 'pos'}
    >>> result_row([0.2, 0.5, 0.3], ["bad", "ok", "good"])["label_name"]
    'ok'
    """
    if len(probabilities) != len(class_names):
        raise ValueError(f"{len(probabilities)} probabilities for {len(class_names)} classes")
    if len(class_names) == 2:
        positive = float(probabilities[1])
        label = int(positive >= threshold)
        return {"probability": round(positive, DIGITS), "label": label, "label_name": class_names[label]}
    row = [round(float(p), DIGITS) for p in probabilities]
    label = max(range(len(row)), key=row.__getitem__)
    return {"probability": row[label], "label": label, "label_name": class_names[label],
            "probabilities": dict(zip(class_names, row, strict=True))}


def first_non_finite(values: Any) -> int | None:
    """The index of the first row of ``values`` (one row, or one number, per text) holding a
    NaN or an infinity, else None."""
    bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
    if not bad.any():
        return None
    return int(np.argmax(bad.reshape(len(bad), -1).any(axis=1)))


def check_finite(values: Any, what: str = "probabilities", offset: int = 0, text: str = "text {number:,}") -> None:
    """Raise :class:`ScoreError` when a row of ``values`` (one per text; ``offset``: the index of
    the first of them in the input) is NaN or infinite: never written as a bare ``NaN``. ``text``
    names the text (formatted with its ``number`` from 1 and its ``index`` from 0)."""
    first = first_non_finite(values)
    if first is not None:
        name = text.format(number=offset + first + 1, index=offset + first)
        raise ScoreError(f"the model computed NaN or infinite {what} for {name} (its numbers overflow on it): "
                         "no result is given for a text the model cannot score")


class Predictor(ABC):
    """Raw strings in, probabilities out.

    ``predict_proba(texts)``: shape ``(n, n_classes)`` for any number of classes, each class's
    probability in ``class_names`` order (rows sum to 1), as scikit-learn's estimators give it.
    Two classes: ``positive_proba(texts)`` is column 1, the probability of ``class_names[1]``,
    shape ``(n,)``. ``predict_logits`` is what comes before the sigmoid or softmax, shaped like
    scikit-learn's ``decision_function``: ``(n,)`` for two classes (the logit of
    ``class_names[1]``), ``(n, K)`` for K > 2. ``predict`` gives class indices.

    A family computes *raw* logits (``_logits``); where training fitted a
    :class:`LengthCalibration` (``length_calibration``), every public score goes through it,
    so probabilities are honest for a one-word text as for a long review.
    """

    family: ClassVar[str]
    batch_size: ClassVar[int] = BATCH  # texts scored per call of _logits

    def __init__(self, vectorizer: Any, config: dict[str, Any],
                 class_names=("negative", "positive")):
        self.vectorizer = vectorizer  # each family's own: TextVectorizer, NgramVectorizer, MemberVectorizers or None
        self.config = dict(config)
        self.class_names = tuple(class_names)
        self.n_jobs: int | None = None  # threads for scoring (None: every core or $REVIEWSENSE_THREADS; 1: none)
        self.metadata: dict[str, Any] = {}
        self.length_calibration: LengthCalibration | SoftmaxLengthCalibration | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def binary(self) -> bool:
        """Two classes: one logit per text (of ``class_names[1]``); else K logits."""
        return len(self.class_names) == 2

    @abstractmethod
    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits for one batch of texts: ``(n,)`` for two classes, ``(n, K)`` for more."""

    #: how many raw scores a text has (what a length calibration reads); ensembles: their members
    @property
    def raw_score_count(self) -> int:
        return 1

    @property
    def needs_length_calibration(self) -> bool:
        """Whether the model scores only through its length calibration (an ensemble whose
        stack it is); the loader refuses such a model without one."""
        return False

    def _logits_and_lengths(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits and token counts of one batch (families that count tokens anyway override it)."""
        from ..text.ngrams import count_tokens

        return self._logits(texts), count_tokens(texts)

    def _calibrated(self, texts: Sequence[str]) -> np.ndarray:
        if self.length_calibration is None:
            return self._logits(texts)
        return self.length_calibration(*self._logits_and_lengths(texts))

    def raw_scores(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits (before any length calibration) and token counts: what a calibration is fitted on."""
        texts = list(texts)
        step = self.batch_size
        parts = [self._logits_and_lengths(texts[i : i + step]) for i in range(0, len(texts), step)] or \
            [self._logits_and_lengths([""])]
        if not texts:
            parts = [(parts[0][0][:0], parts[0][1][:0])]
        return (np.concatenate([p[0] for p in parts]).astype(np.float64),
                np.concatenate([p[1] for p in parts]).astype(np.int64))

    @abstractmethod
    def tensors(self) -> dict[str, np.ndarray]:
        """The learned arrays that, with ``config`` and the vectorizer, define the model."""

    @classmethod
    @abstractmethod
    def from_tensors(cls, vectorizer: Any, config: dict[str, Any], tensors: dict[str, np.ndarray],
                     class_names: Sequence[str]) -> Predictor:
        """Rebuild a predictor from what :meth:`tensors` returned; validate shapes."""

    def extra_files(self) -> dict[str, bytes]:
        """Files the model needs besides its vectorizer, weights and ``config`` (plain file
        name → content), saved in the export and listed in its manifest with their checksums:
        a tokenizer, a model configuration… Names are plain (``tokenizer.json``: no folders,
        not hidden, no pickle-like suffix). None by default."""
        return {}

    @classmethod
    def from_export(cls, vectorizer: Any, config: dict[str, Any], tensors: dict[str, np.ndarray],
                    class_names: Sequence[str], files: Mapping[str, bytes]) -> Predictor:
        """Rebuild a predictor from an export: what :meth:`from_tensors` takes, and the
        :meth:`extra_files` the manifest lists (verified: each file's size and SHA-256). A
        family that saves extra files overrides this; by default there must be none."""
        if files:
            raise ModelFileError(f"'{cls.family}' models have no extra files; the manifest lists "
                                 f"{', '.join(sorted(files))}")
        return cls.from_tensors(vectorizer, config, tensors, class_names)

    def predict_logits(self, texts: Sequence[str] | str) -> np.ndarray:
        """Two classes: ``(n,)``, the logit of ``class_names[1]``; K > 2: ``(n, K)``, the logits
        before the softmax."""
        texts = as_texts(texts)
        if not texts:
            return np.zeros(0 if self.binary else (0, self.n_classes), dtype=np.float32)
        step = self.batch_size
        with settings(n_jobs=self.n_jobs):
            parts = [self._calibrated(texts[i : i + step]) for i in range(0, len(texts), step)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def predict_proba(self, texts: Sequence[str] | str) -> np.ndarray:
        """``(n, n_classes)``: every class's probability, in ``class_names`` order, for any
        number of classes."""
        return to_probabilities(self.predict_logits(texts))

    def positive_proba(self, texts: Sequence[str] | str) -> np.ndarray:
        """``(n,)``: the probability of ``class_names[1]`` (column 1 of :meth:`predict_proba`),
        for a model of two classes; a model of more has no positive class (:class:`ConfigError`)."""
        if not self.binary:
            raise ConfigError(f"positive_proba needs a model of two classes, this one has {self.n_classes} "
                              f"({', '.join(self.class_names)}): use predict_proba")
        return self.predict_proba(texts)[:, 1]

    def predict(self, texts: Sequence[str] | str, threshold: float = 0.5) -> np.ndarray:
        """Class indices: two classes, 1 where the probability of ``class_names[1]`` ≥
        ``threshold``; K > 2, the most probable class."""
        proba = self.predict_proba(texts)
        if self.binary:
            return (proba[:, 1] >= threshold).astype(np.int8)
        return proba.argmax(axis=1).astype(np.int16)

    @property
    def batch_requests(self) -> bool:
        """Whether a server should score concurrent requests together (a network that scores a
        batch of texts for little more than one); linear models score each request at once."""
        return False

    @property
    def can_explain(self) -> bool:
        """Whether :meth:`explain` works for this model."""
        return type(self)._attribute is not Predictor._attribute

    def explain(self, text: str, k: int = 10, label: int | str | None = None) -> Explanation:
        """Why ``text`` got its score: the ``k`` words/n-grams that pushed it up and down most
        (``.top()``), every feature's contribution to the logit, and per-word contributions
        with character spans (``.tokens``). Contributions plus bias add up to the logit.

        Two classes: the logit of ``class_names[1]``. More: the logit of class ``label`` (an
        index or a class name; default the most probable class), and ``.probabilities`` holds
        every class's probability."""
        if not isinstance(text, str):
            raise TextTypeError(f"explain takes one string, got {type(text).__name__}")
        text = as_texts([text])[0]
        target = None if self.binary else self._target(text, label)
        calibration = self.length_calibration
        if calibration is None:
            explanation = self._explain(text, k, target)
        else:
            from ..text.ngrams import count_tokens  # per text the calibration is affine in the raw score(s)

            slopes, shift = calibration.slope_shift(count_tokens([text]))
            explanation = self._explain_calibrated(text, k, slopes[0], float(np.atleast_1d(shift[0])[target or 0]),
                                                   target)
        if target is not None:
            explanation.target = target
            explanation.probabilities = [float(p) for p in self.predict_proba([text])[0]]
        return explanation

    def _target(self, text: str, label: int | str | None) -> int:
        """The class index an explanation is of: ``label`` (index or name), else the top class."""
        if label is None:
            return int(self.predict([text])[0])
        if isinstance(label, str) and label in self.class_names:
            return self.class_names.index(label)
        if isinstance(label, int | np.integer) and not isinstance(label, bool) and 0 <= label < self.n_classes:
            return int(label)
        raise ConfigError(f"class {label!r} is not one of {list(self.class_names)}")

    def _explain_calibrated(self, text: str, k: int, slopes: np.ndarray, shift: float,
                            target: int | None = None) -> Explanation:
        """The explanation of the calibrated logit (of class ``target``), given this text's
        slope(s) and shift."""
        calibration = self.length_calibration
        assert calibration is not None and calibration.scores == 1
        slope = float(slopes[0])
        c = target or 0
        prior = float(np.atleast_1d(calibration.prior)[c])
        empty = float(calibration.empty.reshape(-1)[c])
        return self._explain(text, k, target).affine(slope, prior - slope * empty + shift)

    def _explain(self, text: str, k: int, target: int | None = None) -> Explanation:
        """The explanation of the raw logit (of class ``target``; before the length calibration)."""
        return explain(text, self._attribute(text, target), self.class_names, k)

    def _attribute(self, text: str, target: int | None = None) -> Attribution:
        raise ConfigError(f"explanations are not available for '{self.family}' models (nblinear, seed, cnn and "
                          "ensembles of them have them)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(config={self.config})"


def packed(folder: str | os.PathLike[str]) -> dict[str, bytes]:
    """The regular files of ``folder`` (not its subfolders) by name: what a library wrote there
    (``tokenizer.save_pretrained(folder)``), as :meth:`Predictor.extra_files` returns it."""
    return {entry.name: Path(entry.path).read_bytes() for entry in sorted(os.scandir(folder), key=lambda e: e.name)
            if entry.is_file(follow_symlinks=False)}


@contextlib.contextmanager
def unpacked(files: Mapping[str, bytes]) -> Iterator[Path]:
    """A new temporary folder holding ``files`` (name → content), removed afterwards: for a
    library that reads a folder (``AutoTokenizer.from_pretrained(folder, local_files_only=True)``)
    in :meth:`Predictor.from_export`. It reads these bytes, not the export's files."""
    with tempfile.TemporaryDirectory(prefix="reviewsense-") as tmp:
        for name, data in files.items():
            if Path(name).name != name or name in ("", ".", ".."):
                raise ModelFileError(f"unsafe file name {name!r}")
            (Path(tmp) / name).write_bytes(data)
        yield Path(tmp)


def to_probabilities(logits: np.ndarray) -> np.ndarray:
    """Logits → ``(n, K)`` probabilities: for ``(n,)`` logits (two classes) the sigmoid ``p``
    of each, as the columns ``1 − p`` and ``p``; for ``(n, K)`` a softmax over the last axis."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1:
        positive = expit(logits).astype(np.float32)
        return np.column_stack([1 - positive, positive])
    return softmax(logits, axis=-1).astype(np.float32)


def as_texts(texts: Sequence[str] | str) -> list[str]:
    """The texts to score as a list of valid Unicode strings (one string is one text).

    An item that is not a string is refused, naming its position; characters that cannot be
    UTF-8 (lone surrogates, e.g. undecodable bytes in a command-line argument) become U+FFFD,
    the same policy as for bytes read from files."""
    if isinstance(texts, str):
        texts = [texts]
    try:
        texts = list(texts)
    except TypeError:
        raise TextTypeError(f"texts must be a list of strings, got {type(texts).__name__}") from None
    for i, text in enumerate(texts):
        if type(text) is not str:
            if not isinstance(text, str):
                raise TextTypeError(f"texts[{i}] is {type(text).__name__}, not a string"
                                    + (" (a missing value? give '' for an empty text)" if text is None else ""))
            texts[i] = text = str.__str__(text)  # a str subclass: plain str
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                texts[i] = fix_surrogates(text)
    return texts


def fix_surrogates(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD; undecodable bytes that Python smuggled in
    as surrogates (``surrogateescape``: argv, file names) are decoded like file contents."""
    text = _LONE_SURROGATE.sub("\ufffd", text)  # not a smuggled byte: one U+FFFD each
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def check_shapes(tensors: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]) -> None:
    """Refuse weights whose names or shapes do not match the configuration."""
    if set(tensors) != set(expected):
        missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise ModelFileError(f"weights do not fit the configuration: missing {missing[:5]}, unexpected "
                             f"{unexpected[:5]}")
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ModelFileError(f"weight '{name}' has shape {tuple(tensors[name].shape)}, expected {shape}")
        if not np.isfinite(tensors[name]).all():
            raise ModelFileError(f"weight '{name}' holds NaN or infinite values")
