"""Every setting of a run (``RUN/config.json``), and reading it back for ``--resume``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data.splits import DataSpec
from .errors import ConfigError
from .models.registry import families, family, trainable
from .training.checkpoint import Checkpoint

# fields of runs written before the families' parameters held their schedule: the values applied
_OLD_SCHEDULE = ("epochs", "batch_size", "learning_rate", "early_stopping", "patience")


@dataclass
class TrainConfig:
    """Every setting of a run. A family's own settings are in ``settings`` (family name → its
    parameters that differ from their defaults, e.g. ``{"nblinear": {"C": 0.5}}``; a family made
    of others — ``preset="best"`` — reads its members' entries); their defaults live in the
    family's parameters dataclass alone (reviewsense.models.params)."""

    run_dir: str = "runs/imdb"
    data: DataSpec = field(default_factory=DataSpec)
    # The default family is the most accurate and fastest one (README, bench/); any standalone
    # family of the registry (reviewsense.models.registry) can be named.
    model: str = "nblinear"
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    preset: str | None = None  # "best": stacked nblinear + cnn (word2vec) ensemble
    seed: int = 0
    n_jobs: int | None = None  # threads (None: every core)
    class_weight: str | None = None  # "balanced": each class weighs as much in the training loss
    # honest probabilities at every text length: a calibration fitted on spans of the
    # validation reviews (models/calibration.py); False keeps the model's own scores
    length_calibration: bool = True
    pretrain_epochs: int = 5  # word2vec/fasttext vectors pretrained for the run
    spark: str | None = None  # trained on Spark (nblinear): the master ("": spark-submit's); None: in this process

    @property
    def family(self) -> str:
        """The family this run trains: the preset's stack, or ``model``."""
        return "ensemble" if self.preset == "best" else self.model

    @property
    def families(self) -> list[str]:
        """Every family this run trains (a stack's members too)."""
        name = self.family
        return [name, *family(name).make_params(self.params_of(name)).members] if name == "ensemble" else [name]

    def params_of(self, name: str) -> dict[str, Any]:
        """Family ``name``'s settings given for this run."""
        return dict(self.settings.get(name, {}))

    def check(self) -> TrainConfig:
        """Refuse an unknown family, settings of families this run does not train, and settings
        a family does not have or values out of range (before any data is read)."""
        if self.preset not in (None, "best"):
            raise ConfigError(f"unknown preset '{self.preset}' (available: best)")
        if self.preset is None and self.model not in trainable():
            raise ConfigError(f"unknown model family '{self.model}' (available: {', '.join(trainable())})")
        trained = self.families
        for name in self.settings:
            if name not in families():
                raise ConfigError(f"settings for unknown model family '{name}' (known: {', '.join(families())})")
            if name not in trained:
                what = f"--model {name}" + (" or --preset best" if name in family("ensemble").make_params(
                    {}).members else "")
                raise ConfigError(f"the '{name}' settings are for {what}; this run trains {', '.join(trained)}")
        for name in trained:
            family(name).make_params(self.params_of(name))
        if self.spark is not None:
            if trained != ["nblinear"]:
                what = "--preset best" if self.preset else f"--model {self.model}"
                raise ConfigError(f"--spark trains the default model (nblinear), not {what}")
            if self.class_weight is not None:
                raise ConfigError("--class-weight is not available with --spark (train without it, or in one process)")
        return self

    @property
    def uses_word_vectors(self) -> bool:
        """Whether a family that reads word vectors is trained (its ``embedding`` says which)."""
        return any(family(name).word_vectors for name in self.families)

    def vector_settings(self) -> tuple[str, int]:
        """The ``embedding`` and ``embedding_dim`` of the family that reads word vectors."""
        name = next(name for name in self.families if family(name).word_vectors)
        params = family(name).make_params(self.params_of(name))
        return params.embedding, int(params.embedding_dim)

    def resolved(self) -> dict[str, dict[str, Any]]:
        """Every trained family's parameters, each with all its fields (what config.json shows)."""
        from dataclasses import asdict

        return {name: asdict(family(name).make_params(self.params_of(name))) for name in self.families}

    @property
    def pretrains_vectors(self) -> bool:
        """Whether the run pretrains word vectors (word2vec/fasttext: ``pretrain_epochs`` applies)."""
        return self.uses_word_vectors and self.vector_settings()[0] in ("word2vec", "fasttext")

    def record(self) -> dict[str, Any]:
        """What ``config.json`` (and the model's training record) holds: every setting this run
        used, each trained family's parameters in full, and nothing of what it did not use (no
        ``model`` beside ``preset``, no ``pretrain_epochs`` without pretrained vectors).
        :meth:`from_dict` reads it back (a setting left out is its default, which the run ignored)."""
        from dataclasses import asdict

        data = asdict(self)
        data["settings"] = self.resolved()
        if self.preset is not None:
            del data["model"]
        if not self.pretrains_vectors:
            del data["pretrain_epochs"]
        if self.spark is None:
            del data["spark"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The inverse of ``asdict`` (a run's ``config.json``), refusing unknown fields. Runs
        written by earlier versions (``params``, ``linear``, ``cnn``; the schedule, ``embedding``
        and ``threads`` beside the settings) are read too."""
        try:
            data = dict(data)
            spec = dict(data["data"])
            spec.setdefault("random_split", True)  # runs from before the split by group were split at random
            spec.setdefault("stratify", False)  # runs from before stratified splits held out plain random rows
            old = {"seed": data.pop("params", None), "nblinear": data.pop("linear", None), "cnn": data.pop("cnn", None)}
            schedule = {k: data.pop(k) for k in _OLD_SCHEDULE if k in data}
            embedding = data.pop("embedding", None)
            threads = data.pop("threads", None)
            data.pop("distributed", None)  # how a torchrun job ran (world size): a record, not a setting
            settings = {k: dict(v) for k, v in (data.pop("settings", None) or {}).items()}
            config = cls(**{**data, "data": DataSpec(**spec), "settings": settings})
            if threads is not None and config.n_jobs is None:
                config.n_jobs = threads
            model = config.model if config.preset is None else None
            if model == "seed" and embedding and str(embedding).startswith("sentence:"):  # the sentence head
                config.model = model = "sentence"
                config.settings.setdefault("sentence", {})["encoder"] = str(embedding).removeprefix("sentence:")
                if old["seed"]:  # the head's size was the seed model's
                    old["sentence"] = {"hidden_units": old["seed"]["hidden_units"]}
                old["seed"] = None
            for name, values in old.items():
                if values and name in config.families:
                    config.settings.setdefault(name, {}).update(values)
            if model in ("seed", "sentence") and schedule:  # the schedule these runs applied
                config.settings.setdefault(model, {}).update(schedule)
            for name in ("seed", "cnn"):
                if embedding and name in config.families and not str(embedding).startswith("sentence:"):
                    config.settings.setdefault(name, {}).setdefault("embedding", embedding)
            return config
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"not a reviewsense run configuration ({exc})") from exc


def resume_config(run_dir: str | Path) -> TrainConfig:
    """The configuration of an interrupted run, for ``train(config, resume=True)``."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.json)")
    try:
        data = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{run_dir / 'config.json'}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{run_dir / 'config.json'}: not a run configuration")
    if data.get("spark") is not None:
        raise ConfigError(f"{run_dir}: a run trained on Spark cannot be resumed (Spark retries failed tasks itself); "
                          "train it again")
    if not Checkpoint(run_dir / "checkpoint").exists():
        done = (run_dir / "metrics.json").is_file()
        raise ConfigError(f"{run_dir}: nothing to resume ({'the run finished' if done else 'no checkpoint'})")
    config = TrainConfig.from_dict(data)
    config.run_dir = str(run_dir)
    return config

