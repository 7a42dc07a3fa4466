"""Speech front-ends as Keras layers on ``tf.signal``: spectrogram, log-mel spectrogram, MFCC.

The same layer object runs inside ``tf.data`` (feature caching), inside a ``keras.Model``
(a deployed model takes raw audio) and inside an exported TFLite graph. So every op has a
TFLite builtin: ``tf.signal.frame``, ``tf.signal.rfft`` (RFFT2D; the TFLite kernel only
accepts power-of-two lengths, hence ``dft="matmul"`` for e.g. an 800-point DFT), and matmuls
with constant window / mel / DCT matrices built in NumPy (no ``tf.signal.dct``, no Flex)
by :mod:`ser_tf.features.spectral`, which also computes the same front-ends without
TensorFlow for :mod:`ser_tf.lite`.

Two conventions are reproduced, chosen by the parameters (all exposed, all in ``get_config``):

- librosa 0.11 (``librosa.feature.mfcc``): ``center=True`` pads ``fft_length // 2`` on both
  sides, periodic windows, slaney mel scale with triangles in Hz and slaney area norm,
  ``log="db"`` (``power_to_db``: ``ref``, ``amin``, ``top_db`` below the per-example max),
  orthonormal DCT-II. :class:`MFCC` with its defaults is ``librosa.feature.mfcc(y, sr=22050)``.
- TensorFlow (``tf.signal.linear_to_mel_weight_matrix``): ``mel_scale="htk"`` puts the
  triangles in mel space with no norm, and ``dct_norm="tf"`` is the DCT scaling of
  ``tf.signal.mfccs_from_log_mel_spectrograms`` (orthonormal except c0, which is sqrt(2)
  larger). Light-SERNet (Aftab et al. 2022) computed its MFCCs this way.

Measured float32 deviation from the references, worst of 8 ``class_signal`` clips (3-4 s,
extra noise, 0.25 s of digital silence); ``tests/test_frontends.py`` asserts ~5x these:

- MFCC, librosa convention, vs ``librosa.feature.mfcc``: max |difference| <= 1.0e-3
  (TIM-Net: 22.05 kHz, 39 coefficients, both pad modes; CNN: 16 kHz, 128 coefficients;
  coefficients reach ~100). The worst cells are frames next to silence, where float32 FFT
  rounding of near-zero bins shows up in dB; elsewhere it is ~1e-5.
- log-mel (dB), librosa convention, vs ``power_to_db(melspectrogram(...))``: <= 3.4e-5 dB.
- MFCC, TF convention (Light-SERNet), vs the paper's own ``tf.signal`` code: <= 1.3e-5; vs
  librosa's STFT + the same mel matrix + scipy's DCT: <= 1.4e-5.
- Spectrogram (Attention-FCN: Hamming, 800-point DFT, 200 bins) vs ``librosa.stft``:
  max error / max magnitude <= 2.4e-7 (``dft="fft"``), 4.9e-7 (``"matmul"``); after
  ln(x + 1e-6): <= 3.3e-3 (near-silent bins).
- The lightsernet MFCC converted to TFLite (builtins only) vs the layer: <= 3.8e-6.
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import tensorflow as tf

from ser_tf.features.spectral import (  # noqa: F401  (re-exported: one definition)
    DCT_NORMS, LOG_MODES, MEL_SCALES, TF_KINDS, WINDOWS, _choice, center_padding, dct_matrix,
    hz_to_mel, mel_to_hz, mel_weight_matrix, spectrogram_bins, window_array)

KINDS = TF_KINDS + ("librosa_mfcc",)


def _keep_bins(values, bins: int):
    return values if values.shape[-1] == bins else values[..., :bins]


class _STFTFrontend(keras.layers.Layer):
    """Shared framing, windowing, DFT and log compression; subclasses add a projection."""

    _CONFIG = ("frame_length", "frame_step", "fft_length", "window", "power", "center",
               "pad_mode", "dft", "log", "log_offset", "ref", "amin", "top_db")

    def __init__(self, frame_length, frame_step, fft_length, window, power, center, pad_mode,
                 dft, log, log_offset, ref, amin, top_db, **kwargs):
        # float32 even under a mixed-precision policy: RFFT has no float16 kernel and the
        # log of small powers needs the range.
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.frame_length, self.frame_step = int(frame_length), int(frame_step)
        self.fft_length = int(fft_length or frame_length)
        if not 0 < self.frame_length <= self.fft_length or self.frame_step <= 0:
            raise ValueError("need 0 < frame_length <= fft_length and frame_step > 0, got "
                             f"{frame_length}, {fft_length}, {frame_step}")
        self.window = _choice("window", window, WINDOWS)
        self.power = float(power)
        self.center = bool(center)
        self.pad_mode = _choice("pad_mode", pad_mode, ("constant", "reflect"))
        self.dft = _choice("dft", dft, ("fft", "matmul"))
        self.log = _choice("log", log, LOG_MODES)
        self.log_offset, self.ref, self.amin = float(log_offset), float(ref), float(amin)
        self.top_db = None if top_db is None else float(top_db)
        self._pad = center_padding(self.frame_length, self.fft_length, self.center)
        self._window = window_array(self.window, self.frame_length).astype(np.float32)

    def _num_bins(self) -> int:
        return self.fft_length // 2 + 1

    def _output_dim(self) -> int:
        return self._num_bins()

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` input samples."""
        return 1 + (num_samples + sum(self._pad) - self.frame_length) // self.frame_step

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else self.num_frames(samples)
        return tuple(input_shape[:-1]) + (frames, self._output_dim())

    def _spectrum(self, audio):
        """(..., samples) -> (..., frames, bins) of |STFT| ** power."""
        audio = tf.cast(audio, tf.float32)
        if self.center:
            paddings = [[0, 0]] * (audio.shape.rank - 1) + [list(self._pad)]
            audio = tf.pad(audio, paddings, mode=self.pad_mode.upper())
        frames = tf.signal.frame(audio, self.frame_length, self.frame_step)
        bins = self._num_bins()
        if self.dft == "fft":
            # rfft zero-pads each frame at the end; for magnitudes that equals librosa's
            # centred zero-padding (a circular shift changes only the phase).
            # Bins are sliced after the magnitude: TFLite has no strided slice of complex.
            spec = tf.signal.rfft(frames * self._window, [self.fft_length])
            if self.power == 1.0:
                return _keep_bins(tf.abs(spec), bins)
            power = tf.math.square(tf.math.real(spec)) + tf.math.square(tf.math.imag(spec))
            power = _keep_bins(power, bins)
        else:
            # Real DFT of the windowed frame as two matmuls with the window folded in;
            # only the kept bins are computed.
            angle = 2.0 * np.pi * np.outer(np.arange(self.frame_length),
                                           np.arange(bins)) / self.fft_length
            cos = (self._window[:, None] * np.cos(angle)).astype(np.float32)
            sin = (self._window[:, None] * np.sin(angle)).astype(np.float32)
            power = tf.math.square(tf.matmul(frames, cos)) + tf.math.square(tf.matmul(frames, sin))
        if self.power == 2.0:
            return power
        return tf.math.pow(power, self.power / 2.0)

    def _compress(self, values):
        if self.log == "log":
            return tf.math.log(values + self.log_offset)
        if self.log == "db":
            # librosa.power_to_db; top_db is relative to each example's own maximum.
            db = (10.0 / math.log(10.0)) * tf.math.log(tf.maximum(values, self.amin))
            db = db - 10.0 * math.log10(max(self.amin, self.ref))
            if self.top_db is not None:
                db = tf.maximum(db, tf.reduce_max(db, axis=[-2, -1], keepdims=True) - self.top_db)
            return db
        return values

    def get_config(self):
        config = super().get_config()
        for cls in type(self).__mro__:
            config.update({key: getattr(self, key) for key in cls.__dict__.get("_CONFIG", ())})
        return config


