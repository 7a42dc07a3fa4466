"""TF front-ends vs their references (librosa, the papers' tf.signal code), recipe shapes,
and the same layer inside tf.data, a keras.Model and a builtin-only TFLite graph.

Tolerances are the measured float32 deviations (see ser_tf/features/frontends.py) times a
margin of about 5-10, far below what a wrong window, mel scale, log, centre padding or DCT
norm produces (each of those was checked to fail these tests).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import librosa  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.fft  # noqa: E402
import tensorflow as tf  # noqa: E402

from ser_tf.data.synthetic import class_signal  # noqa: E402
from ser_tf.features import frontends as fe  # noqa: E402
# The paper packages register the "lightsernet" and "timnet-*" recipes.
import ser_tf.papers.attention_fcn  # noqa: E402, F401
import ser_tf.papers.cnn_family  # noqa: E402, F401
import ser_tf.papers.lightsernet  # noqa: E402, F401
import ser_tf.papers.timnet  # noqa: E402, F401
from ser_tf.features.recipes import RECIPES, get_recipe  # noqa: E402


def audio(sr, num_samples, class_index=3):
    """class_signal plus extra white noise, with 0.25 s of digital silence after the first
    third (so top_db flooring and the log offset matter, as in real padded recordings)."""
    rng = np.random.default_rng(class_index)
    x = class_signal(class_index, duration=num_samples / sr + 0.01, sr=sr, seed=class_index)
    x = x[:num_samples] + 0.01 * rng.standard_normal(num_samples)
    x[num_samples // 3:num_samples // 3 + sr // 4] = 0.0
    return x.astype(np.float32)


def tf_features(recipe_name, y, **frontend):
    """The recipe's front-end run through the TF layer (kind forced to a TF kind)."""
    recipe = get_recipe(recipe_name)
    config = {**recipe.frontend, **frontend}
    if config["kind"] == "librosa_mfcc":
        config["kind"] = "mfcc"
    return fe.compute_features(y[None], recipe.sample_rate, config)[0]


# --- building blocks --------------------------------------------------------------------

@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [(16000, 1024, 128, 80.0, 7600.0),
                                                       (22050, 512, 40, 0.0, None)])
def test_htk_mel_matrix_is_tf_signal(sr, n_fft, n_mels, fmin, fmax):
    expected = tf.signal.linear_to_mel_weight_matrix(
        n_mels, n_fft // 2 + 1, sr, fmin, fmax or sr / 2).numpy()
    got = fe.mel_weight_matrix(sr, n_fft, n_mels, fmin, fmax, "htk", None)
    assert np.abs(got - expected).max() < 1e-4  # measured 1.8e-5 (TF builds it in float32)


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
def test_hz_mel_matrix_is_librosa(htk, norm):
    expected = librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128, htk=htk, norm=norm).T
    got = fe.mel_weight_matrix(22050, 2048, 128, 0.0, None, "htk" if htk else "slaney", norm,
                               triangles="hz")
    assert np.abs(got - expected).max() / expected.max() < 1e-6  # measured 7e-8


def test_dct_matrices():
    x = np.random.default_rng(0).standard_normal((5, 128)).astype(np.float32)
    tf_dct = tf.signal.mfccs_from_log_mel_spectrograms(x).numpy()[:, :40]
    np.testing.assert_allclose(x @ fe.dct_matrix(128, 40, "tf"), tf_dct, atol=1e-5)
    np.testing.assert_allclose(x @ fe.dct_matrix(128, 40, "ortho"),
                               scipy.fft.dct(x, norm="ortho")[:, :40], atol=1e-5)
    np.testing.assert_allclose(x @ fe.dct_matrix(128, 40, None), scipy.fft.dct(x)[:, :40],
                               atol=1e-4)


# --- each recipe's TF front-end vs its reference ------------------------------------------

@pytest.mark.parametrize("class_index", [1, 6])
def test_timnet_mfcc_matches_librosa(class_index):
    y = audio(22050, 96000, class_index)
    expected = librosa.feature.mfcc(y=y, sr=22050, n_mfcc=39).T
    got = tf_features("timnet-EMODB", y)
    assert got.shape == expected.shape == (188, 39)
    assert np.abs(got - expected).max() < 5e-3  # measured <= 9.8e-4 over 8 signals; |c| ~ 100
    # The recipe's own (default) path is librosa itself.
    exact = get_recipe("timnet-EMODB").compute(y[None])[0]
    np.testing.assert_allclose(exact, expected, atol=1e-6)


