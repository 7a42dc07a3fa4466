"""TIM-Net's segmentation kind and per-corpus feature recipes, registered on import.

Segment kind ``"timnet"`` (Ye et al. 2023, the authors' code): centre pad or crop to a
per-corpus sample count at 22 050 Hz (param ``corpus``). Recipes ``timnet-<CORPUS>``:
librosa.feature.mfcc defaults at 22 050 Hz, 39 coefficients, on that length
(timnet-EMODB: 96000 samples -> 1 + 96000 // 512 = 188 frames x 39), computed with librosa
itself (offline, exact); ``frontend={"kind": "mfcc"}`` runs the identical parameters
through the TF layer instead (max |difference| <= 1e-3, see ser_tf/features/frontends.py).
The kind and recipe names keep these spellings because run configs and feature-cache keys
store them.
"""

from __future__ import annotations

import numpy as np

from ser_tf.features import segment as seg
from ser_tf.features.recipes import LIBROSA_MFCC, FeatureRecipe, register_recipe

SEGMENT_KIND = "timnet"
#: TIM-Net's per-corpus sample counts at 22 050 Hz.
TIMNET_SAMPLE_RATE = 22050
TIMNET_LENGTHS = {"CASIA": 88000, "EMODB": 96000, "EMOVO": 96000, "IEMOCAP": 310000,
                  "RAVDESS": 110000, "SAVEE": 130000}


def timnet_length(corpus: str) -> int:
    """The corpus's sample count; ``ValueError`` for a corpus TIM-Net has no length for."""
    key = str(corpus).upper()
    if key not in TIMNET_LENGTHS:
        raise ValueError(f"no TIM-Net length for corpus {corpus!r}; known: {sorted(TIMNET_LENGTHS)}")
    return TIMNET_LENGTHS[key]


def segment_timnet(audio, corpus: str) -> np.ndarray:
    """TIM-Net input: centre pad or crop to the corpus's sample count (audio at 22 050 Hz)."""
    return seg.pad_or_crop_center(audio, timnet_length(corpus))


def _segment(audio, sample_rate: int, corpus: str) -> np.ndarray:
    # The length is a sample count the authors fixed at 22 050 Hz, whatever the rate.
    return segment_timnet(audio, corpus)


def _num_samples(sample_rate: int, corpus: str) -> int:
    return timnet_length(corpus)


seg.register_segmenter(SEGMENT_KIND, _segment, _num_samples)

RECIPES = {corpus: register_recipe(FeatureRecipe(
    f"timnet-{corpus}", TIMNET_SAMPLE_RATE, {"kind": SEGMENT_KIND, "corpus": corpus},
    {"kind": "librosa_mfcc", **LIBROSA_MFCC, "num_mfcc": 39})) for corpus in TIMNET_LENGTHS}


def window_recipe(corpus: str, seconds: float) -> FeatureRecipe:
    """``timnet-<CORPUS>`` with another input length: ``seconds`` at 22 050 Hz, centre pad
    or crop (the generic ``pad_or_crop`` kind, the same function as the ``timnet`` kind),
    the same MFCCs. For a corpus copy whose files all have one length (the 2.39 s trimmed
    RAVDESS), so the model's window is that length instead of mostly padding. Not
    registered: its config (segment length included) is stored in the run's config."""
    key = str(corpus).upper()
    timnet_length(key)  # a corpus TIM-Net knows
    samples = int(round(float(seconds) * TIMNET_SAMPLE_RATE))
    frontend = dict(RECIPES[key].frontend)
    # At least one STFT frame's worth of audio: shorter inputs give no MFCC frames to learn.
    if not samples >= int(frontend["fft_length"]):
        raise ValueError(f"window {seconds} s is {samples} samples at {TIMNET_SAMPLE_RATE} Hz; "
                         f"need at least {frontend['fft_length']}")
    return FeatureRecipe(f"timnet-{key}-{samples}", TIMNET_SAMPLE_RATE,
                         {"kind": "pad_or_crop", "length": samples}, frontend)
