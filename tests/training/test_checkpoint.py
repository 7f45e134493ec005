"""Interrupted training: a checkpoint on SIGINT/SIGTERM, and a resume that ends exactly where
an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from reviewsense.errors import Interrupted, ModelFileError
from reviewsense.training.checkpoint import Checkpoint, request_stop, stop_on_signals, stop_requested
from reviewsense.training.history import EarlyStopping
from reviewsense.training.torch_loop import Callback, Features, FitOptions, Ragged, fit

torch = pytest.importorskip("torch")


def _data(n: int, seed: int) -> Ragged:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    lengths = rng.integers(1, 8, n)
    ids = np.concatenate([rng.integers(2, 10, k) + 10 * y for k, y in zip(lengths, labels, strict=True)])
    return Ragged(ids.astype(np.int64), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), labels)


def _module(kind: str):
    from reviewsense.models import cnn, seed

    torch.manual_seed(0)
    if kind == "cnn":  # a sparse embedding: Adam and SparseAdam, checkpointed as one optimizer
        return cnn.build_module(20, 4, cnn.CNNParams(filters=3, widths=[2, 3], dropout=0.0))
    return seed.build_module(20, 4, 3)


def _padded(data: Ragged) -> Features:
    from reviewsense.models.cnn import head_tail

    return Features(head_tail(data.ids, data.offsets, 8)[0], data.labels, dtype=np.int64)


def _run(checkpoint=None, stop_after_epoch=None, kind="seed"):
    train, validation = _data(200, 0), _data(80, 1)
    if kind == "cnn":
        train, validation = _padded(train), _padded(validation)
    module = _module(kind)

    class StopAfter(Callback):
        def on_epoch_end(self, loop, epoch, logs):
            if epoch == stop_after_epoch:
                request_stop()

    options = FitOptions(epochs=6, batch_size=16, learning_rate=0.05, threads=1, checkpoint=checkpoint,
                         early_stopping=EarlyStopping(patience=10), callbacks=[StopAfter()])
    history = fit(module, train, validation, options)
    return module, history


@pytest.mark.parametrize("kind", ["seed", "cnn"])
def test_resumed_training_equals_uninterrupted_training(tmp_path, kind):
    reference, reference_history = _run(kind=kind)
    checkpoint = Checkpoint(tmp_path / "checkpoint")
    with stop_on_signals(), pytest.raises(Interrupted, match="interrupted in epoch 3"):
        _run(checkpoint, stop_after_epoch=2, kind=kind)
    assert checkpoint.exists() and not stop_requested()
    _, state = checkpoint.load()
    assert state["epoch"] == 3 and state["position"] == 16 and len(state["history"]["history"]["loss"]) == 2

    resumed, resumed_history = _run(checkpoint, kind=kind)
    assert resumed_history.history == reference_history.history
    assert resumed_history.best_epoch == reference_history.best_epoch
    for key, value in reference.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_checkpoint_files_are_json_and_safetensors_only(tmp_path):
    checkpoint = Checkpoint(tmp_path / "c")
    with stop_on_signals(), pytest.raises(Interrupted):
        _run(checkpoint, stop_after_epoch=1)
    assert sorted(p.name for p in checkpoint.path.iterdir()) == ["state.json", "tensors.safetensors"]
    (checkpoint.path / "state.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ModelFileError, match="not a reviewsense checkpoint"):
        checkpoint.load()


def test_signals_only_request_a_stop_and_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop_requested()
    assert signal.getsignal(signal.SIGTERM) is before and not stop_requested()


def _stop_in_linear_stage(monkeypatch):
    """Make nblinear's first stage check find a stop request; returns the real check."""
    from reviewsense.models import nblinear

    real = nblinear.check_stop

    def stop_now(where):
        request_stop()
        real(where)

    monkeypatch.setattr(nblinear, "check_stop", stop_now)
    return real


