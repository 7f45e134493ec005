"""The one maximum-likelihood fit behind vector scaling, the length calibrations and the stack
of more than two classes: logits that are linear in the parameters, a softmax (a sigmoid for
two classes), a weighted mean cross-entropy plus an L2 penalty, minimised by L-BFGS.

Every text ``n`` has score vectors ``scores[n, s]`` (one per member of an ensemble, or one
per class for vector scaling), features that set each score's slope (``slope_features[n]``:
1 alone, or 1 and the length ramps) and features that set each class's shift
(``shift_features[n]``)::

    logit[n, c] = offset[c] + Σ_s (slope_features[n] · slope[s]) · scores[n, s, c]
                            + shift_features[n] · shift[c]
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit, log_softmax, softmax


def fit_softmax(scores: np.ndarray, labels: np.ndarray, slope_features: np.ndarray, shift_features: np.ndarray, *,
                offset: float | np.ndarray = 0.0, slope_l2: float | np.ndarray = 0.0,
                shift_l2: float | np.ndarray = 0.0, slope_start: float | np.ndarray = 1.0,
                weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``slope`` ``(S, D)`` and ``shift`` ``(C, E)`` of the logits above and return them.

    ``scores``: ``(n, S, C)`` for C ≥ 2 classes (softmax cross-entropy, ``labels`` class
    indices), or ``(n, S)`` for two classes, where each score is the logit of class 1 (a
    sigmoid; ``labels`` 0/1, or booleans; ``shift`` is then ``(1, E)``). ``slope_features``
    ``(n, D)``, ``shift_features`` ``(n, E)``; ``offset``: ``(C,)`` or a number. The loss is
    the mean cross-entropy weighted by ``weights`` (default 1) plus ``½ Σ l2 · θ²``, with
    ``slope_l2`` and ``shift_l2`` broadcast to the shapes of ``slope`` and ``shift``; the fit
    starts from ``slope_start`` (broadcast) and no shift."""
    from scipy.optimize import minimize

    binary = np.ndim(scores) == 2
    x = np.asarray(scores, dtype=np.float64)
    x = x[:, :, None] if binary else x  # (n, S, C): two classes, C = 1 (the logit of class 1)
    n, sources, classes = x.shape
    a = np.asarray(slope_features, dtype=np.float64).reshape(n, -1)
    b = np.asarray(shift_features, dtype=np.float64).reshape(n, -1)
    slope_shape, shift_shape = (sources, a.shape[1]), (classes, b.shape[1])
    split = sources * a.shape[1]
    penalty = np.r_[np.broadcast_to(slope_l2, slope_shape).ravel(), np.broadcast_to(shift_l2, shift_shape).ravel()]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    y = np.asarray(labels)
    target = y.astype(np.float64)[:, None] if binary else np.eye(classes)[y.astype(np.int64)]
    base = np.asarray(offset, dtype=np.float64)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        slope, shift = theta[:split].reshape(slope_shape), theta[split:].reshape(shift_shape)
        z = base + np.einsum("ns,nsc->nc", a @ slope.T, x) + b @ shift.T
        if binary:
            value = -(w * (target[:, 0] * log_expit(z[:, 0]) + (1 - target[:, 0]) * log_expit(-z[:, 0]))).sum()
            g = (expit(z) - target) * w[:, None]  # d loss / d z
        else:
            value = -(w * (log_softmax(z, axis=1) * target).sum(axis=1)).sum()
            g = (softmax(z, axis=1) - target) * w[:, None]
        grad = np.r_[((g[:, None, :] * x).sum(axis=2).T @ a).ravel(), (g.T @ b).ravel()] + penalty * theta
        return float(value + 0.5 * (penalty * theta**2).sum()), grad

    start = np.r_[np.broadcast_to(slope_start, slope_shape).ravel(), np.zeros(classes * b.shape[1])]
    theta = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000}).x
    return theta[:split].reshape(slope_shape), theta[split:].reshape(shift_shape)
