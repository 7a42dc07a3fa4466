"""Models with several inputs through TFLite export (float32, int8) and ser_tf.lite.LiteModel.

A tiny two-input functional model: ``frames`` (20, 8) -> Conv1D / global average pooling,
``extra`` (5,) -> Dense, concatenated, softmax over 3 classes. Its inputs have ranges ten
times apart, so int8 calibration that mixed them up would show in the inputs' scales.
"""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest

from ser_tf.export.tflite import convert, export_variants
from ser_tf.lite import LiteModel
from ser_tf.lite.runtime import order_input_details, tensor_input_name

# TF1-era converter warning for int8 inputs (TF2 calibrates the input range itself).
pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")

LABELS = ["low", "mid", "high"]
NAMES = ["frames", "extra"]
SHAPES = [(20, 8), (5,)]


def two_input_model():
    keras.utils.set_random_seed(0)
    frames = keras.Input(SHAPES[0], name="frames")
    extra = keras.Input(SHAPES[1], name="extra")
    pooled = keras.layers.GlobalAveragePooling1D()(
        keras.layers.Conv1D(6, 3, activation="relu")(frames))
    dense = keras.layers.Dense(4, activation="relu")(extra)
    scores = keras.layers.Dense(3)(keras.layers.Concatenate()([pooled, dense]))
    return keras.Model([frames, extra], keras.layers.Softmax()(scores), name="two_inputs")


