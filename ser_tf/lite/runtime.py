"""Run an exported ``.tflite`` classifier without TensorFlow.

Only NumPy and a TFLite interpreter are needed, so the same code runs on a laptop and on a
device. The interpreter is, in order of preference:

1. ``ai_edge_litert.interpreter.Interpreter`` (LiteRT, the successor of TFLite; Google's
   migration guide, https://ai.google.dev/edge/litert/migration);
2. ``tflite_runtime.interpreter.Interpreter`` (the older stand-alone runtime wheel);
3. ``tensorflow.lite.Interpreter``, imported lazily and only when neither is installed
   (deprecated in TF 2.20+, but a full TensorFlow install still has it).

Quantised models follow the TFLite quantisation spec
(https://ai.google.dev/edge/litert/models/quantization_spec): a real value ``r`` is stored
as ``q = round(r / scale) + zero_point``; :meth:`LiteModel.predict` applies that to int8 /
uint8 inputs and ``r = (q - zero_point) * scale`` to int8 / uint8 outputs, so callers always
pass and get float32. A quantised softmax output is then rescaled so each row sums to 1:
its 8-bit values are multiples of 1/256, each rounded on its own, so the dequantised rows
of a full-int8 classifier sum to anything in about 0.99-1.01 (see
:attr:`LiteModel.renormalises_output`).

Each model may have a JSON sidecar next to it (``<model>.json``, i.e. the ``.tflite``
suffix replaced; written by :func:`ser_tf.export.tflite.export_variants`) with the class
labels in output order and the input spec (features or waveform, sample rate, shape, window
normalisation). A model with several inputs has ``inputs``, one entry per input with its
``name`` and ``shape``, in the order :meth:`LiteModel.predict` takes them; the interpreter's
own input order may differ, so inputs are matched by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: Bytes 4..8 of every TFLite flatbuffer (the schema's ``file_identifier``).
TFLITE_IDENTIFIER = b"TFL3"
#: Tensor types stored as quantised integers (real = (q - zero_point) * scale).
QUANTIZED_DTYPES = (np.int8, np.uint8, np.int16)
#: What the TFLite converter puts around a signature's input name in the tensor's name.
_SIGNATURE_PREFIX = "serving_default_"
#: The output quantisation the TFLite spec fixes for an 8-bit SOFTMAX: scale 1/256 and
#: zero point -128 (int8) or 0 (uint8), i.e. the range [0, 255/256].
SOFTMAX_OUTPUT_QUANTIZATION = {np.int8: (1 / 256, -128), np.uint8: (1 / 256, 0)}


def interpreter_class():
    """The first available TFLite interpreter class (see the module docstring)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        import tensorflow as tf  # last resort: heavy, and its Interpreter is deprecated
    except ImportError as error:
        raise ImportError("no TFLite interpreter: install ai-edge-litert "
                          "(pip install ai-edge-litert)") from error
    return tf.lite.Interpreter


def sidecar_path(model_path) -> Path:
    """Where a model's JSON sidecar lives: ``model-int8.tflite`` -> ``model-int8.json``."""
    return Path(model_path).with_suffix(".json")


def _read_sidecar(path: Path) -> dict:
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{side}: unreadable sidecar of {path.name}: {error}") from error
    if not isinstance(meta, dict):
        raise ValueError(f"{side}: sidecar of {path.name} must hold a JSON object")
    return meta


def tensor_input_name(tensor_name: str) -> str:
    """The signature input name in a TFLite input tensor's name
    (``serving_default_alpha:0`` -> ``alpha``)."""
    name = str(tensor_name)
    if name.startswith(_SIGNATURE_PREFIX):
        name = name[len(_SIGNATURE_PREFIX):]
    head, colon, index = name.rpartition(":")
    return head if colon and index.isdigit() else name


def order_input_details(details: list[dict], names: list[str], shapes: list[tuple],
                        source) -> list[dict]:
    """The interpreter's input ``details`` in the order of ``names`` (a sidecar's inputs).

    Matched by name (the converter may order tensors differently from the model); if the
    names do not all match, by position. Either way each input's example shape (``None``:
    unchecked) must be the tensor's; ``ValueError`` naming ``source`` otherwise."""
    if len(details) != len(names):
        raise ValueError(f"{source}: lists {len(names)} inputs {names}, the model has "
                         f"{len(details)}")
    by_name = {tensor_input_name(d["name"]): d for d in details}
    if len(by_name) == len(details) and set(names) <= set(by_name):
        ordered = [by_name[name] for name in names]
    else:
        ordered = list(details)
    for name, shape, detail in zip(names, shapes, ordered):
        found = tuple(int(d) for d in detail["shape"][1:])
        if shape is not None and tuple(shape) != found:
            raise ValueError(f"{source}: input {name!r} has example shape {tuple(shape)} in "
                             f"the sidecar but {found} in the model")
    return ordered


