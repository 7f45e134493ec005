"""Fixtures for the HTTP service tests: one small n-gram model, trained once per session."""

from __future__ import annotations

import numpy as np
import pytest

from reviewsense.data.dataset import Dataset

POSITIVE = ["great", "wonderful", "loved", "superb"]
NEGATIVE = ["awful", "boring", "hated", "dull"]
FILLER = ["the", "film", "plot", "was", "acting", "and", "a", "story"]


def corpus(n: int, seed: int) -> Dataset:
    """Filler words plus two sentiment words of the label; 15% of texts get two of the other side."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = []
    for y in labels:
        words = list(rng.choice(FILLER, 10)) + list(rng.choice(POSITIVE if y else NEGATIVE, 2))
        if rng.random() < 0.15:  # label noise keeps the probabilities away from 0 and 1
            words += list(rng.choice(NEGATIVE if y else POSITIVE, 2))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return Dataset(texts, labels)


@pytest.fixture(scope="session")
def predictor():
    """An NB-weighted n-gram model (nblinear) fitted on the toy corpus (well under a second)."""
    from reviewsense.models.nblinear import NBLinearParams, fit

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REVIEWSENSE_QUIET", "1")
        return fit(corpus(400, 0), corpus(200, 1), NBLinearParams(hash_bits=16))[0]
