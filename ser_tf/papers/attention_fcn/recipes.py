"""Attention-FCN's feature recipes, registered on import.

- ``attention_fcn`` (moved here unchanged from the shared recipes; its config is what run
  records and cache keys of it store): the paper's spectrogram of a 3 s window.
- ``attention_fcn_utterance``: the same front-end on the whole recording (segment kind
  ``none``), for the variable-length model (:mod:`ser_tf.training.padded`).
- ``attention_fcn_1d``: the student reproduction's input before averaging over time: the
  128-band mel power spectrogram of the whole file as librosa 0.11's
  ``melspectrogram(y, sr=22050)`` computes it by default; the experiment averages its
  frames (:func:`ser_tf.training.padded.mean_over_time`).
- ``attention_fcn_1d_db``: the same mel spectrogram in decibels (librosa's ``power_to_db``
  defaults: ref 1, amin 1e-10, top_db 80) before the mean over frames, i.e. the mean
  log-mel spectrum: ``--input-scale db``, our choice, not the student's.

Imports only the shared recipe module (no TensorFlow).
"""

from __future__ import annotations

from ser_tf.features.recipes import FeatureRecipe, register_recipe

#: The paper's front-end (Zhang et al. 2018, Sec. 3): 40 ms Hamming frames (640 samples),
#: 10 ms hop (160), 800-point DFT, the 200 bins below 4 kHz (20 Hz apiece), natural log of
#: the magnitude. dft="matmul": TFLite's RFFT2D kernel only runs power-of-two lengths.
SPECTROGRAM = {"kind": "spectrogram", "frame_length": 640, "frame_step": 160,
               "fft_length": 800, "window": "hamming", "power": 1.0, "center": False,
               "pad_mode": "constant", "max_hz": 4000.0, "log": "log", "log_offset": 1e-6,
               "dft": "matmul"}
#: 300-frame segments: 1 + (48480 - 640) // 160 = 300, so the window is 48480 samples =
#: 3.03 s (3 s plus one frame minus one hop) from the start.
SEGMENT_SECONDS = 3.03
#: Seconds a crop of N frames needs beyond N hops: one frame minus one hop.
FRAME_OVERHANG = (640 - 160) / 16000

RECIPE = register_recipe(FeatureRecipe(
    "attention_fcn", 16000, {"kind": "window", "offset": 0.0, "duration": SEGMENT_SECONDS},
    dict(SPECTROGRAM)))

UTTERANCE_RECIPE = register_recipe(FeatureRecipe(
    "attention_fcn_utterance", 16000, {"kind": "none"}, dict(SPECTROGRAM)))

# librosa.load's default rate and melspectrogram's defaults, spelled out: 2048-sample Hann
# frames, hop 512, centred with zero padding (librosa >= 0.10; older releases reflected),
# power 2, 128 slaney mel bands from 0 Hz to Nyquist with slaney area norm, no log.
RECIPE_1D = register_recipe(FeatureRecipe(
    "attention_fcn_1d", 22050, {"kind": "none"},
    {"kind": "log_mel", "frame_length": 2048, "frame_step": 512, "fft_length": 2048,
     "window": "hann", "power": 2.0, "center": True, "pad_mode": "constant",
     "num_mel_bins": 128, "fmin": 0.0, "fmax": None, "mel_scale": "slaney", "norm": "slaney",
     "log": None, "dft": "fft"}))


#: The 1-D input in decibels (``--input-scale db``): power spectra span ten orders of
#: magnitude, so a few low bands dominate the raw mean spectrum the student fed the
#: convolutions, and a full-int8 input scale rounds most bands to zero.
RECIPE_1D_DB = register_recipe(RECIPE_1D.replace(
    name="attention_fcn_1d_db", frontend={"log": "db", "ref": 1.0, "amin": 1e-10,
                                          "top_db": 80.0}))
#: ``--input-scale`` -> the 1-D recipe.
RECIPES_1D = {"power": RECIPE_1D, "db": RECIPE_1D_DB}


def crop_recipe(seconds: float | None = None) -> FeatureRecipe:
    """The paper's spectrogram of the first ``seconds`` of each file (zero-padded when
    shorter): ``round(100 * seconds)`` frames. ``None`` or 3: the ``attention_fcn`` recipe."""
    if seconds is None or round(float(seconds) * 100) == 300:
        return RECIPE
    if float(seconds) <= 0:
        raise ValueError(f"crop must be positive, got {seconds}")
    duration = round(round(float(seconds) * 100) / 100 + FRAME_OVERHANG, 6)
    return RECIPE.replace(segment={"duration": duration})
