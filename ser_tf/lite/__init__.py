"""On-device inference for exported models: NumPy + a TFLite interpreter, no TensorFlow.

:class:`LiteModel` runs a ``.tflite`` classifier (see :mod:`ser_tf.lite.runtime`).
"""

from ser_tf.lite.runtime import LiteModel, interpreter_class, sidecar_path

__all__ = ["LiteModel", "interpreter_class", "sidecar_path"]
