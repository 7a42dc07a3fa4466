"""VGG16 on mel images: the image it makes of a mel map, the head and parameter count,
freezing blocks, a train step on small images, loading a local ImageNet-format weights file,
and the ImageNet download: one clear message offline, the file from a (local) server
otherwise."""

import hashlib
from urllib.error import URLError

import numpy as np
import pytest

import keras

from ser_tf.models import vgg16_mel
from ser_tf.models.vgg16_mel import (IMAGENET_WEIGHTS_FILE, IMAGENET_WEIGHTS_URL, MelImage,
                                     WeightsUnavailable, build_vgg16_mel,
                                     fetch_imagenet_weights, set_trainable_blocks)

VGG16_NOTOP = 14_714_688  # keras.applications.VGG16(include_top=False).count_params()


def mel(n=4, frames=64, bins=40, seed=0):
    return np.random.default_rng(seed).normal(-40, 10, size=(n, frames, bins)).astype("float32")


def test_mel_image_is_scaled_per_image_grey_resized_and_imagenet_preprocessed():
    x = mel(2)
    x[1] *= 3.0  # another loudness: the same picture once scaled to [0, 255]
    raw = np.asarray(MelImage((80, 96), caffe_preprocessing=False)(x))
    assert raw.shape == (2, 80, 96, 3)
    assert raw.min() >= -1e-3 and raw.max() <= 255.0 + 1e-3
    np.testing.assert_array_equal(raw[..., 0], raw[..., 1])  # grey: three equal channels
    native = np.asarray(MelImage(None, caffe_preprocessing=False)(x[:1]))
    assert native.shape == (1, 40, 64, 3)  # (bins, frames)
    # Highest band on top: row 0 is the last bin, columns are frames.
    scaled = (x[0] - x[0].min()) / (x[0].max() - x[0].min()) * 255
    np.testing.assert_allclose(native[0, :, :, 0], scaled.T[::-1], atol=1e-3)
    image = np.asarray(MelImage((80, 96))(x))
    np.testing.assert_allclose(image, raw - np.array([103.939, 116.779, 123.68]), atol=1e-3)
    layer = MelImage.from_config(MelImage((32, 48), flip_bins=False).get_config())
    assert (layer.image_size, layer.flip_bins) == ((32, 48), False)


def test_default_model_is_vgg16_on_224_images_with_a_pooled_softmax_head():
    model = build_vgg16_mel(7)  # cnn_logmel's 188 frames x 128 bands
    assert model.input_shape == (None, 188, 128) and model.output_shape == (None, 7)
    assert model.get_layer("mel_image").output.shape == (None, 224, 224, 3)
    assert model.count_params() == VGG16_NOTOP + 512 * 7 + 7
    assert model.get_layer("dropout").rate == 0.5
    with pytest.raises(ValueError, match="at least 32"):
        build_vgg16_mel(7, (20, 20), image_size=None)
    with pytest.raises(ValueError, match="weights must be"):
        build_vgg16_mel(7, weights="/some/file.h5")
    with pytest.raises(FileNotFoundError, match=IMAGENET_WEIGHTS_URL):
        build_vgg16_mel(7, weights_path="/nowhere/vgg16.h5")


def test_trainable_blocks_freeze_the_first_blocks():
    model = build_vgg16_mel(3, (64, 40), image_size=(64, 64), trainable_blocks=0)
    assert [v.path for v in model.trainable_weights] == ["emotion/kernel", "emotion/bias"]
    set_trainable_blocks(model, 2)  # blocks 4 and 5: 3 + 3 convolutions
    names = {v.path.split("/")[0] for v in model.trainable_weights}
    assert names == {"emotion", *(f"block{b}_conv{c}" for b in (4, 5) for c in (1, 2, 3))}
    set_trainable_blocks(model, None)
    assert len(model.trainable_weights) == 2 * 13 + 2
    with pytest.raises(ValueError, match="between 0 and 5"):
        set_trainable_blocks(model, 6)


