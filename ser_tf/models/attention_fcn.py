"""Attention-based fully convolutional network (Zhang, Du, Wang & Zhang, APSIPA ASC 2018).

"Attention Based Fully Convolutional Network for Speech Emotion Recognition"
(arXiv:1806.01506): the five convolutional layers of AlexNet on a log spectrogram of any
length; the output map's H'×W' positions are the annotation vectors a_i ∈ R^C, and

    e_i = uᵀ tanh(W a_i + b),   α_i = exp(λ e_i) / Σ_k exp(λ e_k),   c = Σ_i α_i a_i

with λ = 0.3; ``c`` is classified. :class:`AttentionPooling` is that attention.

:func:`build_attention_fcn_2d`: input ``(frames, bins)``. The trunk is AlexNet's (Krizhevsky
et al. 2012): 96 11×11 stride 4, max-pool 3/2, 256 5×5, max-pool 3/2, 384 3×3, 384 3×3,
256 3×3, max-pool 3/2, ReLU after every convolution, with AlexNet's own padding (none for
conv1 and the pools, "same" for conv2-5). A 300×200 spectrogram (recipe ``attention_fcn``,
3 s) gives an 8×5 map: 40 annotation vectors of 256 values. Not reproduced: local
response normalisation (later AlexNets dropped it, and TFLite has no int8 kernel for it)
and the two-GPU grouping of conv2, conv4 and conv5. The paper's head after ``c`` is not
known here (the paper could not be read): dropout 0.5 and one softmax layer.

Variable length: with ``input_shape=(None, bins)`` the model takes a second input,
``lengths`` (the true number of frames of each padded row). The length of every stage is
computed from it (:class:`SequenceLengths`) and every feature map is zeroed beyond it
(:class:`TimeMask`), so a "same" convolution sees zeros past the end, as it would for the
utterance alone; the attention gives padded positions α = 0 exactly. An utterance's output
is therefore the same alone or padded in a batch of longer ones (tested). Inputs shorter
than :data:`MIN_FRAMES` (the shortest with one output position) are zero-padded inside.

:func:`build_attention_fcn_1d`: the 1-D variant of a published student reproduction
(RAVDESS): the time-averaged 128-band mel spectrogram, 1-D convolutions with 5, 10, 20, 30
channels, kernels 11, 5, 3, 3, strides 4, 1, 1, 1, ReLU and max-pool 3/2 after each, the
same attention with λ = 0.8, softmax. Padding is "same" throughout: with none, the third
pool would get 2 positions for a window of 3. 128 bins -> 2 annotation vectors of 30.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

#: λ of the paper (2-D) and of the student reproduction (1-D).
LAMBDA_2D = 0.3
LAMBDA_1D = 0.8
#: AlexNet's convolutions: (name, filters, kernel, stride, padding, max-pool after it).
ALEXNET_CONVS = (("conv1", 96, 11, 4, "valid", True), ("conv2", 256, 5, 1, "same", True),
                 ("conv3", 384, 3, 1, "same", False), ("conv4", 384, 3, 1, "same", False),
                 ("conv5", 256, 3, 1, "same", True))
POOL_SIZE, POOL_STRIDE = 3, 2
#: The student's 1-D stack: (filters, kernel, stride) per convolution.
CONVS_1D = ((5, 11, 4), (10, 5, 1), (20, 3, 1), (30, 3, 1))


def output_length(length, kernel: int, stride: int, padding: str):
    """Positions a convolution or pooling leaves of ``length`` (NumPy or int)."""
    if padding == "same":
        return -(-np.asarray(length) // stride)
    return (np.asarray(length) - kernel) // stride + 1


def _trunk_stages():
    """(kernel, stride, padding) of every length-changing stage of the 2-D trunk."""
    stages = []
    for _, _, kernel, stride, padding, pool in ALEXNET_CONVS:
        stages.append((kernel, stride, padding))
        if pool:
            stages.append((POOL_SIZE, POOL_STRIDE, "valid"))
    return stages


def trunk_output_length(length):
    """Length of the trunk's output map along an axis of ``length`` input positions."""
    for stage in _trunk_stages():
        length = output_length(length, *stage)
    return length


