"""Feature recipes: segmentation + front-end, named after the paper that uses them.

A :class:`FeatureRecipe` is plain data (its :meth:`config` is what the feature cache hashes
and what run records store) plus two steps: :meth:`segment` (NumPy, per file) and
:meth:`compute` (a batch of segments -> features; a TensorFlow front-end layer from
:mod:`ser_tf.features.frontends`, or librosa where a recipe says so).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ser_tf.features import segment as seg

SEGMENT_KINDS = ("lightsernet", "timnet", "window", "none")


@dataclass(frozen=True)
class FeatureRecipe:
    """``segment``: ``{"kind": "lightsernet", "duration": 3.0}``, ``{"kind": "timnet",
    "corpus": "EMODB"}``, ``{"kind": "window", "offset": 0.5, "duration": 3.0}`` or
    ``{"kind": "none"}``. ``frontend``: keyword arguments of
    :func:`ser_tf.features.frontends.build_frontend` (``{"kind": "mfcc", ...}``)."""

    name: str
    sample_rate: int
    segment: dict = field(default_factory=lambda: {"kind": "none"})
    frontend: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.segment.get("kind") not in SEGMENT_KINDS:
            raise ValueError(f"recipe {self.name}: segment kind must be one of {SEGMENT_KINDS}, "
                             f"got {self.segment.get('kind')!r}")

    def config(self) -> dict:
        """JSON-able description; equal configs give equal features."""
        return {"name": self.name, "sample_rate": self.sample_rate,
                "segment": copy.deepcopy(self.segment), "frontend": copy.deepcopy(self.frontend)}

    def segment_audio(self, audio: np.ndarray) -> np.ndarray:
        """One file's audio (at ``sample_rate``) -> the model's fixed-length waveform."""
        params = {k: v for k, v in self.segment.items() if k != "kind"}
        kind = self.segment["kind"]
        if kind == "lightsernet":
            return seg.segment_lightsernet(audio, self.sample_rate, **params)
        if kind == "timnet":
            return seg.segment_timnet(audio, **params)
        if kind == "window":
            return seg.segment_window(audio, self.sample_rate, **params)
        return np.asarray(audio, dtype=np.float32)

    def compute(self, segments: np.ndarray) -> np.ndarray:
        """A batch of equal-length segments ``(n, samples)`` -> features ``(n, ...)`` float32."""
        from ser_tf.features.frontends import compute_features

        return compute_features(np.asarray(segments, dtype=np.float32), self.sample_rate,
                                self.frontend)

    def num_samples(self) -> int:
        """The fixed number of samples the segmentation produces (the model's waveform input)."""
        kind = self.segment["kind"]
        if kind in ("lightsernet", "window"):
            return int(round(float(self.segment.get("duration", 3.0)) * self.sample_rate))
        if kind == "timnet":
            return int(seg.TIMNET_LENGTHS[str(self.segment["corpus"]).upper()])
        raise ValueError(f"recipe {self.name}: segment kind {kind!r} has no fixed length")

    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one example's features (e.g. ``(184, 40)``), from one silent segment."""
        return tuple(self.compute(np.zeros((1, self.num_samples()), np.float32)).shape[1:])

    def replace(self, **changes) -> "FeatureRecipe":
        """A copy with some fields changed; dict fields are merged (``segment={"duration": 7}``)."""
        fields = self.config()
        for key, value in changes.items():
            if key in ("segment", "frontend"):
                fields[key].update(value)
            else:
                fields[key] = value
        return FeatureRecipe(**fields)


# --- Named recipes ----------------------------------------------------------------------
# Every front-end parameter is spelled out (not left to a library default), so a recipe's
# config says exactly what was computed and a library upgrade cannot change it silently.

#: librosa 0.11's ``melspectrogram`` + ``power_to_db`` defaults, in MFCC-layer names.
_LIBROSA_LOG_MEL = {"frame_length": 2048, "frame_step": 512, "fft_length": 2048,
                    "window": "hann", "power": 2.0, "center": True, "pad_mode": "constant",
                    "num_mel_bins": 128, "fmin": 0.0, "fmax": None, "mel_scale": "slaney",
                    "norm": "slaney", "log": "db", "ref": 1.0, "amin": 1e-10, "top_db": 80.0}
_LIBROSA_MFCC = {**_LIBROSA_LOG_MEL, "dct_norm": "ortho"}


def _builtin_recipes() -> dict[str, FeatureRecipe]:
    recipes = [
        # Light-SERNet (Aftab et al. 2022, Sec. 3.1, and the authors' tf.signal code): 3 s at
        # 16 kHz; |STFT| with 1024-sample Hann frames, hop 256, no centre padding; 128 HTK mel
        # bands in 80-7600 Hz as tf.signal.linear_to_mel_weight_matrix builds them;
        # ln(x + 1e-6); tf.signal.mfccs_from_log_mel_spectrograms' DCT; 40 MFCCs clipped to
        # +-10. 48000 samples -> 1 + (48000 - 1024) // 256 = 184 frames x 40.
        FeatureRecipe(
            "lightsernet", 16000, {"kind": "lightsernet", "duration": 3.0},
            {"kind": "mfcc", "frame_length": 1024, "frame_step": 256, "fft_length": 1024,
             "window": "hann", "power": 1.0, "center": False, "pad_mode": "constant",
             "num_mel_bins": 128, "fmin": 80.0, "fmax": 7600.0, "mel_scale": "htk",
             "norm": None, "log": "log", "log_offset": 1e-6, "num_mfcc": 40,
             "dct_norm": "tf", "clip": 10.0, "dft": "fft"}),
        # CNN recipes: 3 s from 0.5 s at 16 kHz with librosa's defaults. MFCC: hop 512,
        # centred -> 1 + 48000 // 512 = 94 frames x 128 coefficients (128 mels, full DCT).
        # Log-mel: the same with hop 256 -> 1 + 48000 // 256 = 188 frames x 128 mels.
        # Features are (frames, coefficients); a model wanting 128 x 94 transposes.
        FeatureRecipe("cnn_mfcc", 16000, {"kind": "window", "offset": 0.5, "duration": 3.0},
                      {"kind": "mfcc", **_LIBROSA_MFCC, "num_mfcc": 128, "dft": "fft"}),
        FeatureRecipe("cnn_logmel", 16000, {"kind": "window", "offset": 0.5, "duration": 3.0},
                      {"kind": "log_mel", **_LIBROSA_LOG_MEL, "frame_step": 256, "dft": "fft"}),
        # Attention-FCN (Zhang et al. 2018, Sec. 3): 40 ms Hamming frames (640), 10 ms hop
        # (160), 800-point DFT, bins below 4 kHz (0..199 of 401, 20 Hz apiece), log
        # magnitude, 300-frame segments: 1 + (48480 - 640) // 160 = 300, so the window is
        # 48480 samples = 3.03 s (3 s plus one frame minus one hop) from the start.
        # dft="matmul": TFLite's RFFT2D kernel only runs power-of-two lengths.
        FeatureRecipe(
            "attention_fcn", 16000, {"kind": "window", "offset": 0.0, "duration": 3.03},
            {"kind": "spectrogram", "frame_length": 640, "frame_step": 160, "fft_length": 800,
             "window": "hamming", "power": 1.0, "center": False, "pad_mode": "constant",
             "max_hz": 4000.0, "log": "log", "log_offset": 1e-6, "dft": "matmul"}),
    ]
    # TIM-Net (Ye et al. 2023, the authors' code): librosa.feature.mfcc defaults at 22 050 Hz,
    # 39 coefficients, on the per-corpus centre pad/crop length -- one recipe per corpus
    # (timnet-EMODB: 96000 samples -> 1 + 96000 // 512 = 188 frames x 39). Computed with
    # librosa itself (offline, exact); frontend={"kind": "mfcc"} runs the identical
    # parameters through the TF layer instead (max |difference| <= 1e-3, see frontends.py).
    for corpus in seg.TIMNET_LENGTHS:
        recipes.append(FeatureRecipe(
            f"timnet-{corpus}", seg.TIMNET_SAMPLE_RATE, {"kind": "timnet", "corpus": corpus},
            {"kind": "librosa_mfcc", **_LIBROSA_MFCC, "num_mfcc": 39}))
    return {recipe.name: recipe for recipe in recipes}


RECIPES: dict[str, FeatureRecipe] = _builtin_recipes()


def get_recipe(name: str, **overrides) -> FeatureRecipe:
    """A fresh copy of a named recipe, with ``overrides`` applied by
    :meth:`FeatureRecipe.replace` (``get_recipe("lightsernet", segment={"duration": 7.0})``)."""
    if name not in RECIPES:
        raise KeyError(f"unknown feature recipe {name!r}; known: {sorted(RECIPES)}")
    return RECIPES[name].replace(**overrides)
