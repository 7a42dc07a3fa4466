"""TIM-Net (Ye, Wen, Wei, Xu, Liu & Shan, ICASSP 2023).

"Temporal Modeling Matters: A Novel Temporal Emotional Modeling Approach for Speech
Emotion Recognition", Sec. 2 and Fig. 1, with the sizes of the authors' released
configuration (39 filters, kernel 2, dropout 0.1, 8 levels; 10 for IEMOCAP):

- input: (frames, 39) MFCCs (recipes ``timnet-<CORPUS>``: 188 frames for EMO-DB);
- two streams, one on the sequence as it is and one on the sequence reversed in time,
  each opened by a 1×1 causal Conv1D with 39 filters;
- per stream, ``n`` Temporal-Aware Blocks (TABs) with dilation 2^0 … 2^(n−1). A TAB is
  twice [causal Conv1D (kernel 2, dilation d) → batch norm → ReLU → SpatialDropout1D],
  and its output is the block input gated by the sigmoid of that branch;
- after every level the two streams' outputs are added and averaged over time: ``n``
  vectors of 39 values, one per receptive-field size;
- dynamic fusion (:class:`DynamicFusion`): a learnt weight per level, the weighted sum of
  the ``n`` vectors is the utterance embedding (layer ``"fused"``, the features of the
  paper's t-SNE figure); a dense softmax classifies it.

106,992 parameters for 7 classes and 8 levels (104,496 trainable; the derivation is in
``tests/test_timnet.py``). Causal padding keeps each stream strictly one-directional, so
the forward stream at frame t has seen frames ≤ t and the reversed one frames ≥ t.
"""

from __future__ import annotations

import keras
from keras import layers, ops

#: The sizes of the authors' released configuration.
FILTERS = 39
KERNEL_SIZE = 2
DROPOUT = 0.1
N_BLOCKS = 8
#: IEMOCAP utterances are longer (310 000 samples, 606 frames): two more levels make the
#: receptive field (1 + 2·(2^n − 1) frames) cover them.
N_BLOCKS_IEMOCAP = 10


@keras.saving.register_keras_serializable(package="ser_tf")
class TimeReverse(layers.Layer):
    """Reverses a ``(batch, time, channels)`` sequence along time (TFLite REVERSE_V2)."""

    def call(self, inputs):
        return ops.flip(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="ser_tf")
class DynamicFusion(layers.Layer):
    """Weighted sum of ``n`` equally sized vectors with one learnt weight per vector.

    Takes a list of ``n`` tensors ``(batch, features)`` (TIM-Net's per-level embeddings)
    and returns ``sum_i w_i · v_i`` of shape ``(batch, features)``. ``w`` has shape
    ``(n, 1)`` and is not normalised (no softmax), as in the paper's fusion: the network
    learns how much each receptive-field size counts, including its sign and scale. The
    initial weights are small uniform values, like the authors' ``"uniform"`` initialiser.
    """

    def __init__(self, initializer="random_uniform", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape \
                or not isinstance(input_shape[0], (list, tuple)):
            raise ValueError("DynamicFusion takes a list of (batch, features) tensors")
        features = {tuple(shape[1:]) for shape in input_shape}
        if len(features) != 1 or len(next(iter(features))) != 1:
            raise ValueError(f"DynamicFusion needs equal (batch, features) inputs, "
                             f"got {input_shape}")
        self.kernel = self.add_weight(name="kernel", shape=(len(input_shape), 1),
                                      initializer=self.initializer, trainable=True)

    def call(self, inputs):
        # A running sum of scaled vectors, not stack + matmul: in a full-integer TFLite
        # model a stack (PACK) forces all n level vectors onto one int8 scale, the widest
        # (level 1's), which rounded the deeper, smaller levels away (EMO-DB fold 1: int8
        # UA 85.3 against 99.0 in float). Summed, each level keeps its own scale (int8 UA
        # 95.8 on the same weights). The same function in float; weights are unchanged.
        fused = inputs[0] * self.kernel[0, 0]
        for level, vector in enumerate(inputs[1:], start=1):
            fused = fused + vector * self.kernel[level, 0]
        return fused

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(),
                "initializer": keras.initializers.serialize(self.initializer)}