def test_pipeline_interrupted_between_linear_stages_resumes(tmp_path, toy_csv, monkeypatch):
    """nblinear has no epochs: a stop between its stages leaves a 'start over' checkpoint,
    and the resumed run (deterministic) matches an uninterrupted one."""
    from reviewsense.models import nblinear
    from reviewsense.pipeline import DataSpec, TrainConfig, resume_config, train

    config = {"data": DataSpec(path=str(toy_csv)), "settings": {"nblinear": {"hash_bits": 14}}}
    reference = train(TrainConfig(run_dir=str(tmp_path / "a"), **config))
    real = _stop_in_linear_stage(monkeypatch)
    with pytest.raises(Interrupted, match="resume with: reviewsense train --resume"):
        train(TrainConfig(run_dir=str(tmp_path / "b"), **config))
    assert (tmp_path / "b" / "checkpoint" / "state.json").is_file()
    assert not (tmp_path / "b" / "metrics.json").exists()
    monkeypatch.setattr(nblinear, "check_stop", real)
    resumed = train(resume_config(tmp_path / "b"), resume=True)
    assert resumed["test"] == reference["test"] and resumed["validation"] == reference["validation"]
    assert not (tmp_path / "b" / "checkpoint").exists()


def test_resume_refuses_finished_and_unknown_runs(tmp_path, toy_csv):
    from reviewsense.errors import ConfigError
    from reviewsense.pipeline import DataSpec, TrainConfig, resume_config, train

    with pytest.raises(ConfigError, match="not a run folder"):
        resume_config(tmp_path / "nothing")
    train(TrainConfig(run_dir=str(tmp_path / "done"), data=DataSpec(path=str(toy_csv)),
                      settings={"nblinear": {"hash_bits": 12}}))
    with pytest.raises(ConfigError, match="the run finished"):
        resume_config(tmp_path / "done")


TRAIN = ["--model", "seed", "--embedding", "scratch", "--embedding-dim", "8", "--hidden-units", "4", "--epochs",
         "10", "--no-early-stopping", "--batch-size", "16", "--learning-rate", "0.01", "--threads", "1"]


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, toy_run):
    """The uninterrupted reference run (in-process): (data file, run folder)."""
    return toy_run(tmp_path_factory.mktemp("whole"), TRAIN)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_signal_then_resume_gives_the_same_metrics(tmp_path, whole_run, signum, capsys):
    """A real `reviewsense train` process, signalled mid-training, then `--resume`."""
    from reviewsense.cli import main

    data, whole = whole_run
    run = tmp_path / "cut"
    env = {**os.environ, "REVIEWSENSE_QUIET": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "reviewsense.cli", "train", "--data", str(data), "--run-dir",
                             str(run), *TRAIN], env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("Epoch 2/"):
            proc.send_signal(signum)
            break
    rest = proc.stderr.read()
    assert proc.wait(60) == 130, "".join(lines) + rest
    message = rest.strip().splitlines()[-1]
    assert message.startswith("reviewsense: interrupted in epoch") and f"--resume {run}" in message
    assert "Traceback" not in rest
    assert (run / "checkpoint" / "state.json").is_file() and not (run / "metrics.json").exists()

    assert main(["train", "--resume", str(run)]) == 0, capsys.readouterr().err
    metrics_whole = json.loads((whole / "metrics.json").read_text())
    metrics_cut = json.loads((run / "metrics.json").read_text())
    assert metrics_cut["test"] == metrics_whole["test"] and metrics_cut["validation"] == metrics_whole["validation"]
    assert json.loads((run / "history.json").read_text()) == json.loads((whole / "history.json").read_text())
    assert not (run / "checkpoint").exists()


CNN = {"embedding_dim": 8, "filters": 4, "epochs": 3, "batch_size": 32, "max_length": 40}
PRESET = {"preset": "best", "n_jobs": 1,
          "settings": {"nblinear": {"hash_bits": 12}, "cnn": {**CNN, "embedding": "scratch"}}}


def test_preset_best_stopped_in_its_linear_stage_resumes(tmp_path, toy_csv, monkeypatch):
    """The 'start over' checkpoint of a stop before the network's loop must not be taken for
    the loop's own checkpoint when the run resumes."""
    from reviewsense.models import nblinear
    from reviewsense.pipeline import DataSpec, TrainConfig, resume_config, train

    config = {"data": DataSpec(path=str(toy_csv)), **PRESET}
    reference = train(TrainConfig(run_dir=str(tmp_path / "a"), **config))
    real = _stop_in_linear_stage(monkeypatch)
    with pytest.raises(Interrupted):
        train(TrainConfig(run_dir=str(tmp_path / "b"), **config))
    monkeypatch.setattr(nblinear, "check_stop", real)
    resumed = train(resume_config(tmp_path / "b"), resume=True)
    assert resumed["test"] == reference["test"]


