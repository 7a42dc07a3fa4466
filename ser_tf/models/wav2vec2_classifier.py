"""wav2vec 2.0 fine-tuned for emotion classification, as a Keras 3 model the suite's runner
trains, checkpoints and resumes unchanged.

Sources: A. Baevski, H. Zhou, A. Mohamed, M. Auli, "wav2vec 2.0: A Framework for
Self-Supervised Learning of Speech Representations", NeurIPS 2020 (the encoder;
``facebook/wav2vec2-base`` is its 95 M-parameter base model); the CNN family's student
report ("Speech Emotion Recognition", January 2023) fine-tunes it on the pooled corpus
as its fifth system. The encoder is HuggingFace's TensorFlow class
``transformers.TFWav2Vec2Model`` (transformers < 5, a ``tf_keras`` model; the extra
``wav2vec2`` of ``setup.cfg``).

Model: a 16 kHz waveform (batch, samples) → per-utterance zero-mean / unit-variance
normalisation over its valid samples (what ``Wav2Vec2FeatureExtractor(do_normalize=True)``
does) → the wav2vec2 encoder (last hidden state, batch × frames × hidden) → the mean over
the utterance's valid frames (masked) → dropout → Dense softmax.

**Padding and the mask.** The suite's 3 s windows zero-pad a shorter file at its end. The
valid length of a row is up to its last non-zero sample; its frame count follows the
feature encoder's convolutions (``(n - kernel) // stride + 1`` per layer), and only those
frames enter the mean. The encoder itself gets an attention mask only when its config says
``feat_extract_norm="layer"`` (the large / "lv60" models); the base model (group norm) was
pre-trained without one and reads the zero-padded signal, as HuggingFace's feature
extractor prescribes (``return_attention_mask`` false for it).

**Keras 3 around tf-keras** (docs/extending.md): a ``tf_keras`` model cannot be trained by
the runner's Keras 3 callbacks, optimisers and metrics. :class:`Wav2Vec2Encoder` is a
Keras 3 layer that holds the HuggingFace model and registers each of its variables as its
own ``keras.Variable`` wrapping *the same* ``tf.Variable`` (``keras.Variable(initializer=
v)`` keeps ``v`` as its value): the Keras 3 model, optimiser, ``save_weights`` /
``load_weights``, the resume backup and the checkpoint policy see every weight, and an
update through either side is seen by the other. Variable paths are
``<layer name>/<HF path with "." for "/">``, e.g. ``wav2vec2/encoder.layers.0.attention.
q_proj.kernel``, so per-layer-group learning rates match them
(``lr_groups=[{"match": "wav2vec2/.*", "lr_multiplier": 0.1}]``).

``layerdrop`` is forced to 0: HuggingFace's TF encoder draws layer dropping with Python's
``random`` when the graph is traced, so a layer dropped then would stay dropped for the
whole training. (HuggingFace also warns that the model's back-propagation is not
supported on CPU; with TensorFlow 2.21 it is: the grouped positional convolution's gradient
runs on CPU, tested.) Dropout and SpecAugment-style time masking (``mask_time_prob``) of
the config act in training as in HuggingFace's fine-tuning.

**Pretrained weights.** ``pretrained=None`` is a randomly initialised encoder of the
config (``config_overrides`` on top of ``Wav2Vec2Config()``'s defaults, the base model's
shape); a folder is a ``save_pretrained`` copy (``config.json`` and ``tf_model.h5`` or
``model.safetensors``; a PyTorch checkpoint's safetensors load as well); any other string
is a HuggingFace hub name (``facebook/wav2vec2-base``), read from the local HuggingFace
cache or downloaded. Without a network the download fails with one message
(:class:`PretrainedUnavailable`) asking for a local copy.

**TFLite.** The classifier converts with TFLite builtin ops only (the grouped positional
convolution, the attention and GELU included); float32 and float16 are usable, int8 is not
(:data:`TFLITE_STATUS`; tested, and recorded in the CNN family's README).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import keras
from keras import layers

from ser_tf.util.errors import UserError

#: A small stand-in for the 95 M-parameter base model (tests, smoke runs).
TINY_CONFIG = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "conv_dim": (16, 16, 16), "conv_stride": (5, 4, 4),
               "conv_kernel": (10, 4, 4), "num_conv_pos_embeddings": 16,
               "num_conv_pos_embedding_groups": 4, "vocab_size": 8}
DEFAULT_HUB_NAME = "facebook/wav2vec2-base"
SAMPLE_RATE = 16000

#: What converting the classifier to TFLite with builtin ops does (transformers 4.57.6,
#: TensorFlow 2.21; tests/test_wav2vec2_classifier.py re-checks it on a tiny model).
TFLITE_STATUS = (
    "converts with TFLite builtin ops only (no Flex ops; ser_tf.lite runs it): float32 "
    "gives Keras' probabilities (within 1e-5 on a tiny random model, 3e-7 on the base "
    "model's shape, a 378 MB file), float16 within 2e-4. "
    "The int8 variants (dynamic-range and full int8) convert too but quantise the raw "
    "waveform, its normalisation and the attention, and are wrong (probabilities off by "
    "about 0.4 on the tiny model): ship float32 or float16, as for any waveform-input model")


class PretrainedUnavailable(UserError):
    """The pretrained encoder cannot be had here (no network, no local copy)."""


def _unavailable(name: str, reason: str | None = None) -> PretrainedUnavailable:
    why = f" ({reason})" if reason else ""
    return PretrainedUnavailable(
        f"cannot download {name} here{why}: give --pretrained PATH to a local copy "
        "(save_pretrained folder)")


@contextlib.contextmanager
def _quiet_transformers():
    """HuggingFace's deprecation and CPU warnings on every model made: off meanwhile."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _config(base: dict | None, overrides: dict | None):
    """A ``Wav2Vec2Config`` of ``base`` (a config dict, or the defaults) with ``overrides``
    applied; layerdrop 0 (module docstring)."""
    from transformers import Wav2Vec2Config

    overrides = dict(overrides or {})
    if float(overrides.get("layerdrop", 0.0)) != 0.0:
        raise ValueError("layerdrop must be 0: HuggingFace's TF encoder draws layer dropping "
                         "once, when the graph is traced, so a dropped layer would stay "
                         "dropped for the whole training")
    values = {**(base or {}), **overrides, "layerdrop": 0.0}
    for key in ("conv_dim", "conv_stride", "conv_kernel"):
        if key in values:
            values[key] = list(values[key])
    return Wav2Vec2Config.from_dict(values)


