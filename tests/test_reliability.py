"""Guarantees that must hold whatever the input or the timing (see issue: harden it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviewsense.data.dataset import Dataset
from reviewsense.export import load_model, save_model
from reviewsense.models import nblinear

POSITIVE, NEGATIVE = ["great", "superb", "loved"], ["awful", "dull", "hated"]


def _corpus(n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = [" ".join(["the", "film", str(rng.choice(POSITIVE if y else NEGATIVE)), "was"]) for y in labels]
    return Dataset(texts, labels)


@pytest.fixture(scope="module")
def linear_model():
    return nblinear.fit(_corpus(200, 0), _corpus(100, 1), nblinear.NBLinearParams(hash_bits=12))[0]


TEXTS = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "So", "Lo"]), max_size=50),
    st.just(""),
    st.builds(lambda w, n: " ".join([w] * n), st.sampled_from(POSITIVE + NEGATIVE + ["🎬", "\x00"]),
              st.integers(1, 20_000)),
)


@pytest.mark.parametrize("family", ["linear_model", "seed_model"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS, min_size=1, max_size=6))
def test_prediction_never_fails_and_batches_equal_singles(family, texts, request):
    model = request.getfixturevalue(family)
    batch = model.predict_proba(texts)
    assert batch.shape == (len(texts), 2)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=1e-6)
    assert np.all((batch >= 0) & (batch <= 1)) and np.all(np.isfinite(batch))
    singles = np.array([model.predict_proba([t])[0] for t in texts])
    np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(batch, model.predict_proba(texts))  # same input, same output


@pytest.fixture(scope="module")
def seed_model():
    from reviewsense.models import seed
    from reviewsense.training.torch_loop import FitOptions

    return seed.fit(_corpus(200, 0), _corpus(100, 1), seed.SeedParams(embedding_dim=8, ngrams=2),
                    FitOptions(epochs=3, batch_size=32, threads=1))[0]


WRITER = """
import sys, numpy as np
from reviewsense.export import save_model
from reviewsense.models.seed import SeedPredictor
from reviewsense.text.vectorizer import TextVectorizer
vec = TextVectorizer(max_tokens=None).adapt([" ".join(f"w{i}" for i in range(200_000))])
rng = np.random.default_rng(1)
weights = {"embedding.weight": rng.normal(size=(vec.vocabulary_size, 64)).astype(np.float32),
           "dense.weight": np.zeros((16, 64), np.float32), "dense.bias": np.zeros(16, np.float32),
           "output.weight": np.zeros((1, 16), np.float32), "output.bias": np.full(1, 7.0, np.float32)}
model = SeedPredictor(vec, {"embedding_dim": 64, "hidden_units": 16}, weights)
save_model(model, sys.argv[1] + "-warm")  # imports and caches: the timed saves below are pure writing
for n in range(1, 1_000_000):
    print("start", n, flush=True)
    save_model(model, sys.argv[1], overwrite=True)
"""


def test_kill_9_while_exporting_leaves_the_previous_export_loadable(linear_model, tmp_path: Path):
    target = tmp_path / "model"
    save_model(linear_model, target)
    expected = linear_model.predict_proba(["a great film"])
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        while proc.stdout.readline().strip() != "start 2":  # the first save replaced ours; the second is running
            assert proc.poll() is None, "the writer died"
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob(".model.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.001)
        in_flight = list(tmp_path.glob(".model.*.tmp"))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert in_flight, "no write was in flight when the writer was killed"
    loaded = load_model(target)  # the old export or a complete new one, never a broken one
    if loaded.family == "nblinear":
        np.testing.assert_allclose(loaded.predict_proba(["a great film"]), expected)
    else:
        assert loaded.positive_proba(["w1"])[0] > 0.99  # the writer's model: output bias 7
    # what the killed save left behind (its temporary folder) does not stand in the way of the next save
    save_model(linear_model, target, overwrite=True)
    np.testing.assert_allclose(load_model(target).predict_proba(["a great film"]), expected)
