"""Pretrained word vectors: train them on unlabelled text (gensim), load standard files,
and turn them into the initial embedding matrix of a vocabulary.

Saved as a folder with ``vectors.safetensors`` and ``vectors.json`` (the words), never with
gensim's pickle-based ``save``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._fs import atomic_dir, sha256_file, write_json
from ..errors import DataError, ModelFileError, require
from ..progress import log
from .vectorizer import TextVectorizer

METHODS = ("word2vec", "fasttext")
FORMAT = "reviewsense-word-vectors"


@dataclass
class WordVectors:
    words: list[str]
    vectors: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def save(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.numpy import save_file

        path = Path(path)
        with atomic_dir(path) as tmp:
            weights = {"vectors": np.ascontiguousarray(self.vectors, dtype=np.float32)}
            save_file(weights, str(tmp / "vectors.safetensors"))
            meta = {"format": FORMAT, "format_version": 1, "dim": self.dim, "count": len(self.words),
                    "info": self.info, "sha256": sha256_file(tmp / "vectors.safetensors"), "words": self.words}
            write_json(tmp / "vectors.json", meta)
        return path


def load_word_vectors(path: str | os.PathLike[str]) -> WordVectors:
    """A folder written by ``reviewsense pretrain``, or a ``.vec``/``.txt`` text file
    (word2vec text format with its ``count dim`` header, or GloVe without one)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such word-vector file or folder")
    if path.is_dir():
        meta_path = path / "vectors.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{meta_path}: cannot read word-vector metadata ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{meta_path}: not a reviewsense word-vector folder")
        if sha256_file(path / "vectors.safetensors") != meta.get("sha256"):
            raise ModelFileError(f"{path / 'vectors.safetensors'}: checksum does not match vectors.json")
        from safetensors.numpy import load_file

        vectors = load_file(str(path / "vectors.safetensors"))["vectors"]
        if vectors.shape != (len(meta["words"]), meta["dim"]):
            raise ModelFileError(f"{path}: vectors shape {vectors.shape} does not match vectors.json")
        return WordVectors(list(meta["words"]), vectors, meta.get("info", {}))
    gensim_models = require("gensim.models", "vectors", "Reading word-vector files")
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline().split()
    has_header = len(first) == 2 and all(x.isdigit() for x in first)
    try:
        kv = gensim_models.KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=not has_header,
                                                              unicode_errors="replace")
    except (ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a word2vec/GloVe text file ({exc})") from exc
    return WordVectors(list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32), {"source": str(path)})


def pretrain(
    texts: Sequence[str],
    method: str = "word2vec",
    dim: int = 100,
    epochs: int = 5,
    window: int = 5,
    min_count: int = 3,
    workers: int | None = None,
    seed: int = 0,
    vectorizer: TextVectorizer | None = None,
) -> WordVectors:
    """Train word vectors on ``texts`` (unlabelled and training text; never test).

    The texts are tokenized exactly as the classifier's vectorizer will see them.
    """
    if method not in METHODS:
        raise DataError(f"unknown pretraining method '{method}' (choose {', '.join(METHODS)})")
    models = require("gensim.models", "vectors", "Pretraining word vectors")
    tokenizer = vectorizer or TextVectorizer(ngrams=1)
    sentences = [tokenizer.tokenize(t) for t in texts]
    if workers is None:
        from ..progress import threads

        workers = threads()
    log(f"pretraining {method} vectors (dim {dim}, {epochs} epochs) on {len(sentences):,} texts, {workers} workers")
    cls = models.Word2Vec if method == "word2vec" else models.FastText
    if not any(len(s) for s in sentences):
        raise DataError("cannot pretrain word vectors: the texts hold no words")
    try:
        model = cls(sentences=sentences, vector_size=dim, window=window, min_count=min_count, workers=workers,
                    seed=seed, epochs=epochs, sg=0)
    except RuntimeError as exc:  # gensim: "you must first build vocabulary before training the model"
        raise DataError(f"cannot pretrain word vectors: no word occurs {min_count}+ times ({exc})") from exc
    info = {"method": method, "dim": dim, "epochs": epochs, "window": window, "min_count": min_count,
            "texts": len(sentences), "seed": seed}
    return WordVectors(list(model.wv.index_to_key), np.asarray(model.wv.vectors, dtype=np.float32), info)


def vectors_for(choice: str, texts: Sequence[str], dim: int, seed: int = 0, epochs: int = 5,
                cache: Path | None = None) -> WordVectors | None:
    """The word vectors a family's ``embedding`` names: None for ``scratch``; for ``word2vec`` or
    ``fasttext``, pretrained now on ``texts`` (unlabelled and training text, never test; with a
    ``cache`` folder, kept there keyed by the texts and settings); else loaded from the path (a
    ``reviewsense pretrain`` folder, a ``.vec`` or ``.txt`` file)."""
    if choice == "scratch":
        return None
    if choice not in METHODS:
        return load_word_vectors(choice)
    if cache is None:
        return pretrain(texts, method=choice, dim=dim, epochs=epochs, seed=seed)
    import json

    from .._fs import fingerprint

    settings = {"method": choice, "dim": dim, "epochs": epochs, "seed": seed}
    cached = cache / fingerprint(list(texts), json.dumps(settings, sort_keys=True))[:20]
    if (cached / "vectors.json").is_file():
        log(f"using cached {choice} vectors from {cached}")
        return load_word_vectors(cached)
    vectors = pretrain(texts, method=choice, dim=dim, epochs=epochs, seed=seed)
    vectors.save(cached)
    return vectors


def embedding_matrix(vocabulary: Sequence[str], vectors: WordVectors, seed: int = 0) -> tuple[np.ndarray, float]:
    """Initial embedding for a vectorizer vocabulary, and the share of entries found.

    Words take their pretrained vector; an n-gram (``"not good"``) the mean of its words'
    vectors; anything else a random vector of the same scale; padding is zero."""
    lookup = {w: i for i, w in enumerate(vectors.words)}
    scale = float(vectors.vectors.std()) or 1.0
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, scale, size=(len(vocabulary), vectors.dim)).astype(np.float32)
    matrix[0] = 0.0
    found = 0
    for i, token in enumerate(vocabulary[2:], start=2):
        parts = [lookup[w] for w in token.split(" ") if w in lookup]
        if parts:
            matrix[i] = vectors.vectors[parts].mean(axis=0)
            found += 1
    return matrix, found / max(1, len(vocabulary) - 2)
