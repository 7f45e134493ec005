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
from .params import Schedule, default, param
from .registry import Family, FitJob, Fitted

EMBEDDING_HELP = ("scratch | word2vec | fasttext (pretrained now on the unlabelled and training texts) | PATH to "
                  "vectors (a reviewsense pretrain folder, .vec or .txt)")


@dataclass
class SeedParams(Schedule):
    """The tutorial's network and its training. The defaults are the best settings found on IMDB
    validation (in-domain word2vec vectors, unigrams + bigrams, 200k tokens); the tutorial's own
    recipe is ``embedding="scratch", embedding_dim=50, ngrams=1, max_tokens=20_000``."""

    embedding: str = param("word2vec", EMBEDDING_HELP, metavar="SOURCE")
    embedding_dim: int = param(100, "embedding size (without pretrained vectors; else their size)", ge=1)
    max_tokens: int | None = param(200_000, "vocabulary size (None: every token)", ge=1)
    ngrams: int = param(2, "word n-grams up to this length", ge=1, le=5)
    sequence_length: int | None = param(None, "read at most this many tokens of a text", ge=1)
    min_count: int = param(1, "drop tokens seen fewer times in the training texts", ge=1, cli=False)
    punctuation: str = param("split", "punctuation: split off as tokens, or strip", choices=("split", "strip"),
                             cli=False)
    hidden_units: int = param(16, "units of the Dense(relu) layer", ge=1)
    trainable_embedding: bool = param(True, "train the embedding with the network (else it stays fixed)",
                                      flag="--frozen-embedding")
    epochs: int = default(Schedule, "epochs", 40)
    batch_size: int = default(Schedule, "batch_size", 512)
    learning_rate: float = default(Schedule, "learning_rate", 3e-3)
    patience: int = default(Schedule, "patience", 3)


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
        data[split] = Ragged(ids, offsets, ds.labels, ds.weights)
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
    predictor, history = fit(job.train, job.validation, params, job.options(params), job.vectors)
    return Fitted(predictor, history)


FAMILY = Family(
    name="seed", summary="the tutorial's network: text embedding → Dense(16, relu) → logit(s)",
    params=SeedParams, predictor=SeedPredictor, fit=fit_family, estimator="SeedClassifier", word_vectors=True)
