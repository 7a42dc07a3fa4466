"""The feature-statistics check for audio unlike the training data."""

import warnings

import numpy as np
import pytest

from ser_tf.lite.ood import distances, feature_summary, fit_reference, rates, unfamiliar


def corpus(n, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 1, 6)) * 0.3 + shift
    return base + rng.normal(size=(n, 40, 6))  # (utterances, frames, coefficients)


def test_summary_is_mean_and_std_over_frames():
    x = np.arange(24, dtype=float).reshape(1, 4, 6)
    s = feature_summary(x)
    assert s.shape == (1, 12)
    assert np.allclose(s[0, :6], x[0].mean(0)) and np.allclose(s[0, 6:], x[0].std(0))
    with pytest.raises(ValueError, match="frames, coefficients"):
        feature_summary(np.zeros((3, 4)))


def test_threshold_flags_the_quantile_of_training_and_catches_shifted_audio():
    train = feature_summary(corpus(500))
    reference = fit_reference(train, quantile=0.95)
    assert np.mean(distances(train, reference) > reference["threshold"]) == pytest.approx(0.05, abs=0.01)
    measured = rates(feature_summary(corpus(400, seed=1)), feature_summary(corpus(400, 2.0, 2)),
                     reference)
    assert measured["false_alarm"] < 12 and measured["detection"] > 95
    # Detection alone: no in-domain set, no NaN and no NumPy empty-mean warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alone = rates(None, feature_summary(corpus(400, 2.0, 2)), reference)
    assert alone["false_alarm"] is None and alone["n_in_domain"] == 0
    assert alone["detection"] == measured["detection"]
    flagged, d = unfamiliar(feature_summary(corpus(5, 2.0, 3)), reference)
    assert flagged and d > reference["threshold"]
    assert not unfamiliar(feature_summary(corpus(5, seed=4)), reference)[0]


def test_reference_needs_data_and_a_sane_quantile():
    with pytest.raises(ValueError, match="at least 2"):
        fit_reference(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="quantile"):
        fit_reference(np.zeros((3, 4)), quantile=1.0)