def test_reflect_centre_padding_matches_librosa():
    y = audio(22050, 30000, 2)
    expected = librosa.feature.mfcc(y=y, sr=22050, n_mfcc=39, pad_mode="reflect").T
    got = tf_features("timnet-EMODB", y, pad_mode="reflect")
    assert np.abs(got - expected).max() < 5e-3  # measured <= 9.8e-4


def test_cnn_mfcc_matches_librosa():
    y = audio(16000, 48000, 5)
    expected = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=128).T
    got = tf_features("cnn_mfcc", y)
    assert got.shape == expected.shape == (94, 128)
    assert np.abs(got - expected).max() < 5e-3  # measured <= 8.5e-4


def test_cnn_logmel_matches_librosa():
    y = audio(16000, 48000, 5)
    expected = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=16000,
                                                                  hop_length=256)).T
    got = tf_features("cnn_logmel", y)
    assert got.shape == expected.shape == (188, 128)
    assert np.abs(got - expected).max() < 3e-4  # dB; measured <= 3.4e-5


def test_lightsernet_mfcc_matches_paper_code_and_librosa():
    y = audio(16000, 48000, 2)
    # Light-SERNet's own pipeline, written with tf.signal as the authors did.
    magnitude = tf.abs(tf.signal.stft(y[None], 1024, 256, 1024))
    mel = tf.signal.linear_to_mel_weight_matrix(128, 513, 16000, 80.0, 7600.0)
    log_mel = tf.math.log(tf.tensordot(magnitude, mel, 1) + 1e-6)
    paper = tf.clip_by_value(tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :40],
                             -10.0, 10.0).numpy()[0]
    got = tf_features("lightsernet", y)
    assert got.shape == paper.shape == (184, 40)
    assert np.abs(got - paper).max() < 1e-4  # measured <= 1.3e-5
    # librosa's STFT with the same mel matrix and DCT scaling.
    spec = np.abs(librosa.stft(y, n_fft=1024, hop_length=256, center=False)).T
    weights = fe.mel_weight_matrix(16000, 1024, 128, 80.0, 7600.0, "htk", None)
    ref = scipy.fft.dct(np.log(spec @ weights + 1e-6), type=2)[:, :40] / np.sqrt(2 * 128)
    assert np.abs(got - np.clip(ref, -10, 10)).max() < 1e-4  # measured <= 1.4e-5


@pytest.mark.parametrize("dft", ["fft", "matmul"])
def test_attention_fcn_spectrogram_matches_librosa(dft):
    y = audio(16000, 48480, 4)
    # librosa centres the 640-sample window in each 800-sample frame: pad 80 on each side
    # so frame t covers y[160 t : 160 t + 640] like the TF layer.
    spec = np.abs(librosa.stft(np.pad(y, 80), n_fft=800, hop_length=160, win_length=640,
                               window="hamming", center=False))[:200].T
    linear = tf_features("attention_fcn", y, dft=dft, log=None)
    assert linear.shape == spec.shape == (300, 200)
    assert np.abs(linear - spec).max() / spec.max() < 2e-6  # measured <= 2.4e-7 / 4.9e-7
    logged = tf_features("attention_fcn", y, dft=dft)
    # The log magnifies float32 error in the near-silent bins: measured <= 3.3e-3.
    assert np.abs(logged - np.log(spec + 1e-6)).max() < 2e-2


def test_librosa_path_matches_tf_layer_without_centre_padding():
    """The offline path pads so a short window in a longer DFT frames like the TF layer."""
    y = audio(16000, 16000, 0)
    config = {"frame_length": 400, "frame_step": 160, "fft_length": 512, "center": False,
              "window": "hamming", "num_mel_bins": 40, "num_mfcc": 13}
    ref = fe.compute_features(y[None], 16000, {"kind": "librosa_mfcc", **config})
    got = fe.compute_features(y[None], 16000, {"kind": "mfcc", **config})
    assert got.shape == ref.shape == (1, 98, 13)
    assert np.abs(got - ref).max() < 2e-3  # measured <= 2.8e-4


