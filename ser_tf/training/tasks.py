"""What a model is trained to do: a task gives the loss, the metrics Keras tracks, the
targets' encoding in ``tf.data``, and how a fold's test predictions become record metrics.

- :class:`ClassificationTask`: one label per utterance, softmax output, one-hot targets;
  fold metrics are :func:`~ser_tf.training.metrics.classification_metrics` (UA, WA,
  macro-F1, confusion matrix) and the run summary :func:`~ser_tf.training.metrics.summarize`.
- :class:`RegressionTask`: several continuous outputs (e.g. arousal, valence, liking),
  loss ``1 - CCC`` averaged over the outputs (or weighted), CCC tracked per epoch; fold
  metrics are the CCC, Pearson r and RMSE of every output.
- :class:`FrameRegressionTask`: the same outputs per frame of padded sequences: loss,
  epoch CCC and fold metrics count the real frames only (the frame mask arrives as the
  batches' sample weights, as :class:`~ser_tf.training.sequence_source.SequenceRecordSource`
  serves them; the evaluation targets mark padding with NaN).

The trainer (:func:`ser_tf.training.classifier.train_fold`) and the run record ask the task,
never the label type, so a new kind of target means a new task class, not a new trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np

CCC_WEIGHTINGS = ("mean", "inverse_index")


@dataclass(frozen=True)
class ClassificationTask:
    """Single-label classification over ``labels`` (class names in index order)."""

    labels: tuple[str, ...]
    kind: str = field(default="classification", init=False)

    def __post_init__(self):
        if len(self.labels) < 2:
            raise ValueError(f"a classification task needs >= 2 labels, got {list(self.labels)}")
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))

    @property
    def num_outputs(self) -> int:
        return len(self.labels)

    def loss(self, fit):
        """The loss ``fit`` names (cross-entropy or focal, with its label smoothing)."""
        from ser_tf.training.losses import get_loss

        return get_loss(fit.loss, gamma=fit.focal_gamma, label_smoothing=fit.label_smoothing)

    def metrics(self) -> list:
        from ser_tf.training.metrics import UnweightedAccuracy

        return ["accuracy", UnweightedAccuracy(len(self.labels))]

    def encode_targets(self, targets):
        """Integer class indices (a tensor) -> what the loss takes (one-hot)."""
        import tensorflow as tf

        return tf.one_hot(targets, len(self.labels))

    def evaluate(self, y_true, predictions) -> dict:
        """A fold's test metrics from its true class indices and predicted probabilities."""
        from ser_tf.training.metrics import classification_metrics

        return classification_metrics(y_true, predictions, self.labels)

    def summarize(self, fold_metrics: Sequence[dict]) -> dict:
        from ser_tf.training.metrics import summarize

        return summarize(fold_metrics)

    def config(self) -> None:
        """Classification is what every run did before tasks existed: nothing enters the
        config, so those runs keep their ids (the labels are in the config already)."""
        return None


def regression_metrics(y_true, y_pred, outputs: Sequence[str]) -> dict:
    """CCC, Pearson r and RMSE of every output column, and their means over outputs."""
    from ser_tf.training.metrics import ccc

    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    outputs = [str(o) for o in outputs]
    t = t[:, None] if t.ndim == 1 else t
    p = p[:, None] if p.ndim == 1 else p
    if t.shape != p.shape or t.shape[1] != len(outputs):
        raise ValueError(f"targets {t.shape} and predictions {p.shape} must both be "
                         f"(N, {len(outputs)}) for outputs {outputs}")
    concordance = np.atleast_1d(ccc(t, p))
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = [float(np.corrcoef(t[:, i], p[:, i])[0, 1]) if t.shape[0] > 1 else float("nan")
                   for i in range(t.shape[1])]
    rmse = np.sqrt(((t - p) ** 2).mean(axis=0))
    metrics = {"outputs": outputs, "n": int(t.shape[0]),
               "ccc": {o: float(v) for o, v in zip(outputs, concordance)},
               "pearson": dict(zip(outputs, pearson)),
               "rmse": {o: float(v) for o, v in zip(outputs, rmse)}}
    metrics["mean_ccc"] = float(np.nanmean(concordance)) if np.isfinite(concordance).any() \
        else float("nan")
    return metrics


