"""The seed model: the IMDB tutorial's network.

text → :class:`TextVectorizer` → mean of token embeddings (trainable, from scratch or from
pretrained word vectors) → Dense(16, relu) → Dense(1) logit → sigmoid at prediction time
(K > 2 classes: Dense(K) logits → softmax).

Training uses PyTorch; prediction is a few numpy/scipy products, so an exported seed model
loads and predicts without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..data.dataset import Dataset
from ..errors import ModelFileError, require
from ..progress import log
from ..text.vectorizer import TextVectorizer
from ..text.word_vectors import WordVectors, embedding_matrix
from ..training.history import History
from ..training.torch_loop import FitOptions, Ragged
from ..training.torch_loop import fit as fit_loop
from .base import Predictor, check_shapes
from .explanation import Attribution
from .registry import Family, FitJob, Fitted


@dataclass
class SeedParams:
    """Hyper-parameters of the seed model (vectorizer + network)."""

    max_tokens: int | None = 20_000
    ngrams: int = 1
    sequence_length: int | None = None
    min_count: int = 1
    punctuation: str = "split"
    embedding_dim: int = 50
    hidden_units: int = 16
    trainable_embedding: bool = True


class SeedPredictor(Predictor):
    family = "seed"

    def __init__(self, vectorizer: TextVectorizer, config: dict[str, Any], weights: dict[str, np.ndarray],
                 class_names: Sequence[str] = ("negative", "positive")):
        super().__init__(vectorizer, config, class_names)
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}

    def doc_matrix(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Row ``i`` averages the tokens of text ``i`` (an empty text gives a zero row)."""
        ids, offsets = self.vectorizer.encode_ragged(texts)
        lengths = np.diff(offsets)
        weights = np.repeat(1.0 / np.maximum(lengths, 1), lengths).astype(np.float32)
        return sp.csr_matrix((weights, ids, offsets), shape=(len(texts), self.vectorizer.vocabulary_size))

    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        w = self.weights
        pooled = self.doc_matrix(texts) @ w["embedding.weight"]
        hidden = np.maximum(pooled @ w["dense.weight"].T + w["dense.bias"], 0.0)
        return output_layer(hidden, w, self.binary)

    def _attribute(self, text: str, target: int | None = None) -> Attribution:
        """Gradient × input at the text's pooled embedding. With the ReLU pattern fixed the
        network is linear in the pooled vector, so token contributions plus bias equal the
        logit exactly."""
        w = self.weights
        words, positions = self.vectorizer.token_positions(text)
        ids, _ = self.vectorizer.encode_ragged([text])
        vectors = w["embedding.weight"][ids]
        pooled = vectors.mean(axis=0) if len(ids) else np.zeros(w["embedding.weight"].shape[1], np.float32)
        active = (w["dense.weight"] @ pooled + w["dense.bias"]) > 0
        c = target or 0
        head = w["output.weight"][c] * active  # d logit / d hidden, through the ReLU
        gradient = head @ w["dense.weight"]  # d logit / d pooled
        contributions = vectors.astype(np.float64) @ gradient / max(len(ids), 1)
        items = [(start, n, float(c)) for (start, n), c in zip(positions, contributions, strict=True)]
        return Attribution(words, items, float(head @ w["dense.bias"] + w["output.bias"][c]))

    def tensors(self) -> dict[str, np.ndarray]:
        return dict(self.weights)

    @classmethod
    def from_tensors(cls, vectorizer, config, tensors, class_names) -> SeedPredictor:
        if vectorizer is None:
            raise ModelFileError("a seed model needs its vectorizer.json")
        vocab, dim, hidden = vectorizer.vocabulary_size, int(config["embedding_dim"]), int(config["hidden_units"])
        out = outputs(len(class_names))
        check_shapes(tensors, {"embedding.weight": (vocab, dim), "dense.weight": (hidden, dim),
                               "dense.bias": (hidden,), "output.weight": (out, hidden), "output.bias": (out,)})
        return cls(vectorizer, config, tensors, class_names)