# --- recipes ----------------------------------------------------------------------------

@pytest.mark.parametrize("name,shape", [("lightsernet", (184, 40)), ("timnet-EMODB", (188, 39)),
                                        ("cnn_mfcc", (94, 128)), ("cnn_logmel", (188, 128)),
                                        ("attention_fcn", (300, 200))])
def test_recipe_shapes(name, shape):
    recipe = get_recipe(name)
    segment = recipe.segment_audio(audio(recipe.sample_rate, 4 * recipe.sample_rate))
    features = recipe.compute(np.stack([segment, segment * 0.5]))
    assert features.shape == (2,) + shape and features.dtype == np.float32
    assert np.all(np.isfinite(features))


def test_recipe_registry_and_overrides():
    assert {f"timnet-{c}" for c in ("CASIA", "EMODB", "EMOVO", "IEMOCAP", "RAVDESS",
                                    "SAVEE")} <= set(RECIPES)
    long = get_recipe("lightsernet", segment={"duration": 7.0})
    assert long.segment["duration"] == 7.0 and RECIPES["lightsernet"].segment["duration"] == 3.0
    segment = long.segment_audio(audio(16000, 9 * 16000))
    assert long.compute(segment[None]).shape == (1, 1 + (112000 - 1024) // 256, 40)
    with pytest.raises(KeyError):
        get_recipe("nope")


def test_compute_features_batches_and_edge_cases():
    recipe = get_recipe("lightsernet")
    segments = np.stack([audio(16000, 8000, i % 7) * (1 + i) for i in range(70)])
    batched = fe.compute_features(segments, 16000, recipe.frontend, batch_size=64)
    one = fe.compute_features(segments[65:66], 16000, recipe.frontend)
    np.testing.assert_allclose(batched[65:66], one, atol=1e-5)
    assert fe.compute_features(segments[:0], 16000, recipe.frontend).shape == (0, 28, 40)
    with pytest.raises(ValueError, match="kind"):
        fe.compute_features(segments, 16000, {"kind": "cqt"})
    with pytest.raises(ValueError, match="sample_rate"):
        fe.build_frontend({**recipe.frontend, "sample_rate": 8000}, 16000)
    with pytest.raises(ValueError, match="max_hz"):
        fe.Spectrogram(max_hz=4000.0)


# --- the same layer in tf.data, keras.Model, TFLite -----------------------------------------

def test_layer_in_tf_data_and_keras_model(tmp_path):
    recipe = get_recipe("lightsernet")
    layer = fe.build_frontend(recipe.frontend, 16000)
    x = np.stack([audio(16000, 48000, i) for i in range(3)])
    direct = layer(x).numpy()
    # Unbatched elements (rank 1) and batched ones both work in a map.
    per_item = np.stack(list(tf.data.Dataset.from_tensor_slices(x).map(layer)
                             .as_numpy_iterator()))
    batched = next(iter(tf.data.Dataset.from_tensor_slices(x).batch(3).map(layer))).numpy()
    np.testing.assert_allclose(per_item, direct, atol=1e-4)
    np.testing.assert_allclose(batched, direct, atol=1e-5)

    inputs = keras.Input((48000,))
    hidden = keras.layers.GlobalAveragePooling1D()(layer(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4)(hidden))
    assert model.output_shape == (None, 4)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)
    clone = fe.MFCC.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def _run_tflite(flatbuffer, x):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the "lite" extra is optional
        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


# Measured TFLite-vs-TF max |difference|: 3.8e-6 (MFCC), 1.9e-3 (log magnitude of the
# weakest bins, where XNNPACK's matmul rounding is relatively largest).
@pytest.mark.parametrize("name,atol", [("lightsernet", 1e-4), ("attention_fcn", 1e-2)])
def test_tflite_builtins_only(name, atol):
    recipe = get_recipe(name)
    layer = fe.build_frontend(recipe.frontend, recipe.sample_rate)
    x = recipe.segment_audio(audio(16000, 50000, 1))[None]
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    got = _run_tflite(converter.convert(), x)
    np.testing.assert_allclose(got, layer(x).numpy(), atol=atol)
