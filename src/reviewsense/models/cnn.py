"""A convolutional network over word vectors: the neural member of ``--preset best``.

text → :class:`TextVectorizer` word ids (the first and last ``max_length / 2`` words of a
longer text) → embedding (initialised from word2vec vectors pretrained on the unlabelled
reviews, trainable) → 1-D convolutions of widths 3, 4 and 5 (ReLU) → max and mean over the
text → dropout → Dense(1) logit (Dense(K) for K > 2 classes).

It reads words in order, so it sees what a bag of n-grams cannot ("not bad at all", the
verdict in the last sentence); stacked with the NB-weighted linear model it adds about half
a point on IMDB validation (docs/benchmarks.md). Training uses PyTorch; prediction is numpy (one matrix
product per batch), so an exported model loads and predicts without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ..data.dataset import Dataset
from ..errors import ModelFileError, require
from ..progress import log
from ..text.vectorizer import TextVectorizer
from ..text.word_vectors import WordVectors, embedding_matrix
from ..training.history import History
from ..training.torch_loop import Features, FitOptions, evaluate_module
from ..training.torch_loop import fit as fit_loop
from .base import Predictor, check_shapes
from .explanation import Attribution
from .params import Schedule, default, param
from .registry import Family, FitJob, Fitted
from .seed import EMBEDDING_HELP, output_layer, outputs


@dataclass
class CNNParams(Schedule):
    """Settings of the network and of its training (chosen on IMDB validation, docs/benchmarks.md)."""

    embedding: str = param("word2vec", EMBEDDING_HELP, metavar="SOURCE")
    max_length: int = param(300, "words read per text: the first and the last half of a longer one", ge=1)
    max_tokens: int | None = param(100_000, "vocabulary size (None: every word)", ge=1)
    min_count: int = param(2, "drop words seen fewer times in the training texts", ge=1)
    embedding_dim: int = param(100, "embedding size (without pretrained vectors; else their size)", ge=1)
    filters: int = param(64, "convolution filters per width", ge=1)
    widths: list[int] = param([3, 4, 5], "convolution widths, in words", ge=1, cli=False)
    dropout: float = param(0.5, "dropout before the output layer", ge=0, lt=1)
    epochs: int = default(Schedule, "epochs", 6)
    batch_size: int = default(Schedule, "batch_size", 64)
    learning_rate: float = default(Schedule, "learning_rate", 2e-3)
    patience: int = default(Schedule, "patience", 2)
    # Off by default: on IMDB it adds ~3.5 minutes, more than the preset's 15-minute budget
    # allows on a slow machine, for a gain within noise.
    refit: bool = param(False, "a final fit on train + validation for the best epoch count (the stack is "
                        "fitted on the first fit's validation logits)")

def head_tail(ids: np.ndarray, offsets: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Ragged token ids → a zero-padded ``(texts, longest kept)`` matrix and the kept lengths.

    Texts longer than ``length`` keep their first ``length // 2`` and last ``length - length // 2``
    tokens: reviews state their verdict at either end."""
    counts = np.diff(offsets)
    kept = np.minimum(counts, length)
    width = max(int(kept.max(initial=0)), 1)
    head = length // 2
    j = np.arange(width)[None, :]
    starts, ends = offsets[:-1, None], offsets[1:, None]
    source = np.where((counts[:, None] > length) & (j >= head), ends - (length - j), starts + j)
    valid = j < kept[:, None]
    if not ids.size:
        return np.zeros((len(counts), width), dtype=np.int64), kept
    return np.where(valid, ids[np.where(valid, source, 0)], 0).astype(np.int64), kept


def kept_positions(n: int, length: int) -> list[int]:
    """Which of a text's ``n`` words :func:`head_tail` keeps, in order."""
    if n <= length:
        return list(range(n))
    head = length // 2
    return list(range(head)) + list(range(n - (length - head), n))