def test_preset_best_stopped_in_its_network_refit_starts_over_and_matches(tmp_path, toy_csv, monkeypatch):
    """The network's final fit on train + validation keeps no checkpoint: a stop there ends
    the run at once, and resuming re-runs the preset to the same result."""
    from reviewsense.models import cnn
    from reviewsense.pipeline import DataSpec, TrainConfig, resume_config, train

    config = {"data": DataSpec(path=str(toy_csv)), **PRESET,
              "settings": {"nblinear": {"hash_bits": 12}, "cnn": {**CNN, "refit": True}}}
    reference = train(TrainConfig(run_dir=str(tmp_path / "a"), **config))
    real, calls = cnn.fit_loop, []

    def stop_in_refit(module, train_data, validation, options):
        calls.append(validation)
        if validation is None:  # the refit
            request_stop()
        return real(module, train_data, validation, options)

    monkeypatch.setattr(cnn, "fit_loop", stop_in_refit)
    with pytest.raises(Interrupted, match="interrupted in epoch 1 .*resume with"):
        train(TrainConfig(run_dir=str(tmp_path / "b"), **config))
    assert calls[-1] is None and not (tmp_path / "b" / "metrics.json").exists()
    monkeypatch.setattr(cnn, "fit_loop", real)
    resumed = train(resume_config(tmp_path / "b"), resume=True)
    assert resumed["test"] == reference["test"] and resumed["validation"] == reference["validation"]


def test_a_stop_during_the_final_linear_fit_is_honoured(tmp_path, toy_csv, monkeypatch):
    """A signal while liblinear runs (it cannot be interrupted) stops the run right after it."""
    from reviewsense.models import nblinear
    from reviewsense.pipeline import DataSpec, TrainConfig, resume_config, train

    real, calls = nblinear._fit_weights, []

    def fit_then_signal(*args):
        calls.append(1)
        if len(calls) == 2:  # the refit on train + validation
            request_stop()
        return real(*args)

    monkeypatch.setattr(nblinear, "_fit_weights", fit_then_signal)
    config = TrainConfig(run_dir=str(tmp_path / "run"), data=DataSpec(path=str(toy_csv)),
                         settings={"nblinear": {"hash_bits": 12}})
    with pytest.raises(Interrupted, match="after training, before evaluation"):
        train(config)
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert train(resume_config(tmp_path / "run"), resume=True)["test"]["accuracy"] > 0.5


def test_broken_run_files_are_one_line_errors(tmp_path, toy_csv, capsys):
    from reviewsense.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{not json")
    Checkpoint(run / "checkpoint").save({}, {"stage": "start"})
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json: unreadable" in err[0]
    (run / "checkpoint" / "state.json").write_text("[1, 2]")
    with pytest.raises(ModelFileError, match="not a reviewsense checkpoint"):
        Checkpoint(run / "checkpoint").load()
    (run / "checkpoint" / "tensors.safetensors").write_bytes(b"\x00garbage")
    (run / "checkpoint" / "state.json").write_text("{}")
    with pytest.raises(ModelFileError, match="unreadable checkpoint"):
        Checkpoint(run / "checkpoint").load()


def test_configs_from_before_the_group_split_resume_with_the_random_split():
    from dataclasses import asdict

    from reviewsense.pipeline import TrainConfig

    old = asdict(TrainConfig())
    del old["data"]["random_split"], old["data"]["group_column"], old["data"]["stratify"]  # written by 0.1.x
    assert TrainConfig.from_dict(old).data.random_split is True
    assert TrainConfig.from_dict(old).data.stratify is False  # its rows were held out at random: resumed alike
    assert TrainConfig.from_dict(asdict(TrainConfig())).data.random_split is False
    assert TrainConfig.from_dict(asdict(TrainConfig())).data.stratify is None