class LiteModel:
    """One single-output TFLite classifier (e.g. softmax probabilities) with one or more
    inputs.

    Args:
        path: the ``.tflite`` file.
        num_threads: CPU threads of the interpreter (positive integer).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a TFLite flatbuffer, the interpreter rejects it, or its
            sidecar does not match it. Every message names the file.
    """

    def __init__(self, path, num_threads: int = 1):
        self.path = Path(path)
        if isinstance(num_threads, bool) or int(num_threads) != num_threads or num_threads < 1:
            raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
        self.num_threads = int(num_threads)
        if not self.path.is_file():
            raise FileNotFoundError(f"TFLite model not found: {self.path}")
        # Check the flatbuffer identifier first: the interpreter's own message for a wrong
        # file ("not a valid Flatbuffer buffer") does not say which file.
        with open(self.path, "rb") as handle:
            head = handle.read(8)
        if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
            raise ValueError(f"{self.path}: not a TFLite model (no 'TFL3' flatbuffer identifier)")
        from ser_tf.util.quiet import filtered_native_stderr

        try:
            # LiteRT announces its CPU delegate on stderr ("INFO: Created TensorFlow Lite
            # XNNPACK delegate"); a quiet command line drops that line, keeps real errors.
            with filtered_native_stderr():
                self._interpreter = interpreter_class()(model_path=str(self.path),
                                                        num_threads=self.num_threads)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{self.path}: the TFLite interpreter cannot load it: {error}") from error
        details = self._interpreter.get_input_details()
        for detail in details:
            signature = detail.get("shape_signature", detail["shape"])
            if any(int(d) < 0 for d in signature[1:]):
                raise ValueError(f"{self.path}: only the batch axis may be dynamic, input "
                                 f"{tensor_input_name(detail['name'])!r} has shape signature "
                                 f"{list(signature)}")
        self.metadata = _read_sidecar(self.path)
        self._inputs, self._input_names = self._order_inputs(details)
        self._example_shapes = [tuple(int(d) for d in x["shape"][1:]) for x in self._inputs]
        self._output = self._interpreter.get_output_details()[0]
        self._renormalise = self._quantized_softmax_output()
        self._batch = int(self._inputs[0]["shape"][0])
        self._resizable = True  # until a resize fails; then batches are run one by one
        self._labels = self._check_labels(self.metadata.get("labels"))

    def _quantized_softmax_output(self) -> bool:
        """Whether the output is an 8-bit quantised SOFTMAX (see :attr:`renormalises_output`).

        Asked of the graph (the op writing the output tensor) when the interpreter can list
        its ops; otherwise told by the quantisation TFLite fixes for softmax outputs. The
        graph is preferred because a LOGISTIC (sigmoid, multi-label) output has the same
        quantisation, and its rows must not be rescaled."""
        dtype = np.dtype(self._output["dtype"]).type
        if dtype not in SOFTMAX_OUTPUT_QUANTIZATION:
            return False
        index = self._output["index"]
        try:
            ops = self._interpreter._get_ops_details()
        except (AttributeError, RuntimeError, ValueError):
            ops = None
        if ops is not None:
            return any(op.get("op_name") == "SOFTMAX"
                       and index in [int(i) for i in op.get("outputs", ())] for op in ops)
        scale, zero_point = self._output["quantization"]
        expected_scale, expected_zero = SOFTMAX_OUTPUT_QUANTIZATION[dtype]
        return bool(np.isclose(scale, expected_scale, rtol=1e-6)) and zero_point == expected_zero

    def _order_inputs(self, details: list[dict]) -> tuple[list[dict], list[str]]:
        """The input details in the order predict() takes them, and their names: the
        sidecar's ``inputs`` order when it has one, else the interpreter's order."""
        entries = self.metadata.get("inputs")
        if entries is None:
            return list(details), [tensor_input_name(d["name"]) for d in details]
        side = sidecar_path(self.path)
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get("name"), str) for e in entries):
            raise ValueError(f"{side}: 'inputs' must be a list of objects with a 'name'")
        names = [entry["name"] for entry in entries]
        if len(set(names)) != len(names):
            raise ValueError(f"{side}: input names {names} must be distinct")
        shapes = [tuple(e["shape"]) if e.get("shape") is not None else None for e in entries]
        return order_input_details(details, names, shapes, side), names

    # --- description ------------------------------------------------------------------
    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def input_names(self) -> list[str]:
        """Input names in the order :meth:`predict` takes them."""
        return list(self._input_names)

    @property
    def input_shapes(self) -> list[tuple]:
        """Each input's example shape (no batch axis), in :attr:`input_names` order."""
        return list(self._example_shapes)

    @property
    def input_dtypes(self) -> list[np.dtype]:
        return [np.dtype(x["dtype"]) for x in self._inputs]

    def _single(self, what: str) -> int:
        if self.num_inputs != 1:
            raise ValueError(f"{self.path.name} has {self.num_inputs} inputs "
                             f"{self.input_names}; use {what}s")
        return 0

    @property
    def input_shape(self) -> tuple:
        """Shape of ONE example, without the batch axis: ``(184, 40)`` or ``(48000,)``
        (single-input models; see :attr:`input_shapes`)."""
        return self._example_shapes[self._single("input_shape")]

    @property
    def input_dtype(self) -> np.dtype:
        """The input tensor's dtype (int8 for a full-integer model); :meth:`predict`
        always takes float32 and quantises itself (single-input models)."""
        return self.input_dtypes[self._single("input_dtype")]

    @property
    def output_dtype(self) -> np.dtype:
        return np.dtype(self._output["dtype"])

    @property
    def renormalises_output(self) -> bool:
        """True for an 8-bit quantised softmax output (a full-int8 classifier): after
        dequantisation :meth:`predict` divides each row by its sum, so the probabilities
        sum to 1 (to float32 rounding) instead of 0.99-1.01. Float outputs are returned
        as the model computed them (a float softmax already sums to 1 within 1e-6)."""
        return self._renormalise

    @property
    def num_classes(self) -> int:
        return int(self._output["shape"][-1])

    @property
    def labels(self) -> list[str] | None:
        """Class names in output order, from the sidecar; ``None`` without a sidecar."""
        return None if self._labels is None else list(self._labels)

    def _check_labels(self, labels):
        if labels is None:
            return None
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"{sidecar_path(self.path)}: 'labels' must be a list of strings")
        if len(labels) != self.num_classes:
            raise ValueError(f"{sidecar_path(self.path)}: {len(labels)} labels for the "
                             f"{self.num_classes} outputs of {self.path.name}")
        return labels

    def __repr__(self) -> str:
        inputs = ", ".join(f"{shape} {dtype}" for shape, dtype
                           in zip(self._example_shapes, self.input_dtypes))
        return f"LiteModel({str(self.path)!r}, input={inputs}, classes={self.num_classes})"

    # --- inference --------------------------------------------------------------------
    def _quantize(self, batch: np.ndarray, detail: dict) -> np.ndarray:
        """float32 -> the input tensor's type, with that input's own scale / zero point."""
        dtype = np.dtype(detail["dtype"])
        if dtype.type not in QUANTIZED_DTYPES:
            return batch.astype(dtype, copy=False)
        scale, zero_point = detail["quantization"]
        if not scale:
            raise ValueError(f"{self.path}: {dtype} input without quantisation parameters")
        info = np.iinfo(dtype)
        q = np.round(batch / np.float32(scale)) + zero_point
        return np.clip(q, info.min, info.max).astype(dtype)

    def _dequantize(self, values: np.ndarray) -> np.ndarray:
        """Output tensor -> float32; a quantised softmax's rows rescaled to sum to 1."""
        if values.dtype.type not in QUANTIZED_DTYPES:
            return values.astype(np.float32, copy=False)
        scale, zero_point = self._output["quantization"]
        real = ((values.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32)
        if not self._renormalise:
            return real
        sums = real.sum(axis=-1, keepdims=True)
        # A row of zeros (every class below 1/512: only possible with > 512 classes) says
        # nothing about the classes; it becomes uniform rather than a division by zero.
        uniform = np.float32(1.0 / real.shape[-1])
        return np.where(sums > 0, real / np.where(sums > 0, sums, 1), uniform).astype(np.float32)

    def _resize(self, size: int) -> None:
        for detail, shape in zip(self._inputs, self._example_shapes):
            self._interpreter.resize_tensor_input(detail["index"], [size, *shape])
        self._interpreter.allocate_tensors()

    def _set_batch(self, size: int) -> bool:
        """Resize every input to ``size`` examples; False if this interpreter cannot."""
        if size == self._batch:
            return True
        if not self._resizable:
            return False
        try:
            self._resize(size)
        except (ValueError, RuntimeError):
            # A graph with a fixed batch in a Reshape fails here: restore the original
            # batch and run examples one at a time from now on.
            self._resizable = False
            self._resize(self._batch)
            return False
        self._batch = size
        self._output = self._interpreter.get_output_details()[0]
        return True

    def _run(self, quantized: list[np.ndarray]) -> np.ndarray:
        for detail, values in zip(self._inputs, quantized):
            self._interpreter.set_tensor(detail["index"], values)
        self._interpreter.invoke()
        return self._dequantize(np.array(self._interpreter.get_tensor(self._output["index"])))

    def _check_batch(self, array, name: str | None, shape: tuple) -> np.ndarray:
        array = np.asarray(array, dtype=np.float32)
        if array.shape[1:] != shape or array.ndim != len(shape) + 1:
            hint = " (add a batch axis: x[None])" if array.shape == shape else ""
            which = "" if name is None else f"input {name!r} "
            raise ValueError(f"{self.path.name}: {which}expects shape (batch, "
                             f"{', '.join(map(str, shape))}), got {array.shape}{hint}")
        if not np.all(np.isfinite(array)):
            which = "input" if name is None else f"input {name!r}"
            raise ValueError(f"{self.path.name}: {which} contains NaN or infinite values")
        return array

    def _arrays(self, batch) -> list[np.ndarray]:
        """``predict``'s argument as one float32 array per input, in input order."""
        names = self._input_names
        if isinstance(batch, dict):
            if set(batch) != set(names):
                raise ValueError(f"{self.path.name}: inputs are {names}, got keys "
                                 f"{sorted(map(str, batch))}")
            batch = [batch[name] for name in names]
        elif self.num_inputs == 1:
            return [self._check_batch(batch, None, self._example_shapes[0])]
        elif not isinstance(batch, (list, tuple)) or len(batch) != self.num_inputs:
            got = (f"{len(batch)} arrays" if isinstance(batch, (list, tuple))
                   else type(batch).__name__)
            raise ValueError(f"{self.path.name}: expects {self.num_inputs} inputs {names} "
                             f"(a list in that order, or a dict keyed by name), got {got}")
        arrays = [self._check_batch(array, name if self.num_inputs > 1 else None, shape)
                  for array, name, shape in zip(batch, names, self._example_shapes)]
        if len({len(array) for array in arrays}) != 1:
            raise ValueError(f"{self.path.name}: inputs {names} must have the same batch "
                             f"size, got {[len(array) for array in arrays]}")
        return arrays

    def predict(self, batch) -> np.ndarray:
        """Float32 inputs -> ``(n, num_classes)`` float32 outputs.

        Quantised outputs are dequantised; a quantised softmax (full-int8 classifier) is
        then renormalised so each row sums to 1 (:attr:`renormalises_output`).

        ``batch``: ``(n, *input_shape)`` for a single-input model; for several inputs, a
        list / tuple of such arrays in :attr:`input_names` order or a dict keyed by input
        name. Every input is resized to ``n`` (once per new batch size); if the model does
        not allow that, the examples run one by one at the model's own batch size.
        """
        arrays = self._arrays(batch)
        if len(arrays[0]) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        quantized = [self._quantize(array, detail)
                     for array, detail in zip(arrays, self._inputs)]
        if self._set_batch(len(arrays[0])):
            return self._run(quantized)
        step = self._batch  # usually 1; a fixed batch > 1 is filled by repeating the last row
        outputs = []
        for start in range(0, len(arrays[0]), step):
            chunks = [values[start:start + step] for values in quantized]
            padded = [np.concatenate([c] + [c[-1:]] * (step - len(c))) for c in chunks]
            outputs.append(self._run(padded)[:len(chunks[0])])
        return np.concatenate(outputs)

    def predict_labels(self, batch) -> list:
        """Argmax class per example: label names when the sidecar has them, else indices."""
        best = np.argmax(self.predict(batch), axis=1)
        return [self._labels[i] for i in best] if self._labels else best.tolist()