@keras.saving.register_keras_serializable(package="ser_tf")
class Spectrogram(_STFTFrontend):
    """``(batch, samples)`` -> ``(batch, frames, bins)`` magnitude (``power=1``) or power
    (``power=2``) spectrogram, optionally log-compressed (``log="log"``: ln(x + log_offset);
    ``"db"``: power_to_db). Defaults follow ``tf.signal.stft`` (no centre padding).

    ``max_hz`` (needs ``sample_rate``) keeps the bins below it: Attention-FCN (Zhang et al.
    2018, Sec. 3) keeps 0-4 kHz of an 800-point DFT at 16 kHz, 4000 / 20 = 200 bins.
    """

    _CONFIG = ("sample_rate", "max_hz")

    def __init__(self, frame_length=1024, frame_step=256, fft_length=None, window="hann",
                 power=1.0, center=False, pad_mode="constant", sample_rate=None, max_hz=None,
                 dft="fft", log=None, log_offset=1e-6, ref=1.0, amin=1e-10, top_db=None,
                 **kwargs):
        super().__init__(frame_length, frame_step, fft_length, window, power, center, pad_mode,
                         dft, log, log_offset, ref, amin, top_db, **kwargs)
        if max_hz is not None and sample_rate is None:
            raise ValueError("max_hz needs sample_rate")
        self.sample_rate = None if sample_rate is None else int(sample_rate)
        self.max_hz = None if max_hz is None else float(max_hz)

    def _num_bins(self) -> int:
        return spectrogram_bins(self.fft_length, self.sample_rate, self.max_hz)

    def call(self, audio):
        return self._compress(self._spectrum(audio))


