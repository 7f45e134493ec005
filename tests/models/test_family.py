"""The family registry is the one list of families: the CLI, TrainConfig, the estimators, the
pipeline and the loader all follow it, and a family added in one place works everywhere."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest

from reviewsense import estimators
from reviewsense.cli.parser import build_parser
from reviewsense.cli.train import family_flags
from reviewsense.errors import ConfigError
from reviewsense.models import registry
from reviewsense.models.base import Predictor, check_shapes
from reviewsense.training.config import TrainConfig


def _train_parser():
    parser = build_parser()
    return next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith(" train"))


def test_every_module_declares_its_family():
    found = registry.families()
    assert list(found) == list(registry.MODULES)
    for name, declared in found.items():
        assert declared.name == name == declared.predictor.family
        assert dataclasses.is_dataclass(declared.params)


def test_the_cli_offers_the_registry_and_every_declared_flag_is_real():
    train = _train_parser()
    model = next(a for a in train._actions if a.dest == "model")
    assert list(model.choices) == registry.trainable() == ["nblinear", "seed", "cnn", "sentence"]
    options = {option for action in train._actions for option in action.option_strings}
    for name, declared in registry.families().items():
        fields = {f.name for f in dataclasses.fields(declared.params)}
        for flag, target in declared.flags.items():
            assert flag in options, f"{name} declares {flag}, which the CLI lacks"
            assert (target if isinstance(target, str) else target[0]) in fields
    assert family_flags()["--C"] == ["nblinear"]
    assert set(family_flags()["--epochs"]) == {"seed", "cnn", "sentence"}


def test_estimators_pass_their_family_parameters_as_given():
    common = {"validation_size", "length_calibration", "random_state", "embedding", "epochs", "batch_size",
              "learning_rate", "early_stopping", "patience", "threads", "linear", "network"}
    for cls in (estimators.NBLinearClassifier, estimators.SeedClassifier, estimators.CNNClassifier,
                estimators.StackedClassifier):
        declared = registry.family(cls._family)
        fields = {f.name for f in dataclasses.fields(declared.params)}
        names = set(cls._get_param_names())
        assert names <= fields | common, f"{cls.__name__}: {names - fields - common} are not {declared.name}'s"
    assert estimators.NBLinearClassifier(C=0.25, min_df=3)._settings() | {} == {
        "ngrams": 3, "hash_bits": 24, "min_df": 3, "C": 0.25, "binary": False, "span_weight": 0.05, "refit": True}
    assert estimators.CNNClassifier(widths=(2, 3))._settings()["widths"] == [2, 3]


def test_train_config_refuses_what_it_would_ignore():
    with pytest.raises(ConfigError, match="unknown model family 'zzz'"):
        TrainConfig(model="zzz").check()
    with pytest.raises(ConfigError, match="the 'seed' settings are for --model seed; this run trains nblinear"):
        TrainConfig(settings={"seed": {"hidden_units": 4}}).check()
    with pytest.raises(ConfigError, match="'nblinear' has no setting 'hidden_units'"):
        TrainConfig(settings={"nblinear": {"hidden_units": 4}}).check()
    assert TrainConfig(preset="best").families == ["ensemble", "nblinear", "cnn"]
    assert TrainConfig(model="seed", embedding="sentence:enc").family == "sentence"
    assert TrainConfig(model="seed").params_of("seed")["ngrams"] == 2  # train's default over the tutorial's 1


def test_a_run_configuration_from_before_the_registry_still_reads():
    old = {"run_dir": "r", "data": {"path": "x.csv"}, "model": "nblinear", "embedding": "word2vec",
           "pretrain_epochs": 5, "epochs": 40, "batch_size": 512, "learning_rate": 0.003, "early_stopping": True,
           "patience": 3, "seed": 0, "threads": None, "preset": None, "length_calibration": True,
           "params": {"max_tokens": 200000, "ngrams": 2, "sequence_length": None, "min_count": 1,
                      "punctuation": "split", "embedding_dim": 100, "hidden_units": 16, "trainable_embedding": True},
           "linear": {"C": 0.5}, "cnn": {}}
    config = TrainConfig.from_dict(old)
    assert config.settings == {"nblinear": {"C": 0.5}}  # the seed network's settings did not apply to this run
    assert config.check() is config
    seed_run = TrainConfig.from_dict({**old, "model": "seed", "linear": {}})
    assert seed_run.settings["seed"]["embedding_dim"] == 100


# -- a family added in one place ---------------------------------------------------------------
@dataclass
class PriorParams:
    smoothing: float = 1.0


class PriorPredictor(Predictor):
    """Every text gets the training data's class rates: the smallest possible family."""

    family = "prior"

    def __init__(self, vectorizer, config, tensors, class_names=("negative", "positive")):
        super().__init__(None, config, class_names)
        self.log_rates = np.asarray(tensors["log_rates"], dtype=np.float32)

    def _logits(self, texts):
        if self.binary:
            return np.full(len(texts), self.log_rates[1] - self.log_rates[0], dtype=np.float32)
        return np.tile(self.log_rates, (len(texts), 1))

    def tensors(self):
        return {"log_rates": self.log_rates}

    @classmethod
    def from_tensors(cls, vectorizer, config, tensors, class_names):
        check_shapes(tensors, {"log_rates": (len(class_names),)})
        return cls(None, config, tensors, class_names)


def _fit_prior(job, params):
    counts = np.bincount(job.train.labels, minlength=len(job.train.class_names)) + params.smoothing
    rates = {"log_rates": np.log(counts / counts.sum())}
    return registry.Fitted(PriorPredictor(None, dataclasses.asdict(params), rates, job.train.class_names))


@pytest.fixture
def prior_family(monkeypatch):
    module = types.ModuleType("reviewsense.models.prior")
    module.FAMILY = registry.Family(name="prior", summary="the class rates, whatever the text", params=PriorParams,
                                    predictor=PriorPredictor, fit=_fit_prior, flags={})
    monkeypatch.setitem(sys.modules, "reviewsense.models.prior", module)
    monkeypatch.setattr(registry, "MODULES", (*registry.MODULES, "prior"))
    registry.families.cache_clear()
    yield
    registry.families.cache_clear()


def test_a_family_added_in_one_place_trains_exports_and_loads_everywhere(prior_family, tmp_path, toy_csv):
    from reviewsense.cli import main
    from reviewsense.export import load_model

    train = _train_parser()
    assert "prior" in next(a for a in train._actions if a.dest == "model").choices
    run = tmp_path / "run"
    assert main(["train", "--data", str(toy_csv), "--model", "prior", "--run-dir", str(run)]) == 0
    model = load_model(run / "model")
    assert type(model) is PriorPredictor and json.loads((run / "model" / "manifest.json").read_text())["family"] == \
        "prior"
    rates = model.predict_proba(["anything", "at all"])
    assert rates[0] == pytest.approx(rates[1])
    assert main(["train", "--data", str(toy_csv), "--model", "prior", "--C", "1", "--run-dir",
                 str(tmp_path / "other")]) == 2
