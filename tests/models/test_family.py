"""The family registry is the one list of families, and a family's parameters dataclass is the
one place its settings are written: the CLI flags, the estimators, TrainConfig, the pipeline and
the loader all follow them, and a family added in one place (``reviewsense.register``) works
everywhere."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys

import pytest
from prior_family import FAMILY as PRIOR  # tests/models/prior_family.py
from prior_family import PriorPredictor

import reviewsense
from reviewsense import estimators
from reviewsense.cli.parser import build_parser
from reviewsense.cli.train import family_flags
from reviewsense.errors import ConfigError
from reviewsense.models import registry
from reviewsense.models.params import specs
from reviewsense.run_config import TrainConfig


def _train_parser():
    parser = build_parser()
    return next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith(" train"))


def test_every_module_declares_its_family():
    found = registry.families()
    assert list(found)[: len(registry.MODULES)] == list(registry.MODULES)
    for name in registry.MODULES:
        declared = found[name]
        assert declared.name == name == declared.predictor.family
        assert dataclasses.is_dataclass(declared.params)
        for spec in specs(declared.params):
            assert spec.help, f"{name}.{spec.name} has no help"


def test_the_cli_offers_the_registry_and_every_parameter_as_a_flag():
    train = _train_parser()
    model = next(a for a in train._actions if a.dest == "model")
    assert list(model.choices) == registry.trainable() == ["nblinear", "seed", "cnn", "sentence", "transformer"]
    options = {option: action for action in train._actions for option in action.option_strings}
    for name in registry.trainable():
        for spec in specs(registry.family(name).params):
            if spec.cli:
                assert spec.flag in options, f"{name}.{spec.name}: no {spec.flag}"
                if spec.type is not bool:  # the help shows this family's default
                    assert f"{name}: " in options[spec.flag].help
    assert family_flags()["--C"] == ["nblinear"]
    assert set(family_flags()["--epochs"]) == {"seed", "cnn", "sentence", "transformer"}


def test_a_default_lives_in_one_place():
    """The estimator's defaults are the family's, and so are the CLI's (no flag given: no setting)."""
    for name in registry.trainable():
        cls = estimators.estimator_class(name)
        signature = inspect.signature(cls)
        for spec in specs(registry.family(name).params):
            default = signature.parameters[spec.name].default
            assert (list(default) if isinstance(default, tuple) else default) == spec.default
    args = build_parser().parse_args(["train", "--model", "seed"])
    from reviewsense.cli.train import _settings

    assert _settings(args, ["seed"]) == {}
    assert estimators.SeedClassifier().get_params()["ngrams"] == 2 == TrainConfig(model="seed").resolved()["seed"][
        "ngrams"]
    assert estimators.NBLinearClassifier().hash_bits == 24


def test_flags_parse_and_check_against_the_parameters(capsys):
    parser = build_parser()
    args = parser.parse_args(["train", "--model", "seed", "--ngrams", "1", "--frozen-embedding", "--epochs", "3"])
    from reviewsense.cli.train import _settings

    assert _settings(args, ["seed"]) == {"seed": {"ngrams": 1, "trainable_embedding": False, "epochs": 3}}
    for bad in (["--ngrams", "0"], ["--C", "nan"], ["--dropout", "1"], ["--epochs", "x"]):
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(["train", *bad])
        assert stop.value.code == 2
    assert "must be" in capsys.readouterr().err or True


def test_estimator_parameters_are_checked_in_fit(toy_corpus):
    texts, labels = toy_corpus(60, seed=1)
    for bad, message in (({"ngrams": 0}, "ngrams must be ≥ 1"), ({"C": -1.0}, "C must be > 0"),
                         ({"binary": "yes"}, "binary must be True or False"),
                         ({"validation_size": 0}, "validation_size must be > 0")):
        with pytest.raises(ConfigError, match=message):
            estimators.NBLinearClassifier(**bad).fit(texts, labels)
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda or cuda:N"):
        estimators.SeedClassifier(device="tpu").fit(texts, labels)
    with pytest.raises(TypeError, match="unexpected parameter"):
        estimators.NBLinearClassifier(hidden_units=3)


def test_train_config_refuses_what_it_would_ignore():
    with pytest.raises(ConfigError, match="unknown model family 'zzz'"):
        TrainConfig(model="zzz").check()
    with pytest.raises(ConfigError, match="the 'seed' settings are for --model seed; this run trains nblinear"):
        TrainConfig(settings={"seed": {"hidden_units": 4}}).check()
    with pytest.raises(ConfigError, match="'nblinear' has no setting 'hidden_units'"):
        TrainConfig(settings={"nblinear": {"hidden_units": 4}}).check()
    with pytest.raises(ConfigError, match="nblinear: min_df must be ≥ 1"):
        TrainConfig(settings={"nblinear": {"min_df": 0}}).check()
    assert TrainConfig(preset="best").families == ["ensemble", "nblinear", "cnn"]
    assert set(TrainConfig(model="cnn").resolved()) == {"cnn"}  # config.json: only the chosen family's settings


