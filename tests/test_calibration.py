"""Temperature scaling and expected calibration error."""

import numpy as np
import pytest

from ser_tf.lite.calibration import (apply_temperature, calibration_report,
                                         expected_calibration_error, fit_temperature,
                                         negative_log_likelihood)


def softmax(z):
    z = z - z.max(1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


def overconfident(n=4000, classes=4, true_t=3.0, seed=0):
    """Labels drawn from softmax(z); the model reports softmax(true_t * z): too sure."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=(n, classes))
    y = np.array([rng.choice(classes, p=row) for row in softmax(z)])
    return softmax(true_t * z), y


def test_fit_temperature_recovers_the_overconfidence():
    p, y = overconfident()
    t = fit_temperature(p, y)
    assert t == pytest.approx(3.0, rel=0.1)
    assert negative_log_likelihood(apply_temperature(p, t), y) < negative_log_likelihood(p, y)


def test_temperature_keeps_the_predicted_class_and_sums_to_one():
    p, _ = overconfident(200)
    scaled = apply_temperature(p, 2.5)
    assert np.array_equal(scaled.argmax(1), p.argmax(1))
    assert np.allclose(scaled.sum(1), 1.0, atol=1e-6)
    assert np.allclose(apply_temperature(p, 1.0), p, atol=1e-6)
    assert (scaled.max(1) <= p.max(1) + 1e-6).all()  # T > 1 softens


def test_ece_of_perfectly_calibrated_and_of_overconfident_predictions():
    # Two bins' worth: confidence 0.8 right 80 % of the time is calibrated.
    p = np.array([[0.8, 0.2]] * 10)
    y = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(p, y) == pytest.approx(0.0, abs=1e-9)
    y_half = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(p, y_half) == pytest.approx(30.0)
    over, labels = overconfident()
    report = calibration_report(over, labels, fit_temperature(over, labels))
    assert report["ece_after"] < report["ece_before"] / 3


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="shape"):
        fit_temperature(np.ones(3), np.zeros(3, int))
    with pytest.raises(ValueError, match="integer class indices"):
        expected_calibration_error(np.full((2, 2), .5), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(np.full((2, 2), .5), 0.0)