def is_hub_name(pretrained: str) -> bool:
    """Whether ``pretrained`` names a hub model rather than a folder: not an existing path,
    not starting like a path (``/``, ``.``, ``~``), at most one ``/``."""
    text = str(pretrained)
    if Path(text).expanduser().exists() or text.startswith(("/", ".", "~")):
        return False
    return text.count("/") <= 1 and "\\" not in text


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


def _from_hub(loader, name: str, **kwargs):
    """``loader(name, **kwargs)`` (a HuggingFace ``from_pretrained``): the local cache
    first, then the hub (unless ``HF_HUB_OFFLINE`` is set); offline or unknown:
    :class:`PretrainedUnavailable`, one message."""
    try:
        return loader(name, local_files_only=True, **kwargs)
    except OSError:
        pass  # not in the cache
    if _offline():
        raise _unavailable(name, "HF_HUB_OFFLINE is set and it is not in the local "
                                 "HuggingFace cache")
    unreachable = _hub_unreachable()
    if unreachable:
        raise _unavailable(name, unreachable)
    import logging

    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)  # its retry lines: the error below says it once
    try:
        return loader(name, **kwargs)
    except (OSError, ValueError) as error:  # no network / not on the hub
        raise _unavailable(name, _first_line(error)) from None
    finally:
        hub_logger.setLevel(level)


def _hub_unreachable() -> str | None:
    """Why the hub's host cannot be reached, found fast (its name does not resolve), or
    None (try the download). Skipped behind a proxy, which resolves names itself."""
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname
    try:
        socket.getaddrinfo(host, 443)
    except OSError as error:
        return f"{host} cannot be reached: {error}"
    return None


def _check_folder(text: str) -> Path:
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise UserError(f"--pretrained {text}: no such folder (expected a save_pretrained "
                        "copy of a wav2vec2 model: config.json and tf_model.h5 or "
                        "model.safetensors)")
    if not (folder / "config.json").is_file():
        raise UserError(f"--pretrained {text}: no config.json in it (expected a "
                        "save_pretrained folder)")
    return folder


