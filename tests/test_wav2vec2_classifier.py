"""The wav2vec2 classifier: HuggingFace's TF wav2vec2 inside a Keras 3 layer that registers
its variables. A tiny random config is saved with ``save_pretrained`` and loaded back
through the builder (the offline stand-in for ``facebook/wav2vec2-base``), trained one
epoch (predictions change, the HF variables are the Keras ones), saved and restored; a hub
name fails offline with one message; the masked mean ignores zero padding; TFLite."""

import json

import numpy as np
import pytest

pytest.importorskip("transformers", reason="the wav2vec2 extra (transformers<5, tf-keras) "
                                           "is not installed: pip install -e .[wav2vec2]")
pytest.importorskip("tf_keras", reason="the wav2vec2 extra (transformers<5, tf-keras) is "
                                       "not installed: pip install -e .[wav2vec2]")

import keras  # noqa: E402

from ser_tf.models import wav2vec2_classifier as w2v  # noqa: E402
from ser_tf.models.wav2vec2_classifier import (TINY_CONFIG, PretrainedUnavailable,  # noqa: E402
                                               Wav2Vec2Encoder, build_wav2vec2_classifier)

SAMPLES = 4000  # 0.25 s at 16 kHz: 49 frames of the tiny encoder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A tiny random wav2vec2 saved as HuggingFace saves a pretrained model."""
    model = w2v.load_pretrained(None, TINY_CONFIG)
    folder = tmp_path_factory.mktemp("w2v") / "tiny-wav2vec2"
    model.save_pretrained(str(folder))
    return folder


def waveforms(n=12, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    t = np.arange(SAMPLES) / 16000
    x = np.stack([np.sin(2 * np.pi * (200 + 300 * c) * t) for c in y]).astype("float32")
    x += 0.05 * rng.normal(size=x.shape).astype("float32")
    x[::3, SAMPLES // 2:] = 0.0  # zero-padded short files
    return x, np.eye(3, dtype="float32")[y]


def test_save_pretrained_folder_loads_trains_and_round_trips(tiny_folder, tmp_path):
    assert (tiny_folder / "config.json").is_file()
    model = build_wav2vec2_classifier(3, SAMPLES, pretrained=str(tiny_folder))
    encoder = model.get_layer("wav2vec2")
    assert isinstance(encoder, Wav2Vec2Encoder)
    assert encoder.config_object.layerdrop == 0.0
    assert encoder.config_object.hidden_size == 32
    # The Keras 3 variables are the HF model's own tf.Variables, every one of them.
    hf_ids = {id(v) for v in encoder.hf_model.weights}
    assert len(encoder.weights) == len(hf_ids)
    assert {id(v.value) for v in encoder.weights} == hf_ids
    # The pretrained weights came from the folder (not a fresh random init).
    reloaded = w2v.load_pretrained(str(tiny_folder))
    assert any(np.array_equal(np.asarray(v), np.asarray(reloaded.weights[0]))
               for v in encoder.hf_model.weights)
    # Paths carry the layer's name, so lr_groups like "wav2vec2/.*" match them.
    paths = [v.path for v in encoder.weights]
    assert all(p.startswith("wav2vec2/") for p in paths)
    assert "wav2vec2/encoder.layers.0.attention.q_proj.kernel" in paths
    # Frozen feature encoder: its convolutions are not trainable, the rest is.
    frozen = {v.path for v in encoder.non_trainable_weights}
    assert frozen and all(p.startswith("wav2vec2/feature_extractor.") for p in frozen)
    assert all(not p.startswith("wav2vec2/feature_extractor.")
               for p in (v.path for v in encoder.trainable_weights))

    x, y = waveforms()
    before = model.predict(x, verbose=0)
    frozen_before = [np.asarray(v).copy() for v in encoder.non_trainable_weights]
    hf_kernel = next(v for v in encoder.hf_model.weights if "q_proj/kernel" in v.name)
    hf_before = hf_kernel.numpy().copy()
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    after = model.predict(x, verbose=0)
    assert np.abs(after - before).max() > 1e-4  # the predictions changed
    assert not np.allclose(hf_kernel.numpy(), hf_before)  # the HF model's variable moved
    for old, v in zip(frozen_before, encoder.non_trainable_weights):
        np.testing.assert_array_equal(np.asarray(v), old)  # the frozen encoder did not

    path = tmp_path / "fold.weights.h5"
    model.save_weights(path)
    restored = build_wav2vec2_classifier(3, SAMPLES, pretrained=str(tiny_folder))
    assert np.abs(restored.predict(x, verbose=0) - after).max() > 1e-4  # not trained yet
    restored.load_weights(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), after, atol=1e-6)
    # A whole .keras file works too (the layer rebuilds from its config, random init).
    model.save(tmp_path / "model.keras")
    again = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), after, atol=1e-6)


