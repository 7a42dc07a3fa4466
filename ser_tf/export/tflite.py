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

A model may have several inputs (each with a fixed shape apart from the batch axis): the
file's signature takes them all, keyed by the Keras input names, int8 calibration gets one
array per input, and the sidecar lists every input in the model's order (``inputs``, see
:func:`export_variants`), which is how :class:`ser_tf.lite.LiteModel` matches them.

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

from ser_tf.features.segment import check_window_normalisation

VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
ALL = VARIANTS
#: What a model input is, as its sidecar says: audio features computed by a front-end,
#: segmented audio, any other tensor (a multi-input model's side inputs), or ``lengths``:
#: how many frames of another input (``"of"``, zero-padded at the end) hold the recording.
INPUT_KINDS = ("features", "waveform", "tensor", "lengths")
#: Variants that keep a waveform model's front-end accurate (see ser_tf.export.waveform).
WAVEFORM_VARIANTS = ("float32", "float16")


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; known: {VARIANTS}")
    return variant


def keras_inputs(model) -> list[tuple[str, tuple]]:
    """``(name, example shape)`` of each model input, in the model's input order."""
    tensors = list(getattr(model, "inputs", None) or [])
    if tensors:
        named = [(str(t.name), tuple(t.shape)) for t in tensors]
    else:  # e.g. a subclassed model: only its input_shape is known
        shape = model.input_shape
        shapes = shape if isinstance(shape, list) else [shape]
        named = [(f"input_{i}", tuple(s)) for i, s in enumerate(shapes)]
    result = []
    for name, shape in named:
        if any(d is None for d in shape[1:]):
            raise ValueError(f"model {model.name}: only the batch axis may be unknown, "
                             f"input {name!r} has shape {shape}")
        result.append((name, tuple(int(d) for d in shape[1:])))
    names = [name for name, _ in result]
    if len(set(names)) != len(names):
        raise ValueError(f"model {model.name}: input names {names} must be distinct (the "
                         "sidecar and the runtime match inputs by name)")
    return result


