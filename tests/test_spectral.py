"""The NumPy front-ends (what ser_tf.lite computes for features-in models) vs the TF layers.

Every built-in recipe with a TF front-end is computed both ways on clips with noise and a
stretch of digital silence. Tolerances are about 5x the measured differences (NumPy
computes in float64; the layer's float32 rounding is the difference): lightsernet MFCC
4.3e-6, CNN MFCC 6.1e-4 (coefficients up to ~500), CNN log-mel 3.4e-5 dB, Attention-FCN
ln-spectrogram 3.0e-3 (near-silent bins), TIM-Net's librosa MFCC vs librosa 3.1e-5.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ser_tf.data.synthetic import class_signal  # noqa: E402
# The paper packages register the "lightsernet" and "timnet-*" recipes.
import ser_tf.papers.attention_fcn  # noqa: E402, F401
import ser_tf.papers.cnn_family  # noqa: E402, F401
import ser_tf.papers.lightsernet  # noqa: E402, F401
from ser_tf.features.recipes import RECIPES  # noqa: E402
from ser_tf.papers.timnet.recipes import TIMNET_LENGTHS  # noqa: E402
from ser_tf.features.spectral import check_frontend_config, numpy_features  # noqa: E402

TOLERANCE = {"lightsernet": 2e-5, "cnn_mfcc": 3e-3, "cnn_logmel": 2e-4, "attention_fcn": 1.5e-2,
             "timnet-EMODB": 2e-4}


def clips(sr, num_samples):
    """Three class_signal clips with extra noise and 0.25 s of digital silence."""
    out = []
    for c in (1, 3, 5):
        rng = np.random.default_rng(c)
        x = class_signal(c, duration=num_samples / sr + 0.01, sr=sr, seed=c)[:num_samples]
        x = x + 0.01 * rng.standard_normal(num_samples)
        x[num_samples // 3:num_samples // 3 + sr // 4] = 0.0
        out.append(x)
    return np.stack(out).astype(np.float32)


def samples_of(recipe):
    if recipe.segment["kind"] == "timnet":
        return TIMNET_LENGTHS[recipe.segment["corpus"]]
    return int(round(recipe.segment["duration"] * recipe.sample_rate))


@pytest.mark.parametrize("name", sorted(TOLERANCE))
def test_numpy_front_end_matches_the_reference(name):
    from ser_tf.features.frontends import compute_features

    recipe = RECIPES[name]
    x = clips(recipe.sample_rate, samples_of(recipe))
    got = numpy_features(x, recipe.sample_rate, recipe.frontend)
    # TF kinds: the Keras layer; librosa_mfcc: librosa itself.
    expected = compute_features(x, recipe.sample_rate, recipe.frontend)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE[name]


def test_a_different_parameter_is_far_outside_the_tolerance():
    """The tolerances catch a wrong front-end: e.g. a Hamming instead of a Hann window."""
    recipe = RECIPES["lightsernet"]
    x = clips(16000, 48000)
    right = numpy_features(x, 16000, recipe.frontend)
    wrong = numpy_features(x, 16000, {**recipe.frontend, "window": "hamming"})
    assert np.abs(right - wrong).max() > 100 * TOLERANCE["lightsernet"]


def test_incomplete_or_unknown_config_is_a_clear_error():
    config = dict(RECIPES["lightsernet"].frontend)
    del config["log_offset"]
    with pytest.raises(ValueError, match=r"lacks \['log_offset'\]"):
        check_frontend_config(config)
    with pytest.raises(ValueError, match="front-end kind"):
        check_frontend_config({**RECIPES["lightsernet"].frontend, "kind": "wavelet"})
    with pytest.raises(ValueError, match=r"\(n, samples\)"):
        numpy_features(np.zeros(48000), 16000, RECIPES["lightsernet"].frontend)
    with pytest.raises(ValueError, match="shorter than one frame"):
        numpy_features(np.zeros((1, 100)), 16000, RECIPES["lightsernet"].frontend)