def outputs(classes: int) -> int:
    """A network's output units: one logit for two classes, one per class for more."""
    return 1 if classes == 2 else classes


def output_layer(hidden: np.ndarray, weights: dict[str, np.ndarray], binary: bool) -> np.ndarray:
    """The last Dense layer in numpy: ``(n,)`` logits for two classes, ``(n, K)`` for more."""
    if binary:
        return hidden @ weights["output.weight"][0] + weights["output.bias"][0]
    return hidden @ weights["output.weight"].T + weights["output.bias"]


def build_module(vocabulary_size: int, dim: int, hidden: int, init: np.ndarray | None = None,
                 trainable: bool = True, classes: int = 2):
    """The PyTorch network: EmbeddingBag(mean) → Linear(dim, hidden) → ReLU → Linear(hidden, 1)
    (``Linear(hidden, K)`` for K > 2 classes)."""
    torch = require("torch", "torch", "Training the seed model")
    nn: Any = torch.nn  # untyped for the checker: the classes below subclass its Module

    class SeedNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.EmbeddingBag(vocabulary_size, dim, mode="mean", padding_idx=0)
            self.dense = nn.Linear(dim, hidden)
            self.output = nn.Linear(hidden, outputs(classes))

        def forward(self, ids, offsets):
            logits = self.output(torch.relu(self.dense(self.embedding(ids, offsets))))
            return logits.squeeze(-1) if classes == 2 else logits

    module = SeedNet()
    if init is not None:
        with torch.no_grad():
            module.embedding.weight.copy_(torch.from_numpy(init))
    module.embedding.weight.requires_grad_(trainable)
    return module


def fit(train: Dataset, validation: Dataset, params: SeedParams, options: FitOptions,
        vectors: WordVectors | None = None) -> tuple[SeedPredictor, History]:
    """Adapt the vectorizer on ``train`` only, train the network, return predictor + history."""
    require("torch", "torch", "Training the seed model")
    vectorizer = TextVectorizer(max_tokens=params.max_tokens, ngrams=params.ngrams,
                                sequence_length=params.sequence_length, min_count=params.min_count,
                                punctuation=params.punctuation)
    vectorizer.adapt(train.texts)
    log(f"vocabulary: {vectorizer.vocabulary_size:,} tokens (ngrams ≤ {params.ngrams})")
    init = None
    dim = params.embedding_dim
    if vectors is not None:
        init, coverage = embedding_matrix(vectorizer.vocabulary_, vectors, seed=options.seed)
        dim = vectors.dim
        log(f"embedding initialised from pretrained vectors (dim {dim}); {coverage:.1%} of the vocabulary covered")
    data = {}
    for split, ds in (("train", train), ("validation", validation)):
        ids, offsets = vectorizer.encode_ragged(ds.texts)
        data[split] = Ragged(ids, offsets, ds.labels)
    import torch

    torch.manual_seed(options.seed)
    module = build_module(vectorizer.vocabulary_size, dim, params.hidden_units, init, params.trainable_embedding,
                          len(train.class_names))
    history = fit_loop(module, data["train"], data["validation"], options)
    config = asdict(params) | {"embedding_dim": dim,
                               "embedding_source": "pretrained" if vectors is not None else "scratch"}
    weights = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    return SeedPredictor(vectorizer, config, weights, train.class_names), history


def fit_family(job: FitJob, params: SeedParams) -> Fitted:
    predictor, history = fit(job.train, job.validation, params, job.options, job.vectors)
    return Fitted(predictor, history)


FAMILY = Family(
    name="seed", summary="the tutorial's network: text embedding → Dense(16, relu) → logit(s)",
    params=SeedParams, predictor=SeedPredictor, fit=fit_family,
    flags={"--embedding-dim": "embedding_dim", "--max-tokens": "max_tokens", "--ngrams": "ngrams",
           "--sequence-length": "sequence_length", "--hidden-units": "hidden_units",
           "--frozen-embedding": ("trainable_embedding", lambda frozen: not frozen)},
    epochs=True, word_vectors=True)
