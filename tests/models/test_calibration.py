"""The length calibration: honest probabilities at every text length."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from reviewsense.errors import ModelFileError
from reviewsense.models.calibration import KNOTS, LengthCalibration, prior_logit, ramps


def _sample(n: int, seed: int = 0):
    """Raw logits whose meaning depends on length: the true logit is slope(n)·raw + bias(n)."""
    rng = np.random.default_rng(seed)
    lengths = rng.choice([1, 3, 5, 10, 20, 50, 250], n)
    raw = rng.normal(0, 3, n)
    true = raw * (0.2 + 0.6 * np.log1p(lengths) / np.log1p(250)) + 0.8 * (lengths > 30)
    labels = rng.random(n) < expit(true)
    return raw, lengths, labels, true


def test_fit_recovers_a_length_dependent_sigmoid():
    raw, lengths, labels, _ = _sample(60_000)
    calibration = LengthCalibration.fit(raw, lengths, labels, prior=0.0, empty=0.0)
    test_raw, test_lengths, _, true = _sample(5_000, seed=1)
    got = expit(calibration(test_raw, test_lengths))
    assert np.abs(got - expit(true)).mean() < 0.02
    # a single sigmoid for every length cannot do that
    one = LengthCalibration.fit(raw, lengths, labels, prior=0.0, empty=0.0, knots=(100_000,))
    assert np.abs(expit(one(test_raw, test_lengths)) - expit(true)).mean() > 0.03


def test_a_text_without_tokens_gets_the_prior():
    raw, lengths, labels, _ = _sample(5_000)
    calibration = LengthCalibration.fit(raw + 2.0, lengths, labels, prior=prior_logit(np.array([1, 1, 0, 0, 0])),
                                        empty=2.0)
    assert expit(calibration(np.array([2.0]), np.array([0]))[0]) == pytest.approx(0.4, abs=1e-6)


def test_flat_beyond_the_last_knot():
    basis = ramps(np.array([0, KNOTS[-1], 10 * KNOTS[-1]]), np.asarray(KNOTS))
    assert (basis[0] == 0).all()
    np.testing.assert_allclose(basis[1], basis[2])


def test_weights_shift_the_fitted_rate():
    rng = np.random.default_rng(0)
    labels = rng.random(4_000) < 0.7
    raw, lengths = np.zeros(4_000), np.full(4_000, 5)
    plain = LengthCalibration.fit(raw, lengths, labels, prior=0.0, empty=1.0)
    weights = np.where(labels, 0.5 / 0.7, 0.5 / 0.3)
    balanced = LengthCalibration.fit(raw, lengths, labels, prior=0.0, empty=1.0, weights=weights)
    assert expit(plain(raw[:1], lengths[:1]))[0] == pytest.approx(0.7, abs=0.03)
    assert expit(balanced(raw[:1], lengths[:1]))[0] == pytest.approx(0.5, abs=0.03)


def test_round_trip_and_refusals():
    raw, lengths, labels, _ = _sample(2_000)
    calibration = LengthCalibration.fit(raw, lengths, labels, prior=0.1, empty=-0.3)
    again = LengthCalibration.from_dict(calibration.to_dict())
    np.testing.assert_array_equal(again(raw, lengths), calibration(raw, lengths))
    good = calibration.to_dict()
    for bad in ({**good, "kind": "other"}, {**good, "slope": good["slope"][:-1]}, {**good, "knots": [4, 2]},
                {**good, "shift": [float("nan")] * len(good["shift"])}, {**good, "prior": "x"}, [], None):
        with pytest.raises(ModelFileError, match="length calibration"):
            LengthCalibration.from_dict(bad)


def test_several_scores_get_weights_that_depend_on_length():
    """Two members: the first is informative on short texts, the second on long ones; the
    fit weighs each by length (what --preset best's ensemble gets)."""
    rng = np.random.default_rng(0)
    n = 60_000
    lengths = rng.choice([2, 5, 200, 400], n)
    truth = rng.normal(0, 2, n)
    short = lengths < 10
    first = truth + rng.normal(0, np.where(short, 0.3, 3.0))
    second = truth + rng.normal(0, np.where(short, 3.0, 0.3))
    labels = rng.random(n) < expit(truth)
    raw = np.column_stack([first, second])
    calibration = LengthCalibration.fit(raw, lengths, labels, prior=0.0, empty=[0.0, 0.0])
    slopes, _ = calibration.slope_shift(np.array([3, 300]))
    assert slopes[0, 0] > 2 * slopes[0, 1] and slopes[1, 1] > 2 * slopes[1, 0]
    again = LengthCalibration.from_dict(calibration.to_dict())
    np.testing.assert_array_equal(again(raw[:50], lengths[:50]), calibration(raw[:50], lengths[:50]))
    assert again.scores == 2
    single = LengthCalibration.fit(first, lengths, labels, prior=0.0, empty=0.0)
    assert isinstance(single.to_dict()["empty"], float) and single.scores == 1
    bad = {**calibration.to_dict(), "empty": [0.0]}
    with pytest.raises(ModelFileError, match="per score"):
        LengthCalibration.from_dict(bad)