class CNNPredictor(Predictor):
    family = "cnn"
    batch_size = 256  # texts per numpy pass (activations of 256 × 300 words × 768 channels)

    def __init__(self, vectorizer: TextVectorizer, config: dict[str, Any], weights: dict[str, np.ndarray],
                 class_names: Sequence[str] = ("negative", "positive")):
        super().__init__(vectorizer, config, class_names)
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self.widths = [int(w) for w in config["widths"]]
        # One matrix for every (width, offset) kernel slice: a single product per batch.
        self._kernels = np.concatenate([self.weights[f"convs.{i}.weight"][:, :, k].T
                                        for i, width in enumerate(self.widths) for k in range(width)], axis=1)

    def _project(self, ids: np.ndarray) -> np.ndarray:
        """Every word's response to every (width, offset) kernel slice: ``(texts, positions,
        slices × filters)``, one matrix product."""
        n, length = ids.shape
        return (self.weights["embedding.weight"][ids].reshape(n * length, -1) @ self._kernels).reshape(n, length, -1)

    def _slices(self, length: int):
        """For each width ``i`` and kernel offset: the columns of :meth:`_project` it uses, and
        the word positions ``[lo, hi)`` that feed output positions ``[lo - shift, hi - shift)``
        (Conv1d with ``padding=width // 2``, cut to the input length; a slice that reaches past
        both ends of a short text feeds nothing)."""
        filters = int(self.config["filters"])
        column = 0
        for i, width in enumerate(self.widths):
            for k in range(width):
                shift = k - width // 2  # output t reads word t + shift
                lo, hi = max(shift, 0), min(length, length + shift)
                if lo < hi:
                    yield i, slice(column, column + filters), lo, hi, shift
                column += filters

    def _convolve(self, projected: np.ndarray) -> list[np.ndarray]:
        """Pre-activation outputs ``(texts, positions, filters)`` of each width."""
        n, length, _ = projected.shape
        outputs = [np.broadcast_to(self.weights[f"convs.{i}.bias"], (n, length, int(self.config["filters"]))).copy()
                   for i in range(len(self.widths))]
        for i, columns, lo, hi, shift in self._slices(length):
            outputs[i][:, lo - shift : hi - shift] += projected[:, lo:hi, columns]
        return outputs

    def _encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        ids, offsets = self.vectorizer.encode_ragged(texts)
        return head_tail(ids, offsets, int(self.config["max_length"]))

    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        ids, lengths = self._encode(texts)
        valid = (np.arange(ids.shape[1])[None, :] < lengths[:, None])[:, :, None]
        count = np.maximum(lengths, 1)[:, None].astype(np.float32)
        pooled = []
        for out in self._convolve(self._project(ids)):
            active = np.maximum(out, 0.0) * valid
            pooled += [active.max(axis=1), active.sum(axis=1) / count]
        return output_layer(np.concatenate(pooled, axis=1), self.weights, self.binary)

    def _attribute(self, text: str, target: int | None = None) -> Attribution:
        """Exact decomposition of the logit: with the ReLU pattern and each filter's max
        position fixed, the network is linear in the word vectors, so each word gets its
        kernel responses weighted by how the pooling and the output layer use them."""
        words = self.vectorizer.words(text)
        ids, lengths = self._encode([text])
        positions = kept_positions(len(words), int(self.config["max_length"]))
        length = int(lengths[0])
        head = self.weights["output.weight"][target or 0]
        bias = float(self.weights["output.bias"][target or 0])
        if not length:
            return Attribution(words, [], bias)
        projected = self._project(ids[:, :length])
        filters = int(self.config["filters"])
        slopes = []
        for i, out in enumerate(self._convolve(projected)):
            out = out[0]
            use_max, use_mean = head[2 * i * filters : (2 * i + 1) * filters], head[(2 * i + 1) * filters :
                                                                                    (2 * i + 2) * filters]
            active = out > 0
            # how much the logit moves per unit of each pre-activation output
            slope = active * (use_mean / length)
            top = out.argmax(axis=0)
            hit = active[top, np.arange(filters)]
            slope[top[hit], np.arange(filters)[hit]] += use_max[hit]
            bias += float(slope.sum(axis=0) @ self.weights[f"convs.{i}.bias"])
            slopes.append(slope)
        contributions = np.zeros(length, dtype=np.float64)
        for i, columns, lo, hi, shift in self._slices(length):
            contributions[lo:hi] += (projected[0, lo:hi, columns] * slopes[i][lo - shift : hi - shift]).sum(axis=1)
        items = [(position, 1, float(c)) for position, c in zip(positions, contributions, strict=True)]
        return Attribution(words, items, bias)

    def tensors(self) -> dict[str, np.ndarray]:
        return dict(self.weights)

    @classmethod
    def from_tensors(cls, vectorizer, config, tensors, class_names) -> CNNPredictor:
        if not isinstance(vectorizer, TextVectorizer):
            raise ModelFileError("a cnn model needs its vectorizer.json")
        try:
            vocab, dim, filters = vectorizer.vocabulary_size, int(config["embedding_dim"]), int(config["filters"])
            widths = [int(w) for w in config["widths"]]
            if int(config["max_length"]) < 1 or not widths or min(widths) < 1:
                raise ValueError("max_length and widths must be positive")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"a cnn model's config needs embedding_dim, filters, widths and max_length ({exc})"
                                 ) from exc
        out = outputs(len(class_names))
        expected = {"embedding.weight": (vocab, dim), "output.weight": (out, 2 * filters * len(widths)),
                    "output.bias": (out,)}
        for i, width in enumerate(widths):
            expected |= {f"convs.{i}.weight": (filters, dim, width), f"convs.{i}.bias": (filters,)}
        check_shapes(tensors, expected)
        return cls(vectorizer, config, tensors, class_names)


