"""Segmentation: how a recording becomes a model's fixed-length input, and a registry of the
segmentation kinds a :class:`ser_tf.features.recipes.FeatureRecipe` can name.

All functions take and return 1-D float32 NumPy arrays at the recipe's sample rate
(resampling happens when the audio is read, see :func:`ser_tf.data.audio.read_audio`).
This module imports only NumPy, so the TF-free runtime (:mod:`ser_tf.lite`) can use it.

Generic kinds, registered here (a recipe's ``segment`` dict is ``{"kind": ..., **params}``):

- ``window`` (``offset``, ``duration``): a fixed window from an offset; zero-padded at the
  end when the file is short.
- ``none``: the audio as it is (no fixed length).
- ``crop_normalise_pad`` (``duration``, ``percentile``): centre crop to ``duration``
  seconds, scale by the ``percentile`` of |x| and clip to [-1, 1], then zero-pad
  symmetrically. Inference windows must get the same scaling: see
  :attr:`Segmenter.window_normalisation`.
- ``pad_or_crop`` (``length``): centre pad or crop to ``length`` samples.

Kinds that belong to one paper are registered by that paper's package
(``ser_tf.papers.<name>``) with :func:`register_segmenter`; their kind strings are stored
in run configs and feature-cache keys, so a registered kind never changes meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

#: The only window normalisation method a runtime needs to know (see
#: :func:`check_window_normalisation`).
PERCENTILE = "percentile"


def _check_audio(audio) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected 1-D mono audio, got shape {audio.shape}")
    return audio


def center_crop(audio, length: int) -> np.ndarray:
    """Keep the middle ``length`` samples: floor(excess / 2) removed at the front."""
    audio = _check_audio(audio)
    excess = audio.size - length
    if excess <= 0:
        return audio
    start = excess // 2
    return audio[start:start + length]


def center_pad(audio, length: int) -> np.ndarray:
    """Zero-pad to ``length``: floor(missing / 2) zeros in front, the rest behind."""
    audio = _check_audio(audio)
    missing = length - audio.size
    if missing <= 0:
        return audio
    front = missing // 2
    return np.pad(audio, (front, missing - front))


def pad_or_crop_center(audio, length: int) -> np.ndarray:
    """Exactly ``length`` samples, centred."""
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    return center_pad(center_crop(audio, length), length)


def percentile_normalize(audio, percentile: float = 99.9, eps: float = 1e-6,
                         clip: float | None = 1.0) -> np.ndarray:
    """Divide by the ``percentile`` of |x| (plus ``eps``) and clip to [-clip, clip]
    (no clipping when ``clip`` is None)."""
    audio = _check_audio(audio)
    scale = np.percentile(np.abs(audio), percentile) + eps
    scaled = audio / scale
    if clip is not None:
        scaled = np.clip(scaled, -clip, clip)
    return scaled.astype(np.float32)


def check_window_normalisation(spec) -> dict | None:
    """A window normalisation as a sidecar or a recipe states it, validated: ``None`` (the
    windows go in as they are) or ``{"method": "percentile", "percentile": p, "clip": c}``
    (``c`` a positive number or None). Returns a normalised copy; ``ValueError`` otherwise."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("method") != PERCENTILE:
        raise ValueError(f"window normalisation must be null or a dict with method "
                         f"{PERCENTILE!r}, got {spec!r}")
    unknown = sorted(set(spec) - {"method", "percentile", "clip"})
    if unknown:
        raise ValueError(f"window normalisation has unknown keys {unknown}: {spec!r}")
    percentile, clip = spec.get("percentile"), spec.get("clip")
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) \
            or not 0 < percentile <= 100:
        raise ValueError(f"window normalisation percentile must be in (0, 100], got {percentile!r}")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float))
                             or not clip > 0):
        raise ValueError(f"window normalisation clip must be positive or null, got {clip!r}")
    return {"method": PERCENTILE, "percentile": float(percentile),
            "clip": None if clip is None else float(clip)}


def normalise_window(audio, spec: dict | None) -> np.ndarray:
    """Apply a window normalisation (:func:`check_window_normalisation`) to one window."""
    spec = check_window_normalisation(spec)
    if spec is None:
        return _check_audio(audio)
    return percentile_normalize(audio, spec["percentile"], clip=spec["clip"])


def percentile_window_normalisation(percentile: float = 99.9) -> dict:
    """The normalisation :func:`percentile_normalize` applies, as a runtime reads it."""
    return {"method": PERCENTILE, "percentile": float(percentile), "clip": 1.0}


def sliding_windows(audio, sr: int = 16000, window: float = 3.0, hop: float = 1.0,
                    normalize: bool | dict | None = True) -> np.ndarray:
    """Overlapping windows for inference on long recordings: shape ``(n, window * sr)``.

    A recording shorter than one window gives one centre-padded window; the tail after the
    last full window gets one more window aligned to the end, so no audio is ignored.
    ``normalize``: a window normalisation dict (as a recipe's ``window_normalisation()`` or
    a sidecar's ``normalise`` states it) applied to each window before padding; ``True``
    is the 99.9th-percentile one; ``False`` / ``None``: the windows as they are.
    """
    audio = _check_audio(audio)
    size, step = int(round(window * sr)), int(round(hop * sr))
    if size <= 0 or step <= 0:
        raise ValueError(f"window and hop must be positive, got {window}, {hop}")
    if normalize is True:
        normalize = percentile_window_normalisation()
    spec = check_window_normalisation(normalize or None)
    if audio.size <= size:
        starts = [0]
    else:
        starts = list(range(0, audio.size - size + 1, step))
        if starts[-1] + size < audio.size:
            starts.append(audio.size - size)
    windows = [audio[s:s + size] for s in starts]
    if spec is not None:
        windows = [normalise_window(w, spec) for w in windows]
    return np.stack([center_pad(w, size) for w in windows])


