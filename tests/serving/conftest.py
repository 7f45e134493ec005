"""Fixtures for the HTTP service tests: one small n-gram model, trained once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def predictor(sentiment_corpus):
    """An NB-weighted n-gram model (nblinear) fitted on the toy corpus (well under a second)."""
    from reviewsense.models.nblinear import NBLinearParams, fit

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REVIEWSENSE_QUIET", "1")
        return fit(sentiment_corpus(400, 0), sentiment_corpus(200, 1), NBLinearParams(hash_bits=16))[0]