@keras.saving.register_keras_serializable(package="ser_tf")
class LogMelSpectrogram(_STFTFrontend):
    """``(batch, samples)`` -> ``(batch, frames, num_mel_bins)`` log-compressed mel energies.

    Defaults are librosa 0.11's (``power_to_db(melspectrogram(y, sr=22050))``). For TF's
    convention use ``mel_scale="htk", norm=None, log="log"`` (see the module docstring).
    """

    _CONFIG = ("sample_rate", "num_mel_bins", "fmin", "fmax", "mel_scale", "norm",
               "mel_triangles")

    def __init__(self, sample_rate=22050, frame_length=2048, frame_step=512, fft_length=None,
                 window="hann", power=2.0, center=True, pad_mode="constant", num_mel_bins=128,
                 fmin=0.0, fmax=None, mel_scale="slaney", norm="slaney", mel_triangles=None,
                 log="db", log_offset=1e-6, ref=1.0, amin=1e-10, top_db=80.0, dft="fft",
                 **kwargs):
        super().__init__(frame_length, frame_step, fft_length, window, power, center, pad_mode,
                         dft, log, log_offset, ref, amin, top_db, **kwargs)
        self.sample_rate, self.num_mel_bins = int(sample_rate), int(num_mel_bins)
        self.fmin, self.fmax = float(fmin), None if fmax is None else float(fmax)
        self.mel_scale = _choice("mel_scale", mel_scale, MEL_SCALES)
        self.norm, self.mel_triangles = norm, mel_triangles
        self._mel = mel_weight_matrix(self.sample_rate, self.fft_length, self.num_mel_bins,
                                      self.fmin, self.fmax, self.mel_scale, self.norm,
                                      self.mel_triangles).astype(np.float32)

    def _output_dim(self) -> int:
        return self.num_mel_bins

    def _log_mel(self, audio):
        return self._compress(tf.matmul(self._spectrum(audio), self._mel))

    def call(self, audio):
        return self._log_mel(audio)


