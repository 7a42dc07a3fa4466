"""Metrics with one naming everywhere (records, reports, Keras logs).

Classification scores (``UA``, ``WA``, ``macro_F1``, ``weighted_F1``, per-class scores and
the confusion matrix; :func:`classification_metrics`, :func:`summarize`) are computed in
NumPy by :mod:`ser_tf.training.scores` and handed on here; this module adds the Keras side.

Continuous targets: :func:`ccc`, :func:`ccc_loss` and :class:`ConcordanceCorrelation`
(Lin, Biometrics 45, 1989) over every value of a batch; for padded sequences,
:func:`masked_ccc` (NumPy), :class:`MaskedCCCLoss` and :class:`MaskedConcordanceCorrelation`
count only the frames whose sample weight is > 0 (the frame mask).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ser_tf.training.scores import (  # noqa: F401  (handed on: one import for all metrics)
    RATE_KEYS, classification_metrics, confusion_matrix, metrics_from_confusion, summarize)


def ccc(y_true, y_pred):
    """Concordance correlation coefficient (Lin 1989), NumPy.

    ``2 cov(t, p) / (var t + var p + (mean t - mean p)^2)`` with population (1/N) moments,
    Lin's estimator. 1-D inputs give a float; ``(N, D)`` inputs give one value per column.
    Undefined (both constant and equal) gives ``nan``.
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim not in (1, 2) or t.shape[0] < 1:
        raise ValueError(f"y_true and y_pred must have the same (N,) or (N, D) shape, got "
                         f"{t.shape} and {p.shape}")
    mt, mp = t.mean(axis=0), p.mean(axis=0)
    cov = ((t - mt) * (p - mp)).mean(axis=0)
    denom = t.var(axis=0) + p.var(axis=0) + (mt - mp) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(denom > 0, 2 * cov / np.where(denom > 0, denom, 1), np.nan)
    return float(value) if t.ndim == 1 else value


@keras.saving.register_keras_serializable(package="ser_tf")
def ccc_loss(y_true, y_pred):
    """``1 - CCC`` over the batch, averaged over output dimensions (Keras loss function).

    CCC is a batch statistic, so this returns one scalar per batch; sample weights are not
    meaningful for it. Small batches give noisy CCC estimates — use batches of ≥ 32.
    """
    t = ops.cast(y_true, "float32")
    p = ops.cast(y_pred, "float32")
    if len(t.shape) == 1:
        t, p = ops.expand_dims(t, -1), ops.expand_dims(p, -1)
    mt, mp = ops.mean(t, axis=0), ops.mean(p, axis=0)
    cov = ops.mean((t - mt) * (p - mp), axis=0)
    denom = ops.var(t, axis=0) + ops.var(p, axis=0) + ops.square(mt - mp)
    return 1.0 - ops.mean(2.0 * cov / (denom + keras.config.epsilon()))


@keras.saving.register_keras_serializable(package="ser_tf")
class ConcordanceCorrelation(keras.metrics.Metric):
    """Streaming CCC over all batches of an epoch (not a mean of per-batch CCCs).

    Keeps float64 running sums of t, p, t², p², tp per output; ``result()`` is the mean
    CCC over the ``num_outputs`` dimensions.
    """

    def __init__(self, num_outputs: int = 1, name: str = "CCC", **kwargs):
        super().__init__(name=name, **kwargs)
        if int(num_outputs) < 1:
            raise ValueError(f"num_outputs must be >= 1, got {num_outputs}")
        self.num_outputs = int(num_outputs)
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float64",
                                       name="count")
        self.sums = self.add_variable(shape=(5, self.num_outputs), initializer="zeros",
                                      dtype="float64", name="sums")

    def update_state(self, y_true, y_pred, sample_weight=None):
        t = ops.reshape(ops.cast(y_true, "float64"), (-1, self.num_outputs))
        p = ops.reshape(ops.cast(y_pred, "float64"), (-1, self.num_outputs))
        batch = ops.stack([ops.sum(t, 0), ops.sum(p, 0), ops.sum(t * t, 0), ops.sum(p * p, 0),
                           ops.sum(t * p, 0)])
        self.sums.assign(self.sums + batch)
        self.count.assign(self.count + ops.cast(ops.shape(t)[0], "float64"))

    def result(self):
        n = ops.maximum(self.count, 1.0)
        st, sp, stt, spp, stp = (self.sums[i] for i in range(5))
        mt, mp = st / n, sp / n
        cov = stp / n - mt * mp
        denom = (stt / n - mt * mt) + (spp / n - mp * mp) + ops.square(mt - mp)
        value = ops.mean(2.0 * cov / ops.maximum(denom, 1e-12))
        return ops.cast(value, "float32")

    def reset_state(self):
        self.count.assign(ops.zeros_like(self.count))
        self.sums.assign(ops.zeros_like(self.sums))

    def get_config(self):
        return {**super().get_config(), "num_outputs": self.num_outputs}


