"""Keras model -> TFLite flatbuffers in four precisions, with a JSON sidecar.

Variants follow the LiteRT post-training quantisation guide
(https://ai.google.dev/edge/litert/models/post_training_quantization):

- ``float32``: no optimisation; the reference the others are compared with.
- ``float16``: float16 weights (``supported_types=[tf.float16]``), float32 compute on CPU;
  about half the size.
- ``dynamic_int8``: dynamic-range quantisation: int8 weights, activations quantised on the
  fly by the kernels that support it; float32 input and output; no calibration data.
- ``int8``: full-integer quantisation: int8 weights AND activations, int8 input and output
  (``inference_input_type`` / ``inference_output_type``), only ``TFLITE_BUILTINS_INT8``
  kernels; activation ranges are calibrated on a ``representative`` set, which must come
  from the training split only (calibrating on test data would leak it).

Every variant is restricted to TFLite builtin ops: no ``SELECT_TF_OPS`` (Flex), so the
files run in the plain LiteRT interpreter (:class:`ser_tf.lite.LiteModel`) and on devices
without the TensorFlow op library. A graph needing a non-builtin op fails to convert here
rather than at inference time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np

VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
ALL = VARIANTS
INPUT_KINDS = ("features", "waveform")
#: Variants that keep a waveform model's front-end accurate (see ser_tf.export.waveform).
WAVEFORM_VARIANTS = ("float32", "float16")


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; known: {VARIANTS}")
    return variant


def _example_shape(model) -> tuple:
    shape = model.input_shape
    if isinstance(shape, list):
        raise ValueError(f"model {model.name} has {len(shape)} inputs; export needs one")
    if any(d is None for d in shape[1:]):
        raise ValueError(f"model {model.name}: only the batch axis may be unknown, "
                         f"input shape is {shape}")
    return tuple(int(d) for d in shape[1:])


def _check_representative(representative, shape: tuple) -> np.ndarray:
    if representative is None:
        raise ValueError("variant 'int8' (full-integer) needs a representative set: an array "
                         "of training-split examples to calibrate activation ranges")
    data = np.asarray(representative, dtype=np.float32)
    if data.ndim != len(shape) + 1 or data.shape[1:] != shape or len(data) == 0:
        raise ValueError(f"representative set must have shape (n >= 1, "
                         f"{', '.join(map(str, shape))}), got {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("representative set contains NaN or infinite values")
    return data


def _converter(model):
    """A converter on the model's inference call (batch axis dynamic)."""
    import tensorflow as tf

    # For a Keras 3 model, from_keras_model exports ``model.__call__(x, training=False)``
    # through keras.export.ExportArchive (dropout off, batch norm in inference mode) with
    # the input signature of ``model.inputs``, whose batch axis is None, so LiteModel can
    # resize it. (A hand-made tf.function + from_concrete_functions left Keras 3 variables
    # unfrozen: READ_VARIABLE ops and NaN outputs in TF 2.21.)
    return tf.lite.TFLiteConverter.from_keras_model(model)


def convert(model, variant: str, representative=None) -> bytes:
    """One Keras model (one float32 input) -> a ``.tflite`` flatbuffer.

    Args:
        model: a built ``keras.Model``; its batch axis stays dynamic in the file.
        variant: one of :data:`VARIANTS` (module docstring).
        representative: ``(n, *input_shape)`` training-split examples; required for
            ``int8`` (fed one example at a time), ignored otherwise.

    Raises:
        ValueError: unknown variant, missing / malformed representative set, or a graph
            that cannot be expressed with TFLite builtin ops (the converter's message is
            kept).
    """
    import tensorflow as tf

    _check_variant(variant)
    shape = _example_shape(model)
    data = _check_representative(representative, shape) if variant == "int8" else None
    converter = _converter(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        def representative_dataset():
            for example in data:
                yield [example[None]]

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        # keras.export prints every captured variable on stdout; nothing a user needs.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # TF1-era warning for int8 inputs: TF2 takes the input range from calibration.
            warnings.filterwarnings("ignore", "Statistics for quantized inputs")
            return bytes(converter.convert())
    except Exception as error:  # ConverterError and friends: say which variant failed
        raise ValueError(f"cannot convert model {model.name} to TFLite variant {variant!r} "
                         f"with builtin ops only: {error}") from error


def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def operators(model_content: bytes) -> list[str]:
    """Sorted distinct operator names: builtins by their schema name (``CONV_2D``), custom
    ops by their custom name (Flex ops start with ``Flex``)."""
    from tensorflow.lite.tools import flatbuffer_utils

    tree = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_content))
    names = _builtin_names()
    found = set()
    for code in tree.operatorCodes:
        if code.customCode:
            custom = code.customCode
            found.add(custom.decode() if isinstance(custom, bytes) else str(custom))
        else:
            # Codes >= 127 live in builtinCode; older ones in deprecatedBuiltinCode too.
            value = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
            found.add(names.get(value, str(value)))
    return sorted(found)


