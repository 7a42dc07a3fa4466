"""Feature recipes: segmentation + front-end, and the registry of named recipes.

A :class:`FeatureRecipe` is plain data (its :meth:`config` is what the feature cache hashes
and what run records store) plus two steps: :meth:`segment` (NumPy, per file) and
:meth:`compute` (a batch of segments -> features; a TensorFlow front-end layer from
:mod:`ser_tf.features.frontends`, or librosa where a recipe says so).

The segmentation kinds live in :mod:`ser_tf.features.segment`'s registry. Recipes that
belong to one paper are registered by the paper's package (``ser_tf.papers.<name>``, with
:func:`register_recipe`) when it is imported; this module never imports a paper.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ser_tf.features import segment as seg


@dataclass(frozen=True)
class FeatureRecipe:
    """``segment``: ``{"kind": <a registered segment kind>, **params}``, e.g.
    ``{"kind": "window", "offset": 0.5, "duration": 3.0}``, ``{"kind":
    "crop_normalise_pad", "duration": 3.0}`` or ``{"kind": "none"}`` (see
    :mod:`ser_tf.features.segment`). ``frontend``: keyword arguments of
    :func:`ser_tf.features.frontends.build_frontend` (``{"kind": "mfcc", ...}``)."""

    name: str
    sample_rate: int
    segment: dict = field(default_factory=lambda: {"kind": "none"})
    frontend: dict = field(default_factory=dict)

    def __post_init__(self):
        try:
            seg.get_segmenter(self.segment.get("kind"))
        except ValueError as error:
            raise ValueError(f"recipe {self.name}: {error}") from None

    def config(self) -> dict:
        """JSON-able description; equal configs give equal features."""
        return {"name": self.name, "sample_rate": self.sample_rate,
                "segment": copy.deepcopy(self.segment), "frontend": copy.deepcopy(self.frontend)}

    def _segmenter(self) -> tuple[seg.Segmenter, dict]:
        params = {k: v for k, v in self.segment.items() if k != "kind"}
        return seg.get_segmenter(self.segment["kind"]), params

    def segment_audio(self, audio: np.ndarray) -> np.ndarray:
        """One file's audio (at ``sample_rate``) -> the model's fixed-length waveform."""
        segmenter, params = self._segmenter()
        return segmenter.segment(audio, self.sample_rate, **params)

    def compute(self, segments: np.ndarray) -> np.ndarray:
        """A batch of equal-length segments ``(n, samples)`` -> features ``(n, ...)`` float32."""
        from ser_tf.features.frontends import compute_features

        return compute_features(np.asarray(segments, dtype=np.float32), self.sample_rate,
                                self.frontend)

    def num_samples(self) -> int:
        """The fixed number of samples the segmentation produces (the model's waveform input)."""
        segmenter, params = self._segmenter()
        samples = segmenter.num_samples(self.sample_rate, **params)
        if samples is None:
            raise ValueError(f"recipe {self.name}: segment kind {segmenter.kind!r} has no "
                             "fixed length")
        return int(samples)

    def window_normalisation(self) -> dict | None:
        """What a runtime must do to each inference window so it matches the training
        segments (e.g. ``{"method": "percentile", "percentile": 99.9, "clip": 1.0}``), or
        None; exported models state it in their sidecar (``input.normalise``)."""
        segmenter, params = self._segmenter()
        return seg.check_window_normalisation(segmenter.window_normalisation(**params))

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
LIBROSA_LOG_MEL = {"frame_length": 2048, "frame_step": 512, "fft_length": 2048,
                    "window": "hann", "power": 2.0, "center": True, "pad_mode": "constant",
                    "num_mel_bins": 128, "fmin": 0.0, "fmax": None, "mel_scale": "slaney",
                    "norm": "slaney", "log": "db", "ref": 1.0, "amin": 1e-10, "top_db": 80.0}
LIBROSA_MFCC = {**LIBROSA_LOG_MEL, "dct_norm": "ortho"}


#: Every named recipe: filled by the paper packages (``ser_tf.papers.<name>.recipes``),
#: which register theirs when imported.
RECIPES: dict[str, FeatureRecipe] = {}


def register_recipe(recipe: FeatureRecipe) -> FeatureRecipe:
    """Add a named recipe (a paper package registers its own when imported).

    Registering the same config again is a no-op; a different config under a taken name
    raises ``ValueError``, since the name stands for its config in run records."""
    if not isinstance(recipe, FeatureRecipe):
        raise TypeError(f"expected a FeatureRecipe, got {type(recipe).__name__}")
    existing = RECIPES.get(recipe.name)
    if existing is not None and existing.config() != recipe.config():
        raise ValueError(f"feature recipe {recipe.name!r} is already registered with a "
                         "different config")
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str, **overrides) -> FeatureRecipe:
    """A fresh copy of a named recipe, with ``overrides`` applied by
    :meth:`FeatureRecipe.replace` (``get_recipe("lightsernet", segment={"duration": 7.0})``)."""
    if name not in RECIPES:
        raise KeyError(f"unknown feature recipe {name!r}; known: {sorted(RECIPES)}. A paper's "
                       "recipes are registered by importing its package, ser_tf.papers.<name>")
    return RECIPES[name].replace(**overrides)