def pretrained_config(pretrained) -> dict:
    """The config (a dict) of ``pretrained`` (a ``save_pretrained`` folder or a hub name,
    read from the cache or downloaded); the clear errors of :func:`load_pretrained`
    without loading any weights."""
    from transformers import Wav2Vec2Config

    text = str(pretrained)
    with _quiet_transformers():
        if is_hub_name(text):
            return _from_hub(Wav2Vec2Config.from_pretrained, text).to_dict()
        return Wav2Vec2Config.from_pretrained(str(_check_folder(text))).to_dict()


def load_pretrained(pretrained, config_overrides: dict | None = None):
    """The HuggingFace ``TFWav2Vec2Model`` for ``pretrained`` (None: random init of
    ``config_overrides`` on the defaults; a ``save_pretrained`` folder; a hub name), built,
    with layerdrop 0."""
    from transformers import TFWav2Vec2Model

    with _quiet_transformers():
        if pretrained is None:
            model = TFWav2Vec2Model(_config(None, config_overrides))
            model.build_in_name_scope()
            return model
        text = str(pretrained)
        config = _config(pretrained_config(text), config_overrides)
        if is_hub_name(text):
            return _from_hub(TFWav2Vec2Model.from_pretrained, text, config=config)
        try:
            return TFWav2Vec2Model.from_pretrained(str(_check_folder(text)), config=config)
        except OSError as error:
            raise UserError(f"--pretrained {text}: cannot load its weights "
                            f"({_first_line(error)})") from None


def _variable_name(hf_name: str) -> str:
    """``tf_wav2_vec2_model/wav2vec2/encoder/layers.0/attention/k_proj/kernel:0`` →
    ``encoder.layers.0.attention.k_proj.kernel`` (Keras names cannot hold ``/``)."""
    name = hf_name.split(":")[0]
    parts = name.split("/")
    if "wav2vec2" in parts:
        parts = parts[parts.index("wav2vec2") + 1:]
    return ".".join(parts)


def feature_lengths(lengths, config):
    """Frames the feature encoder makes of ``lengths`` samples (int tensor or int)."""
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        lengths = (lengths - kernel) // stride + 1
    return lengths


