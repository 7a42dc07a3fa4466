"""VGG16 transfer learning on mel-spectrogram images.

Sources: K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale
Image Recognition", ICLR 2015 (VGG16, ``keras.applications.VGG16``); the CNN family's
student report ("Speech Emotion Recognition", January 2023, after Bautista et al.,
Electronics 2022) fine-tunes an ImageNet VGG16 on mel-spectrogram images of the pooled
corpus as its fourth system.

Model, on the (frames, bins) mel spectrogram in dB of a recipe (the package's
``cnn_logmel``: 188 frames × 128 bands):

1. :class:`MelImage`: the map becomes an image with the bands as rows (the highest band on
   top, as a spectrogram is drawn) and the frames as columns, scaled **per image** to
   [0, 255] (min → 0, max → 255: the brightness a saved spectrogram picture has), the one
   channel repeated to three (a grey image; the documented alternative, a colour map such
   as viridis, would add a choice the report does not state), resized bilinearly to
   ``image_size`` (224 × 224, VGG16's native ImageNet size; ``image_size=None`` keeps the
   map's own (bins, frames) size, at least 32 × 32, which VGG16 without its top accepts),
   and ImageNet's "caffe" preprocessing (``keras.applications.vgg16.preprocess_input``:
   RGB → BGR, minus the ImageNet channel means 103.939, 116.779, 123.68; no scaling).
2. VGG16's 13 convolutions (``include_top=False``), in five blocks.
3. Head: global average pooling (512) → dropout → Dense softmax.

Weights: ``weights=None`` (random initialisation) is the default, since ImageNet weights
cannot be downloaded everywhere (not on the machine this was written on); results with it
are not comparable with the report's. ``weights_path=`` loads a local copy of Keras'
``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`` (:data:`IMAGENET_WEIGHTS_URL`,
MD5 :data:`IMAGENET_WEIGHTS_MD5`); :func:`fetch_imagenet_weights` downloads it with the
suite's resumable downloader, or says in one message where to put it.

Freeze then fine-tune: ``trainable_blocks=N`` leaves only VGG16's last N convolution blocks
(and the head) trainable: 0 trains the head on frozen ImageNet features, 5 (default,
``None`` too) trains everything. :func:`set_trainable_blocks` changes it on a built model
between two phases (recompile afterwards).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
from keras import layers

from ser_tf.util.errors import UserError

#: Keras' address of VGG16's ImageNet weights without the classifier top.
IMAGENET_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
                        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
IMAGENET_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
#: The MD5 Keras checks the file against (``keras.applications.vgg16``).
IMAGENET_WEIGHTS_MD5 = "6d6bbae143d832006294945121d1f1fc"
#: Where Keras itself caches it (``keras.utils.get_file``'s ``~/.keras/models``).
DEFAULT_WEIGHTS_PATH = Path("~/.keras/models") / IMAGENET_WEIGHTS_FILE
#: ImageNet channel means (BGR), "caffe" mode of ``keras.applications.imagenet_utils``.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
BLOCKS = 5


class WeightsUnavailable(UserError, OSError):
    """The ImageNet weights could not be downloaded; the message says where to put them
    (a :class:`~ser_tf.util.errors.UserError`: command lines print it alone)."""


@keras.saving.register_keras_serializable(package="ser_tf")
class MelImage(layers.Layer):
    """(batch, frames, bins) mel (dB) → (batch, height, width, 3) ImageNet-preprocessed
    image (module docstring, step 1).

    Args:
        image_size: ``(height, width)`` to resize to, or ``None`` for (bins, frames).
        flip_bins: highest band in the top row (``True``) or lowest (``False``).
        caffe_preprocessing: subtract the ImageNet BGR means (VGG16's preprocessing).
    """

    def __init__(self, image_size=(224, 224), *, flip_bins: bool = True,
                 caffe_preprocessing: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.image_size = None if image_size is None else tuple(int(v) for v in image_size)
        self.flip_bins = bool(flip_bins)
        self.caffe_preprocessing = bool(caffe_preprocessing)

    def call(self, features):
        from keras import ops

        x = ops.transpose(ops.cast(features, "float32"), (0, 2, 1))  # (batch, bins, frames)
        if self.flip_bins:
            x = ops.flip(x, axis=1)
        low = ops.min(x, axis=(1, 2), keepdims=True)
        high = ops.max(x, axis=(1, 2), keepdims=True)
        x = (x - low) / ops.maximum(high - low, 1e-6) * 255.0
        x = ops.repeat(ops.expand_dims(x, -1), 3, axis=-1)
        if self.image_size is not None:
            x = ops.image.resize(x, self.image_size, interpolation="bilinear")
        if self.caffe_preprocessing:
            # RGB -> BGR is the identity on a grey image; then the channel means.
            x = x - ops.convert_to_tensor(IMAGENET_BGR_MEAN, "float32")
        return x

    def compute_output_shape(self, input_shape):
        height, width = self.image_size or (input_shape[2], input_shape[1])
        return (input_shape[0], height, width, 3)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size,
                "flip_bins": self.flip_bins, "caffe_preprocessing": self.caffe_preprocessing}


def _check_weights_file(path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"VGG16 weights file {path} does not exist. Download {IMAGENET_WEIGHTS_URL} "
            f"(or run ser_tf.models.vgg16_mel.fetch_imagenet_weights) and pass its path")
    return path


def set_trainable_blocks(model, trainable_blocks: int | None) -> None:
    """Make only VGG16's last ``trainable_blocks`` blocks trainable (``None`` or 5: all;
    0: none) in ``model`` (the builder's, or VGG16 itself); the head stays trainable.
    Recompile after changing it."""
    n = BLOCKS if trainable_blocks is None else int(trainable_blocks)
    if not 0 <= n <= BLOCKS:
        raise ValueError(f"trainable_blocks must be between 0 and {BLOCKS}, got "
                         f"{trainable_blocks}")
    base = model if model.name == "vgg16" else model.get_layer("vgg16")
    first = BLOCKS - n + 1  # blocks first..5 train
    base.trainable = True  # Keras 3 passes this on to every layer and variable: reset first
    for layer in base.layers:
        if layer.name.startswith("block"):
            layer.trainable = int(layer.name[len("block")]) >= first


def build_vgg16_mel(num_classes: int = 7, input_shape=(188, 128), *,
                    image_size=(224, 224), weights: str | None = None,
                    weights_path: str | Path | None = None, trainable_blocks: int | None = None,
                    dropout: float = 0.5, name: str = "vgg16_mel") -> keras.Model:
    """VGG16 on mel images (module docstring).

    Args:
        num_classes: size of the softmax output.
        input_shape: ``(frames, bins)`` of the recipe's mel spectrogram (``cnn_logmel``:
            188 × 128).
        image_size: ``(height, width)`` the image is resized to (224 × 224, ImageNet's),
            or ``None``: the map's own (bins, frames), each at least 32.
        weights: ``None`` (random init, default: offline) or ``"imagenet"`` (Keras
            downloads or reads its cache ``~/.keras/models``; fails offline).
        weights_path: a local ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``
            (overrides ``weights``).
        trainable_blocks: VGG16's last N blocks train (0: frozen base; ``None``/5: all).
        dropout: between the pooling and the softmax.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if len(input_shape) != 2:
        raise ValueError(f"input_shape must be (frames, bins), got {input_shape}")
    frames, bins = (int(d) for d in input_shape)
    height, width = (bins, frames) if image_size is None else (int(v) for v in image_size)
    if min(height, width) < 32:
        raise ValueError(f"VGG16 needs images of at least 32 x 32, got {height} x {width}")
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights must be None or 'imagenet' (a file: weights_path=), "
                         f"got {weights!r}")
    source = str(_check_weights_file(weights_path)) if weights_path is not None else weights
    features = keras.Input(shape=(frames, bins), name="features")
    image = MelImage(image_size, name="mel_image")(features)
    base = keras.applications.VGG16(include_top=False, weights=source,
                                    input_shape=(height, width, 3))
    x = base(image)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion")(x)
    model = keras.Model(features, outputs, name=name)
    set_trainable_blocks(model, trainable_blocks)
    return model


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_imagenet_weights(dest=DEFAULT_WEIGHTS_PATH, *, url: str = IMAGENET_WEIGHTS_URL,
                           md5: str | None = IMAGENET_WEIGHTS_MD5, timeout: float = 30,
                           progress: bool = True) -> Path:
    """VGG16's ImageNet weights (no top) at ``dest`` (a file path, or a folder for the
    file's own name; default Keras' cache), downloaded with the suite's resumable
    downloader (:mod:`ser_tf.data.download`) unless already there with the right MD5.

    Raises:
        WeightsUnavailable: one message naming the URL and where to place the file (e.g.
            no network here); also for a file whose MD5 is wrong (deleted).
    """
    from ser_tf.data.download import DownloadError, Source, _fetch

    dest = Path(dest).expanduser()
    if dest.is_dir() or str(dest).endswith(("/", "\\")):
        dest = dest / IMAGENET_WEIGHTS_FILE
    if dest.is_file() and (md5 is None or _md5(dest) == md5):
        return dest
    where = (f"download {url} on a machine with internet access and place it at {dest}, or "
             "pass --weights PATH to a copy elsewhere (--weights none: random initialisation)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    source = Source(name="the VGG16 weights", url=url, expected_files=0,
                    marker=IMAGENET_WEIGHTS_FILE, homepage=url,
                    citation="K. Simonyan, A. Zisserman, ICLR 2015")
    try:
        _fetch(url, partial, source, progress=progress, timeout=timeout)
    except DownloadError as error:
        reason = str(error).split(". ")[0]
        raise WeightsUnavailable(f"cannot get VGG16's ImageNet weights: {reason}. To use "
                                 f"them, {where}.") from None
    if md5 is not None and _md5(partial) != md5:
        partial.unlink()
        raise WeightsUnavailable(f"the downloaded VGG16 weights from {url} have the wrong "
                                 f"MD5 (expected {md5}); deleted. To use them, {where}.")
    partial.replace(dest)
    return dest
