"""The 2-D Attention-FCN as a fixed-size TFLite file that is told its input's length.

A whole-utterance run trains a variable-length model that masks every batch's padding. Its
export takes ``features`` (a fixed number of frames, zero-padded at the end) and
``lengths``, masks exactly as in training, and must therefore give the Keras model's
answers on whole utterances: through the shared fold export (scores), the audio predictor
(windows shorter than the model's padded at the end and given their length) and the
explain model (α is zero on the padding).
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ser_tf.data.synthetic import class_signal, make_emodb_like, write_wav  # noqa: E402
from ser_tf.models.attention_fcn import build_attention_fcn_2d, trunk_output_length  # noqa: E402
from ser_tf.papers.attention_fcn import recipes  # noqa: E402

# TF1-era converter warning for int8 inputs (TF2 calibrates the input range itself).
pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")

LABELS = ["anger", "happiness", "neutral", "sadness"]
FRAMES = 300  # the export's fixed length in these tests (3 s)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(variable-length model, fixed 300-frame model with lengths loaded from its saved
    weights, as the fold export loads them)."""
    keras.utils.set_random_seed(3)
    variable = build_attention_fcn_2d(4)
    weights = tmp_path_factory.mktemp("afcn_weights") / "final.weights.h5"
    variable.save_weights(weights)
    fixed = build_attention_fcn_2d(4, (FRAMES, 200), lengths_input=True)
    fixed.load_weights(weights)
    return variable, fixed


def _whole(model, features):
    """The variable-length model's probabilities of one utterance alone."""
    return model.predict({"features": features[None],
                          "lengths": np.asarray([len(features)], np.int32)}, verbose=0)[0]


def _padded(utterances, frames=FRAMES):
    x = np.zeros((len(utterances), frames, 200), np.float32)
    for i, u in enumerate(utterances):
        x[i, :len(u)] = u
    return {"features": x, "lengths": np.asarray([len(u) for u in utterances], np.int32)}


def test_fixed_size_model_with_lengths_is_the_variable_model_on_each_utterance(models):
    variable, fixed = models
    rng = np.random.default_rng(0)
    # 40 frames: shorter than the trunk's minimum (67), padded inside the variable model.
    utterances = [rng.normal(size=(n, 200)).astype(np.float32) for n in (40, 67, 151, 300)]
    expected = np.stack([_whole(variable, u) for u in utterances])
    inputs = _padded(utterances)
    np.testing.assert_allclose(fixed.predict(inputs, verbose=0), expected, atol=1e-5)
    # Without the lengths the same weights see the padding (what the old export did).
    unmasked = build_attention_fcn_2d(4, (FRAMES, 200))
    unmasked.set_weights(fixed.get_weights())
    assert np.abs(unmasked.predict(inputs["features"], verbose=0)[:3] - expected[:3]).max() > 1e-3
    with pytest.raises(ValueError, match="needs its lengths"):
        build_attention_fcn_2d(4, (None, 200), lengths_input=False)


def _fixed_set(utterances, labels):
    """A FixedLengthInputs over in-memory utterances (ids u0, u1, ...)."""
    from ser_tf.training.padded import PaddedFeatureSource, UtteranceFeatures

    features = UtteranceFeatures(
        ids=[f"u{i}" for i in range(len(utterances))], labels=np.asarray(labels),
        label_names=tuple(LABELS), lengths=np.asarray([len(u) for u in utterances]),
        paths=[None] * len(utterances), dim=200, arrays=list(utterances))
    source = PaddedFeatureSource(features)
    return source, source.fixed_length(FRAMES)