def segment_window(audio, sr: int = 16000, offset: float = 0.5, duration: float = 3.0) -> np.ndarray:
    """``duration`` seconds starting at ``offset``; zero-padded at the end when the file is short."""
    audio = _check_audio(audio)
    start, length = int(round(offset * sr)), int(round(duration * sr))
    piece = audio[start:start + length]
    return np.pad(piece, (0, length - piece.size))


def crop_normalise_pad(audio, sr: int = 16000, duration: float = 3.0,
                       percentile: float = 99.9) -> np.ndarray:
    """Centre crop to ``duration``, percentile-normalise the crop, then pad symmetrically.

    The normalisation comes before the padding on purpose: a short clip is scaled by the
    percentile of its own samples, not of the zeros added to it."""
    length = int(round(duration * sr))
    return center_pad(percentile_normalize(center_crop(audio, length), percentile), length)


# --- registry ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Segmenter:
    """One segmentation kind. Each callable gets the recipe's segment params (its
    ``segment`` dict without ``kind``) as keyword arguments:

    - ``segment(audio, sample_rate, **params)`` -> the model's waveform (1-D float32);
    - ``num_samples(sample_rate, **params)`` -> its fixed length, or None if it has none;
    - ``window_normalisation(**params)`` -> what a runtime must do to each inference window
      so it looks like the training segments (:func:`check_window_normalisation`), or None.
    """

    kind: str
    segment: Callable[..., np.ndarray]
    num_samples: Callable[..., int | None]
    window_normalisation: Callable[..., dict | None]


_SEGMENTERS: dict[str, Segmenter] = {}


def _same_code(a: Segmenter, b: Segmenter) -> bool:
    # A module imported again (importlib.reload, a test) registers new function objects of
    # the same code; only a different definition under a taken kind is a conflict.
    def names(s):
        return [(f.__module__, f.__qualname__)
                for f in (s.segment, s.num_samples, s.window_normalisation)]
    return names(a) == names(b)


def no_window_normalisation(**params) -> None:
    """``window_normalisation`` of kinds whose segments are not rescaled."""
    return None


def register_segmenter(kind: str, segment, num_samples,
                       window_normalisation=no_window_normalisation) -> Segmenter:
    """Make ``kind`` usable in a recipe's ``segment`` dict (see :class:`Segmenter`).

    Raises ``ValueError`` if ``kind`` is already registered with different functions: a
    kind string is stored in run configs, so it must keep one meaning."""
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"segment kind must be a non-empty string, got {kind!r}")
    segmenter = Segmenter(kind, segment, num_samples, window_normalisation)
    existing = _SEGMENTERS.get(kind)
    if existing is not None and not _same_code(existing, segmenter):
        raise ValueError(f"segment kind {kind!r} is already registered by "
                         f"{existing.segment.__module__}")
    _SEGMENTERS[kind] = segmenter
    return segmenter


def segment_kinds() -> list[str]:
    """The registered kinds, sorted."""
    return sorted(_SEGMENTERS)


def get_segmenter(kind: str) -> Segmenter:
    """The :class:`Segmenter` registered for ``kind``; ``ValueError`` naming the known kinds."""
    if kind not in _SEGMENTERS:
        raise ValueError(f"unknown segment kind {kind!r}; known: {segment_kinds()}. "
                         "Paper-specific kinds are registered when the paper's package "
                         "ser_tf.papers.<name> is imported")
    return _SEGMENTERS[kind]


def _window_samples(sample_rate: int, offset: float = 0.5, duration: float = 3.0) -> int:
    return int(round(float(duration) * sample_rate))


def _whole_audio(audio, sample_rate: int) -> np.ndarray:
    return np.asarray(audio, dtype=np.float32)


def _no_fixed_length(sample_rate: int) -> None:
    return None


def _crop_samples(sample_rate: int, duration: float = 3.0, percentile: float = 99.9) -> int:
    return int(round(float(duration) * sample_rate))


def _crop_normalisation(duration: float = 3.0, percentile: float = 99.9) -> dict:
    return percentile_window_normalisation(percentile)


def _pad_or_crop(audio, sample_rate: int, length: int) -> np.ndarray:
    return pad_or_crop_center(audio, int(length))


def _pad_or_crop_samples(sample_rate: int, length: int) -> int:
    return int(length)


register_segmenter("window", segment_window, _window_samples)
register_segmenter("none", _whole_audio, _no_fixed_length)
register_segmenter("crop_normalise_pad", crop_normalise_pad, _crop_samples, _crop_normalisation)
register_segmenter("pad_or_crop", _pad_or_crop, _pad_or_crop_samples)