def build_module(vocabulary_size: int, dim: int, params: CNNParams, init: np.ndarray | None = None,
                 classes: int = 2):
    """The PyTorch network; its ``state_dict`` names are the export's tensor names."""
    torch = require("torch", "torch", "Training the cnn model")
    nn: Any = torch.nn  # untyped for the checker: the classes below subclass its Module

    class TextCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # sparse gradients: each Adam step updates only the rows of the batch's words
            self.embedding = nn.Embedding(vocabulary_size, dim, padding_idx=0, sparse=True)
            self.convs = nn.ModuleList(nn.Conv1d(dim, params.filters, w, padding=w // 2) for w in params.widths)
            self.dropout = nn.Dropout(params.dropout)
            self.output = nn.Linear(2 * params.filters * len(params.widths), outputs(classes))

        def forward(self, ids):
            valid = (ids > 0).unsqueeze(1)
            count = valid.sum(2).clamp(min=1)
            x = self.embedding(ids).transpose(1, 2)
            pooled = []
            for conv in self.convs:
                # ReLU outputs are ≥ 0, so zeroing the padding leaves the max of the words
                out = torch.relu(conv(x)[:, :, : ids.shape[1]]).masked_fill(~valid, 0.0)
                pooled += [out.max(2).values, out.sum(2) / count]
            logits = self.output(self.dropout(torch.cat(pooled, 1)))
            return logits.squeeze(1) if classes == 2 else logits

    module = TextCNN()
    if init is not None:
        with torch.no_grad():
            module.embedding.weight.copy_(torch.from_numpy(init))
    return module


def fit(train: Dataset, validation: Dataset, params: CNNParams, options: FitOptions,
        vectors: WordVectors | None = None) -> tuple[CNNPredictor, History, np.ndarray]:
    """Adapt the vocabulary on ``train``, train the network with early stopping on
    ``validation``; with ``refit``, then train it afresh on both for the epochs that were best.

    Returns the predictor, the history of the first fit, and that fit's validation logits."""
    require("torch", "torch", "Training the cnn model")
    vectorizer = TextVectorizer(max_tokens=params.max_tokens, ngrams=1, min_count=params.min_count)
    vectorizer.adapt(train.texts)
    init, dim = None, params.embedding_dim
    if vectors is not None:
        init, coverage = embedding_matrix(vectorizer.vocabulary_, vectors, seed=options.seed)
        dim = vectors.dim
        log(f"cnn: {vectorizer.vocabulary_size:,} words, {coverage:.1%} with pretrained vectors (dim {dim})")
    data = {name: Features(head_tail(*vectorizer.encode_ragged(ds.texts), params.max_length)[0], ds.labels,
                           dtype=np.int64, weights=ds.weights) for name, ds in (("train", train),
                                                                                ("validation", validation))}
    import torch

    torch.manual_seed(options.seed)
    module = build_module(vectorizer.vocabulary_size, dim, params, init, len(train.class_names))
    history = fit_loop(module, data["train"], data["validation"], options)
    _, _, validation_logits = evaluate_module(module, data["validation"], options.eval_batch_size)
    if params.refit:
        epochs = history.best_epoch or history.epochs
        log(f"cnn: refitting on train + validation ({len(train) + len(validation):,} texts, {epochs} epochs)")
        both = Features(_stack_rows(data["train"].rows, data["validation"].rows),
                        np.concatenate([train.labels, validation.labels]), dtype=np.int64,
                        weights=None if train.weights is None else np.r_[train.weights, np.ones(len(validation))])
        torch.manual_seed(options.seed)
        module = build_module(vectorizer.vocabulary_size, dim, params, init, len(train.class_names))
        # no checkpoint: a stop here ends the run and resuming starts the preset over
        fit_loop(module, both, None, replace(options, epochs=epochs, early_stopping=None, checkpoint=None))
    weights = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    config = asdict(params) | {"embedding_dim": dim}
    return CNNPredictor(vectorizer, config, weights, train.class_names), history, validation_logits


def _stack_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two padded id matrices of possibly different widths, one under the other."""
    width = max(a.shape[1], b.shape[1])
    return np.concatenate([np.pad(m, ((0, 0), (0, width - m.shape[1]))) for m in (a, b)])


def fit_family(job: FitJob, params: CNNParams) -> Fitted:
    options = replace(job.options(params), eval_batch_size=512)
    predictor, history, validation_logits = fit(job.train, job.validation, params, options, job.vectors)
    return Fitted(predictor, history, validation_logits=validation_logits)  # of the first fit, with refit


FAMILY = Family(
    name="cnn", summary="convolutions of 3, 4 and 5 words over word vectors (--preset best's network)",
    params=CNNParams, predictor=CNNPredictor, fit=fit_family, estimator="CNNClassifier", word_vectors=True)