def temporal_aware_block(x, dilation: int, *, filters: int = FILTERS,
                         kernel_size: int = KERNEL_SIZE, dropout: float = DROPOUT,
                         name: str = "tab"):
    """One TAB (paper Sec. 2.2): ``x · sigmoid(branch(x))``, branch = 2 × [causal dilated
    Conv1D → BN → ReLU → SpatialDropout1D]. ``x`` must already have ``filters`` channels
    (the streams' 1×1 convolutions see to it), so the gate multiplies elementwise."""
    branch = x
    for k in (1, 2):
        branch = layers.Conv1D(filters, kernel_size, dilation_rate=dilation, padding="causal",
                               name=f"{name}_conv{k}")(branch)
        branch = layers.BatchNormalization(name=f"{name}_bn{k}")(branch)
        branch = layers.ReLU(name=f"{name}_relu{k}")(branch)
        branch = layers.SpatialDropout1D(dropout, name=f"{name}_drop{k}")(branch)
    gate = layers.Activation("sigmoid", name=f"{name}_gate")(branch)
    return layers.Multiply(name=f"{name}_out")([x, gate])


def build_timnet(num_classes: int = 7, input_shape=(188, 39), *, filters: int = FILTERS,
                 kernel_size: int = KERNEL_SIZE, n_blocks: int = N_BLOCKS,
                 dropout: float = DROPOUT, name: str = "timnet") -> keras.Model:
    """The TIM-Net classifier on a (frames, coefficients) MFCC sequence (paper Sec. 2).

    Args:
        num_classes: size of the softmax output.
        input_shape: ``(frames, coefficients)``; ``frames`` may be ``None`` (any length)
            for Keras use, but TFLite export needs it fixed.
        filters, kernel_size, n_blocks, dropout: the authors' values as defaults; use
            ``n_blocks=10`` (:data:`N_BLOCKS_IEMOCAP`) for IEMOCAP.

    Layer names a caller can rely on: ``forward_tab{i}_out`` / ``backward_tab{i}_out``
    (stream outputs after level ``i``, 1-based; the backward one in reversed time),
    ``level{i}_gap``, ``fused`` (the embedding) and ``emotion`` (the softmax).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if len(input_shape) != 2:
        raise ValueError(f"input_shape must be (frames, coefficients), got {input_shape}")
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    streams = {
        "forward": inputs,
        "backward": TimeReverse(name="time_reverse")(inputs),
    }
    for direction, x in streams.items():
        # A 1×1 conv is causal whatever its padding; it maps the coefficients to `filters`
        # channels so every TAB's gate can multiply its input.
        streams[direction] = layers.Conv1D(filters, 1, padding="causal",
                                           name=f"{direction}_conv1x1")(x)
    levels = []
    for i in range(1, n_blocks + 1):
        for direction in streams:
            streams[direction] = temporal_aware_block(
                streams[direction], 2 ** (i - 1), filters=filters, kernel_size=kernel_size,
                dropout=dropout, name=f"{direction}_tab{i}")
        # The backward stream is added as it is, still in reversed time: the average over
        # time that follows does not care about the order.
        both = layers.Add(name=f"level{i}_add")([streams["forward"], streams["backward"]])
        levels.append(layers.GlobalAveragePooling1D(name=f"level{i}_gap")(both))
    fused = DynamicFusion(name="fused")(levels)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion")(fused)
    return keras.Model(inputs, outputs, name=name)


def embedding_model(model: keras.Model) -> keras.Model:
    """The same network up to the fused embedding (the paper's t-SNE features)."""
    return keras.Model(model.input, model.get_layer("fused").output,
                       name=f"{model.name}_embedding")