@pytest.mark.slow
def test_fold_export_scores_whole_utterances_as_keras_does(models, tmp_path):
    from ser_tf.export.evaluate import export_fold
    from ser_tf.lite import LiteModel
    from ser_tf.training.metrics import classification_metrics
    from ser_tf.training.protocols import Fold

    variable, fixed = models
    rng = np.random.default_rng(1)
    lengths = rng.integers(70, FRAMES + 1, size=24)
    utterances = [rng.normal(size=(int(n), 200)).astype(np.float32) for n in lengths]
    labels = np.arange(24) % 4
    source, inputs = _fixed_set(utterances, labels)
    assert inputs.input_shapes == {"features": (FRAMES, 200), "lengths": ()}
    fold = Fold(0, [f"u{i}" for i in range(12)], [], [f"u{i}" for i in range(12, 24)], False)
    row, paths = export_fold(fixed, fold, inputs, tmp_path, recipe=recipes.crop_recipe(3.0),
                             variants=("float32", "int8"), name="afcn")
    whole = np.stack([_whole(variable, u) for u in utterances[12:]])
    expected = classification_metrics(labels[12:], whole, LABELS)
    assert row["keras"]["UA"] == pytest.approx(expected["UA"])
    assert row["variants"]["float32"]["max_prob_diff_vs_keras"] < 1e-4
    assert row["input_shapes"] == {"features": [FRAMES, 200], "lengths": []}
    sidecar = json.loads(paths["int8"].with_suffix(".json").read_text())
    features_spec, lengths_spec = sidecar["inputs"]
    assert features_spec["pad"] == "end" and features_spec["frontend"]["kind"] == "spectrogram"
    assert lengths_spec == {**lengths_spec, "kind": "lengths", "of": "features",
                            "dtype": "int32"}
    # Full int8 keeps the lengths exact (int32) and stays near the float model.
    lite = LiteModel(paths["int8"]).predict(_padded(utterances[12:]))
    assert np.abs(lite - whole).max() < 0.1


@pytest.mark.slow
def test_audio_predictor_and_explain_model_feed_the_recordings_length(models, tmp_path):
    from ser_tf.export.evaluate import _model_input_spec
    from ser_tf.export.tflite import export_variants
    from ser_tf.lite import LiteModel
    from ser_tf.lite.predict import predict_file
    from ser_tf.reporting.attention_maps import ExplainLiteModel, export_explain_tflite

    variable, fixed = models
    recipe = recipes.crop_recipe(3.0)
    _, inputs = _fixed_set([np.zeros((80, 200), np.float32)], [0])
    path = export_variants(fixed, tmp_path, labels=LABELS, variants=("float32",),
                           input_spec=_model_input_spec(inputs, recipe), name="afcn")["float32"]
    audio = class_signal(1, duration=1.2, sr=16000, seed=5)
    wav = write_wav(tmp_path / "short.wav", audio, sr=16000)
    whole = recipes.UTTERANCE_RECIPE.compute(audio[None])[0]
    assert len(whole) == 1 + (19200 - 640) // 160  # 117 frames of a 1.2 s recording
    expected = _whole(variable, whole)
    result = predict_file(wav, LiteModel(path))
    assert result["windows"] == 1
    np.testing.assert_allclose([result["probabilities"][k] for k in LABELS], expected,
                               atol=2e-3)
    # Longer than the window: full windows, each of all 300 frames.
    long_wav = write_wav(tmp_path / "long.wav", class_signal(2, duration=4.5, sr=16000,
                                                             seed=6), sr=16000)
    assert predict_file(long_wav, LiteModel(path))["windows"] == 3

    explain = export_explain_tflite(fixed, tmp_path / "explain", labels=LABELS, recipe=recipe,
                                    name="afcn-explain")["float32"]
    lite = ExplainLiteModel(explain)
    features, heard, lengths = lite.inputs(wav)
    assert features.shape == (FRAMES, 200) and lengths == len(whole)
    probabilities, alpha = lite.predict(features[None], [lengths])
    np.testing.assert_allclose(probabilities[0], expected, atol=2e-3)
    real = int(trunk_output_length(lengths))
    assert alpha[0, :real].sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(alpha[0, real:] == 0)  # no attention on the padding
    with pytest.raises(ValueError, match="takes no lengths"):
        ExplainLiteModel(export_explain_tflite(
            build_attention_fcn_2d(4, (FRAMES, 200)), tmp_path / "plain", labels=LABELS,
            recipe=recipe, name="plain")["float32"]).predict(features[None], [lengths])


