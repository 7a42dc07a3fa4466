"""Data augmentation, applied to the training split only.

- :func:`add_awgn` / :func:`awgn_copies`: additive white Gaussian noise at a chosen
  signal-to-noise ratio, the waveform augmentation the CNN-family recipes use to enlarge
  small acted corpora (k noisy copies of every training utterance).
- :func:`augment_training_split`: the only way the suite makes noisy copies for a fold.
  It takes the fold's train ids *and* its held-out ids and refuses to touch any held-out
  utterance, so an augmented copy of a test or validation recording can never reach
  training (augmenting before splitting is a classic source of inflated SER accuracy).
- :class:`SpecAugment`: time and frequency masking of spectrogram-like features
  (Park et al., "SpecAugment", Interspeech 2019), a Keras layer active only in training.
- :func:`image_augmentation`: flips, small rotations and zooms for the VGG16 transfer
  recipe that classifies mel-spectrogram images (Simonyan & Zisserman 2015 backbone).
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping, NamedTuple, Sequence

import keras
import numpy as np


class LeakageError(ValueError):
    """Augmentation was asked to touch an utterance that is held out (test or validation)."""


class NoisyCopies(NamedTuple):
    """Augmented waveforms. ``source_ids[i]`` is the utterance row ``i`` was made from;
    ``snr_db[i]`` is its SNR (NaN for an original, un-noised row)."""

    waveforms: np.ndarray | list
    labels: np.ndarray
    ids: list[str]
    source_ids: list[str]
    snr_db: np.ndarray


def copy_id(source_id: str, copy: int) -> str:
    """Id of the ``copy``-th noisy copy of an utterance (never collides with corpus ids)."""
    return f"{source_id}+awgn{copy}"


def copy_rng(seed: int, token: str, copy: int) -> np.random.Generator:
    """The generator for one copy of one utterance.

    Derived from ``(seed, token, copy)`` alone, so a copy does not depend on which other
    utterances are augmented or in which order: augmenting a subset gives the same noise
    as augmenting everything, and the feature cache can key a copy by its inputs.
    """
    digest = int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([int(seed), digest, int(copy)])


def add_awgn(audio, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``audio`` plus white Gaussian noise at exactly ``snr_db`` dB w.r.t. the signal power.

    The drawn noise is rescaled to the target power (mean square), so the SNR of the
    returned signal is exact for this draw rather than only in expectation.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size < 2:
        raise ValueError(f"expected 1-D audio with at least 2 samples, got shape {audio.shape}")
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    signal_power = float(np.mean(audio.astype(np.float64) ** 2))
    if signal_power == 0.0:
        raise ValueError("cannot set an SNR for a silent signal (power 0)")
    noise = rng.standard_normal(audio.size)
    noise_power = signal_power / 10.0 ** (snr_db / 10.0)
    noise *= np.sqrt(noise_power / np.mean(noise ** 2))
    return (audio + noise).astype(np.float32)


def _check_snr_range(snr_range) -> tuple[float, float]:
    low, high = (float(v) for v in snr_range)
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise ValueError(f"snr_range must be finite (low, high) with low <= high, got {snr_range}")
    return low, high


def awgn_copies(waveforms, labels, ids: Sequence[str], k: int,
                snr_range: tuple[float, float] = (15.0, 30.0), seed: int = 0) -> NoisyCopies:
    """``k`` noisy copies of every utterance, SNR drawn uniformly from ``snr_range`` (dB).

    Args:
        waveforms: an (N, samples) array or a length-N list of 1-D arrays (lengths may differ).
        labels: N class indices.
        ids: N unique utterance ids; they seed the noise (see :func:`copy_rng`).
        k: copies per utterance (>= 1).

    Returns:
        :class:`NoisyCopies` with N * k rows, copies of one utterance adjacent. Waveforms
        are an array when all inputs share one length, else a list.
    """
    ids = [str(i) for i in ids]
    labels = np.asarray(labels)
    if not (len(waveforms) == len(labels) == len(ids)):
        raise ValueError(f"waveforms, labels and ids differ in length: "
                         f"{len(waveforms)}, {len(labels)}, {len(ids)}")
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    low, high = _check_snr_range(snr_range)

    out, out_labels, out_ids, sources, snrs = [], [], [], [], []
    for wave, label, uid in zip(waveforms, labels, ids):
        for j in range(int(k)):
            rng = copy_rng(seed, uid, j)
            snr = float(rng.uniform(low, high))
            out.append(add_awgn(wave, snr, rng))
            out_labels.append(label)
            out_ids.append(copy_id(uid, j))
            sources.append(uid)
            snrs.append(snr)
    return NoisyCopies(_stack_if_equal(out), np.asarray(out_labels, dtype=labels.dtype),
                       out_ids, sources, np.asarray(snrs, dtype=np.float64))


def _stack_if_equal(arrays: list) -> np.ndarray | list:
    if arrays and len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    return arrays


def check_train_only(train_ids: Iterable[str], test_ids: Iterable[str],
                     val_ids: Iterable[str] = ()) -> list[str]:
    """The train ids as a list, after checking none of them is held out.

    Raises:
        LeakageError: a train id is also a test or validation id.
        ValueError: duplicate train ids.
    """
    train = [str(i) for i in train_ids]
    if len(set(train)) != len(train):
        raise ValueError("train_ids contains duplicates")
    held_out = {"test": set(map(str, test_ids)), "validation": set(map(str, val_ids))}
    for split, ids in held_out.items():
        leaked = sorted(set(train) & ids)
        if leaked:
            raise LeakageError(
                f"refusing to augment {len(leaked)} {split} utterance(s), e.g. {leaked[:5]}: "
                "augmentation is applied to the training split only, after splitting")
    return train


def augment_training_split(train_ids: Sequence[str], waveforms_by_id: Mapping[str, np.ndarray],
                           labels_by_id: Mapping[str, int], *, test_ids: Iterable[str],
                           val_ids: Iterable[str] = (), k: int = 1,
                           snr_range: tuple[float, float] = (15.0, 30.0), seed: int = 0,
                           include_originals: bool = True) -> NoisyCopies:
    """Training rows of one fold: the train utterances plus ``k`` AWGN copies of each.

    The fold's held-out ids are required arguments: a train id that is also a test or
    validation id raises :class:`LeakageError`, and only ``train_ids`` are ever read from
    ``waveforms_by_id`` (which may hold the whole corpus). So no copy of a held-out
    recording can end up in the returned training rows.

    Returns:
        :class:`NoisyCopies`; originals first (``snr_db`` NaN, ``ids == source_ids``) when
        ``include_originals``, then the copies.
    """
    train = check_train_only(train_ids, test_ids, val_ids)
    missing = [i for i in train if i not in waveforms_by_id or i not in labels_by_id]
    if missing:
        raise KeyError(f"no waveform or label for train ids {missing[:5]}")
    waves = [np.asarray(waveforms_by_id[i], dtype=np.float32) for i in train]
    labels = np.asarray([labels_by_id[i] for i in train])
    copies = awgn_copies(waves, labels, train, k, snr_range, seed)
    if not include_originals:
        return copies
    rows = waves + list(copies.waveforms)
    return NoisyCopies(_stack_if_equal(rows), np.concatenate([labels, copies.labels]),
                       train + copies.ids, train + copies.source_ids,
                       np.concatenate([np.full(len(train), np.nan), copies.snr_db]))


@keras.saving.register_keras_serializable(package="ser_tf")
class SpecAugment(keras.layers.Layer):
    """Time and frequency masking (Park et al. 2019, Sec. 2; time warping is not used).

    Input ``(batch, time, freq)`` or ``(batch, time, freq, channels)``. Each example gets
    ``time_masks`` bands of ``[0, time_width]`` consecutive frames and ``freq_masks``
    bands of ``[0, freq_width]`` consecutive bins set to ``mask_value``; widths and
    positions are drawn independently per example from a seeded generator. At inference
    (``training`` false or unset) the layer is the identity.
    """

    def __init__(self, time_masks: int = 2, time_width: int = 20, freq_masks: int = 2,
                 freq_width: int = 8, mask_value: float = 0.0, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        for name, value in (("time_masks", time_masks), ("time_width", time_width),
                            ("freq_masks", freq_masks), ("freq_width", freq_width)):
            if int(value) != value or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value}")
        self.time_masks, self.time_width = int(time_masks), int(time_width)
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.mask_value = float(mask_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def _band_mask(self, batch, size, count: int, max_width: int):
        """(batch, size) bool: True inside any of ``count`` random bands."""
        positions = keras.ops.arange(size)[None, :]
        masked = keras.ops.zeros((batch, size), dtype="bool")
        size_f = keras.ops.cast(size, "float32")
        for _ in range(count):
            u_width = keras.random.uniform((batch, 1), seed=self.seed_generator)
            u_start = keras.random.uniform((batch, 1), seed=self.seed_generator)
            # width in {0..max_width}, never wider than the axis; start so the band fits.
            width = keras.ops.minimum(keras.ops.floor(u_width * (max_width + 1)), size_f)
            start = keras.ops.floor(u_start * (size_f - width + 1.0))
            width = keras.ops.cast(width, "int32")
            start = keras.ops.cast(start, "int32")
            band = keras.ops.logical_and(positions >= start, positions < start + width)
            masked = keras.ops.logical_or(masked, band)
        return masked

    def call(self, inputs, training=None):
        if not training or (self.time_masks == 0 and self.freq_masks == 0):
            return inputs
        rank = len(inputs.shape)
        if rank not in (3, 4):
            raise ValueError(f"SpecAugment expects (batch, time, freq[, channels]), got rank {rank}")
        shape = keras.ops.shape(inputs)
        batch, frames, bins = shape[0], shape[1], shape[2]
        time_mask = self._band_mask(batch, frames, self.time_masks, self.time_width)
        freq_mask = self._band_mask(batch, bins, self.freq_masks, self.freq_width)
        mask = keras.ops.logical_or(time_mask[:, :, None], freq_mask[:, None, :])
        if rank == 4:
            mask = mask[..., None]
        fill = keras.ops.cast(self.mask_value, inputs.dtype)
        return keras.ops.where(mask, fill, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "time_masks": self.time_masks,
                "time_width": self.time_width, "freq_masks": self.freq_masks,
                "freq_width": self.freq_width, "mask_value": self.mask_value, "seed": self.seed}


def image_augmentation(flip: bool | str = True, rotation: float = 0.05, zoom: float = 0.1,
                       seed: int | None = None) -> keras.Sequential:
    """Random flip / rotation / zoom for mel-spectrogram images (VGG16 transfer recipe).

    ``flip=True`` flips horizontally (a time reversal of the spectrogram: a frequency flip
    would move energy between bands and change what the image means); pass a Keras mode
    string (``"vertical"``, ``"horizontal_and_vertical"``) to choose otherwise, or False.
    ``rotation`` is a fraction of a full turn and ``zoom`` a height fraction, as in Keras;
    0 leaves the step out. Each layer gets its own seed derived from ``seed``. Like every
    Keras augmentation layer, the result is the identity unless called with ``training=True``.
    """
    if rotation < 0 or zoom < 0:
        raise ValueError(f"rotation and zoom must be >= 0, got {rotation}, {zoom}")
    layers = []

    def next_seed():
        return None if seed is None else int(seed) + len(layers)

    if flip:
        mode = "horizontal" if flip is True else str(flip)
        layers.append(keras.layers.RandomFlip(mode, seed=next_seed()))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, fill_mode="constant",
                                                  seed=next_seed()))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="constant", seed=next_seed()))
    return keras.Sequential(layers, name="image_augmentation")