@keras.saving.register_keras_serializable(package="ser_tf")
class MFCC(LogMelSpectrogram):
    """``(batch, samples)`` -> ``(batch, frames, num_mfcc)``: DCT-II of the log-mel
    spectrogram, the first ``num_mfcc`` coefficients, then clipped to +-``clip`` if set.

    Defaults reproduce ``librosa.feature.mfcc(y, sr=22050)`` within 1e-3 (module docstring).
    Light-SERNet (Aftab et al. 2022, Sec. 3.1) uses HTK mel in 80-7600 Hz, magnitudes,
    ln(x + 1e-6), ``dct_norm="tf"``, 40 coefficients clipped to +-10.
    """

    _CONFIG = ("num_mfcc", "dct_norm", "clip")

    def __init__(self, *args, num_mfcc=20, dct_norm="ortho", clip=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_mfcc, self.dct_norm = int(num_mfcc), _choice("dct_norm", dct_norm, DCT_NORMS)
        self.clip = None if clip is None else float(clip)
        self._dct = dct_matrix(self.num_mel_bins, self.num_mfcc, self.dct_norm).astype(np.float32)

    def _output_dim(self) -> int:
        return self.num_mfcc

    def call(self, audio):
        mfcc = tf.matmul(self._log_mel(audio), self._dct)
        if self.clip is not None:
            mfcc = tf.clip_by_value(mfcc, -self.clip, self.clip)
        return mfcc


_LAYERS = {"spectrogram": Spectrogram, "log_mel": LogMelSpectrogram, "mfcc": MFCC}


def build_frontend(config: dict, sample_rate: int) -> keras.layers.Layer:
    """The front-end layer for a recipe's ``frontend`` config (``kind`` one of TF_KINDS)."""
    params = dict(config)
    kind = params.pop("kind", None)
    if kind not in _LAYERS:
        raise ValueError(f"front-end kind must be one of {TF_KINDS} to build a layer, got {kind!r}")
    if params.setdefault("sample_rate", sample_rate) != sample_rate:
        raise ValueError(f"front-end sample_rate {params['sample_rate']} != recipe's {sample_rate}")
    return _LAYERS[kind](**params)


def librosa_mfcc(segments: np.ndarray, sample_rate: int, **params) -> np.ndarray:
    """The offline reference: ``librosa.feature.mfcc`` per segment, ``(n, frames, num_mfcc)``.

    Takes :class:`MFCC`'s parameter names (so a recipe switches between this and
    ``kind="mfcc"`` by changing only ``kind``); the mel triangles must be in Hz, as librosa
    builds them. ``dft`` is accepted and ignored.
    """
    import librosa
    import scipy.fft

    p = MFCC(sample_rate=sample_rate, **params)  # validates and fills the defaults
    if (p.mel_triangles or ("mel" if p.mel_scale == "htk" else "hz")) != "hz":
        raise ValueError("librosa builds mel triangles in Hz: use mel_triangles='hz'")
    out = []
    for audio in np.asarray(segments, dtype=np.float32):
        if not p.center and p.frame_length < p.fft_length:
            # librosa centres the window in an fft_length frame; pad so that frame t still
            # starts at sample t * frame_step with the same frame count as the TF layer.
            inner = p.fft_length - p.frame_length
            audio = np.pad(audio, (inner // 2, inner - inner // 2))
        mel = librosa.feature.melspectrogram(
            y=audio, sr=sample_rate, n_fft=p.fft_length, hop_length=p.frame_step,
            win_length=p.frame_length, window=p.window, center=p.center, pad_mode=p.pad_mode,
            power=p.power, n_mels=p.num_mel_bins, fmin=p.fmin, fmax=p.fmax,
            htk=p.mel_scale == "htk", norm=p.norm)
        if p.log == "db":
            mel = librosa.power_to_db(mel, ref=p.ref, amin=p.amin, top_db=p.top_db)
        elif p.log == "log":
            mel = np.log(mel + p.log_offset)
        mfcc = scipy.fft.dct(mel, type=2, axis=0, norm="ortho" if p.dct_norm == "ortho" else None)
        mfcc = mfcc[:p.num_mfcc]
        if p.dct_norm == "tf":
            mfcc = mfcc / np.sqrt(2.0 * p.num_mel_bins)
        if p.clip is not None:
            mfcc = np.clip(mfcc, -p.clip, p.clip)
        out.append(mfcc.T.astype(np.float32))
    if not out:
        return np.zeros((0, p.num_frames(segments.shape[1]), p.num_mfcc), np.float32)
    return np.stack(out)


#: Traced front-ends by (config, sample rate, samples): the feature cache calls
#: compute_features once per batch, and building + tracing a layer costs more than a batch.
_COMPILED: dict[tuple, tuple] = {}


def _compiled_frontend(config: dict, sample_rate: int, num_samples: int):
    key = (json.dumps(config, sort_keys=True), int(sample_rate), int(num_samples))
    if key not in _COMPILED:
        if len(_COMPILED) >= 16:
            _COMPILED.clear()
        layer = build_frontend(config, sample_rate)
        run = tf.function(layer.__call__, input_signature=[
            tf.TensorSpec([None, num_samples], tf.float32)])  # dynamic batch: no retracing
        _COMPILED[key] = (layer, run)
    return _COMPILED[key]


def compute_features(segments: np.ndarray, sample_rate: int, config: dict,
                     batch_size: int = 64) -> np.ndarray:
    """Equal-length segments ``(n, samples)`` -> features ``(n, frames, dim)`` float32.

    TF kinds run the layer in batches of ``batch_size`` through one traced function (kept
    for later calls with the same config); ``librosa_mfcc`` uses :func:`librosa_mfcc`.
    """
    segments = np.asarray(segments, dtype=np.float32)
    if segments.ndim != 2:
        raise ValueError(f"segments must be (n, samples), got shape {segments.shape}")
    params = dict(config)
    if params.pop("kind", None) == "librosa_mfcc":
        return librosa_mfcc(segments, sample_rate, **params)
    layer, run = _compiled_frontend(config, sample_rate, segments.shape[1])
    if len(segments) == 0:
        return np.zeros(layer.compute_output_shape(segments.shape), np.float32)
    batches = [run(tf.constant(segments[i:i + batch_size])).numpy()
               for i in range(0, len(segments), batch_size)]
    return np.concatenate(batches).astype(np.float32, copy=False)
