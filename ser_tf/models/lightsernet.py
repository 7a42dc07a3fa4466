"""Light-SERNet (Aftab, Morsali, Ghaemmaghami & Champagne, ICASSP 2022).

"LIGHT-SERNET: A lightweight fully convolutional neural network for speech emotion
recognition", Sec. 2 and Fig. 1:

- three parallel paths on the (frames × coefficients × 1) input, each Conv2D with 32
  filters and kernel (11, 1) (along time), (1, 9) (along coefficients) or (3, 3), batch
  norm, ReLU and 2 × 2 average pooling ('same' padding); concatenated to 96 channels;
- local feature learning blocks (LFLBs): Conv 3×3 with 64, 96, 128, 160 filters followed
  by average pooling (2, 2), (2, 2), (2, 1), (2, 1), then a 1×1 conv with 320 filters; all
  without bias, L2 weight decay 1e-6, batch norm, ReLU;
- global average pooling, dropout 0.3, dense softmax.

463,431 parameters for 7 classes (EMO-DB); the input is 184 × 40 MFCCs for 3 s at 16 kHz
(recipe ``lightsernet``), 434 × 40 for 7 s. Spectrogram and mel-spectrogram inputs (the
paper's ablation) work the same way with their own feature sizes.
"""

from __future__ import annotations

import keras
from keras import layers

#: (filters, pool size) of the four 3×3 LFLBs; ``None``: no pooling.
LFLB_SPECS = ((64, (2, 2)), (96, (2, 2)), (128, (2, 1)), (160, (2, 1)))
PATH_KERNELS = ((11, 1), (1, 9), (3, 3))


def _lflb(x, filters: int, kernel, pool, weight_decay: float, name: str):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False,
                      kernel_regularizer=keras.regularizers.L2(weight_decay),
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    if pool is not None:
        x = layers.AveragePooling2D(pool, padding="same", name=f"{name}_pool")(x)
    return x


def build_lightsernet(num_classes: int = 7, input_shape=(184, 40), *, path_filters: int = 32,
                      lflb_specs=LFLB_SPECS, final_filters: int = 320,
                      weight_decay: float = 1e-6, dropout: float = 0.3,
                      name: str = "lightsernet") -> keras.Model:
    """The Light-SERNet classifier on a (frames, coefficients) feature map.

    Args:
        num_classes: size of the softmax output.
        input_shape: ``(frames, coefficients)``; a trailing channel axis is added inside.
        path_filters, lflb_specs, final_filters, weight_decay, dropout: the paper's values
            as defaults (Sec. 2, Fig. 1).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if len(input_shape) != 2:
        raise ValueError(f"input_shape must be (frames, coefficients), got {input_shape}")
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = layers.Reshape((*input_shape, 1), name="add_channel")(inputs)
    paths = []
    for i, kernel in enumerate(PATH_KERNELS, 1):
        p = layers.Conv2D(path_filters, kernel, padding="same", name=f"path{i}_conv")(x)
        p = layers.BatchNormalization(name=f"path{i}_bn")(p)
        p = layers.ReLU(name=f"path{i}_relu")(p)
        paths.append(layers.AveragePooling2D(2, padding="same", name=f"path{i}_pool")(p))
    x = layers.Concatenate(name="paths")(paths)
    for i, (filters, pool) in enumerate(lflb_specs, 1):
        x = _lflb(x, filters, (3, 3), pool, weight_decay, f"lflb{i}")
    x = _lflb(x, final_filters, (1, 1), None, weight_decay, f"lflb{len(lflb_specs) + 1}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name=name)