def summarize_regression(fold_metrics: Sequence[dict]) -> dict:
    """Mean and sample std (ddof=1) over folds of every output's CCC, and of their mean."""
    fold_metrics = list(fold_metrics)
    if not fold_metrics:
        raise ValueError("no fold metrics to summarize")
    outputs = fold_metrics[0]["outputs"]
    if any(m["outputs"] != outputs for m in fold_metrics):
        raise ValueError("fold metrics have different outputs")

    def spread(values):
        values = np.asarray(values, dtype=float)
        return {"mean": float(np.nanmean(values)),
                "std": float(np.nanstd(values, ddof=1)) if values.size > 1 else 0.0}

    summary = {f"ccc_{o}": spread([m["ccc"][o] for m in fold_metrics]) for o in outputs}
    summary["mean_ccc"] = spread([m["mean_ccc"] for m in fold_metrics])
    summary["n_folds"] = len(fold_metrics)
    summary["std_ddof"] = 1
    return summary


@dataclass(frozen=True)
class RegressionTask:
    """Continuous targets, one column per name in ``outputs``; loss ``1 - CCC``.

    ``weighting``: ``"mean"`` (each output's ``1 - CCC`` counts equally) or
    ``"inverse_index"`` (output i, counted from 1, weighted 1/i: a weighting some released
    code applied by mistake; offered to reproduce it, never the default).
    """

    outputs: tuple[str, ...]
    weighting: str = "mean"
    kind: str = field(default="regression", init=False)

    def __post_init__(self):
        if not self.outputs:
            raise ValueError("a regression task needs at least one output name")
        if self.weighting not in CCC_WEIGHTINGS:
            raise ValueError(f"weighting must be one of {CCC_WEIGHTINGS}, got {self.weighting!r}")
        object.__setattr__(self, "outputs", tuple(str(o) for o in self.outputs))

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.outputs

    def output_weights(self) -> np.ndarray:
        """Weights of the outputs' ``1 - CCC`` terms, summing to 1."""
        n = len(self.outputs)
        raw = np.ones(n) if self.weighting == "mean" else 1.0 / np.arange(1, n + 1)
        return (raw / raw.sum()).astype(np.float32)

    def loss(self, fit=None):
        """``sum_i w_i (1 - CCC_i)`` over the batch (CCC is a batch statistic)."""
        import keras
        from keras import ops

        weights = self.output_weights()
        num = len(self.outputs)

        def ccc_loss(y_true, y_pred):
            t = ops.reshape(ops.cast(y_true, "float32"), (-1, num))
            p = ops.reshape(ops.cast(y_pred, "float32"), (-1, num))
            mt, mp = ops.mean(t, axis=0), ops.mean(p, axis=0)
            cov = ops.mean((t - mt) * (p - mp), axis=0)
            denom = ops.var(t, axis=0) + ops.var(p, axis=0) + ops.square(mt - mp)
            per_output = 1.0 - 2.0 * cov / (denom + keras.config.epsilon())
            return ops.sum(per_output * ops.convert_to_tensor(weights))

        ccc_loss.__name__ = "ccc_loss"
        return ccc_loss

    def metrics(self) -> list:
        from ser_tf.training.metrics import ConcordanceCorrelation

        return [ConcordanceCorrelation(len(self.outputs), name="CCC")]

    def encode_targets(self, targets):
        import tensorflow as tf

        return tf.cast(targets, tf.float32)

    def evaluate(self, y_true, predictions) -> dict:
        return regression_metrics(y_true, predictions, self.outputs)

    def summarize(self, fold_metrics: Sequence[dict]) -> dict:
        return summarize_regression(fold_metrics)

    def config(self) -> dict:
        """What enters a run's config (and id): :func:`task_from_config` rebuilds the task."""
        return {"kind": self.kind, "outputs": list(self.outputs), "weighting": self.weighting}


