"""Segmentation recipes: how each paper turns a recording into fixed-length model input.

All functions take and return 1-D float32 NumPy arrays at the recipe's sample rate
(resampling happens when the audio is read, see :func:`ser_tf.data.audio.read_audio`).

- ``lightsernet`` (Aftab et al. 2022, Sec. 3.1 and the authors' code): one segment of
  ``duration`` seconds; a longer file is centre-cropped, the segment is scaled by the
  99.9th percentile of its magnitude and clipped to [-1, 1], a shorter one is then
  zero-padded symmetrically.
- ``timnet`` (Ye et al. 2023, authors' code): centre pad or crop to a per-corpus sample
  count at 22 050 Hz.
- ``window``: a fixed window from an offset (the CNN recipes take 3 s from 0.5 s).
"""

from __future__ import annotations

import numpy as np

#: TIM-Net's per-corpus sample counts at 22 050 Hz.
TIMNET_SAMPLE_RATE = 22050
TIMNET_LENGTHS = {"CASIA": 88000, "EMODB": 96000, "EMOVO": 96000, "IEMOCAP": 310000,
                  "RAVDESS": 110000, "SAVEE": 130000}


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


def percentile_normalize(audio, percentile: float = 99.9, eps: float = 1e-6) -> np.ndarray:
    """Divide by the ``percentile`` of |x| (plus ``eps``) and clip to [-1, 1]."""
    audio = _check_audio(audio)
    scale = np.percentile(np.abs(audio), percentile) + eps
    return np.clip(audio / scale, -1.0, 1.0).astype(np.float32)


def segment_lightsernet(audio, sr: int = 16000, duration: float = 3.0) -> np.ndarray:
    """Light-SERNet input: centre crop to ``duration``, normalise, then pad symmetrically."""
    length = int(round(duration * sr))
    return center_pad(percentile_normalize(center_crop(audio, length)), length)


def sliding_windows(audio, sr: int = 16000, window: float = 3.0, hop: float = 1.0,
                    normalize: bool = True) -> np.ndarray:
    """Overlapping windows for inference on long recordings: shape ``(n, window * sr)``.

    A recording shorter than one window gives one centre-padded window; the tail after the
    last full window gets one more window aligned to the end, so no audio is ignored.
    Each window is normalised like the training segments when ``normalize``.
    """
    audio = _check_audio(audio)
    size, step = int(round(window * sr)), int(round(hop * sr))
    if size <= 0 or step <= 0:
        raise ValueError(f"window and hop must be positive, got {window}, {hop}")
    if audio.size <= size:
        starts = [0]
    else:
        starts = list(range(0, audio.size - size + 1, step))
        if starts[-1] + size < audio.size:
            starts.append(audio.size - size)
    windows = [audio[s:s + size] for s in starts]
    if normalize:
        windows = [percentile_normalize(w) for w in windows]
    return np.stack([center_pad(w, size) for w in windows])


def segment_timnet(audio, corpus: str) -> np.ndarray:
    """TIM-Net input: centre pad or crop to the corpus's sample count (audio at 22 050 Hz)."""
    key = corpus.upper()
    if key not in TIMNET_LENGTHS:
        raise ValueError(f"no TIM-Net length for corpus {corpus!r}; known: {sorted(TIMNET_LENGTHS)}")
    return pad_or_crop_center(audio, TIMNET_LENGTHS[key])


def segment_window(audio, sr: int = 16000, offset: float = 0.5, duration: float = 3.0) -> np.ndarray:
    """``duration`` seconds starting at ``offset``; zero-padded at the end when the file is short."""
    audio = _check_audio(audio)
    start, length = int(round(offset * sr)), int(round(duration * sr))
    piece = audio[start:start + length]
    return np.pad(piece, (0, length - piece.size))
