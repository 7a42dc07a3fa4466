"""The CNN family's feature recipes, registered on import (moved here unchanged from the
shared recipes; their configs are what run records and feature-cache keys store).

librosa's way of reading and describing a file, as the report's code did
(``librosa.load(path, sr=16000, offset=0.5, duration=3)`` then librosa's defaults):

- ``cnn_mfcc``: 128 MFCCs (128 slaney mel bands, dB, orthonormal DCT), 2048-sample Hann
  frames, hop 512, centred: 1 + 48000 // 512 = **94 frames × 128**;
- ``cnn_logmel``: the 128-band mel spectrogram in dB, hop 256: 1 + 48000 // 256 =
  **188 frames × 128**.

Both take 3 s from 0.5 s into the file at 16 kHz (a shorter file is zero-padded). Features
are (frames, bins); the models transpose to the original's (bins, frames) image inside.
Imports only the shared recipe module (no TensorFlow).
"""

from __future__ import annotations

from ser_tf.features.recipes import (LIBROSA_LOG_MEL, LIBROSA_MFCC, FeatureRecipe,
                                     register_recipe)

#: 3 s from 0.5 s, as ``librosa.load(..., offset=0.5, duration=3)``.
SEGMENT = {"kind": "window", "offset": 0.5, "duration": 3.0}

MFCC = register_recipe(FeatureRecipe(
    "cnn_mfcc", 16000, dict(SEGMENT),
    {"kind": "mfcc", **LIBROSA_MFCC, "num_mfcc": 128, "dft": "fft"}))
LOGMEL = register_recipe(FeatureRecipe(
    "cnn_logmel", 16000, dict(SEGMENT),
    {"kind": "log_mel", **LIBROSA_LOG_MEL, "frame_step": 256, "dft": "fft"}))

#: ``--features`` name -> recipe.
RECIPES = {"mfcc": MFCC, "mel": LOGMEL}
