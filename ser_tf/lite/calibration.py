"""Calibrated confidence: temperature scaling and expected calibration error (NumPy only).

A classifier trained to near-zero training loss reports probabilities close to 1 for
utterances it gets wrong, above all on speakers and corpora it has not heard. Temperature
scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017) divides the
logits by one scalar ``T`` fitted on held-out data by minimising the negative
log-likelihood; the predicted class never changes, only how sure the model says it is.

The models here end in a softmax, so the logits are recovered as log-probabilities (equal
to the logits up to a per-row constant, which the softmax ignores).
:func:`expected_calibration_error` measures the gap between confidence and accuracy
(equal-width confidence bins, weighted by their share of examples).

Imports only NumPy, so ``ser_tf.lite`` can apply a shipped temperature on a device.
"""

from __future__ import annotations

import numpy as np

#: Bounds of the fitted temperature; outside them the data say nothing useful.
T_RANGE = (0.05, 20.0)
_EPS = 1e-12


def _check(probabilities, y_true=None):
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be (N, classes) with N >= 1, classes >= 2; "
                         f"got shape {p.shape}")
    if not np.all(np.isfinite(p)) or p.min() < 0:
        raise ValueError("probabilities must be finite and non-negative")
    if y_true is None:
        return p
    y = np.asarray(y_true)
    if y.shape != (p.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_true must be {p.shape[0]} integer class indices, got {y.shape} "
                         f"{y.dtype}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"y_true must lie in [0, {p.shape[1]})")
    return p, y


def apply_temperature(probabilities, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row by row (float32); ``T = 1`` returns the input renormalised."""
    p = _check(probabilities)
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    logits = np.log(np.maximum(p, _EPS)) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(probabilities, y_true) -> float:
    """Mean ``-log p[true class]``."""
    p, y = _check(probabilities, y_true)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], _EPS))))


def fit_temperature(probabilities, y_true) -> float:
    """The ``T`` in :data:`T_RANGE` minimising the NLL of ``apply_temperature(p, T)``.

    Fit it on data the model did not train on (validation speakers), never on the test
    data it will be judged by. A golden-section search on ``log T`` (the NLL is smooth and,
    in practice, unimodal in it); 60 steps give ``T`` to ~1e-10 relative.
    """
    p, y = _check(probabilities, y_true)

    def nll(log_t):
        return negative_log_likelihood(apply_temperature(p, float(np.exp(log_t))), y)

    low, high = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    ratio = (np.sqrt(5.0) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return float(np.exp((low + high) / 2))


def expected_calibration_error(probabilities, y_true, bins: int = 15) -> float:
    """ECE in % : ``sum_b (n_b / N) |accuracy_b - confidence_b|`` over ``bins`` equal-width
    bins of the top probability (right-closed, the first bin also takes 0)."""
    p, y = _check(probabilities, y_true)
    if int(bins) < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    confidence = p.max(axis=1) / np.maximum(p.sum(axis=1), _EPS)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, int(bins) - 1)
    ece = 0.0
    for b in range(int(bins)):
        members = which == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(100.0 * ece)


def calibration_report(probabilities, y_true, temperature: float, bins: int = 15) -> dict:
    """ECE and NLL before and after ``temperature`` on the same data (e.g. test speakers)."""
    p, y = _check(probabilities, y_true)
    scaled = apply_temperature(p, temperature)
    return {"temperature": float(temperature), "n": int(len(y)), "bins": int(bins),
            "ece_before": expected_calibration_error(p, y, bins),
            "ece_after": expected_calibration_error(scaled, y, bins),
            "nll_before": negative_log_likelihood(p, y),
            "nll_after": negative_log_likelihood(scaled, y),
            "mean_confidence_before": float(p.max(axis=1).mean()),
            "mean_confidence_after": float(scaled.max(axis=1).mean()),
            "accuracy": float(100.0 * np.mean(p.argmax(axis=1) == y))}
