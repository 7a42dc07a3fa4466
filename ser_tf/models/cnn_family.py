"""The CNN family of a student report ("Speech Emotion Recognition", January 2023) built on
Bautista, Lee & Shin, "Speech emotion recognition based on parallel CNN-attention networks
with multi-fold data augmentation", Electronics 11(23), 3935, 2022.

Three classifiers on one (frames × bins) feature map (128 MFCCs × 94 frames, or a
128-band mel spectrogram × 188 frames):

- :func:`build_cnn`: one CNN block, Dense softmax;
- :func:`build_parallel_cnns`: two CNN blocks side by side on the same input, outputs
  concatenated, Dense softmax;
- :func:`build_cnn_transformer`: the two CNN blocks and a Transformer encoder (keras-hub
  ``TransformerEncoder`` ×4) in parallel; the encoder's output averaged over time joins
  the concatenation.

A CNN block: Conv 3×3 (16) → BatchNorm → ReLU → MaxPool 2×2 → Dropout 0.3; Conv 3×3 (32)
→ BN → ReLU → MaxPool 4×4 → Dropout; Conv 3×3 (64) → BN → ReLU → MaxPool 4×4 → Dropout;
Flatten. Convolutions pad "same", pools are "valid" (floor), stride = pool size.

**The BatchNorm axis.** The report's original code fed channels-first tensors
(batch, 1, 128 bins, 94 frames) to Keras' ``BatchNormalization`` with its default axis -1,
so each BN normalised per *frame position* (the last, time axis), not per channel. Its
published parameter counts only come out that way. Here the input is laid out
channels-last as (batch, 128 bins, 94 frames, 1) and ``bn_axis="time"`` (the default)
normalises over axis 2, the frame axis: the same statistics, the same parameters.
``bn_axis="channels"`` is the usual layer (axis -1, per channel).

Parameter arithmetic for 7 classes and MFCC input (bins 128, frames 94), ``bn_axis="time"``
(BN has 4 parameters per normalised position: gamma, beta, moving mean, moving variance):

====================  ==================================  ===========
layer                 output (bins, frames, channels)     parameters
====================  ==================================  ===========
conv 3×3, 16, same    (128, 94, 16)                       9·16 + 16 = 160
BN over frames        94 positions                        4·94 = 376
max-pool 2×2          (64, 47, 16)                        0
conv 3×3, 32          (64, 47, 32)                        9·16·32 + 32 = 4,640
BN over frames        47 positions                        4·47 = 188
max-pool 4×4          (16, 11, 32)                        0
conv 3×3, 64          (16, 11, 64)                        9·32·64 + 64 = 18,496
BN over frames        11 positions                        4·11 = 44
max-pool 4×4          (4, 2, 64) → flatten 512            0
====================  ==================================  ===========

One block: 23,904. Single CNN: 23,904 + Dense 512·7 + 7 (3,591) = **27,495**. Two blocks:
2 · 23,904 + Dense 1024·7 + 7 (7,175) = **54,983**. With ``bn_axis="channels"`` a block
has 4·(16 + 32 + 64) = 448 BN parameters instead of 608: 27,335 and 54,663.

Transformer branch: each keras-hub ``TransformerEncoder`` (model dim 128, 4 heads of
32, feed-forward 512, ReLU, post-norm, biases everywhere) holds attention 4·(128·128 +
128) = 66,048, feed-forward 128·512 + 512 + 512·128 + 128 = 131,712 and two layer norms
2·256 = 512: 198,272; four of them 793,088. With the two blocks and Dense 1152·7 + 7
(8,071): 47,808 + 793,088 + 8,071 = **848,967**, the published count (keras-hub's
defaults already match it). The encoder reads the features as (frames, bins): attention
runs over the 94 frames of one utterance. (The original transposed to (time, batch,
features) before a batch-first layer, so its attention ran across the utterances of a
batch; see the paper package's README.)

Mel input (188 frames): BN positions 188, 94, 23; flatten 4·5·64 = 1,280; single CNN
33,483, two CNNs 66,959, CNN + Transformer 860,943 (``bn_axis="time"``; not published).
"""

from __future__ import annotations

import keras
from keras import layers

#: (filters, pool size) of the three convolutions of a CNN block.
BLOCK_SPECS = ((16, 2), (32, 4), (64, 4))
BN_AXES = ("time", "channels")


def _bn_axis(bn_axis: str) -> int:
    """Keras axis of a (batch, bins, frames, channels) map: frames (2) or channels (-1)."""
    if bn_axis not in BN_AXES:
        raise ValueError(f"bn_axis must be one of {BN_AXES}, got {bn_axis!r}")
    return 2 if bn_axis == "time" else -1


def _feature_input(input_shape, name: str = "features"):
    if len(input_shape) != 2:
        raise ValueError(f"input_shape must be (frames, bins), got {input_shape}")
    return keras.Input(shape=tuple(int(d) for d in input_shape), name=name)


def _as_image(features, name: str):
    """(batch, frames, bins) → (batch, bins, frames, 1): the original's (1, bins, frames)
    channels-first image, channels moved last."""
    x = layers.Permute((2, 1), name=f"{name}_bins_first")(features)
    return layers.Reshape((*x.shape[1:], 1), name=f"{name}_add_channel")(x)


