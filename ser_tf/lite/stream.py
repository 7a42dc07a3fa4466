"""Classify a recording as it streams in: windows cut on the fly, classified in small batches,
probabilities averaged as they come. Memory does not depend on the recording's length.

The pieces, each usable alone (the file predictor, :func:`ser_tf.lite.predict.predict_file`,
and the live microphone, :mod:`ser_tf.lite.mic`, chain them):

- :class:`SlidingWindower` turns blocks of samples of any length into exactly the windows
  :func:`ser_tf.features.segment.sliding_windows` cuts from the whole array (same starts:
  one every hop, one more aligned to the end for the tail; a recording shorter than a
  window gives one window of all of it), holding only the samples a future window needs;
- :func:`prepare_window` normalises and pads a window as ``sliding_windows`` does;
- :func:`classify_windows` runs windows through a :class:`LiteModel` ``batch_size`` at a
  time and yields one :class:`WindowPrediction` per window, in order;
- :class:`MeanProbabilities` keeps the running mean;
- :func:`predict_blocks` chains them for a recording given as blocks at the model's rate.

Peak memory is the interpreter plus about ``batch_size`` windows (their audio, model
inputs and the front-end's intermediates) plus one window and one read block of samples;
none of it depends on the recording's length.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ser_tf.features.segment import center_pad, normalise_window
from ser_tf.features.spectral import numpy_features
from ser_tf.lite.calibration import apply_temperature
from ser_tf.lite.inputs import (check_model_input, class_labels, model_inputs, pads_at_end,
                                window_geometry, window_normalisation)
from ser_tf.lite.ood import distances as ood_distances
from ser_tf.lite.ood import feature_summary, prepare_reference

#: Windows per interpreter call. Measured (x86, 1 thread): 1 to 16 windows per call cost
#: the same time per window within noise, but memory grows with the batch: at 16 the NumPy
#: MFCC front-end's float64 intermediates reach ~60 MB and the waveform model's tensor arena
#: ~70 MB; at 4 each is ~15 MB. 4 keeps the per-call overhead amortised.
DEFAULT_BATCH_SIZE = 4


@dataclass(frozen=True)
class Window:
    """One window of a recording: its samples (not yet normalised or padded) and where it
    is, in samples from the recording's start (``end`` is exclusive; for a recording
    shorter than a window, ``end - start`` is shorter than the window)."""

    start: int
    end: int
    samples: np.ndarray


@dataclass(frozen=True)
class WindowPrediction:
    """A window's place in seconds and the model's probabilities for it."""

    start_s: float
    end_s: float
    probabilities: np.ndarray


class SlidingWindower:
    """Cut a stream of samples into ``sliding_windows``' windows as the samples arrive.

    ``push(block)`` returns the windows that became complete; ``finish()`` the last one
    (the end-aligned tail window, or the single window of a recording shorter than
    ``size``). Only samples a later window may need are kept: at most ``size`` plus one
    block.
    """

    def __init__(self, size: int, step: int):
        if size <= 0 or step <= 0:
            raise ValueError(f"window size and step must be positive samples, got {size}, {step}")
        self.size, self.step = int(size), int(step)
        self.total = 0            # samples pushed so far
        self._kept = np.zeros(0, np.float32)
        self._kept_from = 0       # index in the recording of _kept[0]
        self._next_start = 0      # where the next hop window starts
        self._last_start = None   # where the last emitted window started

    def push(self, block) -> list[Window]:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        # A copy even when nothing is kept: the caller may reuse its block's buffer.
        self._kept = np.concatenate([self._kept, block])
        self.total += block.size
        windows = []
        while self._next_start + self.size <= self.total:
            at = self._next_start - self._kept_from
            windows.append(Window(self._next_start, self._next_start + self.size,
                                  self._kept[at:at + self.size].copy()))
            self._last_start = self._next_start
            self._next_start += self.step
        # Keep what the next hop window needs and the last `size` samples (the tail
        # window, if the recording ends before the next hop window is complete).
        keep_from = max(self._kept_from, min(self._next_start, self.total - self.size))
        if keep_from > self._kept_from:
            self._kept = self._kept[keep_from - self._kept_from:].copy()
            self._kept_from = keep_from
        return windows

    def finish(self) -> list[Window]:
        """The windows the end of the recording adds (call once, after the last push)."""
        if self.total == 0:
            return []
        if self._last_start is None:  # shorter than one window: all of it, padded later
            return [Window(0, self.total, self._kept.copy())]
        if self._last_start + self.size < self.total:
            start = self.total - self.size
            return [Window(start, self.total, self._kept[start - self._kept_from:].copy())]
        return []


def stream_windows(blocks: Iterable[np.ndarray], size: int, step: int) -> Iterator[Window]:
    """Every window of a recording given as blocks (see :class:`SlidingWindower`)."""
    windower = SlidingWindower(size, step)
    for block in blocks:
        yield from windower.push(block)
    yield from windower.finish()


def prepare_window(samples: np.ndarray, size: int, normalise: dict | None, *,
                   pad_end: bool = False) -> np.ndarray:
    """Normalise (the sidecar's ``input.normalise``), then centre-pad to ``size``: what
    ``sliding_windows`` does to each window, in the same order. ``pad_end``: zeros after
    the samples instead (a model told its input's lengths masks them there)."""
    if normalise is not None:
        samples = normalise_window(samples, normalise)
    if pad_end:
        return np.pad(samples, (0, max(size - samples.size, 0)))[:size]
    return center_pad(samples, size)


def classify_windows(windows: Iterable[Window], model, *, sample_rate: int, size: int,
                     normalise: dict | None, to_model_input,
                     batch_size: int = DEFAULT_BATCH_SIZE,
                     pad_end: bool = False) -> Iterator[WindowPrediction]:
    """Classify windows ``batch_size`` at a time; one :class:`WindowPrediction` per window,
    in order.

    ``to_model_input(batch, heard)`` turns ``(n, size)`` prepared audio (``heard``: the
    samples of each that are recording, not padding) into what the model takes
    (:func:`ser_tf.lite.inputs.model_inputs`). Results do not depend on ``batch_size``
    (TFLite computes each example independently; checked against whole-file batches).
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    windows = iter(windows)
    while True:
        batch = list(islice(windows, int(batch_size)))
        if not batch:
            return
        audio = np.stack([prepare_window(w.samples, size, normalise, pad_end=pad_end)
                          for w in batch])
        heard = [min(w.samples.size, size) for w in batch]
        probabilities = model.predict(to_model_input(audio, heard))
        for window, row in zip(batch, probabilities):
            yield WindowPrediction(window.start / sample_rate, window.end / sample_rate, row)


class MeanProbabilities:
    """Running mean of window probabilities (float64 sum, so an hour of windows loses
    nothing to rounding)."""

    def __init__(self, num_classes: int):
        self._sum = np.zeros(num_classes, np.float64)
        self.count = 0

    def add(self, probabilities: np.ndarray) -> None:
        self._sum += probabilities
        self.count += 1

    @property
    def mean(self) -> np.ndarray:
        if self.count == 0:
            raise ValueError("no windows were classified")
        return self._sum / self.count


def predict_blocks(blocks: Iterable[np.ndarray], model, *, window: float | None = None,
                   hop: float = 1.0, batch_size: int = DEFAULT_BATCH_SIZE,
                   on_window=None, keep_summaries: bool = False) -> dict:
    """Classify a recording given as 1-D float32 blocks at the model's sample rate.

    Windows (``window`` seconds, default the model's own input length) are cut as they
    become complete, classified ``batch_size`` at a time and
    averaged on the fly; ``on_window(prediction)`` is called for each window in order
    (a :class:`WindowPrediction`).

    Returns:
        ``{"label", "probabilities": {label: p}, "windows": n, "duration_s"}``; with an
        out-of-domain reference in the sidecar also ``"out_of_domain"`` and, with
        ``keep_summaries``, ``"ood_summaries"``: the windows' feature summaries
        (``(windows, dims)``, for measuring other references on the same windows).

    Raises:
        ValueError: a model this predictor cannot run, ``window`` not matching it, or no
            samples at all.
    """
    spec = check_model_input(model)
    sr, size, step = window_geometry(model, spec, window, hop)
    windower = SlidingWindower(size, step)

    def windows():
        for block in blocks:
            yield from windower.push(block)
        yield from windower.finish()

    temperature = calibration_temperature(model)
    ood = out_of_domain_reference(model)
    distances, summaries = [], []

    # A features-in model whose input IS the reference's front-end: its features serve the
    # check too (computing them twice would double the front-end's cost per window).
    shared = ood is not None and spec.get("kind") == "features" and \
        ood.get("frontend") == spec.get("frontend") and \
        int(ood.get("sample_rate", -1)) == int(spec.get("sample_rate", -2))

    def to_model_input(audio, heard):
        inputs = model_inputs(audio, spec, heard)
        if ood is not None:  # the window's feature statistics, for the out-of-domain check
            own = inputs[spec["features_input"]] if isinstance(inputs, dict) else inputs
            features = own if shared else numpy_features(audio, int(ood["sample_rate"]),
                                                         ood["frontend"])
            summary = feature_summary(features)
            distances.extend(ood_distances(summary, ood))
            if keep_summaries:
                summaries.append(summary)
        return inputs

    mean = MeanProbabilities(model.num_classes)
    for prediction in classify_windows(windows(), model, sample_rate=sr, size=size,
                                       normalise=window_normalisation(model, spec),
                                       to_model_input=to_model_input,
                                       batch_size=batch_size, pad_end=pads_at_end(spec)):
        if temperature is not None:
            prediction = replace(prediction, probabilities=apply_temperature(
                prediction.probabilities[None], temperature)[0])
        mean.add(prediction.probabilities)
        if on_window is not None:
            on_window(prediction)
    if mean.count == 0:
        raise ValueError("no audio samples to classify")
    probabilities = mean.mean
    labels = class_labels(model)
    result = {"label": labels[int(np.argmax(probabilities))],
              "probabilities": {label: float(p) for label, p in zip(labels, probabilities)},
              "windows": mean.count, "duration_s": round(windower.total / sr, 3),
              "calibrated": temperature is not None}
    if ood is not None:
        # The median over windows: one odd window (a cough) does not flag a recording.
        distance = float(np.median(distances))
        result["out_of_domain"] = {
            "flagged": distance > float(ood["threshold"]), "distance": round(distance, 3),
            "threshold": round(float(ood["threshold"]), 3),
            "false_alarm_rate": ood.get("false_alarm_test_speakers")}
        if keep_summaries:
            result["ood_summaries"] = np.concatenate(summaries)
    return result


def out_of_domain_reference(model) -> dict | None:
    """The sidecar's out-of-domain reference (``ood``), checked and ready for
    :func:`ser_tf.lite.ood.distances`; ``None`` without one. ValueError naming the sidecar
    for one that cannot be used. Checked once per model (kept on it): every file of a
    ``predict`` run reuses it."""
    cached = getattr(model, "_ood_reference", _UNCHECKED)
    if cached is _UNCHECKED:
        cached = _checked_ood_reference(model)
        try:
            model._ood_reference = cached
        except AttributeError:  # a model object that takes no attributes: check per call
            pass
    return cached


_UNCHECKED = object()


def _checked_ood_reference(model) -> dict | None:
    ood = model.metadata.get("ood")
    if ood is None:
        return None
    sidecar = Path(model.path).with_suffix(".json")
    missing = [key for key in ("frontend", "sample_rate") if key not in ood]
    if missing:
        raise ValueError(f"{sidecar}: sidecar `ood` has no {' or '.join(missing)} (the "
                         "front-end its reference was computed with)")
    rate = ood["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
            or not np.isfinite(rate) or rate <= 0 or rate != int(rate):
        raise ValueError(f"{sidecar}: sidecar `ood`: sample_rate must be a positive whole "
                         f"number of Hz, got {rate!r}")
    try:
        reference = prepare_reference(ood)
        # One second of silence through the reference's front-end: a front-end that cannot
        # run, or gives other statistics than the reference holds, is found when the model
        # is read (predict_files asks before any file), naming the sidecar.
        probe = feature_summary(numpy_features(np.zeros((1, int(rate))), int(rate),
                                               ood["frontend"]))
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{sidecar}: sidecar `ood`: {error}") from None
    if probe.shape[1] != reference["mean"].size:
        raise ValueError(f"{sidecar}: sidecar `ood`: its front-end gives {probe.shape[1]} "
                         f"statistics per window, its reference holds "
                         f"{reference['mean'].size}")
    return reference


def calibration_temperature(model) -> float | None:
    """The sidecar's calibration temperature (``calibration.temperature``), if any."""
    calibration = model.metadata.get("calibration") or {}
    temperature = calibration.get("temperature")
    if temperature is None:
        return None
    if not (isinstance(temperature, (int, float)) and np.isfinite(temperature)
            and temperature > 0):
        raise ValueError(f"{model.path}: sidecar calibration.temperature must be a positive "
                         f"number, got {temperature!r}")
    return float(temperature)
