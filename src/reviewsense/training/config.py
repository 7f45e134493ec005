"""Every setting of a run (``RUN/config.json``), and reading it back for ``--resume``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.splits import DataSpec
from ..errors import ConfigError
from ..models.seed import SeedParams
from ..training.checkpoint import Checkpoint

MODELS = ("seed", "nblinear")


@dataclass
class TrainConfig:
    run_dir: str = "runs/imdb"
    data: DataSpec = field(default_factory=DataSpec)
    # The default family is the most accurate and fastest one (README, bench/); the seed
    # model — the tutorial's network — is `model="seed"`.
    model: str = "nblinear"
    # The seed defaults are the best seed-model settings found on IMDB validation data (README):
    # in-domain word2vec vectors, unigrams + bigrams, 200k tokens, Adam at 3e-3, early stopping.
    embedding: str = "word2vec"  # scratch | word2vec | fasttext | PATH to vectors | sentence:ENCODER
    pretrain_epochs: int = 5
    params: SeedParams = field(default_factory=lambda: SeedParams(max_tokens=200_000, ngrams=2, embedding_dim=100))
    epochs: int = 40
    batch_size: int = 512
    learning_rate: float = 3e-3
    early_stopping: bool = True
    patience: int = 3
    seed: int = 0
    threads: int | None = None
    linear: dict[str, Any] = field(default_factory=dict)  # nblinear settings (NBLinearParams fields)
    preset: str | None = None  # "best": stacked nblinear + cnn (word2vec) ensemble
    # honest probabilities at every text length: a calibration fitted on spans of the
    # validation reviews (models/calibration.py); False keeps the model's own scores
    length_calibration: bool = True
    cnn: dict[str, Any] = field(default_factory=dict)  # the preset's network (CNNParams fields)

    @property
    def uses_word_vectors(self) -> bool:
        """Whether a network over word vectors is trained (the seed model, --preset best's CNN):
        then ``embedding`` says where its vectors come from."""
        return self.model == "seed" or self.preset == "best"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The inverse of ``asdict`` (a run's ``config.json``), refusing unknown fields."""
        try:
            spec = dict(data["data"])
            spec.setdefault("random_split", True)  # runs from before the split by group were split at random
            return cls(**{**data, "data": DataSpec(**spec), "params": SeedParams(**data["params"])})
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"not a reviewsense run configuration ({exc})") from exc


def resume_config(run_dir: str | Path) -> TrainConfig:
    """The configuration of an interrupted run, for ``train(config, resume=True)``."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.json)")
    if not Checkpoint(run_dir / "checkpoint").exists():
        done = (run_dir / "metrics.json").is_file()
        raise ConfigError(f"{run_dir}: nothing to resume ({'the run finished' if done else 'no checkpoint'})")
    try:
        data = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{run_dir / 'config.json'}: unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{run_dir / 'config.json'}: not a run configuration")
    config = TrainConfig.from_dict(data)
    config.run_dir = str(run_dir)
    return config