def test_training_the_feature_encoder_and_layerdrop(tiny_folder):
    model = build_wav2vec2_classifier(3, SAMPLES, pretrained=tiny_folder,
                                      freeze_feature_encoder=False)
    assert model.get_layer("wav2vec2").non_trainable_weights == []
    # layerdrop is forced to 0 (the folder or overrides cannot turn it on).
    config = json.loads((tiny_folder / "config.json").read_text())
    assert config["layerdrop"] == 0.0
    with pytest.raises(ValueError, match="layerdrop must be 0"):
        build_wav2vec2_classifier(3, SAMPLES, config_overrides={**TINY_CONFIG, "layerdrop": 0.1})


def test_masked_mean_ignores_the_zero_padding():
    # A "layer" feature-norm model (the large wav2vec2s) gets the attention mask: the same
    # utterance with more zero padding gives the same pooled embedding. (The base model,
    # "group" norm, is run without a mask, as HuggingFace prescribes: its group norm and
    # attention see the padding, only the mean skips the padded frames.)
    layer_norm = {**TINY_CONFIG, "feat_extract_norm": "layer", "do_stable_layer_norm": True}
    model = build_wav2vec2_classifier(3, SAMPLES, config_overrides=layer_norm)
    encoder = model.get_layer("wav2vec2")
    x, _ = waveforms(2)
    short = x[1].copy()
    short[SAMPLES // 2:] = 0.0
    longer = np.zeros(2 * SAMPLES, "float32")
    longer[:SAMPLES] = short
    wide = Wav2Vec2Encoder(encoder.hf_config, hf_model=encoder.hf_model, name="wide")
    a = np.asarray(encoder(short[None], training=False))
    b = np.asarray(wide(longer[None], training=False))
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert encoder.compute_output_shape((None, SAMPLES)) == (None, 32)
    # Frames of the valid samples only: (n - kernel) // stride + 1 per convolution.
    config = encoder.config_object
    assert int(w2v.feature_lengths(SAMPLES, config)) == 49  # 3990//5+1=799, 199, 49
    sequence = Wav2Vec2Encoder(encoder.hf_config, hf_model=encoder.hf_model, pooling=None,
                               name="sequence")
    frames = sequence.compute_output_shape((None, SAMPLES))[1]
    assert np.asarray(sequence(short[None])).shape == (1, frames, 32)


def test_hub_name_offline_fails_with_one_clear_message(monkeypatch):
    monkeypatch.setattr(w2v, "_hub_unreachable",
                        lambda: "huggingface.co cannot be reached: no network")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(PretrainedUnavailable) as caught:
        build_wav2vec2_classifier(7, pretrained="facebook/wav2vec2-base")
    message = str(caught.value)
    assert message.startswith("cannot download facebook/wav2vec2-base here")
    assert message.endswith("give --pretrained PATH to a local copy (save_pretrained folder)")
    assert "\n" not in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedUnavailable, match="HF_HUB_OFFLINE"):
        w2v.pretrained_config("facebook/wav2vec2-base")


def test_a_missing_folder_is_a_user_error(tmp_path):
    from ser_tf.util.errors import UserError

    with pytest.raises(UserError, match="no such folder"):
        build_wav2vec2_classifier(7, pretrained=str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="no config.json"):
        build_wav2vec2_classifier(7, pretrained=str(tmp_path))
    assert w2v.is_hub_name("facebook/wav2vec2-base")
    assert not w2v.is_hub_name(str(tmp_path)) and not w2v.is_hub_name("./local")