def cnn_block(image, *, name: str = "cnn", bn_axis: str = "time", dropout: float = 0.3,
              block_specs=BLOCK_SPECS):
    """One CNN block on a (batch, bins, frames, 1) image → its flattened output."""
    axis = _bn_axis(bn_axis)
    x = image
    for i, (filters, pool) in enumerate(block_specs, 1):
        x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(axis=axis, name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
        x = layers.MaxPooling2D(pool, name=f"{name}_pool{i}")(x)
        x = layers.Dropout(dropout, name=f"{name}_dropout{i}")(x)
    return layers.Flatten(name=f"{name}_flatten")(x)


def _classifier(x, num_classes: int):
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return layers.Dense(num_classes, activation="softmax", name="emotion")(x)


def build_cnn(num_classes: int = 7, input_shape=(94, 128), *, bn_axis: str = "time",
              dropout: float = 0.3, name: str = "cnn") -> keras.Model:
    """One CNN block and a softmax layer (27,495 parameters for 7 classes, 94 × 128).

    Args:
        num_classes: size of the softmax output.
        input_shape: ``(frames, bins)`` of the recipe's features (``cnn_mfcc`` 94 × 128,
            ``cnn_logmel`` 188 × 128).
        bn_axis: ``"time"`` (the original's BatchNorm over the frame axis) or
            ``"channels"`` (the usual per-channel BatchNorm).
        dropout: after every pooling layer.
    """
    features = _feature_input(input_shape)
    x = cnn_block(_as_image(features, "cnn"), name="cnn", bn_axis=bn_axis, dropout=dropout)
    return keras.Model(features, _classifier(x, num_classes), name=name)


def build_parallel_cnns(num_classes: int = 7, input_shape=(94, 128), *, bn_axis: str = "time",
                        dropout: float = 0.3, blocks: int = 2,
                        name: str = "parallel_cnns") -> keras.Model:
    """``blocks`` CNN blocks on the same input, concatenated, softmax (54,983 parameters
    for two blocks, 7 classes, 94 × 128). Arguments as :func:`build_cnn`."""
    features = _feature_input(input_shape)
    image = _as_image(features, "input")
    x = _parallel(image, blocks, bn_axis, dropout)
    return keras.Model(features, _classifier(x, num_classes), name=name)


def _parallel(image, blocks: int, bn_axis: str, dropout: float):
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    outputs = [cnn_block(image, name=f"cnn{i}", bn_axis=bn_axis, dropout=dropout)
               for i in range(1, blocks + 1)]
    return outputs[0] if blocks == 1 else layers.Concatenate(name="cnn_outputs")(outputs)


def transformer_branch(features, *, num_layers: int = 4, num_heads: int = 4,
                       intermediate_dim: int = 512, dropout: float = 0.0,
                       activation: str = "relu", name: str = "transformer"):
    """keras-hub ``TransformerEncoder`` layers over the frames of (batch, frames, bins)
    features, then the mean over frames: (batch, bins)."""
    from keras_hub.layers import TransformerEncoder

    x = features
    for i in range(1, num_layers + 1):
        x = TransformerEncoder(intermediate_dim, num_heads, dropout=dropout,
                               activation=activation, name=f"{name}_encoder{i}")(x)
    return layers.GlobalAveragePooling1D(name=f"{name}_mean_over_time")(x)


def build_cnn_transformer(num_classes: int = 7, input_shape=(94, 128), *,
                          bn_axis: str = "time", dropout: float = 0.3, blocks: int = 2,
                          transformer_layers: int = 4, num_heads: int = 4,
                          intermediate_dim: int = 512, transformer_dropout: float = 0.0,
                          name: str = "cnn_transformer") -> keras.Model:
    """Two CNN blocks and a Transformer encoder in parallel, concatenated, softmax
    (848,967 parameters for 7 classes, 94 × 128).

    The encoder's model dimension is the feature's bin count (128) and its sequence the
    frames; ``num_heads`` must divide the bin count. ``transformer_dropout``: keras-hub's
    default 0 (the report states none). Other arguments as :func:`build_cnn`.
    """
    features = _feature_input(input_shape)
    if int(input_shape[1]) % int(num_heads):
        raise ValueError(f"num_heads {num_heads} must divide the {input_shape[1]} bins "
                         "(the encoder's model dimension)")
    cnn = _parallel(_as_image(features, "input"), blocks, bn_axis, dropout)
    attended = transformer_branch(features, num_layers=transformer_layers,
                                  num_heads=num_heads, intermediate_dim=intermediate_dim,
                                  dropout=transformer_dropout)
    x = layers.Concatenate(name="branches")([cnn, attended])
    return keras.Model(features, _classifier(x, num_classes), name=name)


#: ``--model`` name -> builder.
BUILDERS = {"cnn": build_cnn, "parallel": build_parallel_cnns,
            "transformer": build_cnn_transformer}


def build_model(kind: str, num_classes: int = 7, input_shape=(94, 128), **kwargs) -> keras.Model:
    """The builder of ``kind`` (``cnn``, ``parallel`` or ``transformer``) called with the
    rest of the arguments."""
    if kind not in BUILDERS:
        raise ValueError(f"model must be one of {sorted(BUILDERS)}, got {kind!r}")
    return BUILDERS[kind](num_classes, input_shape, **kwargs)
