"""The one softmax fit (vector scaling, the length calibrations, the stack of K classes) reaches
what scikit-learn's LogisticRegression reaches on the same problem."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, log_softmax, softmax
from sklearn.linear_model import LogisticRegression

from reviewsense.models import ensemble
from reviewsense.models.calibration import vector_scaling
from reviewsense.models.softmax_fit import fit_softmax


def _problem(n: int, classes: int, features: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    truth = x @ rng.normal(size=(features, classes)) + rng.normal(size=classes)
    labels = np.array([rng.choice(classes, p=p) for p in softmax(truth, axis=1)])
    return x, labels, rng.uniform(0.2, 3.0, n)


def _sklearn(x, labels, weights, c):
    tight = LogisticRegression(C=c, tol=1e-12, max_iter=100_000)
    return tight.fit(x, labels, sample_weight=weights * len(labels) / weights.sum())


@pytest.mark.parametrize("classes", [3, 5])
def test_multinomial_logistic_regression_with_sample_weights(classes):
    """Per-class coefficients as one score vector per (class, feature): the same model as
    LogisticRegression's multinomial fit, the same L2 penalty (on the coefficients, not the
    intercepts), the same optimum."""
    n, features, c = 3_000, 4, 0.5
    x, labels, weights = _problem(n, classes, features, seed=classes)
    reference = _sklearn(x, labels, weights, c)
    # score vector (k, f): feature f in class k's column; its slope is coef[k, f]
    scores = np.einsum("nf,kc->nkfc", x, np.eye(classes)).reshape(n, classes * features, classes)
    ones = np.ones((n, 1))
    coef, intercept = fit_softmax(scores, labels, ones, ones, slope_l2=1 / (c * n), weights=weights, slope_start=0.0)
    coef = coef.reshape(classes, features)

    def objective(w, b):  # the weighted mean cross-entropy + ½ · l2 · |w|²
        z = x @ w.T + b
        return -(weights * log_softmax(z, axis=1)[np.arange(n), labels]).sum() / weights.sum() + 0.5 / (c * n) * (
            w**2).sum()

    # the same optimum, to L-BFGS's tolerance (scikit-learn's here is run to 1e-12)
    assert objective(coef, intercept[:, 0]) == pytest.approx(objective(reference.coef_, reference.intercept_),
                                                             abs=1e-7)
    np.testing.assert_allclose(coef, reference.coef_, atol=5e-3)
    got = softmax(x @ coef.T + intercept[:, 0], axis=1)
    np.testing.assert_allclose(got, reference.predict_proba(x), atol=5e-4)


def test_two_classes_are_a_sigmoid_of_one_logit():
    n, c = 3_000, 2.0
    x, labels, weights = _problem(n, 2, 3, seed=7)
    reference = _sklearn(x, labels, weights, c)
    slope, shift = fit_softmax(x, labels, np.ones((n, 1)), np.ones((n, 1)), slope_l2=1 / (c * n), weights=weights)
    assert slope.shape == (3, 1) and shift.shape == (1, 1)
    np.testing.assert_allclose(slope[:, 0], reference.coef_[0], atol=5e-3)
    np.testing.assert_allclose(expit(x @ slope[:, 0] + shift[0, 0]), reference.predict_proba(x)[:, 1], atol=5e-4)


def test_slopes_that_depend_on_a_feature_and_a_fixed_offset():
    """slope_features and offset: logit = offset + (a_0 + a_1·u)·score (the form of the
    length calibration) is LogisticRegression on [score, u·score] with a fixed intercept."""
    rng = np.random.default_rng(3)
    n = 4_000
    score, u = rng.normal(0, 2, n), rng.uniform(0, 1, n)
    labels = rng.random(n) < expit(0.3 + (0.5 + 1.5 * u) * score)
    slope, shift = fit_softmax(score[:, None], labels, np.column_stack([np.ones(n), u]), np.zeros((n, 0)), offset=0.3)
    assert shift.shape == (1, 0)
    reference = _sklearn(np.column_stack([score, u * score]), labels.astype(int), np.ones(n), 1e12)
    # sklearn fits an intercept too; ours is fixed at 0.3, which is the truth: the slopes agree closely
    np.testing.assert_allclose(slope[0], reference.coef_[0], atol=0.05)
    assert abs(reference.intercept_[0] - 0.3) < 0.1


def test_vector_scaling_and_the_stack_of_k_classes_use_it():
    """Vector scaling is the softmax fit of one scale and one offset per class; the stack of K
    classes one weight per member and a bias per class: both reach zero gradient."""
    rng = np.random.default_rng(5)
    n, classes = 2_000, 3
    truth = rng.normal(0, 2, (n, classes))
    labels = np.array([rng.choice(classes, p=p) for p in softmax(truth, axis=1)])
    scale, offset = vector_scaling(truth * 0.5 - 0.2, labels)
    # the truth is recovered: scale 2 per class, offsets equal up to a constant (softmax)
    np.testing.assert_allclose(scale, 2.0, atol=0.25)
    assert np.ptp(offset) < 0.3
    members = np.stack([truth + rng.normal(0, 1, truth.shape), rng.normal(0, 1, truth.shape)], axis=1)
    stacked = ensemble.stack([], members, labels, ("a", "b", "c"))
    assert stacked.weights[0] > 0.5 > abs(stacked.weights[1])
