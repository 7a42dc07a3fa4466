"""The front-ends' constant matrices, and the same front-ends in NumPy (no TensorFlow).

Two users:

- :mod:`ser_tf.features.frontends` builds its Keras layers (``tf.signal`` framing and DFT)
  from the window, mel and DCT matrices defined here, so both implementations share one
  definition of every constant.
- :mod:`ser_tf.lite` runs *features-in* TFLite models on a device without TensorFlow:
  :func:`numpy_features` computes what the layer computes, from the same recipe config
  (the ``frontend`` entry of a model's sidecar), in float64 and returns float32.

Parity with the layers is tested for every built-in recipe with a TensorFlow front-end
(``tests/test_spectral.py``): the NumPy path rounds less than float32 TF, so differences
are float32 rounding of the layer, largest in log-compressed near-silent bins.
"""

from __future__ import annotations

import math

import numpy as np

WINDOWS = ("hann", "hamming")
LOG_MODES = (None, "log", "db")
MEL_SCALES = ("htk", "slaney")
DCT_NORMS = (None, "ortho", "tf")
TF_KINDS = ("spectrogram", "log_mel", "mfcc")
#: What :func:`numpy_features` computes: the TF kinds, and ``librosa_mfcc`` (the offline
#: librosa reference, computed here as ``mfcc`` with the same parameters, which reproduce
#: librosa's numbers; see :mod:`ser_tf.features.frontends`).
NUMPY_KINDS = TF_KINDS + ("librosa_mfcc",)


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def window_array(name: str, length: int) -> np.ndarray:
    """Periodic ("DFT-even") window, as ``scipy.signal.get_window(name, length)`` (librosa)
    and ``tf.signal.hann_window`` / ``hamming_window`` (periodic=True) compute it."""
    alpha = {"hann": 0.5, "hamming": 0.54}[_choice("window", name, WINDOWS)]
    return alpha - (1.0 - alpha) * np.cos(2.0 * np.pi * np.arange(length) / length)


def hz_to_mel(hz, scale: str = "slaney"):
    """HTK: 1127 ln(1 + f/700) (TF's constant). Slaney (Auditory Toolbox, librosa's
    default): linear 3 mel / 200 Hz below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    if _choice("mel_scale", scale, MEL_SCALES) == "htk":
        return 1127.0 * np.log1p(hz / 700.0)
    logstep = np.log(6.4) / 27.0
    return np.where(hz < 1000.0, hz * 3.0 / 200.0,
                    15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / logstep)


def mel_to_hz(mel, scale: str = "slaney"):
    mel = np.asarray(mel, dtype=np.float64)
    if _choice("mel_scale", scale, MEL_SCALES) == "htk":
        return 700.0 * np.expm1(mel / 1127.0)
    logstep = np.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp(logstep * (mel - 15.0)))


def mel_weight_matrix(sample_rate, fft_length, num_mel_bins=128, fmin=0.0, fmax=None,
                      mel_scale="slaney", norm="slaney", triangles=None) -> np.ndarray:
    """``(fft_length // 2 + 1, num_mel_bins)`` triangular filters, band edges equally spaced
    in mel. ``triangles="hz"`` interpolates linearly in Hz (librosa.filters.mel);
    ``"mel"`` in mel (tf.signal.linear_to_mel_weight_matrix). ``None``: "mel" for the HTK
    scale, "hz" for slaney, so each scale reproduces its usual library."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got {fmin}, {fmax}")
    triangles = triangles or ("mel" if mel_scale == "htk" else "hz")
    _choice("mel_triangles", triangles, ("hz", "mel"))
    bin_hz = np.arange(fft_length // 2 + 1) * sample_rate / fft_length
    edges_mel = np.linspace(hz_to_mel(fmin, mel_scale), hz_to_mel(fmax, mel_scale),
                            num_mel_bins + 2)
    edges_hz = mel_to_hz(edges_mel, mel_scale)
    x, e = (bin_hz, edges_hz) if triangles == "hz" else (hz_to_mel(bin_hz, mel_scale), edges_mel)
    rising = (x[:, None] - e[None, :-2]) / (e[1:-1] - e[:-2])
    falling = (e[None, 2:] - x[:, None]) / (e[2:] - e[1:-1])
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if _choice("norm", norm, (None, "slaney")) == "slaney":
        # Equal area per filter: divide by the triangle's width in Hz (Slaney 1998).
        weights *= 2.0 / (edges_hz[2:] - edges_hz[:-2])
    return weights


def dct_matrix(num_inputs: int, num_outputs: int, norm="ortho") -> np.ndarray:
    """DCT-II as a ``(num_inputs, num_outputs)`` matrix (``x @ D``): ``None`` is scipy's
    unnormalised 2 sum x_n cos(pi k (2n+1) / 2N), ``"ortho"`` scipy's orthonormal one,
    ``"tf"`` the unnormalised one times 1/sqrt(2N) (tf.signal.mfccs_from_log_mel_spectrograms)."""
    if num_outputs > num_inputs:
        raise ValueError(f"num_mfcc ({num_outputs}) must be <= num_mel_bins ({num_inputs})")
    n, k = np.arange(num_inputs)[:, None], np.arange(num_outputs)[None, :]
    matrix = 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * num_inputs))
    if _choice("dct_norm", norm, DCT_NORMS) in ("ortho", "tf"):
        matrix /= np.sqrt(2.0 * num_inputs)
    if norm == "ortho":
        matrix[:, 0] /= np.sqrt(2.0)
    return matrix