@pytest.mark.slow
def test_tflite_float32_and_float16_convert_with_builtin_ops_only(tiny_folder, tmp_path):
    from ser_tf.export.tflite import export_variants, flex_ops
    from ser_tf.lite import LiteModel

    model = build_wav2vec2_classifier(3, SAMPLES, pretrained=tiny_folder)
    x, _ = waveforms(4)
    reference = model.predict(x, verbose=0)
    paths = export_variants(model, tmp_path, labels=["a", "b", "c"], name="w2v",
                            variants=("float32", "float16"),
                            input_spec={"kind": "waveform", "sample_rate": 16000,
                                        "samples": SAMPLES})
    for variant, tolerance in (("float32", 1e-4), ("float16", 5e-3)):
        content = paths[variant].read_bytes()
        assert flex_ops(content) == []
        np.testing.assert_allclose(LiteModel(paths[variant]).predict(x), reference,
                                   atol=tolerance)
    assert "float32" in w2v.TFLITE_STATUS and "builtin" in w2v.TFLITE_STATUS


class Killed(RuntimeError):
    pass


@pytest.mark.slow
def test_a_killed_fold_resumes_to_the_uninterrupted_fold(tiny_folder, tmp_path, monkeypatch):
    """The runner's fold training, killed in epoch 3 of 4 and resumed, ends with the
    weights of the uninterrupted fold: the backup holds every wav2vec2 variable. (The HF
    model's own dropouts and time masking draw unseeded numbers, so they are off here;
    the head's Keras dropout is on.)"""
    from ser_tf.features.cache import FeatureSet
    from ser_tf.training import kfold
    from ser_tf.training.classifier import FitConfig, train_fold
    from ser_tf.training.protocols import Fold
    from ser_tf.training.rundir import WEIGHTS_FILE
    from ser_tf.training.sources import CachedFeatureSource

    x, y = waveforms(18)
    ids = [f"u{i:02d}" for i in range(len(x))]
    source = CachedFeatureSource(FeatureSet(x, y.argmax(1), ids, ("a", "b", "c"),
                                            [None] * len(x)))
    fold = Fold(index=0, train_ids=ids[6:], val_ids=ids[3:6], test_ids=ids[:3],
                selection_on_test=False)
    quiet = {"hidden_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
             "feat_proj_dropout": 0.0, "mask_time_prob": 0.0}

    def build(num_outputs):
        return build_wav2vec2_classifier(num_outputs, SAMPLES, pretrained=tiny_folder,
                                         config_overrides=quiet, dropout=0.3)

    fit = FitConfig(epochs=4, batch_size=4, learning_rate=1e-3, checkpoint="last",
                    seed=5, jit_compile=False)
    run = dict(build_model=build, fit=fit, source=source, n_folds=1, quiet=True)
    uninterrupted = train_fold(fold, tmp_path / "a", **run)

    class KillMidEpoch(keras.callbacks.Callback):
        epoch = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == 2 and batch == 1:
                raise Killed("killed in epoch 3")

    original = kfold.fold_callbacks
    monkeypatch.setattr(kfold, "fold_callbacks",
                        lambda *a, **k: original(*a, **k) + [KillMidEpoch()])
    with pytest.raises(Killed):
        train_fold(fold, tmp_path / "b", **run)
    monkeypatch.setattr(kfold, "fold_callbacks", original)
    resumed = train_fold(fold, tmp_path / "b", **run)
    assert resumed["resumed"][0]["at_epoch"] == 2
    assert resumed["history"]["loss"] == pytest.approx(uninterrupted["history"]["loss"],
                                                       rel=1e-5)
    a, b = build(3), build(3)
    a.load_weights(tmp_path / "a" / WEIGHTS_FILE)
    b.load_weights(tmp_path / "b" / WEIGHTS_FILE)
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_allclose(np.asarray(va), np.asarray(vb), atol=1e-5)