def _min_frames() -> int:
    length = 1
    while trunk_output_length(length) < 1:
        length += 1
    return length


#: The fewest frames giving one output position (67); shorter inputs are padded inside.
MIN_FRAMES = _min_frames()


@keras.saving.register_keras_serializable(package="ser_tf")
class SequenceLengths(layers.Layer):
    """``(batch,)`` int lengths -> the lengths after a convolution or pooling with this
    kernel, stride and padding, at least 1 (a padded input keeps one position)."""

    def __init__(self, kernel_size: int, strides: int, padding: str, **kwargs):
        super().__init__(**kwargs)
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        self.kernel_size, self.strides, self.padding = int(kernel_size), int(strides), padding

    def call(self, lengths):
        lengths = ops.cast(lengths, "int32")
        if self.padding == "same":
            out = (lengths + self.strides - 1) // self.strides
        else:
            out = (lengths - self.kernel_size) // self.strides + 1
        return ops.maximum(out, 1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding}


@keras.saving.register_keras_serializable(package="ser_tf")
class TimeMask(layers.Layer):
    """``[x, lengths]`` -> ``x`` with every time step (axis 1) at or past its row's length
    set to 0; ``mask_only=True`` returns the ``(batch, time)`` mask instead."""

    def __init__(self, mask_only: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.mask_only = bool(mask_only)

    def call(self, inputs):
        x, lengths = inputs
        positions = ops.expand_dims(ops.arange(ops.shape(x)[1], dtype="int32"), 0)
        mask = ops.cast(positions < ops.expand_dims(ops.cast(lengths, "int32"), -1), x.dtype)
        if self.mask_only:
            return mask
        for _ in range(len(x.shape) - 2):  # (batch, time) -> (batch, time, 1, ...)
            mask = ops.expand_dims(mask, -1)
        return x * mask

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0])
        return shape[:2] if self.mask_only else shape

    def get_config(self):
        return {**super().get_config(), "mask_only": self.mask_only}


@keras.saving.register_keras_serializable(package="ser_tf")
class PadTime(layers.Layer):
    """Zero-pad axis 1 at the end to at least ``min_length`` steps (no-op when longer)."""

    def __init__(self, min_length: int, **kwargs):
        super().__init__(**kwargs)
        self.min_length = int(min_length)

    def call(self, x):
        missing = ops.maximum(self.min_length - ops.shape(x)[1], 0)
        pads = [[0, 0], [0, missing]] + [[0, 0]] * (len(x.shape) - 2)
        return ops.pad(x, pads)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if shape[1] is not None:
            shape[1] = max(shape[1], self.min_length)
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "min_length": self.min_length}