def center_padding(frame_length: int, fft_length: int, center: bool) -> tuple[int, int]:
    """Samples padded before and after the signal. librosa pads ``fft_length // 2`` and
    centres a shorter window inside each ``fft_length`` frame; padding only what reaches
    the window gives the same frames and frame count."""
    if not center:
        return (0, 0)
    inner = fft_length - frame_length
    return (fft_length // 2 - inner // 2, fft_length // 2 - (inner - inner // 2))


def spectrogram_bins(fft_length: int, sample_rate=None, max_hz=None) -> int:
    """DFT bins kept: all ``fft_length // 2 + 1``, or those strictly below ``max_hz``
    (bin k is at k * sample_rate / fft_length Hz)."""
    full = fft_length // 2 + 1
    if max_hz is None:
        return full
    if sample_rate is None:
        raise ValueError("max_hz needs sample_rate")
    below = math.ceil(float(max_hz) * fft_length / int(sample_rate) - 1e-9)
    return max(1, min(full, below))


# --- the front-ends in NumPy -----------------------------------------------------------
_STFT_KEYS = ("frame_length", "frame_step", "window", "power", "center")
_MFCC_KEYS = _STFT_KEYS + ("num_mel_bins", "mel_scale", "num_mfcc", "dct_norm")
_NEEDED = {"spectrogram": _STFT_KEYS, "log_mel": _STFT_KEYS + ("num_mel_bins", "mel_scale"),
           "mfcc": _MFCC_KEYS, "librosa_mfcc": _MFCC_KEYS}
_LOG_KEYS = {"log": ("log_offset",), "db": ("ref", "amin", "top_db")}


def check_frontend_config(config: dict) -> dict:
    """The recipe's front-end config with the keys its computation needs, else ValueError.

    No defaults are filled in for what changes the numbers: a recipe spells out every
    parameter (:mod:`ser_tf.features.recipes`), and a sidecar missing one is an error
    rather than a silently different front-end.
    """
    if not isinstance(config, dict):
        raise ValueError(f"front-end config must be a dict, got {type(config).__name__}")
    kind = _choice("front-end kind", config.get("kind"), NUMPY_KINDS)
    needed = list(_NEEDED[kind])
    log = _choice("log", config.get("log"), LOG_MODES)
    needed += _LOG_KEYS.get(log, ())
    if kind != "spectrogram":
        needed += ["fmin", "fmax", "norm"]
    missing = [key for key in needed if key not in config]
    if missing:
        raise ValueError(f"{kind} front-end config lacks {missing}: cannot compute it "
                         f"without TensorFlow (config: {config})")
    return config


def _stft_power(segments: np.ndarray, c: dict, bins: int) -> np.ndarray:
    """(n, samples) -> (n, frames, bins) of |STFT| ** power, float64."""
    frame_length, frame_step = int(c["frame_length"]), int(c["frame_step"])
    fft_length = int(c.get("fft_length") or frame_length)
    pad = center_padding(frame_length, fft_length, bool(c["center"]))
    if any(pad):
        mode = _choice("pad_mode", c.get("pad_mode", "constant"), ("constant", "reflect"))
        segments = np.pad(segments, ((0, 0), pad), mode=mode)
    if segments.shape[1] < frame_length:
        raise ValueError(f"segments of {segments.shape[1]} samples are shorter than one "
                         f"frame ({frame_length})")
    frames = np.lib.stride_tricks.sliding_window_view(segments, frame_length, axis=1)
    frames = frames[:, ::frame_step] * window_array(c["window"], frame_length)
    magnitude = np.abs(np.fft.rfft(frames, n=fft_length, axis=-1)[..., :bins])
    power = float(c["power"])
    return magnitude if power == 1.0 else magnitude ** power


def _compress(values: np.ndarray, c: dict) -> np.ndarray:
    if c.get("log") == "log":
        return np.log(values + float(c["log_offset"]))
    if c.get("log") == "db":
        amin, ref = float(c["amin"]), float(c["ref"])
        db = 10.0 * np.log10(np.maximum(values, amin)) - 10.0 * math.log10(max(amin, ref))
        if c["top_db"] is not None:  # relative to each example's own maximum
            db = np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - float(c["top_db"]))
        return db
    return values