@pytest.mark.slow
def test_whole_utterance_run_exports_models_that_score_what_keras_scored(tmp_path):
    from ser_tf import cli

    root = make_emodb_like(tmp_path / "emodb", per_class=3, duration=1.0, classes="WFNT")
    code = cli.main(["train", "attention_fcn", "--variant", "2d", "--dataset", "EMODB",
                     "--data-dir", str(root), "--results-dir", str(tmp_path / "results"),
                     "--cache-dir", str(tmp_path / "cache"), "--protocol", "paper",
                     "--folds", "2", "--epochs", "1", "--batch-size", "4", "--quiet"])
    assert code == 0
    record_path, = (tmp_path / "results").glob("attention_fcn/EMODB/*/record.json")
    record = json.loads(record_path.read_text())
    tflite = record["tflite"]
    assert "whole test utterances" in tflite["input"] and "200 frames" in tflite["input"]
    assert record["config"]["tflite_input"].startswith("whole utterances")
    keras_ua = {int(f["fold"]): f["metrics"]["UA"] for f in record["per_fold"]}
    for fold in tflite["keras"]["folds"]:  # the exported inputs are the Keras run's inputs
        assert fold["UA"] == pytest.approx(keras_ua[int(fold["fold"])])
    assert tflite["variants"]["float32"]["max_prob_diff_vs_keras"] < 1e-4
    assert set(tflite["variants"]) == {"float32", "float16", "dynamic_int8", "int8"}
    # Each fold's explain model is kept while its weights are here (for the figure later).
    work, = (tmp_path / "results").glob("attention_fcn/EMODB/*.work")
    for fold in ("fold_00", "fold_01"):
        kept, = (work / fold / "explain").glob("*-float16.tflite")
        sidecar = json.loads(kept.with_suffix(".json").read_text())
        stored = json.loads((work / fold / "tflite.json").read_text())
        assert sidecar["source"]["weights_sha256"] == stored["weights_sha256"]
        assert sidecar["input"]["lengths_input"] == "lengths"


def test_masked_attention_survives_full_int8(tmp_path):
    """A sharp attention (large u) over padded sequences: full int8 must keep its answers.
    Filling padded logits with -3e38 once made the int8 logits' scale span 3e38, so every
    real logit fell in one step, α went flat and the answers changed."""
    from ser_tf.export.tflite import export_variants
    from ser_tf.lite import LiteModel
    from ser_tf.models.attention_fcn import AttentionPooling, TimeMask

    keras.utils.set_random_seed(7)
    frames, channels = 40, 8
    x_in = keras.Input((frames, channels), name="features")
    lengths = keras.Input((), dtype="int32", name="lengths")
    mask = TimeMask(mask_only=True)([x_in, lengths])
    context, _ = AttentionPooling(1.0, name="attention")([x_in, mask])
    model = keras.Model({"features": x_in, "lengths": lengths},
                        keras.layers.Dense(3, activation="softmax")(context))
    w, b, u = model.get_layer("attention").get_weights()
    model.get_layer("attention").set_weights([w, b, 8.0 * u])  # a sharp attention
    rng = np.random.default_rng(0)

    def batch(n):
        n_frames = rng.integers(5, frames + 1, size=n)
        x = rng.normal(size=(n, frames, channels)).astype(np.float32)
        x[np.arange(frames)[None, :] >= n_frames[:, None]] = 0
        return {"features": x, "lengths": n_frames.astype(np.int32)}

    test = batch(64)
    expected = model.predict(test, verbose=0)
    spec = {"features": {"kind": "tensor"}, "lengths": {"kind": "lengths", "of": "features"}}
    path = export_variants(model, tmp_path, labels=["a", "b", "c"], variants=("int8",),
                           representative=batch(200), input_spec=spec, name="sharp")["int8"]
    got = LiteModel(path).predict(test)
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.9
    assert np.abs(got - expected).mean() < 0.05