def masked_ccc(y_true, y_pred, mask):
    """:func:`ccc` of the rows whose ``mask`` is > 0 (NumPy).

    ``y_true``, ``y_pred``: ``(..., D)`` (e.g. ``(rows, T, D)`` padded sequences) or
    ``(...)`` for one output; ``mask``: the leading shape (``(rows, T)``), > 0 on real frames.
    What the values of the other frames are does not matter (NaN included).
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    m = np.asarray(mask)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    single = m.shape == t.shape
    if not single and m.shape != t.shape[:-1]:
        raise ValueError(f"mask {m.shape} must be the targets' shape {t.shape} or its leading "
                         f"part {t.shape[:-1]}")
    real = m.reshape(-1) > 0
    if not real.any():
        raise ValueError("no real frame: the mask is all zero")
    if single:
        return ccc(t.reshape(-1)[real], p.reshape(-1)[real])
    return ccc(t.reshape(-1, t.shape[-1])[real], p.reshape(-1, p.shape[-1])[real])


def _mask_rows(y_true, y_pred, sample_weight, num_outputs: int, dtype: str):
    """``(N, D)`` targets and predictions with the masked-out rows set to 0, and the 0/1
    mask ``(N, 1)`` (all ones without weights): a weight > 0 marks a real frame."""
    t = ops.reshape(ops.cast(y_true, dtype), (-1, num_outputs))
    p = ops.reshape(ops.cast(y_pred, dtype), (-1, num_outputs))
    if sample_weight is None:
        return t, p, ops.ones_like(t[:, :1])
    real = ops.reshape(ops.cast(sample_weight, dtype), (-1, 1)) > 0
    zeros = ops.zeros_like(t)
    # where, not a product: padding may hold anything (NaN * 0 is NaN).
    return (ops.where(real, t, zeros), ops.where(real, p, zeros), ops.cast(real, dtype))


def masked_ccc_per_output(t, p, mask):
    """CCC of every column of ``t``, ``p`` ``(N, D)`` over the rows where ``mask`` ``(N, 1)``
    is 1 (Keras ops, differentiable; population moments, as :func:`ccc`)."""
    eps = keras.config.epsilon()
    total = ops.maximum(ops.sum(mask), eps)
    mt = ops.sum(mask * t, 0) / total
    mp = ops.sum(mask * p, 0) / total
    vt = ops.sum(mask * ops.square(t - mt), 0) / total
    vp = ops.sum(mask * ops.square(p - mp), 0) / total
    cov = ops.sum(mask * (t - mt) * (p - mp), 0) / total
    return 2.0 * cov / (vt + vp + ops.square(mt - mp) + eps)


@keras.saving.register_keras_serializable(package="ser_tf")
class MaskedCCCLoss(keras.losses.Loss):
    """``sum_i w_i (1 - CCC_i)`` over the frames of a batch whose sample weight is > 0.

    CCC is a batch statistic, so Keras' per-sample weighting cannot reach it: this loss
    takes the sample weights itself (a frame mask, e.g. the per-batch rescaled mask of
    :class:`~ser_tf.training.sequence_source.SequenceRecordSource`), uses them as a 0/1
    mask and returns one scalar per batch. ``y_true``, ``y_pred``: ``(B, T, D)`` or
    ``(N, D)``; ``output_weights``: one weight per output ``D`` (e.g. ``[1/D] * D``).
    """

    def __init__(self, output_weights=(1.0,), name="masked_ccc_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.output_weights = [float(v) for v in output_weights]
        if not self.output_weights:
            raise ValueError("output_weights needs one weight per output")

    def __call__(self, y_true, y_pred, sample_weight=None):
        t, p, mask = _mask_rows(y_true, y_pred, sample_weight, len(self.output_weights),
                                "float32")
        per_output = 1.0 - masked_ccc_per_output(t, p, mask)
        return ops.sum(per_output * ops.convert_to_tensor(self.output_weights, "float32"))

    def call(self, y_true, y_pred):  # the unmasked form, for completeness
        return self(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "output_weights": self.output_weights}


@keras.saving.register_keras_serializable(package="ser_tf")
class MaskedConcordanceCorrelation(ConcordanceCorrelation):
    """:class:`ConcordanceCorrelation` over the frames whose sample weight is > 0: the
    padding frames of a batch add nothing to the running sums or the count."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p, mask = _mask_rows(y_true, y_pred, sample_weight, self.num_outputs, "float64")
        batch = ops.stack([ops.sum(t, 0), ops.sum(p, 0), ops.sum(t * t, 0), ops.sum(p * p, 0),
                           ops.sum(t * p, 0)])
        self.sums.assign(self.sums + batch)
        self.count.assign(self.count + ops.sum(mask))


@keras.saving.register_keras_serializable(package="ser_tf")
class UnweightedAccuracy(keras.metrics.Metric):
    """Streaming UA (in %, like :func:`classification_metrics`) from a running confusion matrix.

    Accepts one-hot / probability targets or integer targets; predictions are reduced by
    argmax. Classes not yet seen in ``y_true`` are left out of the mean, as in ``UA``.
    """

    def __init__(self, num_classes: int, name: str = "UA", **kwargs):
        super().__init__(name=name, **kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.matrix = self.add_variable(shape=(self.num_classes, self.num_classes),
                                        initializer="zeros", dtype="float32", name="matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        k = self.num_classes
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == k:
            true_idx = ops.argmax(y_true, axis=-1)
        else:
            true_idx = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        pred_idx = ops.argmax(ops.reshape(y_pred, (-1, k)), axis=-1)
        true_oh = ops.one_hot(ops.reshape(true_idx, (-1,)), k, dtype="float32")
        pred_oh = ops.one_hot(pred_idx, k, dtype="float32")
        if sample_weight is not None:
            true_oh = true_oh * ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
        self.matrix.assign(self.matrix + ops.matmul(ops.transpose(true_oh), pred_oh))

    def result(self):
        support = ops.sum(self.matrix, axis=1)
        present = ops.cast(support > 0, "float32")
        recall = ops.diagonal(self.matrix) / ops.maximum(support, 1e-12)
        return 100.0 * ops.sum(recall * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self):
        self.matrix.assign(ops.zeros_like(self.matrix))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
