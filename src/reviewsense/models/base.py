"""The one interface every model family exposes, and the registry of families.

A family is one module in this package with a :class:`Predictor` subclass (numpy-only
inference, so exported models load without torch) and a ``fit`` function used by training.
"""

from __future__ import annotations

import importlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from scipy.special import expit

from ..errors import ConfigError, ModelFileError, TextTypeError
from .calibration import LengthCalibration
from .explanation import Attribution, Explanation, explain

# family name → "module:PredictorClass"; importing is deferred so that loading one family
# never imports another family's dependencies.
FAMILIES: dict[str, str] = {
    "seed": "reviewsense.models.seed:SeedPredictor",
    "sentence": "reviewsense.models.sentence:SentencePredictor",
    "nblinear": "reviewsense.models.nblinear:NBLinearPredictor",
    "cnn": "reviewsense.models.cnn:CNNPredictor",
    "ensemble": "reviewsense.models.ensemble:EnsemblePredictor",
}

BATCH = 4096

# one result row, the same from Python, the CLI (JSONL, CSV, Parquet) and the HTTP API
ROW_FIELDS = ("probability", "label", "label_name")
DIGITS = 6  # probabilities are written rounded to this many decimals


def result_row(probability: float, class_names: Sequence[str], threshold: float = 0.5) -> dict[str, Any]:
    """``{"probability", "label", "label_name"}`` for one text: label 1 when probability ≥ threshold."""
    label = int(probability >= threshold)
    return {"probability": round(float(probability), DIGITS), "label": label, "label_name": class_names[label]}


class Predictor(ABC):
    """Raw strings in, probabilities out.

    ``predict_proba(texts)`` returns one probability of the positive class per text, in
    [0, 1]; ``predict_logits`` the scores before the sigmoid; ``predict`` 0/1 labels.

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
        self.metadata: dict[str, Any] = {}
        self.length_calibration: LengthCalibration | None = None

    @abstractmethod
    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits for one batch of texts."""

    #: how many raw scores a text has (what a length calibration reads); ensembles: their members
    @property
    def raw_score_count(self) -> int:
        return 1

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
            [(np.zeros(0), np.zeros(0, dtype=np.int64))]
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

    def predict_logits(self, texts: Sequence[str] | str) -> np.ndarray:
        texts = as_texts(texts)
        if not texts:
            return np.zeros(0, dtype=np.float32)
        step = self.batch_size
        parts = [self._calibrated(texts[i : i + step]) for i in range(0, len(texts), step)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def predict_proba(self, texts: Sequence[str] | str) -> np.ndarray:
        return expit(self.predict_logits(texts)).astype(np.float32)

    def predict(self, texts: Sequence[str] | str, threshold: float = 0.5) -> np.ndarray:
        return (self.predict_proba(texts) >= threshold).astype(np.int8)

    @property
    def can_explain(self) -> bool:
        """Whether :meth:`explain` works for this model."""
        return type(self)._attribute is not Predictor._attribute

    def explain(self, text: str, k: int = 10) -> Explanation:
        """Why ``text`` got its score: the ``k`` words/n-grams that pushed it up and down most
        (``.top()``), every feature's contribution to the logit, and per-word contributions
        with character spans (``.tokens``). Contributions plus bias add up to the logit."""
        if not isinstance(text, str):
            raise TextTypeError(f"explain takes one string, got {type(text).__name__}")
        text = as_texts([text])[0]
        calibration = self.length_calibration
        if calibration is None:
            return self._explain(text, k)
        from ..text.ngrams import count_tokens  # per text the calibration is affine in the raw score(s)

        slopes, shift = calibration.slope_shift(count_tokens([text]))
        return self._explain_calibrated(text, k, slopes[0], float(shift[0]))

    def _explain_calibrated(self, text: str, k: int, slopes: np.ndarray, shift: float) -> Explanation:
        """The explanation of the calibrated logit, given this text's slope(s) and shift."""
        calibration = self.length_calibration
        assert calibration is not None and calibration.scores == 1
        slope = float(slopes[0])
        return self._explain(text, k).affine(slope, calibration.prior - slope * float(calibration.empty[0]) + shift)

    def _explain(self, text: str, k: int) -> Explanation:
        """The explanation of the raw logit (before the length calibration)."""
        return explain(text, self._attribute(text), self.class_names, k)

    def _attribute(self, text: str) -> Attribution:
        raise ConfigError(f"explanations are not available for '{self.family}' models (nblinear, seed, cnn and "
                          "ensembles of them have them)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(config={self.config})"


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


def check_family(family: Any) -> str:
    """``family`` (as a manifest gives it) if it names a model family; else :class:`ModelFileError`.
    Nothing is imported: ``reviewsense info`` checks a manifest with it without loading a model."""
    if family is None:
        raise ModelFileError(f"no model family (known: {', '.join(FAMILIES)})")
    if not isinstance(family, str) or family not in FAMILIES:
        shown = f"'{family}'" if isinstance(family, str) else json.dumps(family)[:40]
        raise ModelFileError(f"unknown model family {shown} (known: {', '.join(FAMILIES)})")
    return family


def predictor_class(family: Any) -> type[Predictor]:
    module, name = FAMILIES[check_family(family)].split(":")
    return getattr(importlib.import_module(module), name)


def check_shapes(tensors: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]) -> None:
    """Refuse weights whose names or shapes do not match the configuration."""
    if set(tensors) != set(expected):
        raise ModelFileError(f"weights hold {sorted(tensors)}, expected {sorted(expected)}")
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ModelFileError(f"weight '{name}' has shape {tuple(tensors[name].shape)}, expected {shape}")
        if not np.isfinite(tensors[name]).all():
            raise ModelFileError(f"weight '{name}' holds NaN or infinite values")