def flex_ops(model_content: bytes) -> list[str]:
    """Flex (SELECT_TF_OPS) operators in a flatbuffer; empty for a builtins-only model."""
    return [name for name in operators(model_content) if name.startswith("Flex")]


def _check_input_spec(input_spec: dict, shape: tuple) -> dict:
    if not isinstance(input_spec, dict) or input_spec.get("kind") not in INPUT_KINDS:
        raise ValueError(f"input_spec must be a dict with 'kind' in {INPUT_KINDS}, "
                         f"got {input_spec!r}")
    spec = json.loads(json.dumps(input_spec))  # a JSON-able copy, or a TypeError here
    if "shape" in spec and tuple(spec["shape"]) != shape:
        raise ValueError(f"input_spec shape {spec['shape']} != the model's input {list(shape)}")
    spec["shape"] = list(shape)
    return spec


def _write_atomic(path: Path, data: bytes) -> None:
    # A half-written .tflite left by a kill would load as garbage on the next run.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_variants(model, out_dir, *, representative=None, labels, input_spec: dict,
                    variants=ALL, name: str | None = None) -> dict[str, Path]:
    """Convert ``model`` to each variant and write ``<name>-<variant>.tflite`` plus its
    sidecar ``<name>-<variant>.json`` (read by :class:`ser_tf.lite.LiteModel`).

    Args:
        model: a Keras model whose output is one score per label.
        out_dir: created if missing; existing files of the same name are replaced.
        representative: training-split examples; required when ``"int8"`` is among
            ``variants`` (checked before anything is converted).
        labels: class names in output order.
        input_spec: what the input is, e.g. ``{"kind": "waveform", "sample_rate": 16000,
            "samples": 48000}`` or ``{"kind": "features", ...}``; ``shape`` is filled in
            (or checked) from the model.
        variants: a subset of :data:`VARIANTS`.
        name: file stem; default the model's name.

    Returns ``{variant: path of the .tflite}`` in the order of ``variants``.
    """
    variants = tuple(_check_variant(v) for v in variants)
    if not variants or len(set(variants)) != len(variants):
        raise ValueError(f"variants must be non-empty and distinct, got {variants}")
    shape = _example_shape(model)
    spec = _check_input_spec(input_spec, shape)
    labels = [str(label) for label in labels]
    outputs = int(model.output_shape[-1])
    if len(labels) != outputs or len(set(labels)) != len(labels):
        raise ValueError(f"need {outputs} distinct labels for model {model.name}, got {labels}")
    if "int8" in variants:
        representative = _check_representative(representative, shape)
    risky = [v for v in variants if v not in WAVEFORM_VARIANTS]
    if spec["kind"] == "waveform" and risky:
        warnings.warn(f"variants {risky} of a waveform-input model quantise the front-end's "
                      "audio / spectrum activations to 8 bits, which breaks the log-mel "
                      "features (ser_tf.export.waveform docstring); ship float32 or float16",
                      UserWarning, stacklevel=2)
    name = name or model.name
    if not name or "/" in name or os.sep in name:
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for variant in variants:
        content = convert(model, variant, representative if variant == "int8" else None)
        path = out_dir / f"{name}-{variant}.tflite"
        _write_atomic(path, content)
        sidecar = {"name": name, "variant": variant, "labels": labels, "input": spec,
                   "size_bytes": len(content)}
        _write_atomic(path.with_suffix(".json"),
                      (json.dumps(sidecar, indent=2) + "\n").encode("utf-8"))
        paths[variant] = path
    return paths