def test_run_configurations_of_earlier_versions_still_read():
    old = {"run_dir": "r", "data": {"path": "x.csv"}, "model": "nblinear", "embedding": "word2vec",
           "pretrain_epochs": 5, "epochs": 40, "batch_size": 512, "learning_rate": 0.003, "early_stopping": True,
           "patience": 3, "seed": 0, "threads": None, "preset": None, "length_calibration": True,
           "params": {"max_tokens": 200000, "ngrams": 2, "sequence_length": None, "min_count": 1,
                      "punctuation": "split", "embedding_dim": 100, "hidden_units": 16, "trainable_embedding": True},
           "linear": {"C": 0.5}, "cnn": {}}
    config = TrainConfig.from_dict(old)
    assert config.settings == {"nblinear": {"C": 0.5}}  # the seed network's settings did not apply to this run
    assert config.check() is config
    seed_run = TrainConfig.from_dict({**old, "model": "seed", "linear": {}, "learning_rate": 0.001})
    assert seed_run.settings["seed"]["embedding_dim"] == 100 and seed_run.settings["seed"]["learning_rate"] == 0.001
    assert seed_run.check() is seed_run
    sentence = TrainConfig.from_dict({**old, "model": "seed", "embedding": "sentence:enc", "linear": {}})
    assert sentence.family == "sentence" and sentence.settings["sentence"]["encoder"] == "enc"
    new = TrainConfig.from_dict({"run_dir": "r", "data": {}, "model": "seed", "settings": {"seed": {"epochs": 2}},
                                 "n_jobs": 1})
    assert new.params_of("seed") == {"epochs": 2}


# -- a family added in one place (tests/models/prior_family.py) ---------------------------------------
@pytest.fixture
def prior_family():
    reviewsense.register(PRIOR)
    yield
    registry.unregister("prior")


def test_a_family_registered_in_one_place_trains_exports_and_loads_everywhere(prior_family, tmp_path, toy_csv,
                                                                               capsys):
    from reviewsense.cli import main
    from reviewsense.export import load_model

    train = _train_parser()
    assert "prior" in next(a for a in train._actions if a.dest == "model").choices
    assert "--smoothing" in train.format_help()
    run = tmp_path / "run"
    assert main(["train", "--data", str(toy_csv), "--model", "prior", "--smoothing", "2", "--run-dir", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["settings"] == {"prior": {"smoothing": 2.0}}
    model = load_model(run / "model")
    assert type(model) is PriorPredictor and json.loads((run / "model" / "manifest.json").read_text())["family"] == \
        "prior"
    rates = model.predict_proba(["anything", "at all"])
    assert rates[0] == pytest.approx(rates[1])
    capsys.readouterr()
    assert main(["info", "--model", str(run / "model")]) == 0
    assert "prior" in capsys.readouterr().out
    assert main(["train", "--data", str(toy_csv), "--model", "prior", "--C", "1", "--run-dir",
                 str(tmp_path / "other")]) == 2
    assert "--C applies to --model nblinear, not to --model prior" in capsys.readouterr().err
    # from Python: the estimator comes from the same parameters
    cls = reviewsense.estimator_class("prior")
    assert cls.__name__ == "PriorClassifier" and "smoothing" in cls._get_param_names()
    texts, labels = ["a", "b", "c", "d"] * 10, ["x", "y", "y", "y"] * 10
    fitted = cls(smoothing=0.0, length_calibration=False).fit(texts, labels)
    assert fitted.predict_proba(["z"])[0] == pytest.approx([0.25, 0.75], abs=0.06)
    saved = fitted.save(tmp_path / "saved")
    assert cls.load(saved).predict_proba(["z"]).tolist() == fitted.predict_proba(["z"]).tolist()


def test_register_refuses_what_is_not_a_family():
    with pytest.raises(TypeError):
        reviewsense.register("prior")
    with pytest.raises(ConfigError, match="shipped with reviewsense"):
        reviewsense.register(dataclasses.replace(registry.family("nblinear")))


def test_a_family_installed_as_an_entry_point_is_found(tmp_path):
    """A package that declares ``[project.entry-points."reviewsense.families"]`` adds its family
    without any call: shown here with a distribution's metadata on sys.path."""
    package = tmp_path / "toyfamily"
    package.mkdir()
    (package / "__init__.py").write_text("from prior_family import FAMILY\n")
    info = tmp_path / "toyfamily-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyfamily\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[reviewsense.families]\nprior = toyfamily:FAMILY\n")
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
            "from reviewsense.models.registry import trainable\n"
            "from reviewsense.cli.parser import build_parser\n"
            "print(trainable()[-1]); build_parser().parse_args(['train', '--model', 'prior', '--smoothing', '3'])")
    root = str(__import__("pathlib").Path(__file__).resolve().parent)  # where prior_family.py is
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path), root], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "prior"
