"""The report's two pretrained systems in the CNN family's runs: ``--model vgg16_mel``
(ImageNet VGG16 on mel images, :mod:`ser_tf.models.vgg16_mel`) and ``--model wav2vec2``
(wav2vec 2.0 fine-tuned on the 16 kHz waveform, :mod:`ser_tf.models.wav2vec2_classifier`).

What the flags name is resolved here before anything trains, so a missing file or an
offline download fails at once with one message: ``--weights imagenet|PATH|none`` (VGG16's
ImageNet weights: Keras' file, fetched into Keras' cache if missing; a local copy; or random
initialisation) and ``--pretrained HUB-NAME|PATH|none`` (wav2vec2: a hub name, read from the
HuggingFace cache or downloaded; a ``save_pretrained`` folder; or random initialisation).

The run's config (and so its id) records *what* was loaded, not where it lies on this
machine: ``"imagenet"`` for the official VGG16 file (checked by its MD5), else the SHA-256
of the weights file; the hub name, or the folder's name and the SHA-256 of its config and
weights. ``"none"`` marks random initialisation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ser_tf.util.errors import UserError

#: ``--model`` names of the pretrained systems.
PRETRAINED_MODELS = ("vgg16_mel", "wav2vec2")
NONE = ("none", "random", "")
WAV2VEC2_WEIGHT_FILES = ("tf_model.h5", "model.safetensors", "pytorch_model.bin")


def _sha256(paths) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def resolve_vgg16_weights(text: str | None, *, quiet: bool = False):
    """``--weights`` → ``(weights_path or None, config value)``; fetches the ImageNet file
    into Keras' cache when it is missing (offline: one message where to put it)."""
    from ser_tf.models.vgg16_mel import (DEFAULT_WEIGHTS_PATH, IMAGENET_WEIGHTS_MD5, _md5,
                                         fetch_imagenet_weights)

    value = "imagenet" if text is None else str(text).strip()
    if value.lower() in NONE:
        return None, "none"
    if value.lower() == "imagenet":
        return fetch_imagenet_weights(DEFAULT_WEIGHTS_PATH, progress=not quiet), "imagenet"
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError(f"--weights {value}: no such file (expected Keras' "
                        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5, 'imagenet' or "
                        "'none')")
    if _md5(path) == IMAGENET_WEIGHTS_MD5:
        return path, "imagenet"
    return path, {"file": path.name, "sha256": _sha256([path])}


def resolve_wav2vec2(text: str | None, default: str):
    """``--pretrained`` → ``(builder's pretrained argument, config value)``. A hub name's
    config is read now (cache or download), so an offline run stops before training with
    :class:`~ser_tf.models.wav2vec2_classifier.PretrainedUnavailable`."""
    value = default if text is None else str(text).strip()
    if value.lower() in NONE:
        return None, "none"
    from ser_tf.models.wav2vec2_classifier import is_hub_name, pretrained_config

    pretrained_config(value)  # raises the one clear message if it cannot be had
    if is_hub_name(value):
        return value, value
    folder = Path(value).expanduser()
    files = [folder / "config.json", *[folder / f for f in WAV2VEC2_WEIGHT_FILES
                                        if (folder / f).is_file()]]
    if len(files) == 1:
        raise UserError(f"--pretrained {value}: no weights in it (expected one of "
                        f"{', '.join(WAV2VEC2_WEIGHT_FILES)})")
    return str(folder), {"folder": folder.name, "sha256": _sha256(files)}


def vgg16_builder(shape, weights_path, *, trainable_blocks: int, **model_kwargs):
    """``build(num_classes, **more)`` of the VGG16 mel-image model on (frames, bins)
    features of ``shape``."""

    def build(num_classes: int, **more):
        from ser_tf.models.vgg16_mel import build_vgg16_mel

        return build_vgg16_mel(num_classes, shape, weights_path=weights_path,
                               trainable_blocks=trainable_blocks, **{**model_kwargs, **more})

    return build


def wav2vec2_builder(samples: int, pretrained, *, freeze_feature_encoder: bool,
                     **model_kwargs):
    """``build(num_classes, **more)`` of the wav2vec2 classifier on ``samples``-long
    waveforms."""

    def build(num_classes: int, **more):
        from ser_tf.models.wav2vec2_classifier import build_wav2vec2_classifier

        return build_wav2vec2_classifier(num_classes, samples, pretrained=pretrained,
                                         freeze_feature_encoder=freeze_feature_encoder,
                                         **{**model_kwargs, **more})

    return build


def builder_arguments(model: str) -> set[str]:
    """Keyword arguments of ``model``'s builder a ``--hparams`` file may set."""
    import inspect

    if model == "vgg16_mel":
        from ser_tf.models.vgg16_mel import build_vgg16_mel as builder
        fixed = {"num_classes", "input_shape", "weights", "weights_path", "trainable_blocks",
                 "name"}
    else:
        from ser_tf.models.wav2vec2_classifier import build_wav2vec2_classifier as builder
        fixed = {"num_classes", "samples", "pretrained", "freeze_feature_encoder", "name"}
    return set(inspect.signature(builder).parameters) - fixed