@keras.saving.register_keras_serializable(package="ser_tf")
class AttentionPooling(layers.Layer):
    """The paper's attention over annotation vectors (module docstring).

    Input ``(batch, *positions, C)`` (e.g. ``(batch, H', W', C)``), or ``[that, mask]`` with
    ``mask`` of shape ``(batch, *positions)`` or ``(batch, H')`` (broadcast over the other
    position axes): 1 for real positions, 0 for padding, which then get α = 0 exactly.
    Returns ``(c, α)``: ``c`` of shape ``(batch, C)`` and ``α`` of shape
    ``(batch, *positions)``, summing to 1 over real positions; ``c`` alone with
    ``return_attention=False``.

    ``lam`` is λ, the sharpness of the softmax (λ → 0: the plain mean; large λ: the
    arg-max position). ``units``: the size of ``W a + b`` (default ``C``, as in the paper).
    """

    def __init__(self, lam: float = LAMBDA_2D, units: int | None = None,
                 return_attention: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.lam = float(lam)
        self.units = None if units is None else int(units)
        self.return_attention = bool(return_attention)

    def _split(self, inputs):
        if isinstance(inputs, (list, tuple)):
            return inputs[0], (inputs[1] if len(inputs) > 1 else None)
        return inputs, None

    def build(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        channels = int(shape[-1])
        units = self.units or channels
        self.w = self.add_weight(name="w", shape=(channels, units), initializer="glorot_uniform")
        self.b = self.add_weight(name="b", shape=(units,), initializer="zeros")
        self.u = self.add_weight(name="u", shape=(units, 1), initializer="glorot_uniform")

    def call(self, inputs):
        x, mask = self._split(inputs)
        # Static position counts where known (a fixed-length model): fewer shape ops in
        # the exported graph; the batch axis stays dynamic.
        spatial = tuple(x.shape[1:-1])
        if None in spatial:
            shape = ops.shape(x)
            flat_shape, spatial = (shape[0], -1, x.shape[-1]), shape[1:-1]
        else:
            flat_shape = (-1, int(np.prod(spatial)), x.shape[-1])
        flat = ops.reshape(x, flat_shape)  # (batch, L, C)
        scores = ops.squeeze(ops.matmul(ops.tanh(ops.matmul(flat, self.w) + self.b), self.u), -1)
        logits = self.lam * scores
        if mask is None:
            alpha = ops.softmax(logits, axis=-1)
        else:
            mask = ops.cast(mask, x.dtype)
            while len(mask.shape) < len(x.shape) - 1:  # (batch, H') -> (batch, H', 1, ...)
                mask = ops.expand_dims(mask, -1)
            mask = ops.broadcast_to(mask, ops.shape(x)[:-1])
            mask = ops.reshape(mask, (ops.shape(x)[0], -1))
            # The softmax over the real positions, written out: padding's weight is
            # multiplied by 0, so it is exactly 0. (Filling its logits with the most
            # negative float did the same in float, but a full-int8 export then quantised
            # the logits over a range of 3e38: every real logit fell in one step and α
            # went flat.) Every tensor here stays within the logits' own range: the
            # largest real logit is subtracted (exp() of a real position is in (0, 1], the
            # largest gives 1, so the sum is >= 1) and padding's differences are clipped
            # at 0 before exp(), so a large padded logit cannot overflow.
            lowest = ops.min(logits, axis=-1, keepdims=True)
            top = ops.max(ops.where(mask > 0, logits, lowest), axis=-1, keepdims=True)
            weights = ops.exp(ops.minimum(logits - top, 0.0)) * mask
            # maximum(., 1): no change while a row has a real position (its sum is >= 1).
            alpha = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1.0)
        # expand_dims, not alpha[:, :, None]: TFLite has no builtin for a new-axis slice.
        context = ops.sum(flat * ops.expand_dims(alpha, -1), axis=1)
        if not self.return_attention:
            return context
        return context, ops.reshape(alpha, (-1, *spatial))

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        context = (shape[0], shape[-1])
        return (context, tuple(shape[:-1])) if self.return_attention else context

    def get_config(self):
        return {**super().get_config(), "lam": self.lam, "units": self.units,
                "return_attention": self.return_attention}


def _check_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")


def build_attention_fcn_2d(num_classes: int = 4, input_shape=(None, 200), *,
                           lam: float = LAMBDA_2D, dropout: float = 0.5,
                           name: str = "attention_fcn",
                           lengths_input: bool | None = None) -> keras.Model:
    """The paper's model on a ``(frames, bins)`` log spectrogram (module docstring).

    ``input_shape[0] = None``: any length, inputs ``features`` ``(batch, frames, bins)``
    (zero-padded to the batch's longest) and ``lengths`` ``(batch,)`` int32. A number:
    a fixed number of frames; with ``lengths_input=True`` the same two inputs (utterances
    up to that long, zero-padded at the end, masked exactly as the variable-length model
    masks them: what the TFLite export of a whole-utterance run takes), else one input
    ``features`` (fixed-length crops, no mask). ``lengths_input`` defaults to
    ``frames is None``; a variable-length model always takes lengths.
    Layer names: ``conv1`` … ``conv5`` (the trunk, :func:`load_trunk_weights`),
    ``attention`` (:class:`AttentionPooling`; its second output is α over the H'×W'
    map), ``emotion`` (softmax).
    """
    _check_classes(num_classes)
    if len(input_shape) != 2:
        raise ValueError(f"input_shape must be (frames, bins), got {input_shape}")
    frames, bins = input_shape
    if lengths_input is None:
        lengths_input = frames is None
    if frames is None and not lengths_input:
        raise ValueError("a variable-length model needs its lengths input")
    if bins is None or trunk_output_length(int(bins)) < 1:
        raise ValueError(f"need at least {MIN_FRAMES} bins, got {bins}")
    if frames is not None and int(frames) < MIN_FRAMES:
        raise ValueError(f"fixed-length input needs >= {MIN_FRAMES} frames, got {frames}")
    features = keras.Input((frames, int(bins)), name="features")
    x = layers.Reshape((-1, int(bins), 1), name="add_channel")(features)
    lengths = None
    if lengths_input:
        lengths_tensor = keras.Input((), dtype="int32", name="lengths")
        lengths = lengths_tensor
        if frames is None:  # a fixed length is >= MIN_FRAMES already
            x = PadTime(MIN_FRAMES, name="pad_time")(x)
    for conv_name, filters, kernel, stride, padding, pool in ALEXNET_CONVS:
        stages = [(layers.Conv2D(filters, kernel, strides=stride, padding=padding,
                                 activation="relu", name=conv_name), kernel, stride, padding)]
        if pool:
            stages.append((layers.MaxPooling2D(POOL_SIZE, strides=POOL_STRIDE,
                                               name=f"pool{conv_name[-1]}"),
                           POOL_SIZE, POOL_STRIDE, "valid"))
        for layer, k, s, p in stages:
            x = layer(x)
            if lengths is not None:
                # Zero past each row's end: the next "same" convolution then sees zeros
                # there, as it would at the end of the utterance alone.
                lengths = SequenceLengths(k, s, p, name=f"{layer.name}_lengths")(lengths)
                x = TimeMask(name=f"{layer.name}_mask")([x, lengths])
    if lengths is None:
        context, _ = AttentionPooling(lam, name="attention")(x)
    else:
        mask = TimeMask(mask_only=True, name="attention_mask")([x, lengths])
        context, _ = AttentionPooling(lam, name="attention")([x, mask])
    context = layers.Dropout(dropout, name="dropout")(context)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion")(context)
    inputs = features if lengths is None else {"features": features, "lengths": lengths_tensor}
    return keras.Model(inputs, outputs, name=name)


def build_attention_fcn_1d(num_classes: int = 4, input_bins: int = 128, *,
                           lam: float = LAMBDA_1D, convs=CONVS_1D,
                           name: str = "attention_fcn_1d") -> keras.Model:
    """The student reproduction's 1-D model on a ``(bins,)`` time-averaged mel spectrum
    (module docstring); the attention runs over the frequency positions left by the
    convolutions (2 for 128 bins). Layer names: ``conv1`` …, ``attention``, ``emotion``."""
    _check_classes(num_classes)
    features = keras.Input((int(input_bins),), name="features")
    x = layers.Reshape((int(input_bins), 1), name="add_channel")(features)
    for i, (filters, kernel, stride) in enumerate(convs, 1):
        x = layers.Conv1D(filters, kernel, strides=stride, padding="same", activation="relu",
                          name=f"conv{i}")(x)
        x = layers.MaxPooling1D(POOL_SIZE, strides=POOL_STRIDE, padding="same",
                                name=f"pool{i}")(x)
    context, _ = AttentionPooling(lam, name="attention")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion")(context)
    return keras.Model(features, outputs, name=name)


def explain_model(model: keras.Model) -> keras.Model:
    """The same model (shared weights) with two outputs: the class probabilities and α
    (``(batch, H', W')`` for the 2-D model, ``(batch, positions)`` for the 1-D one)."""
    attention = next((layer for layer in model.layers if isinstance(layer, AttentionPooling)),
                     None)
    if attention is None:
        raise ValueError(f"model {model.name} has no AttentionPooling layer")
    if not attention.return_attention:
        raise ValueError(f"{attention.name} was built with return_attention=False")
    return keras.Model(model.inputs if len(model.inputs) > 1 else model.inputs[0],
                       [model.outputs[0], attention.output[1]], name=f"{model.name}_explain")


def alexnet_trunk(input_shape=(None, None, 1), name: str = "alexnet_trunk") -> keras.Model:
    """AlexNet's five convolutions and three max-pools alone (layers ``conv1`` … ``conv5``):
    the shape of a ``--trunk-weights`` file (:func:`load_trunk_weights`)."""
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    for conv_name, filters, kernel, stride, padding, pool in ALEXNET_CONVS:
        x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, activation="relu",
                          name=conv_name)(x)
        if pool:
            x = layers.MaxPooling2D(POOL_SIZE, strides=POOL_STRIDE, name=f"pool{conv_name[-1]}")(x)
    return keras.Model(inputs, x, name=name)