@keras.saving.register_keras_serializable(package="ser_tf")
class Wav2Vec2Encoder(layers.Layer):
    """HuggingFace's ``TFWav2Vec2Model`` as a Keras 3 layer (module docstring).

    Args:
        hf_config: the wav2vec2 config as a dict (``Wav2Vec2Config.to_dict()``); rebuilds
            the architecture (weights come from ``load_weights`` or ``hf_model``).
        hf_model: an already loaded ``TFWav2Vec2Model`` (:func:`load_pretrained`) to wrap;
            default: a new one of ``hf_config`` (random weights).
        freeze_feature_encoder: the convolutional feature encoder's variables are
            registered non-trainable (HuggingFace's ``freeze_feature_encoder``).
        normalize: zero mean, unit variance per utterance over its valid samples.
        pooling: ``"mean"`` (masked mean over valid frames → (batch, hidden)) or ``None``
            (the last hidden state, (batch, frames, hidden)).
    """

    def __init__(self, hf_config: dict, *, hf_model=None, freeze_feature_encoder: bool = True,
                 normalize: bool = True, pooling: str | None = "mean", **kwargs):
        super().__init__(**kwargs)
        if pooling not in ("mean", None):
            raise ValueError(f"pooling must be 'mean' or None, got {pooling!r}")
        config = _config(hf_config, None)
        self.hf_config = config.to_dict()
        self.freeze_feature_encoder = bool(freeze_feature_encoder)
        self.normalize = bool(normalize)
        self.pooling = pooling
        if hf_model is None:
            with _quiet_transformers():
                from transformers import TFWav2Vec2Model

                hf_model = TFWav2Vec2Model(config)
                hf_model.build_in_name_scope()
        elif float(getattr(hf_model.config, "layerdrop", 0.0)) != 0.0:
            raise ValueError("the wrapped wav2vec2 model must have layerdrop 0 "
                             "(load it with load_pretrained)")
        self._hf_config_object = hf_model.config
        self.hf_model = hf_model
        self._wrapped = []

    def build(self, input_shape=None):
        """Register every HuggingFace variable as a Keras 3 variable of this layer (inside
        its name scope, so paths are ``<layer>/<hf path>``)."""
        if self.built:
            return
        seen = set()
        for variable in [*self.hf_model.trainable_weights, *self.hf_model.non_trainable_weights]:
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            name = _variable_name(variable.name)
            frozen = self.freeze_feature_encoder and name.startswith("feature_extractor.")
            wrapped = keras.Variable(initializer=variable, name=name,
                                     trainable=bool(variable.trainable) and not frozen)
            self._track_variable(wrapped)
            self._wrapped.append(wrapped)
        self.built = True

    @property
    def config_object(self):
        """The HuggingFace ``Wav2Vec2Config`` of the wrapped model."""
        return self._hf_config_object

    def _valid_lengths(self, waveforms):
        from keras import ops

        samples = ops.shape(waveforms)[1]
        nonzero = ops.cast(ops.not_equal(waveforms, 0.0), "int32")
        positions = ops.arange(1, samples + 1, dtype="int32")[None, :]
        return ops.max(nonzero * positions, axis=1)  # up to the last non-zero sample

    def call(self, waveforms, training=None):
        import tensorflow as tf

        x = tf.cast(waveforms, tf.float32)
        samples = tf.shape(x)[1]
        lengths = self._valid_lengths(x)
        sample_mask = tf.sequence_mask(lengths, samples, dtype=tf.float32)
        if self.normalize:
            count = tf.maximum(tf.reduce_sum(sample_mask, 1, keepdims=True), 1.0)
            mean = tf.reduce_sum(x * sample_mask, 1, keepdims=True) / count
            var = tf.reduce_sum(tf.square(x - mean) * sample_mask, 1, keepdims=True) / count
            x = (x - mean) / tf.sqrt(var + 1e-7) * sample_mask
        config = self._hf_config_object
        attention = sample_mask if config.feat_extract_norm == "layer" else None
        hidden = self.hf_model(x, attention_mask=attention, training=bool(training),
                               return_dict=True).last_hidden_state
        if self.pooling is None:
            return hidden
        frames = tf.maximum(feature_lengths(lengths, config), 1)
        frame_mask = tf.sequence_mask(frames, tf.shape(hidden)[1], dtype=hidden.dtype)
        total = tf.reduce_sum(hidden * frame_mask[:, :, None], axis=1)
        return total / tf.maximum(tf.reduce_sum(frame_mask, 1, keepdims=True), 1.0)

    def compute_output_shape(self, input_shape):
        hidden = int(self._hf_config_object.hidden_size)
        if self.pooling == "mean":
            return (input_shape[0], hidden)
        samples = input_shape[1]
        frames = None if samples is None else int(feature_lengths(int(samples),
                                                                  self._hf_config_object))
        return (input_shape[0], frames, hidden)

    def get_config(self):
        return {**super().get_config(), "hf_config": self.hf_config,
                "freeze_feature_encoder": self.freeze_feature_encoder,
                "normalize": self.normalize, "pooling": self.pooling}


def build_wav2vec2_classifier(num_classes: int = 7, samples: int = 48000, *,
                              pretrained: str | os.PathLike | None = None,
                              config_overrides: dict | None = None,
                              freeze_feature_encoder: bool = True, dropout: float = 0.1,
                              normalize: bool = True,
                              name: str = "wav2vec2_classifier") -> keras.Model:
    """wav2vec2 → masked mean over time → dropout → Dense softmax, on (batch, ``samples``)
    16 kHz waveforms (48,000 = the report's 3 s).

    Args:
        num_classes: size of the softmax output.
        samples: the fixed waveform length of the recipe.
        pretrained: ``None`` (random init: ``Wav2Vec2Config()``'s base-model shape with
            ``config_overrides``), a ``save_pretrained`` folder, or a hub name (cache or
            download; offline: :class:`PretrainedUnavailable`).
        config_overrides: ``Wav2Vec2Config`` fields to change (e.g.
            :data:`TINY_CONFIG`, ``{"mask_time_prob": 0.0}``); ``layerdrop`` must stay 0.
        freeze_feature_encoder: keep the convolutional feature encoder fixed (the usual
            fine-tuning recipe; HuggingFace's ``freeze_feature_encoder``).
        dropout: before the softmax layer (the config's ``final_dropout`` default, 0.1).
        normalize: per-utterance normalisation of the waveform (the feature extractor's
            ``do_normalize``).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    hf_model = load_pretrained(pretrained, config_overrides)
    waveform = keras.Input(shape=(int(samples),), name="waveform")
    encoder = Wav2Vec2Encoder(hf_model.config.to_dict(), hf_model=hf_model,
                              freeze_feature_encoder=freeze_feature_encoder,
                              normalize=normalize, name="wav2vec2")
    x = encoder(waveform)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion")(x)
    return keras.Model(waveform, outputs, name=name)

