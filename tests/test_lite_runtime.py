"""ser_tf.lite.LiteModel: loading, quantisation, batch resizing, sidecar, clear errors.

The tiny models are converted here with TensorFlow directly (not with ser_tf.export), so
these tests cover the runtime alone; tests/test_export.py covers the exporters.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ser_tf.lite import LiteModel, sidecar_path

# TF1-era converter warning for int8 inputs (TF2 calibrates the input range itself).
pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")


def _tiny_keras(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 4))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(8, activation="relu")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _convert(model, int8_data=None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8_data is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in int8_data)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lite")
    model = _tiny_keras()
    data = np.random.default_rng(0).normal(size=(64, 6, 4)).astype(np.float32)
    paths = {"float32": folder / "tiny-float32.tflite", "int8": folder / "tiny-int8.tflite"}
    paths["float32"].write_bytes(_convert(model))
    paths["int8"].write_bytes(_convert(model, data))
    return model, data, paths


def test_float32_matches_keras_for_any_batch(models):
    model, data, paths = models
    lite = LiteModel(paths["float32"])
    assert lite.input_shape == (6, 4) and lite.input_dtype == np.float32
    assert lite.num_classes == 3 and lite.labels is None
    expected = model.predict(data, verbose=0)
    for n in (1, 5, 64, 2):  # resizing up and down
        got = lite.predict(data[:n])
        assert got.dtype == np.float32 and got.shape == (n, 3)
        np.testing.assert_allclose(got, expected[:n], atol=1e-6)
    assert lite.predict(data[:0]).shape == (0, 3)


def test_int8_quantises_input_and_dequantises_output(models):
    model, data, paths = models
    lite = LiteModel(paths["int8"], num_threads=2)
    assert lite.input_dtype == np.int8 and lite.output_dtype == np.int8
    got = lite.predict(data)
    assert got.dtype == np.float32
    # The int8 softmax's dequantised rows (multiples of 1/256, each rounded) are
    # renormalised: they sum to 1 to float32 rounding, not to 0.99-1.01.
    assert lite.renormalises_output
    assert np.all(got >= 0) and np.allclose(got.sum(axis=1), 1.0, atol=1e-6, rtol=0)
    expected = model.predict(data, verbose=0)
    assert np.abs(got - expected).max() < 0.1
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.85


def test_only_a_quantised_softmax_is_renormalised(models, tmp_path):
    """The raw dequantised int8 rows do not sum to 1 (that is what is fixed); a float
    softmax is left alone; an int8 sigmoid (multi-label: rows need not sum to 1) has the
    softmax's output quantisation but is not rescaled, because the graph says LOGISTIC."""
    import keras

    model, data, paths = models
    lite = LiteModel(paths["int8"])
    raw = lite._interpreter  # the renormalisation is the only difference from raw outputs
    lite.predict(data)
    scale, zero_point = lite._output["quantization"]
    q = raw.get_tensor(lite._output["index"]).astype(np.float32)
    raw_sums = ((q - zero_point) * scale).sum(axis=1)
    assert (scale, zero_point) == (1 / 256, -128)
    assert np.abs(raw_sums - 1).max() > 1e-6  # the problem being fixed
    np.testing.assert_allclose(lite.predict(data).sum(axis=1), 1.0, atol=1e-6)
    assert not LiteModel(paths["float32"]).renormalises_output

    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 4))
    outputs = keras.layers.Dense(3, activation="sigmoid")(keras.layers.Flatten()(inputs))
    path = tmp_path / "sigmoid-int8.tflite"
    path.write_bytes(_convert(keras.Model(inputs, outputs), data))
    sigmoid = LiteModel(path)
    assert sigmoid._output["quantization"] == (1 / 256, -128)
    assert not sigmoid.renormalises_output
    assert np.abs(sigmoid.predict(data).sum(axis=1) - 1).max() > 0.1


def test_fixed_batch_model_falls_back_to_one_by_one(tmp_path):
    import tensorflow as tf

    # The reshape bakes in batch 1, so resizing the input to 3 cannot be allocated.
    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def fixed(x):
        return tf.nn.softmax(tf.reduce_sum(tf.reshape(x, [1, 2, 4]), axis=1))

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [fixed.get_concrete_function()], fixed)
    path = tmp_path / "fixed.tflite"
    path.write_bytes(converter.convert())
    x = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    got = LiteModel(path).predict(x)
    expected = tf.nn.softmax(tf.reduce_sum(tf.reshape(x, [3, 2, 4]), axis=1)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_sidecar_labels(models, tmp_path):
    _, data, paths = models
    path = tmp_path / "m.tflite"
    path.write_bytes(paths["float32"].read_bytes())
    sidecar_path(path).write_text(json.dumps({"labels": ["a", "b", "c"], "variant": "float32"}))
    lite = LiteModel(path)
    assert lite.labels == ["a", "b", "c"] and lite.metadata["variant"] == "float32"
    assert set(lite.predict_labels(data[:4])) <= {"a", "b", "c"}
    sidecar_path(path).write_text(json.dumps({"labels": ["a", "b"]}))
    with pytest.raises(ValueError, match="m.json.*2 labels"):
        LiteModel(path)


def test_errors_name_the_file(models, tmp_path):
    _, data, paths = models
    missing = tmp_path / "nothing.tflite"
    with pytest.raises(FileNotFoundError, match="nothing.tflite"):
        LiteModel(missing)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all")
    with pytest.raises(ValueError, match="junk.tflite.*not a TFLite model"):
        LiteModel(junk)
    lite = LiteModel(paths["float32"])
    with pytest.raises(ValueError, match="tiny-float32.tflite.*shape"):
        lite.predict(np.zeros((2, 4, 6), np.float32))
    with pytest.raises(ValueError, match="batch axis"):
        lite.predict(data[0])
    with pytest.raises(ValueError, match="NaN"):
        lite.predict(np.full((1, 6, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="num_threads"):
        LiteModel(paths["float32"], num_threads=0)


def test_importing_ser_tf_lite_does_not_need_tensorflow(models):
    _, _, paths = models
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow.") or name == "keras":
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
import numpy as np
from ser_tf.lite import LiteModel
m = LiteModel({str(paths["float32"])!r})
print(m.predict(np.zeros((2, 6, 4), np.float32)).shape)
assert "tensorflow" not in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "(2, 3)" in result.stdout
