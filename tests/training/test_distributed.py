"""Training under torchrun (DistributedDataParallel over gloo, on the CPU): two processes compute
what one process with the same global batch computes, end with identical weights, stop
together, and only rank 0 writes (docs/distributed.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reviewsense
from reviewsense.training import distributed

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.distributed,
              pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                 reason="torch.distributed with gloo is not available")]

HERE = Path(__file__).resolve().parent
TRAIN = ["--model", "seed", "--embedding", "scratch", "--embedding-dim", "8", "--hidden-units", "4", "--epochs", "20",
         "--no-early-stopping", "--batch-size", "16", "--learning-rate", "0.01", "--threads", "1"]


def _env(tmp_path: Path, quiet: bool = True) -> dict[str, str]:
    """The environment of a torchrun job: this reviewsense, a private cache, no inherited torchrun variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    source = str(Path(reviewsense.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([source, *filter(None, [env.get("PYTHONPATH")])])
    env.update(REVIEWSENSE_QUIET="1" if quiet else "0", REVIEWSENSE_CACHE_DIR=str(tmp_path / "cache"),
               OMP_NUM_THREADS="1")
    return env


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]


def test_a_rank_s_share_and_scale_make_the_global_weighted_mean(monkeypatch):
    """Averaged over ranks (as DDP averages gradients), the ranks' scaled mean losses are the
    global batch's weighted mean loss, a rank without examples included."""
    rng = np.random.default_rng(0)
    losses, weights = rng.uniform(0, 2, 30), rng.uniform(0.1, 3, 30)
    for batch in (np.arange(7), np.arange(10, 11), np.array([4, 20, 3, 17, 29])):
        world = 3
        monkeypatch.setenv("WORLD_SIZE", str(world))
        combined, seen = 0.0, []
        for r in range(world):
            monkeypatch.setenv("RANK", str(r))
            part, scale, mine = distributed.share(batch, weights)
            seen += list(part[:mine])
            combined += scale * np.average(losses[part], weights=weights[part]) / world
        assert sorted(seen) == sorted(batch)  # each example on exactly one rank
        assert combined == pytest.approx(np.average(losses[batch], weights=weights[batch]))


def test_loop_under_torchrun_matches_one_process_and_ranks_agree(tmp_path):
    """tests/training/ddp_fit.py under torchrun: seed, cnn (sparse embedding) and 3-class
    networks with row weights, early stopping and a last batch of one example."""
    sys.path.insert(0, str(HERE))
    try:
        import ddp_fit
    finally:
        sys.path.remove(str(HERE))
    done = subprocess.run(_torchrun(str(HERE / "ddp_fit.py"), str(tmp_path)), env=_env(tmp_path),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for key, value in ranks[0].items():
        assert np.array_equal(value, ranks[1][key]), f"{key} differs between the ranks"
    for kind in ddp_fit.KINDS:
        state = json.loads((tmp_path / f"checkpoint-{kind}" / "state.json").read_text())
        assert (state["epoch"], state["position"]) == (3, 20)  # rank 1 asked; both stopped at that batch
        weights, curves = ddp_fit.run(kind)  # one process, the same global batches
        for name, value in _learned(weights).items():
            np.testing.assert_allclose(ranks[0][f"{kind}.whole.weights.{name}"], value, rtol=1e-4, atol=1e-5,
                                       err_msg=f"{kind} {name}")
        for name, value in curves.items():
            np.testing.assert_allclose(ranks[0][f"{kind}.whole.curves.{name}"], value, rtol=1e-4, atol=1e-5,
                                       err_msg=f"{kind} {name}")
        for name in weights:  # the resumed run ends where the whole one does
            np.testing.assert_allclose(ranks[0][f"{kind}.resumed.weights.{name}"],
                                       ranks[0][f"{kind}.whole.weights.{name}"], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, toy_run):
    """One process, in-process: (data file, run folder)."""
    return toy_run(tmp_path_factory.mktemp("single"), TRAIN)


def _weights(run: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(run / "model" / "model.safetensors"))


def _learned(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights whose gradient is not zero by construction: an attention key's bias adds the
    same number to every score of a query, which the softmax cancels, so its exact gradient is 0
    and Adam's steps there follow rounding noise (different in one and two processes)."""
    return {name: value for name, value in weights.items() if not name.endswith("attention.self.key.bias")}


def _assert_same_model(run: Path, reference: Path) -> None:
    mine, theirs = _weights(run), _weights(reference)
    assert mine.keys() == theirs.keys()
    for name, value in _learned(theirs).items():
        np.testing.assert_allclose(mine[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    curves = json.loads((run / "history.json").read_text())["history"]
    for name, values in json.loads((reference / "history.json").read_text())["history"].items():
        np.testing.assert_allclose(curves[name], values, rtol=1e-4, atol=1e-5, err_msg=name)


def test_torchrun_train_writes_one_run_folder_with_the_one_process_model(tmp_path, reference):
    data, single = reference
    runs = tmp_path / "runs"
    runs.mkdir()
    done = subprocess.run(_torchrun("-m", "reviewsense", "train", "--data", str(data), "--run-dir",
                                    str(runs / "ddp"), *TRAIN), env=_env(tmp_path), capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in runs.iterdir()] == ["ddp"]
    assert done.stdout.count("test accuracy") == 1 and done.stdout.count("run folder:") == 1  # rank 0 reports
    config = json.loads((runs / "ddp" / "config.json").read_text())
    assert config["distributed"] == {"world_size": 2, "global_batch_size": 16}
    assert "distributed" not in json.loads((single / "config.json").read_text())
    _assert_same_model(runs / "ddp", single)


def test_torchrun_stopped_by_sigterm_then_resumed(tmp_path, reference):
    """SIGTERM to the launcher (as a scheduler sends it): every rank stops after the same batch,
    rank 0 writes the checkpoint; ``--resume`` under torchrun ends with the uninterrupted model."""
    data, single = reference
    run = tmp_path / "cut"
    launcher = subprocess.Popen(_torchrun("-m", "reviewsense", "train", "--data", str(data), "--run-dir", str(run),
                                          *TRAIN), env=_env(tmp_path, quiet=False), stderr=subprocess.PIPE, text=True)
    lines = []
    assert launcher.stderr is not None
    for line in launcher.stderr:
        lines.append(line)
        if line.startswith("Epoch 2/"):
            launcher.send_signal(signal.SIGTERM)
            break
    rest = launcher.stderr.read()
    assert launcher.wait(120) != 0
    said = [line for line in rest.splitlines() if line.startswith("reviewsense:")]
    assert len(said) == 1 and said[0].startswith("reviewsense: interrupted in epoch"), "".join(lines) + rest
    assert f"--resume {run}" in said[0]
    assert sum(line.startswith("Epoch 1/") for line in lines) == 1  # only rank 0 logs
    assert (run / "checkpoint" / "state.json").is_file() and not (run / "metrics.json").exists()

    done = subprocess.run(_torchrun("-m", "reviewsense", "train", "--resume", str(run)), env=_env(tmp_path),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (run / "checkpoint").exists()
    _assert_same_model(run, single)


def test_torchrun_fine_tunes_a_transformer_like_one_process(tmp_path, toy_csv, tiny_encoder_writer):
    """``torchrun … train --model transformer``: one run folder, the one-process model (no dropout:
    each process draws its own masks)."""
    from reviewsense.cli import main

    tiny_encoder = tiny_encoder_writer(tmp_path / "bert", dropout=0.0)
    flags = ["--model", "transformer", "--encoder", str(tiny_encoder), "--epochs", "2", "--batch-size", "16",
             "--learning-rate", "0.002", "--dropout", "0", "--max-length", "24", "--threads", "1", "--data",
             str(toy_csv)]
    runs = tmp_path / "runs"
    runs.mkdir()
    done = subprocess.run(_torchrun("-m", "reviewsense", "train", "--run-dir", str(runs / "ddp"), *flags),
                          env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in runs.iterdir()] == ["ddp"]
    assert json.loads((runs / "ddp" / "config.json").read_text())["distributed"]["world_size"] == 2
    assert main(["train", "--run-dir", str(tmp_path / "single"), *flags]) == 0
    _assert_same_model(runs / "ddp", tmp_path / "single")


def test_torchrun_refuses_a_family_not_trained_in_epochs(monkeypatch, toy_csv, tmp_path, capsys):
    from reviewsense.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    for args in (["--model", "nblinear"], ["--preset", "best"]):
        assert main(["train", "--data", str(toy_csv), "--run-dir", str(tmp_path / "run"), *args]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("reviewsense: error: ") and "without torchrun" in error and "\n" not in error
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_late_sigterm_on_a_rank_other_than_0_says_nothing(monkeypatch, capsys, rank):
    """torchrun forwards SIGTERM to every rank; one that gets it after the ranks agreed to stop
    (its stop handler gone) unwinds silently: rank 0 alone says why the job stopped."""
    from reviewsense import cli
    from reviewsense.errors import Terminated

    def terminated(_args):
        raise Terminated(15)

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setitem(cli.COMMANDS, "info", terminated)
    assert cli.main(["info", "--model", "x"]) == 128 + 15
    assert capsys.readouterr().err == ("reviewsense: terminated\n" if rank == "0" else "")
