"""Light-SERNet's segmentation kind and feature recipe, registered on import.

Segment kind ``"lightsernet"`` (Aftab et al. 2022, Sec. 3.1 and the authors' code): one
segment of ``duration`` seconds; a longer file is centre-cropped, the segment is scaled by
the 99.9th percentile of its magnitude and clipped to [-1, 1], a shorter one is then
zero-padded symmetrically -- the generic ``crop_normalise_pad`` with the percentile fixed.
The kind keeps its own name because run configs and feature-cache keys store it.

Imports only NumPy and the shared feature modules (never TensorFlow), like the
segmentation the TF-free runtime runs.
"""

from __future__ import annotations

import numpy as np

from ser_tf.features import segment as seg
from ser_tf.features.recipes import FeatureRecipe, register_recipe

SEGMENT_KIND = "lightsernet"
#: The percentile of |x| each segment (and each inference window) is divided by.
PERCENTILE = 99.9


def segment_lightsernet(audio, sr: int = 16000, duration: float = 3.0) -> np.ndarray:
    """Light-SERNet input: centre crop to ``duration``, normalise, then pad symmetrically."""
    return seg.crop_normalise_pad(audio, sr, duration, PERCENTILE)


def _num_samples(sample_rate: int, duration: float = 3.0) -> int:
    return int(round(float(duration) * sample_rate))


def _window_normalisation(duration: float = 3.0) -> dict:
    return seg.percentile_window_normalisation(PERCENTILE)


seg.register_segmenter(SEGMENT_KIND, segment_lightsernet, _num_samples, _window_normalisation)

# The authors' tf.signal front-end: 3 s at 16 kHz; |STFT| with 1024-sample Hann frames, hop
# 256, no centre padding; 128 HTK mel bands in 80-7600 Hz as
# tf.signal.linear_to_mel_weight_matrix builds them; ln(x + 1e-6);
# tf.signal.mfccs_from_log_mel_spectrograms' DCT; 40 MFCCs clipped to +-10.
# 48000 samples -> 1 + (48000 - 1024) // 256 = 184 frames x 40.
RECIPE = register_recipe(FeatureRecipe(
    "lightsernet", 16000, {"kind": SEGMENT_KIND, "duration": 3.0},
    {"kind": "mfcc", "frame_length": 1024, "frame_step": 256, "fft_length": 1024,
     "window": "hann", "power": 1.0, "center": False, "pad_mode": "constant",
     "num_mel_bins": 128, "fmin": 80.0, "fmax": 7600.0, "mel_scale": "htk",
     "norm": None, "log": "log", "log_offset": 1e-6, "num_mfcc": 40,
     "dct_norm": "tf", "clip": 10.0, "dft": "fft"}))