def test_one_epoch_on_small_images_changes_the_predictions():
    model = build_vgg16_mel(3, (64, 40), image_size=(64, 64))
    x = mel(12)
    y = np.eye(3, dtype="float32")[np.arange(12) % 3]
    before = model.predict(x, verbose=0)
    model.compile(keras.optimizers.Adam(1e-4), "categorical_crossentropy")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.abs(model.predict(x, verbose=0) - before).max() > 1e-4


def write_keras_notop_file(path):
    """A file in the layout of Keras' ``vgg16_..._notop.h5`` (legacy HDF5 weights by layer
    name), holding a seeded random VGG16's weights."""
    import h5py
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    keras.utils.set_random_seed(3)
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    with h5py.File(path, "w") as f:
        save_weights_to_hdf5_group(f, source)
    return source


def test_weights_path_loads_a_local_imagenet_format_file(tmp_path):
    path = tmp_path / IMAGENET_WEIGHTS_FILE
    source = write_keras_notop_file(path)
    model = build_vgg16_mel(3, (64, 40), image_size=(64, 64), weights_path=path,
                            trainable_blocks=1)
    base = model.get_layer("vgg16")
    for name in ("block1_conv1", "block5_conv3"):
        for a, b in zip(base.get_layer(name).weights, source.get_layer(name).weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not base.get_layer("block4_conv3").trainable
    assert base.get_layer("block5_conv1").trainable


def test_fetch_fails_offline_with_one_message_naming_url_and_place(tmp_path, monkeypatch):
    import ser_tf.data.download as download

    def no_network(request, timeout=None):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "urlopen", no_network)
    dest = tmp_path / "weights"
    dest.mkdir()
    with pytest.raises(WeightsUnavailable) as caught:
        fetch_imagenet_weights(dest, progress=False)
    message = str(caught.value)
    assert "\n" not in message and message.count("cannot get") == 1
    assert IMAGENET_WEIGHTS_URL in message
    assert f"place it at {dest / IMAGENET_WEIGHTS_FILE}" in message
    assert "name resolution" in message
    assert list(dest.iterdir()) == []  # nothing half-written left behind


def test_fetch_downloads_checks_the_md5_and_reuses_the_file(tmp_path):
    served = tmp_path / "server" / IMAGENET_WEIGHTS_FILE
    served.parent.mkdir()
    write_keras_notop_file(served)
    md5 = hashlib.md5(served.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / IMAGENET_WEIGHTS_FILE
    got = fetch_imagenet_weights(dest, url=served.as_uri(), md5=md5, progress=False)
    assert got == dest and dest.read_bytes() == served.read_bytes()
    assert fetch_imagenet_weights(dest, url="http://unused.invalid/x", md5=md5) == dest
    with pytest.raises(WeightsUnavailable, match="wrong MD5"):
        fetch_imagenet_weights(tmp_path / "other.h5", url=served.as_uri(), md5="0" * 32,
                               progress=False)
    assert not (tmp_path / "other.h5").exists()
    assert vgg16_mel.IMAGENET_WEIGHTS_MD5 == "6d6bbae143d832006294945121d1f1fc"  # Keras'


@pytest.mark.slow
def test_tflite_builtin_ops_give_the_keras_probabilities(tmp_path):
    from ser_tf.export.tflite import export_variants, flex_ops, operators
    from ser_tf.lite import LiteModel

    model = build_vgg16_mel(3, (64, 40), image_size=(32, 32))
    x = mel(3)
    reference = model.predict(x, verbose=0)
    paths = export_variants(model, tmp_path, labels=["a", "b", "c"], name="vgg16-mel",
                            variants=("float32",), input_spec={"kind": "features"})
    content = paths["float32"].read_bytes()
    assert flex_ops(content) == [] and "RESIZE_BILINEAR" in operators(content)
    np.testing.assert_allclose(LiteModel(paths["float32"]).predict(x), reference, atol=1e-5)
