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
pass and get float32.

Each model may have a JSON sidecar next to it (``<model>.json``, i.e. the ``.tflite``
suffix replaced; written by :func:`ser_tf.export.tflite.export_variants`) with the class
labels in output order and the input spec (features or waveform, sample rate, shape).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: Bytes 4..8 of every TFLite flatbuffer (the schema's ``file_identifier``).
TFLITE_IDENTIFIER = b"TFL3"
_QUANTIZED = (np.int8, np.uint8, np.int16)


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


class LiteModel:
    """One single-input, single-output TFLite classifier (e.g. softmax probabilities).

    Args:
        path: the ``.tflite`` file.
        num_threads: CPU threads of the interpreter (positive integer).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a TFLite flatbuffer, the interpreter rejects it, the
            model has more than one input, or its sidecar does not match it. Every message
            names the file.
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
        try:
            self._interpreter = interpreter_class()(model_path=str(self.path),
                                                    num_threads=self.num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{self.path}: the TFLite interpreter cannot load it: {error}") from error
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1:
            raise ValueError(f"{self.path}: expected one input tensor, found {len(inputs)}")
        self._input = inputs[0]
        self._output = self._interpreter.get_output_details()[0]
        signature = self._input.get("shape_signature", self._input["shape"])
        self._example_shape = tuple(int(d) for d in self._input["shape"][1:])
        if any(int(d) < 0 for d in signature[1:]):
            raise ValueError(f"{self.path}: only the batch axis may be dynamic, input shape "
                             f"signature is {list(signature)}")
        self._batch = int(self._input["shape"][0])
        self._resizable = True  # until a resize fails; then batches are run one by one
        self.metadata = _read_sidecar(self.path)
        self._labels = self._check_labels(self.metadata.get("labels"))

    # --- description ------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple:
        """Shape of ONE example, without the batch axis: ``(184, 40)`` or ``(48000,)``."""
        return self._example_shape

    @property
    def input_dtype(self) -> np.dtype:
        """The input tensor's dtype (int8 for a full-integer model); :meth:`predict`
        always takes float32 and quantises itself."""
        return np.dtype(self._input["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        return np.dtype(self._output["dtype"])

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
        return (f"LiteModel({str(self.path)!r}, input={self.input_shape} {self.input_dtype}, "
                f"classes={self.num_classes})")

    # --- inference --------------------------------------------------------------------
    def _quantize(self, batch: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        if dtype.type not in _QUANTIZED:
            return batch.astype(dtype, copy=False)
        scale, zero_point = self._input["quantization"]
        if not scale:
            raise ValueError(f"{self.path}: {dtype} input without quantisation parameters")
        info = np.iinfo(dtype)
        q = np.round(batch / np.float32(scale)) + zero_point
        return np.clip(q, info.min, info.max).astype(dtype)

    def _dequantize(self, values: np.ndarray) -> np.ndarray:
        if values.dtype.type not in _QUANTIZED:
            return values.astype(np.float32, copy=False)
        scale, zero_point = self._output["quantization"]
        return ((values.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32)

    def _set_batch(self, size: int) -> bool:
        """Resize the input to ``size`` examples; False if this interpreter cannot."""
        if size == self._batch:
            return True
        if not self._resizable:
            return False
        index = self._input["index"]
        try:
            self._interpreter.resize_tensor_input(index, [size, *self._example_shape])
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError):
            # A graph with a fixed batch in a Reshape fails here: restore the original
            # batch and run examples one at a time from now on.
            self._resizable = False
            self._interpreter.resize_tensor_input(index, [self._batch, *self._example_shape])
            self._interpreter.allocate_tensors()
            return False
        self._batch = size
        self._output = self._interpreter.get_output_details()[0]
        return True

    def _run(self, quantized: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input["index"], quantized)
        self._interpreter.invoke()
        return self._dequantize(np.array(self._interpreter.get_tensor(self._output["index"])))

    def predict(self, batch) -> np.ndarray:
        """``(n, *input_shape)`` float32 -> ``(n, num_classes)`` float32 outputs.

        The input tensor is resized to ``n`` (once per new batch size); if the model does
        not allow that, the examples run one by one at the model's own batch size.
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.shape[1:] != self._example_shape or batch.ndim != len(self._example_shape) + 1:
            hint = " (add a batch axis: x[None])" if batch.shape == self._example_shape else ""
            raise ValueError(f"{self.path.name}: expects input of shape (batch, "
                             f"{', '.join(map(str, self._example_shape))}), got "
                             f"{batch.shape}{hint}")
        if not np.all(np.isfinite(batch)):
            raise ValueError(f"{self.path.name}: input contains NaN or infinite values")
        if len(batch) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        quantized = self._quantize(batch)
        if self._set_batch(len(batch)):
            return self._run(quantized)
        step = self._batch  # usually 1; a fixed batch > 1 is filled by repeating the last row
        outputs = []
        for start in range(0, len(quantized), step):
            chunk = quantized[start:start + step]
            padded = np.concatenate([chunk] + [chunk[-1:]] * (step - len(chunk)))
            outputs.append(self._run(padded)[:len(chunk)])
        return np.concatenate(outputs)

    def predict_labels(self, batch) -> list:
        """Argmax class per example: label names when the sidecar has them, else indices."""
        best = np.argmax(self.predict(batch), axis=1)
        return [self._labels[i] for i in best] if self._labels else best.tolist()
