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
    if spec is None and isinstance(entries, list):
        spec = _padded_features_spec(entries)
    if isinstance(spec, dict) and spec.get("kind"):
        return spec
    shape = tuple(model.input_shape)
    if len(shape) == 1:
        return {"kind": "waveform", "sample_rate": DEFAULT_SAMPLE_RATE, "samples": shape[0],
                "normalise": None}
    return {"kind": "features", "shape": list(shape), "normalise": None}


def _padded_features_spec(entries: list) -> dict | None:
    """Two sidecar inputs, features and the ``lengths`` of them (a masking model exported
    at a fixed size): the features' spec, naming both inputs (``features_input``,
    ``lengths_input``); ``None`` for any other set of inputs."""
    kinds = {entry.get("kind"): entry for entry in entries if isinstance(entry, dict)}
    if len(entries) != 2 or set(kinds) != {"features", "lengths"}:
        return None
    features, lengths = kinds["features"], kinds["lengths"]
    if lengths.get("of") != features.get("name"):
        return None
    return {**features, "features_input": features["name"], "lengths_input": lengths["name"]}


def features_shape(model: LiteModel, spec: dict) -> tuple:
    """The example shape of the model's audio input (its features input when it also takes
    their lengths)."""
    if spec.get("lengths_input"):
        return tuple(model.input_shapes[model.input_names.index(spec["features_input"])])
    return tuple(model.input_shape)


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

    One input, or features plus their ``lengths`` (a model that masks the zero padding
    of a window; its sidecar names both). Waveform-in: a 1-D input. Features-in: the
    sidecar must describe the front-end (``frontend``, ``sample_rate``, ``samples``) and
    the front-end's output shape must be the model's input shape. Either way the spec must
    say how windows are normalised (``normalise``, see :func:`window_normalisation`).
    """
    entries = (getattr(model, "metadata", None) or {}).get("inputs")
    if model.num_inputs != 1 and not (isinstance(entries, list)
                                      and _padded_features_spec(entries)):
        raise ValueError(f"{model.path}: {model.num_inputs} inputs {model.input_names}; the "
                         "audio predictor runs models with one (waveform or features) input, "
                         "or features and their lengths")
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
    if tuple(shape) != features_shape(model, spec):
        raise ValueError(f"{model.path}: its front-end gives features of shape {shape} but "
                         f"the model takes {features_shape(model, spec)}")
    window_normalisation(model, spec)
    return spec


def model_inputs(windows: np.ndarray, spec: dict, heard=None):
    """Audio windows ``(n, samples)`` -> what the model takes (features for features-in).

    A model taking lengths gets ``{features_input: features, lengths_input: frames}``:
    ``heard`` (per window, the samples that are recording rather than the zero padding at
    its end; default: all of them) becomes the frames the front-end makes of that many
    samples, the length the model was trained to mask beyond."""
    if spec.get("kind") != "features":
        return windows
    features = numpy_features(windows, int(spec["sample_rate"]), spec["frontend"])
    if not spec.get("lengths_input"):
        return features
    heard = np.full(len(windows), windows.shape[1]) if heard is None else np.asarray(heard)
    # A full window's frames are the features' own: the front-end runs again (on zeros)
    # only for the rare window shorter than the model's, the end of a short recording.
    full = windows.shape[1]
    frames = np.asarray([features.shape[1] if int(n) >= full else
                         frames_of(int(n), spec, features.shape[1]) for n in heard], np.int32)
    return {spec["features_input"]: features, spec["lengths_input"]: frames}


def frames_of(samples: int, spec: dict, most: int) -> int:
    """Frames the spec's front-end makes of a recording of ``samples`` samples (at least 1,
    at most ``most``)."""
    if samples <= 0:
        return 1
    frames = numpy_features(np.zeros((1, samples), np.float32), int(spec["sample_rate"]),
                            spec["frontend"]).shape[1]
    return int(min(max(frames, 1), most))


def pads_at_end(spec: dict) -> bool:
    """Whether a window shorter than the model's is zero-padded at its end (a model told
    its lengths) rather than centred in zeros (how the suite's fixed-length recipes pad)."""
    return spec.get("pad") == "end" or bool(spec.get("lengths_input"))


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
