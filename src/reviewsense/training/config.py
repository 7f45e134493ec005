"""Every setting of a run (``RUN/config.json``), and reading it back for ``--resume``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.splits import DataSpec
from ..errors import ConfigError
from ..models.registry import MODULES, family, trainable
from ..training.checkpoint import Checkpoint

# ``reviewsense train``'s own defaults where they differ from a family's: the seed model's are
# the best settings found on IMDB validation data (README) — in-domain word2vec vectors,
# unigrams + bigrams, 200k tokens — where SeedParams keeps the tutorial's.
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {"seed": {"max_tokens": 200_000, "ngrams": 2, "embedding_dim": 100}}


@dataclass
class TrainConfig:
    run_dir: str = "runs/imdb"
    data: DataSpec = field(default_factory=DataSpec)
    # The default family is the most accurate and fastest one (README, bench/); the seed
    # model — the tutorial's network — is `model="seed"`. Any standalone family of the
    # registry (reviewsense.models.registry) can be named.
    model: str = "nblinear"
    embedding: str = "word2vec"  # scratch | word2vec | fasttext | PATH to vectors | sentence:ENCODER
    pretrain_epochs: int = 5
    # family name → its parameters that differ from the defaults (the fields of its params
    # dataclass, e.g. {"nblinear": {"C": 0.5}}); a family made of others (--preset best) reads
    # its members' entries
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the schedule of families trained in epochs (the preset's network has its own: settings["cnn"])
    epochs: int = 40
    batch_size: int = 512
    learning_rate: float = 3e-3
    early_stopping: bool = True
    patience: int = 3
    seed: int = 0
    threads: int | None = None
    preset: str | None = None  # "best": stacked nblinear + cnn (word2vec) ensemble
    # honest probabilities at every text length: a calibration fitted on spans of the
    # validation reviews (models/calibration.py); False keeps the model's own scores
    length_calibration: bool = True

    @property
    def family(self) -> str:
        """The family this run trains: the preset's stack, the sentence head (``--embedding
        sentence:…``, the seed network over an encoder), or ``model``."""
        if self.preset == "best":
            return "ensemble"
        if self.model == "seed" and self.embedding.startswith("sentence:"):
            return "sentence"
        return self.model

    @property
    def families(self) -> list[str]:
        """Every family this run trains (a stack's members too)."""
        name = self.family
        return [name, *family(name).make_params(self.params_of(name)).members] if name == "ensemble" else [name]

    def params_of(self, name: str) -> dict[str, Any]:
        """Family ``name``'s settings: ``train``'s defaults, then this run's."""
        own = dict(self.settings.get(name, {}))
        if name == "sentence" and "encoder" not in own and self.embedding.startswith("sentence:"):
            own["encoder"] = self.embedding.removeprefix("sentence:")
        return {**TRAIN_DEFAULTS.get(name, {}), **own}

    def check(self) -> TrainConfig:
        """Refuse an unknown family, settings of families this run does not train, and settings
        a family does not have (before any data is read)."""
        if self.preset not in (None, "best"):
            raise ConfigError(f"unknown preset '{self.preset}' (available: best)")
        if self.preset is None and self.model not in trainable():
            raise ConfigError(f"unknown model family '{self.model}' (available: {', '.join(trainable())})")
        trained = self.families
        for name in self.settings:
            if name not in MODULES:
                raise ConfigError(f"settings for unknown model family '{name}' (known: {', '.join(MODULES)})")
            if name not in trained:
                what = "--preset best" if name == "cnn" else f"--model {name}"
                raise ConfigError(f"the '{name}' settings are for {what}; this run trains {', '.join(trained)}")
        for name in trained:
            family(name).make_params(self.params_of(name))
        return self

    @property
    def uses_word_vectors(self) -> bool:
        """Whether a network over word vectors is trained (the seed model, --preset best's CNN):
        then ``embedding`` says where its vectors come from."""
        return any(family(name).word_vectors for name in self.families)

    @property
    def embedding_dim(self) -> int:
        """The size of word vectors pretrained for this run."""
        name = next(name for name in self.families if family(name).word_vectors)
        return int(family(name).make_params(self.params_of(name)).embedding_dim)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The inverse of ``asdict`` (a run's ``config.json``), refusing unknown fields. Runs
        written before the family registry (``params``, ``linear``, ``cnn``) are read too."""
        try:
            data = dict(data)
            spec = dict(data["data"])
            spec.setdefault("random_split", True)  # runs from before the split by group were split at random
            old = {"seed": data.pop("params", None), "nblinear": data.pop("linear", None), "cnn": data.pop("cnn", None)}
            config = cls(**{**data, "data": DataSpec(**spec), "settings": dict(data.pop("settings", None) or {})})
            if config.family == "sentence" and old["seed"]:  # the head's size was the seed model's
                old["sentence"] = {"hidden_units": old["seed"]["hidden_units"]}
            config.settings |= {k: dict(v) for k, v in old.items() if v and k in config.families}
            return config
        except (KeyError, TypeError, AttributeError) as exc:
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