def _conv_layers(model) -> list:
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(_conv_layers(layer))
        elif isinstance(layer, layers.Conv2D):
            found.append(layer)
    return found


def load_trunk_weights(model: keras.Model, path) -> list[str]:
    """Set the five AlexNet convolutions of ``model`` from a saved model (``.keras`` or
    Keras ``.h5``) or an :func:`alexnet_trunk` weights file (``.weights.h5``).

    The source's layers are matched by name (``conv1`` … ``conv5``) when it has them all,
    else its first five ``Conv2D`` layers in order. Shapes must agree, except that a
    3-channel (RGB) first kernel is summed over its input channels for the 1-channel
    spectrogram. Returns the names of the source layers used.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such trunk weights file")
    if path.name.endswith(".weights.h5"):
        channels = _weights_file_channels(path)
        source = alexnet_trunk((None, None, channels))
        source.load_weights(path)
    else:
        source = keras.saving.load_model(path, compile=False)
    convs = _conv_layers(source)
    by_name = {layer.name: layer for layer in convs}
    names = [spec[0] for spec in ALEXNET_CONVS]
    chosen = ([by_name[n] for n in names] if set(names) <= set(by_name) else convs[:len(names)])
    if len(chosen) < len(names):
        raise ValueError(f"{path}: {len(chosen)} Conv2D layers, the trunk needs {len(names)}")
    for target_name, layer in zip(names, chosen):
        target = model.get_layer(target_name)
        kernel, bias = (np.asarray(w) for w in layer.get_weights()[:2])
        wanted = tuple(target.kernel.shape)
        if kernel.shape != wanted and kernel.shape[:2] + kernel.shape[3:] == wanted[:2] + wanted[3:] \
                and wanted[2] == 1:
            kernel = kernel.sum(axis=2, keepdims=True)  # RGB filters seen by one channel
        if kernel.shape != wanted or bias.shape != tuple(target.bias.shape):
            raise ValueError(f"{path}: layer {layer.name} has kernel {kernel.shape}, "
                             f"{target_name} needs {wanted}")
        target.set_weights([kernel, bias])
    return [layer.name for layer in chosen]


def _weights_file_channels(path: Path) -> int:
    """Input channels of conv1 in an :func:`alexnet_trunk` weights file (1 or 3)."""
    import h5py

    with h5py.File(path, "r") as f:
        shapes = []
        f.visititems(lambda key, item: shapes.append(item.shape)
                     if isinstance(item, h5py.Dataset) and len(item.shape) == 4 else None)
    first = next((s for s in shapes if s[:2] == (11, 11)), None)
    if first is None:
        raise ValueError(f"{path}: no 11x11 convolution kernel (AlexNet conv1) in the file")
    return int(first[2])