def _check_array(data, shape: tuple, what: str) -> np.ndarray:
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != len(shape) + 1 or data.shape[1:] != shape or len(data) == 0:
        raise ValueError(f"{what} must have shape (n >= 1, "
                         f"{', '.join(map(str, shape))}), got {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return data


def _check_representative(representative, inputs: list[tuple[str, tuple]]) -> list[np.ndarray]:
    """One float32 array per model input (model order), all with the same number of rows.

    A single-input model takes one array (or ``{name: array}``); a model with several
    inputs takes a list / tuple of arrays in input order or a dict keyed by input name."""
    if representative is None:
        raise ValueError("variant 'int8' (full-integer) needs a representative set: an array "
                         "of training-split examples to calibrate activation ranges (one "
                         "array per input for a model with several inputs)")
    names = [name for name, _ in inputs]
    if isinstance(representative, dict):
        if set(representative) != set(names):
            raise ValueError(f"representative set keys {sorted(representative)} must be the "
                             f"model's input names {names}")
        arrays = [representative[name] for name in names]
    elif len(inputs) == 1:
        arrays = [representative]
    elif isinstance(representative, (list, tuple)) and len(representative) == len(inputs):
        arrays = list(representative)
    else:
        raise ValueError(f"the model has {len(inputs)} inputs {names}: the representative "
                         "set must be a list / tuple of one array per input, in that order, "
                         "or a dict keyed by input name")
    checked = [_check_array(data, shape, "representative set" if len(inputs) == 1 else
                            f"representative set of input {name!r}")
               for data, (name, shape) in zip(arrays, inputs)]
    if len({len(data) for data in checked}) != 1:
        raise ValueError(f"representative arrays must have the same number of examples, got "
                         f"{[len(data) for data in checked]}")
    return checked


def _converter(model, saved_model_dir=None):
    """A converter on the model's inference call (batch axis dynamic): from
    ``saved_model_dir`` (:func:`inference_saved_model` of this model) when given, else from
    the Keras model, which exports the same SavedModel to a temporary folder itself."""
    import tensorflow as tf

    # For a Keras 3 model, from_keras_model exports ``model.__call__(x, training=False)``
    # through keras.export.ExportArchive (dropout off, batch norm in inference mode) with
    # the input signature of ``model.inputs``, whose batch axis is None, so LiteModel can
    # resize it. (A hand-made tf.function + from_concrete_functions left Keras 3 variables
    # unfrozen: READ_VARIABLE ops and NaN outputs in TF 2.21.)
    if saved_model_dir is not None:
        return tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    return tf.lite.TFLiteConverter.from_keras_model(model)


@contextlib.contextmanager
def inference_saved_model(model):
    """The SavedModel ``from_keras_model`` would write for ``model`` (its inference call,
    ``training=False``, signature of ``model.inputs``), written once into a temporary folder
    that lives for the ``with`` block: converting several variants from it saves one export
    each (about half of a conversion's time; the files convert to the same graph, outputs
    and signatures). Yields ``None`` (convert from the model itself) for a model that is not
    a Keras 3 functional or sequential one."""
    import functools
    import shutil
    import tempfile

    import keras
    import tensorflow as tf

    if not isinstance(model, (keras.src.models.Functional, keras.src.models.Sequential)):
        yield None
        return
    folder = tempfile.mkdtemp(prefix="ser-tf-export-")
    try:
        signature = [tf.TensorSpec(x.shape, dtype=x.dtype, name=x.name) for x in model.inputs]
        try:
            structure = model.input
        except AttributeError:  # a Sequential model never called has no input structure
            structure = None
        if isinstance(structure, dict):  # inputs given as a dict: the same structure
            signature = [{x.name: spec for x, spec in zip(model.inputs, signature)}]
        elif len(signature) > 1:
            signature = [signature]  # several inputs: one structured argument, as Keras does
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", functools.partial(model.__call__, training=False),
                             signature)
        # keras.export prints every captured variable on stdout; nothing a user needs.
        with contextlib.redirect_stdout(io.StringIO()):
            archive.write_out(folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def convert(model, variant: str, representative=None, *, saved_model_dir=None) -> bytes:
    """One Keras model (one or more float32 inputs) -> a ``.tflite`` flatbuffer.

    Args:
        model: a built ``keras.Model``; its batch axis stays dynamic in the file. With
            several inputs the file's signature takes them all, keyed by input name.
        variant: one of :data:`VARIANTS` (module docstring).
        representative: training-split examples, required for ``int8`` (fed one example
            at a time), ignored otherwise: ``(n, *input_shape)`` for one input; for
            several, a list / tuple of such arrays in input order or a dict keyed by input
            name (row ``i`` of every array is one example).
        saved_model_dir: the model's :func:`inference_saved_model`, to convert from (saves
            exporting it again); default: export it now.

    Raises:
        ValueError: unknown variant, missing / malformed representative set, or a graph
            that cannot be expressed with TFLite builtin ops (the converter's message is
            kept).
    """
    import tensorflow as tf

    _check_variant(variant)
    inputs = keras_inputs(model)
    data = _check_representative(representative, inputs) if variant == "int8" else None
    converter = _converter(model, saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        names = [name for name, _ in inputs]
        # Calibration feeds each input in its own dtype (an int32 side input such as a
        # padded example's length stays int32; the converter refuses float32 for it).
        dtypes = [str(getattr(t, "dtype", "float32")) for t in getattr(model, "inputs", None)
                  or ()] or ["float32"] * len(inputs)

        def representative_dataset():
            for row in range(len(data[0])):
                examples = [array[row:row + 1].astype(dtype)
                            for array, dtype in zip(data, dtypes)]
                # Several inputs go as a dict keyed by signature input name (the Keras
                # input names): a list would be fed in tensor-index order, which the
                # converter does not promise to be the model's input order.
                yield examples if len(examples) == 1 else dict(zip(names, examples))

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        # keras.export prints every captured variable on stdout; nothing a user needs.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # TF1-era warning for int8 inputs: TF2 takes the input range from calibration.
            warnings.filterwarnings("ignore", "Statistics for quantized inputs")
            # The calibrator's own tf.lite.Interpreter, made for dict (several-input)
            # samples: an internal of the converter, not an interpreter anyone runs.
            warnings.filterwarnings("ignore", r"\s*Warning: tf.lite.Interpreter is deprecated")
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


def _check_input_spec(input_spec: dict, shape: tuple, what: str = "input_spec") -> dict:
    if not isinstance(input_spec, dict) or input_spec.get("kind") not in INPUT_KINDS:
        raise ValueError(f"{what} must be a dict with 'kind' in {INPUT_KINDS}, "
                         f"got {input_spec!r}")
    spec = json.loads(json.dumps(input_spec))  # a JSON-able copy, or a TypeError here
    if "shape" in spec and tuple(spec["shape"]) != shape:
        raise ValueError(f"{what} shape {spec['shape']} != the model's input {list(shape)}")
    spec["shape"] = list(shape)
    # Stated explicitly in every sidecar: the runtime normalises inference windows only as
    # this says (null: as they are), it never guesses from a recipe or segment name.
    spec["normalise"] = check_window_normalisation(spec.get("normalise"))
    return spec


def _input_specs(input_spec, inputs: list[tuple[str, tuple]]) -> list[dict]:
    """The checked spec of each input, model order: one dict for a single-input model; a
    list / tuple in input order, or a dict keyed by input name, for several."""
    names = [name for name, _ in inputs]
    if len(inputs) == 1:
        return [_check_input_spec(input_spec, inputs[0][1])]
    if isinstance(input_spec, dict) and set(input_spec) == set(names):
        specs = [input_spec[name] for name in names]
    elif isinstance(input_spec, (list, tuple)) and len(input_spec) == len(inputs):
        specs = list(input_spec)
    else:
        raise ValueError(f"the model has {len(inputs)} inputs {names}: input_spec must be a "
                         "list of one spec per input, in that order, or a dict keyed by "
                         f"input name, got {input_spec!r}")
    checked = []
    for spec, (name, shape) in zip(specs, inputs):
        if isinstance(spec, dict) and spec.get("name", name) != name:
            raise ValueError(f"input_spec names {spec['name']!r} for input {name!r}")
        checked.append({"name": name, **_check_input_spec(spec, shape, f"input_spec of {name!r}")})
    return checked


def _file_inputs(content: bytes, specs: list[dict]) -> list[dict]:
    """The specs of a multi-input file with what the file itself says about each input:
    its tensor ``dtype`` and, for an integer tensor, ``quantization`` (``scale``,
    ``zero_point``: real = (q - zero_point) * scale)."""
    from ser_tf.lite.runtime import QUANTIZED_DTYPES, interpreter_class, order_input_details

    interpreter = interpreter_class()(model_content=content)
    details = order_input_details(interpreter.get_input_details(),
                                  [spec["name"] for spec in specs],
                                  [tuple(spec["shape"]) for spec in specs], "converted model")
    entries = []
    for spec, detail in zip(specs, details):
        dtype = np.dtype(detail["dtype"])
        entry = {**spec, "dtype": dtype.name}
        if dtype.type in QUANTIZED_DTYPES:
            scale, zero_point = detail["quantization"]
            entry["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
        entries.append(entry)
    return entries


def _write_atomic(path: Path, data: bytes) -> None:
    # A half-written .tflite left by a kill would load as garbage on the next run.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_variants(model, out_dir, *, representative=None, labels, input_spec,
                    variants=ALL, name: str | None = None) -> dict[str, Path]:
    """Convert ``model`` to each variant and write ``<name>-<variant>.tflite`` plus its
    sidecar ``<name>-<variant>.json`` (read by :class:`ser_tf.lite.LiteModel`).

    Args:
        model: a Keras model whose output is one score per label; one or more inputs,
            each with a fixed shape apart from the batch axis.
        out_dir: created if missing; existing files of the same name are replaced.
        representative: training-split examples; required when ``"int8"`` is among
            ``variants`` (checked before anything is converted); see :func:`convert`.
        labels: class names in output order.
        input_spec: what the input is, e.g. ``{"kind": "waveform", "sample_rate": 16000,
            "samples": 48000, "normalise": {...}}`` or ``{"kind": "features", ...}``
            (``kind`` one of :data:`INPUT_KINDS`); ``shape`` is filled in (or checked)
            from the model; ``normalise`` (what to do to each inference window, see
            :func:`ser_tf.features.segment.check_window_normalisation`) defaults to null.
            For a model with several inputs: a list of such specs in input order, or a
            dict keyed by input name.
        variants: a subset of :data:`VARIANTS`.
        name: file stem; default the model's name.

    The sidecar holds ``name``, ``variant``, ``labels``, ``size_bytes`` and, for one input,
    ``input`` (the spec); for several, ``inputs``: one spec per input in the model's order,
    each with the input's ``name``, ``shape``, the file's tensor ``dtype`` and, for int8,
    its ``quantization``.

    Returns ``{variant: path of the .tflite}`` in the order of ``variants``.
    """
    variants = tuple(_check_variant(v) for v in variants)
    if not variants or len(set(variants)) != len(variants):
        raise ValueError(f"variants must be non-empty and distinct, got {variants}")
    inputs = keras_inputs(model)
    specs = _input_specs(input_spec, inputs)
    labels = [str(label) for label in labels]
    outputs = int(model.output_shape[-1])
    if len(labels) != outputs or len(set(labels)) != len(labels):
        raise ValueError(f"need {outputs} distinct labels for model {model.name}, got {labels}")
    if "int8" in variants:
        _check_representative(representative, inputs)  # before converting anything
    risky = [v for v in variants if v not in WAVEFORM_VARIANTS]
    if any(spec["kind"] == "waveform" for spec in specs) and risky:
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
    # Always through our own SavedModel (one export serves every variant; its signature
    # keeps a dict-input model's structure, which Keras' own path warns about).
    with inference_saved_model(model) as saved_model_dir:
        for variant in variants:
            content = convert(model, variant, representative if variant == "int8" else None,
                              saved_model_dir=saved_model_dir)
            path = out_dir / f"{name}-{variant}.tflite"
            _write_atomic(path, content)
            described = ({"input": specs[0]} if len(specs) == 1
                         else {"inputs": _file_inputs(content, specs)})
            sidecar = {"name": name, "variant": variant, "labels": labels, **described,
                       "size_bytes": len(content)}
            _write_atomic(path.with_suffix(".json"),
                          (json.dumps(sidecar, indent=2) + "\n").encode("utf-8"))
            paths[variant] = path
    return paths
