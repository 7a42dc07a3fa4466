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

The two pretrained models: VGG16 (``--model vgg16_mel``) reads ``cnn_logmel`` (its mel
image is made inside the model, :class:`ser_tf.models.vgg16_mel.MelImage`, so its cached
features are those of ``--input mel`` runs); wav2vec2 (``--model wav2vec2``) reads
``cnn_waveform``: the same 3 s window of the 16 kHz waveform, no front-end (48,000 samples,
served by :class:`ser_tf.training.sources.WaveformSource`; :class:`WaveformRecipe`).
Imports only the shared recipe module (no TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True)
class WaveformRecipe(FeatureRecipe):
    """A recipe whose "features" are the segmented waveform itself (front-end
    ``{"kind": "waveform"}``): for models that compute their own features (wav2vec2). Its
    :meth:`compute` returns the segments, so the noise evaluation
    (:mod:`ser_tf.training.robustness`) feeds noisy waveforms to such a model."""

    def compute(self, segments) -> np.ndarray:
        segments = np.asarray(segments, dtype=np.float32)
        if segments.ndim != 2:
            raise ValueError(f"segments must be (n, samples), got shape {segments.shape}")
        return segments

    def replace(self, **changes) -> "WaveformRecipe":
        return WaveformRecipe(**FeatureRecipe.replace(self, **changes).config())


#: The wav2vec2 model's input: 3 s from 0.5 s of the 16 kHz waveform (48,000 samples).
WAVEFORM = register_recipe(WaveformRecipe("cnn_waveform", 16000, dict(SEGMENT),
                                          {"kind": "waveform"}))