def real_frame_pairs(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, D)`` targets and predictions of the real frames: ``y_true`` (rows, T, D)
    marks padding with NaN (:meth:`SequenceRecordSource.targets`), or is already (N, D)."""
    t = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float64)
    if t.shape != p.shape:
        raise ValueError(f"targets {t.shape} and predictions {p.shape} differ in shape")
    t, p = t.reshape(-1, t.shape[-1]), p.reshape(-1, p.shape[-1])
    real = ~np.isnan(t).any(axis=1)
    if not real.any():
        raise ValueError("no real frame: every target row is padding (NaN)")
    return t[real], p[real]


@dataclass(frozen=True)
class FrameRegressionTask(RegressionTask):
    """:class:`RegressionTask` per frame of padded sequences, padding masked out.

    Loss: :class:`~ser_tf.training.metrics.MaskedCCCLoss`, ``sum_i w_i (1 - CCC_i)`` over
    the frames of the batch whose sample weight is > 0 (``w`` from ``weighting``, as
    :meth:`RegressionTask.output_weights`; ``inverse_index`` is normalised to sum 1, a
    constant factor away from unnormalised ``1/i`` weights). Epoch metric:
    :class:`~ser_tf.training.metrics.MaskedConcordanceCorrelation`. Fold metrics:
    :func:`regression_metrics` of the real frames (:func:`real_frame_pairs`: padding is NaN
    in the evaluation targets). The config (and run id) differs from a
    :class:`RegressionTask`'s by its kind only, ``frame_regression``.
    """

    kind: str = field(default="frame_regression", init=False)
    #: The epoch metric needs the frame mask: Keras passes sample weights only to
    #: ``weighted_metrics`` (see :func:`compile_metrics`).
    metrics_use_sample_weights: ClassVar[bool] = True

    def loss(self, fit=None):
        from ser_tf.training.metrics import MaskedCCCLoss

        return MaskedCCCLoss(self.output_weights().tolist())

    def metrics(self) -> list:
        from ser_tf.training.metrics import MaskedConcordanceCorrelation

        return [MaskedConcordanceCorrelation(len(self.outputs), name="CCC")]

    def evaluate(self, y_true, predictions) -> dict:
        t, p = real_frame_pairs(y_true, predictions)
        return regression_metrics(t, p, self.outputs)


def compile_metrics(task) -> dict:
    """``model.compile`` keywords of ``task``'s metrics: ``{"metrics": [...]}``, or
    ``{"weighted_metrics": [...]}`` for a task whose metrics need the sample weights (Keras
    calls the metrics given as ``metrics`` without them: a masked metric would then count
    the padding frames)."""
    key = "weighted_metrics" if getattr(task, "metrics_use_sample_weights", False) else "metrics"
    return {key: task.metrics()}


TASK_KINDS = ("classification", "regression", "frame_regression")


def task_from_config(config: dict | None, labels: Sequence[str]):
    """``None`` / ``{"kind": "classification"}`` -> classification over ``labels``;
    ``{"kind": "regression", "outputs": [...], "weighting": "mean"}`` -> regression;
    ``{"kind": "frame_regression", ...}`` -> the per-frame, masked regression."""
    config = dict(config or {"kind": "classification"})
    kind = config.pop("kind", "classification")
    if kind == "classification":
        return ClassificationTask(tuple(labels))
    if kind in ("regression", "frame_regression"):
        cls = RegressionTask if kind == "regression" else FrameRegressionTask
        return cls(tuple(config.pop("outputs", labels)), **config)
    raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(TASK_KINDS)}")