def numpy_features(segments, sample_rate: int, config: dict) -> np.ndarray:
    """Equal-length segments ``(n, samples)`` -> ``(n, frames, dim)`` float32, as
    :func:`ser_tf.features.frontends.compute_features` computes them, without TensorFlow.

    Args:
        segments: float audio, one row per segment (already cut and normalised).
        sample_rate: the recipe's rate (mel filters, ``max_hz``).
        config: a recipe's ``frontend`` dict with ``kind`` in :data:`NUMPY_KINDS`.
    """
    c = check_frontend_config(config)
    segments = np.asarray(segments, dtype=np.float64)
    if segments.ndim != 2:
        raise ValueError(f"segments must be (n, samples), got shape {segments.shape}")
    if c.get("sample_rate", sample_rate) != sample_rate:
        raise ValueError(f"front-end sample_rate {c['sample_rate']} != {sample_rate}")
    fft_length = int(c.get("fft_length") or c["frame_length"])
    if c["kind"] == "spectrogram":
        bins = spectrogram_bins(fft_length, sample_rate, c.get("max_hz"))
        return _compress(_stft_power(segments, c, bins), c).astype(np.float32)
    mel = mel_weight_matrix(sample_rate, fft_length, int(c["num_mel_bins"]), float(c["fmin"]),
                            None if c["fmax"] is None else float(c["fmax"]), c["mel_scale"],
                            c["norm"], c.get("mel_triangles"))
    features = _compress(_stft_power(segments, c, fft_length // 2 + 1) @ mel, c)
    if c["kind"] in ("mfcc", "librosa_mfcc"):
        features = features @ dct_matrix(int(c["num_mel_bins"]), int(c["num_mfcc"]),
                                         c["dct_norm"])
        if c.get("clip") is not None:
            features = np.clip(features, -float(c["clip"]), float(c["clip"]))
    return features.astype(np.float32)
