"""What a model takes: its input spec (waveform or features), how windows are normalised,
how audio windows become its input, its labels, and its window geometry.

Read from the model's sidecar (``input``, written by
:func:`ser_tf.export.tflite.export_variants`); shared by the file predictor
(:mod:`ser_tf.lite.predict`) and the streaming chain (:mod:`ser_tf.lite.stream`).
"""

from __future__ import annotations

import numpy as np

from ser_tf.features.segment import check_window_normalisation
from ser_tf.features.spectral import check_frontend_config, numpy_features
from ser_tf.lite.runtime import LiteModel, sidecar_path

#: The rate of a model whose sidecar does not say (the suite's models are all 16 kHz).
DEFAULT_SAMPLE_RATE = 16000


def input_spec(model: LiteModel) -> dict:
    """The model's input description: its sidecar's ``input`` entry, or, without one, what
    its input shape implies (1-D = 16 kHz waveform, otherwise features), with windows fed
    as they are (``normalise`` null: nothing says otherwise)."""
    meta = getattr(model, "metadata", None) or {}
    spec = meta.get("input") or meta.get("input_spec")
    entries = meta.get("inputs")
    if spec is None and isinstance(entries, list) and len(entries) == 1:
        spec = entries[0]
    if isinstance(spec, dict) and spec.get("kind"):
        return spec
    shape = tuple(model.input_shape)
    if len(shape) == 1:
        return {"kind": "waveform", "sample_rate": DEFAULT_SAMPLE_RATE, "samples": shape[0],
                "normalise": None}
    return {"kind": "features", "shape": list(shape), "normalise": None}


def window_normalisation(model: LiteModel, spec: dict) -> dict | None:
    """What to do to each audio window before the model: the input spec's ``normalise``
    (written by the exporter from the training recipe), validated. A sidecar from before
    that key existed is refused rather than guessed at."""
    if "normalise" not in spec:
        raise ValueError(
            f"{sidecar_path(model.path)}: the input entry has no 'normalise' key, so how "
            "the training segments were normalised is unknown. Re-export the model with "
            "ser-tf, or add \"normalise\": {\"method\": \"percentile\", \"percentile\": "
            "99.9, \"clip\": 1.0} (or null for none) to the sidecar's input entry")
    try:
        return check_window_normalisation(spec["normalise"])
    except ValueError as error:
        raise ValueError(f"{sidecar_path(model.path)}: {error}") from None


def check_model_input(model: LiteModel) -> dict:
    """The input spec of a model this TF-free predictor can run; ``ValueError`` otherwise.

    One input. Waveform-in: a 1-D input. Features-in: the sidecar must describe the
    front-end (``frontend``, ``sample_rate``, ``samples``) and the front-end's output shape
    must be the model's input shape. Either way the spec must say how windows are
    normalised (``normalise``, see :func:`window_normalisation`).
    """
    if model.num_inputs != 1:
        raise ValueError(f"{model.path}: {model.num_inputs} inputs {model.input_names}; the "
                         "audio predictor runs models with one (waveform or features) input")
    spec = input_spec(model)
    kind = spec.get("kind")
    if kind == "waveform":
        if len(model.input_shape) != 1:
            raise ValueError(f"{model.path}: a waveform model must take (batch, samples), "
                             f"got input shape {model.input_shape}")
        window_normalisation(model, spec)
        return spec
    if kind != "features":
        raise ValueError(f"{model.path}: unknown input kind {kind!r} (sidecar input.kind "
                         "must be 'waveform' or 'features')")
    missing = [key for key in ("frontend", "sample_rate", "samples") if not spec.get(key)]
    if missing:
        raise ValueError(
            f"{model.path}: features-in model whose sidecar lacks {missing}, so the "
            "features it was trained on are unknown. Re-export it with ser-tf (the sidecar "
            "records the recipe), or use a waveform-in model (`*-waveform-*.tflite`)")
    try:
        check_frontend_config(spec["frontend"])
        shape = numpy_features(np.zeros((1, int(spec["samples"])), np.float32),
                               int(spec["sample_rate"]), spec["frontend"]).shape[1:]
    except ValueError as error:
        raise ValueError(f"{model.path}: {error}") from None
    if tuple(shape) != tuple(model.input_shape):
        raise ValueError(f"{model.path}: its front-end gives features of shape {shape} but "
                         f"the model takes {model.input_shape}")
    window_normalisation(model, spec)
    return spec


def model_inputs(windows: np.ndarray, spec: dict) -> np.ndarray:
    """Audio windows ``(n, samples)`` -> what the model takes (features for features-in)."""
    if spec.get("kind") == "features":
        return numpy_features(windows, int(spec["sample_rate"]), spec["frontend"])
    return windows


def class_labels(model: LiteModel) -> list[str]:
    """Class names in output order; ``class_<i>`` without a sidecar."""
    # Without a sidecar the class names are unknown; indices still identify the outputs.
    return model.labels or [f"class_{i}" for i in range(model.num_classes)]


def window_seconds(model: LiteModel, spec: dict) -> float:
    """The model's own window in seconds: its input's samples at its sample rate (e.g. 3 s
    at 16 kHz, or 96000 samples = 4.354 s at 22 050 Hz). Each window of a recording is
    prepared as the training recordings were (normalised, centre-padded) to that length."""
    sr = int(spec.get("sample_rate") or DEFAULT_SAMPLE_RATE)
    samples = spec.get("samples") or (model.input_shape[0] if len(model.input_shape) == 1
                                      else None)
    if not samples:
        raise ValueError(f"{model.path.name}: its input spec gives no sample count, so its "
                         "window is unknown; pass window= in seconds")
    return int(samples) / sr


def window_geometry(model: LiteModel, spec: dict, window: float | None = None,
                    hop: float = 1.0) -> tuple[int, int, int]:
    """``(sample_rate, window samples, hop samples)`` for a checked model input ``spec``;
    ``window=None`` is the model's own window (:func:`window_seconds`); ``ValueError`` if a
    given ``window`` is not the model's input length."""
    if window is None:
        window = window_seconds(model, spec)
    if not (window > 0 and hop > 0):
        raise ValueError(f"window and hop must be positive seconds, got {window}, {hop}")
    sr = int(spec.get("sample_rate") or DEFAULT_SAMPLE_RATE)
    samples = int(spec.get("samples") or model.input_shape[0])
    if int(round(window * sr)) != samples:
        raise ValueError(f"{model.path.name} takes {samples} samples ({samples / sr:g} s at "
                         f"{sr} Hz); window={window} s does not match")
    # The rounding sliding_windows uses, so both cut the same windows.
    return sr, samples, int(round(hop * sr))