def random_inputs(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, *SHAPES[0])).astype(np.float32),
            (10.0 * rng.normal(size=(n, *SHAPES[1]))).astype(np.float32)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(Keras model, test inputs, {variant: .tflite path})."""
    model = two_input_model()
    calibration = random_inputs(64, seed=1)
    paths = export_variants(model, tmp_path_factory.mktemp("two_inputs"),
                            representative=calibration, labels=LABELS,
                            input_spec=[{"kind": "features"}, {"kind": "tensor"}],
                            variants=("float32", "int8"))
    return model, random_inputs(48, seed=2), paths


def test_sidecar_lists_every_input_in_model_order(exported):
    _, _, paths = exported
    for variant, path in paths.items():
        meta = json.loads(path.with_suffix(".json").read_text())
        assert "input" not in meta and meta["labels"] == LABELS
        inputs = meta["inputs"]
        assert [entry["name"] for entry in inputs] == NAMES
        assert [tuple(entry["shape"]) for entry in inputs] == SHAPES
        assert [entry["kind"] for entry in inputs] == ["features", "tensor"]
        assert all(entry["normalise"] is None for entry in inputs)
        assert {entry["dtype"] for entry in inputs} == {variant}
        if variant == "float32":
            assert all("quantization" not in entry for entry in inputs)
    int8 = json.loads(paths["int8"].with_suffix(".json").read_text())["inputs"]
    frames, extra = (entry["quantization"] for entry in int8)
    # Each input calibrated on its own array: ``extra`` spans ten times the range.
    assert 5 < extra["scale"] / frames["scale"] < 20
    lite = LiteModel(paths["int8"])
    details = {tensor_input_name(d["name"]): d["quantization"]
               for d in lite._interpreter.get_input_details()}
    for entry in int8:
        scale, zero_point = details[entry["name"]]
        assert entry["quantization"] == {"scale": pytest.approx(scale),
                                         "zero_point": zero_point}


def test_float32_matches_keras_and_a_dict_is_the_same_as_a_list(exported):
    model, inputs, paths = exported
    lite = LiteModel(paths["float32"])
    assert lite.num_inputs == 2 and lite.input_names == NAMES
    assert lite.input_shapes == SHAPES and lite.labels == LABELS
    expected = model.predict(inputs, verbose=0)
    got = lite.predict(inputs)
    assert got.shape == (48, 3) and np.abs(got - expected).max() <= 1e-5
    np.testing.assert_array_equal(lite.predict(dict(zip(NAMES, inputs))), got)
    np.testing.assert_array_equal(lite.predict(tuple(inputs)), got)
    np.testing.assert_array_equal(lite.predict([x[:5] for x in inputs]), got[:5])  # resized
    assert lite.predict([x[:0] for x in inputs]).shape == (0, 3)
    assert lite.predict_labels([x[:4] for x in inputs]) == [
        LABELS[i] for i in expected[:4].argmax(1)]


def test_int8_quantises_each_input_with_its_own_parameters(exported):
    model, inputs, paths = exported
    lite = LiteModel(paths["int8"])
    assert lite.input_dtypes == [np.int8, np.int8] and lite.output_dtype == np.int8
    expected = model.predict(inputs, verbose=0)
    got = lite.predict(dict(zip(NAMES, inputs)))
    assert got.dtype == np.float32 and np.allclose(got.sum(1), 1.0, atol=0.05)
    # Measured: argmax agreement 47 / 48 rows, max |difference| 0.049, mean 0.006.
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.9
    assert np.abs(got - expected).max() <= 0.1
    assert np.abs(got - expected).mean() <= 0.02


def test_wrong_inputs_are_clear_errors(exported):
    _, inputs, paths = exported
    lite = LiteModel(paths["float32"])
    name = paths["float32"].name
    with pytest.raises(ValueError, match=rf"{name}: input 'frames' expects shape "
                                         r"\(batch, 20, 8\), got \(48, 5\)"):
        lite.predict(inputs[::-1])
    with pytest.raises(ValueError, match=rf"{name}: expects 2 inputs \['frames', 'extra'\].*"
                                         "got 1 arrays"):
        lite.predict(inputs[:1])
    with pytest.raises(ValueError, match="expects 2 inputs.*got ndarray"):
        lite.predict(inputs[0])
    with pytest.raises(ValueError, match=r"inputs are \['frames', 'extra'\], got keys"):
        lite.predict({"frames": inputs[0], "other": inputs[1]})
    with pytest.raises(ValueError, match=r"same batch size, got \[48, 47\]"):
        lite.predict([inputs[0], inputs[1][:47]])
    with pytest.raises(ValueError, match="input 'extra' contains NaN"):
        lite.predict([inputs[0], np.full_like(inputs[1], np.nan)])
    with pytest.raises(ValueError, match=rf"{name} has 2 inputs .*use input_shapes"):
        lite.input_shape  # noqa: B018 (the property raises)


def test_without_a_sidecar_inputs_are_named_by_the_file(exported, tmp_path):
    _, inputs, paths = exported
    bare = tmp_path / "bare.tflite"
    shutil.copy(paths["float32"], bare)
    lite = LiteModel(bare)
    assert sorted(lite.input_names) == sorted(NAMES) and lite.labels is None
    reference = LiteModel(paths["float32"]).predict(inputs)
    np.testing.assert_array_equal(lite.predict(dict(zip(NAMES, inputs))), reference)


def test_a_sidecar_that_does_not_match_the_file_is_refused(exported, tmp_path):
    _, _, paths = exported
    copy = tmp_path / "copy-float32.tflite"
    shutil.copy(paths["float32"], copy)
    meta = json.loads(paths["float32"].with_suffix(".json").read_text())
    meta["inputs"][1]["shape"] = [6]
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"copy-float32.json: input 'extra' has example "
                                         r"shape \(6,\) in the sidecar but \(5,\)"):
        LiteModel(copy)
    meta["inputs"] = meta["inputs"][:1]
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="copy-float32.json: lists 1 inputs"):
        LiteModel(copy)


def test_inputs_are_matched_by_name_then_by_position():
    details = [{"name": "serving_default_extra:0", "shape": np.array([1, 5]), "index": 0},
               {"name": "serving_default_frames:0", "shape": np.array([1, 20, 8]), "index": 1}]
    ordered = order_input_details(details, NAMES, SHAPES, "m.json")
    assert [d["index"] for d in ordered] == [1, 0]
    # Names the file does not have: position, checked against the shapes.
    ordered = order_input_details(details, ["b", "a"], [(5,), (20, 8)], "m.json")
    assert [d["index"] for d in ordered] == [0, 1]
    with pytest.raises(ValueError, match=r"m.json: input 'a' has example shape \(20, 8\)"):
        order_input_details(details, ["a", "b"], SHAPES, "m.json")
    assert tensor_input_name("serving_default_frames:0") == "frames"
    assert tensor_input_name("x") == "x"


def test_representative_and_input_spec_forms(exported, tmp_path):
    model, _, _ = exported
    data = random_inputs(16, seed=3)
    # A dict keyed by input name calibrates exactly like the list in input order.
    assert convert(model, "int8", dict(zip(NAMES, data))) == convert(model, "int8", data)
    for bad, message in (
            (data[0], "has 2 inputs"), (data[:1], "has 2 inputs"),
            ({"frames": data[0]}, "keys"), (data[::-1], "input 'frames' must have shape"),
            ([data[0], data[1][:15]], "same number of examples")):
        with pytest.raises(ValueError, match=message):
            convert(model, "int8", bad)
    paths = export_variants(model, tmp_path, labels=LABELS, variants=("float32",),
                            input_spec={"extra": {"kind": "tensor"},
                                        "frames": {"kind": "features", "sample_rate": 100}})
    meta = json.loads(paths["float32"].with_suffix(".json").read_text())
    assert [e["name"] for e in meta["inputs"]] == NAMES
    assert meta["inputs"][0]["sample_rate"] == 100
    with pytest.raises(ValueError, match="one spec per input"):
        export_variants(model, tmp_path, labels=LABELS, variants=("float32",),
                        input_spec={"kind": "features"})
    with pytest.raises(ValueError, match="input_spec of 'extra' must be a dict with 'kind'"):
        export_variants(model, tmp_path, labels=LABELS, variants=("float32",),
                        input_spec=[{"kind": "features"}, {"kind": "pictures"}])


def test_the_audio_predictor_refuses_a_multi_input_model(exported):
    from ser_tf.lite.predict import check_model_input

    _, _, paths = exported
    with pytest.raises(ValueError, match="2 inputs.*runs models with one"):
        check_model_input(LiteModel(paths["float32"]))
