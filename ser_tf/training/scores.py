"""Classification scores from predictions or confusion matrices: NumPy only, so reports
and comparisons read them without loading TensorFlow.

* ``UA`` — unweighted average recall (UAR, "unweighted accuracy"): mean per-class recall over
  the classes present in ``y_true``, in %. Equals ``sklearn.metrics.balanced_accuracy_score``.
* ``WA`` — weighted accuracy = plain accuracy, in %.
* ``macro_F1`` / ``weighted_F1`` — in %, as ``sklearn.metrics.f1_score(average="macro" |
  "weighted")`` with its default label set (classes in ``y_true`` or ``y_pred``).
* ``per_class`` — ``{label: {precision, recall, f1, support}}`` for every label, rates in %,
  0 where undefined (sklearn ``zero_division=0``).
* ``confusion_matrix`` — rows = true class, columns = predicted, in label order.

TIM-Net (Ye et al. 2023) reports UAR/WAR; Light-SERNet (Aftab et al. 2022) reports UA/WA
and F1 from ``sklearn.metrics.classification_report`` over the pooled predictions of all
folds: :func:`summarize` gives both the per-fold mean ± std and the pooled matrix.
:mod:`ser_tf.training.metrics` hands these on beside the Keras metrics.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

RATE_KEYS = ("UA", "WA", "macro_F1", "weighted_F1")


def _as_class_indices(y, labels: Sequence[str], name: str) -> np.ndarray:
    """Class indices from indices, label names, one-hot rows or probability rows (argmax)."""
    y = np.asarray(y)
    if y.ndim == 2:
        if y.shape[1] != len(labels):
            raise ValueError(f"{name} has {y.shape[1]} columns for {len(labels)} labels")
        return np.argmax(y, axis=1)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (indices or names) or 2-D (probabilities), "
                         f"got shape {y.shape}")
    if y.dtype.kind in "USO":
        index = {str(label): i for i, label in enumerate(labels)}
        unknown = sorted({str(v) for v in y} - set(index))
        if unknown:
            raise ValueError(f"{name} has labels {unknown[:5]} not in {list(labels)}")
        return np.asarray([index[str(v)] for v in y], dtype=int)
    if y.dtype.kind == "f":
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name} is 1-D float but not integral: pass class indices or "
                             "2-D probabilities")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"{name} has unsupported dtype {y.dtype}")
    y = y.astype(int)
    if y.size and (y.min() < 0 or y.max() >= len(labels)):
        raise ValueError(f"{name} has class indices outside [0, {len(labels)})")
    return y


def _check_labels(labels) -> list[str]:
    labels = [str(label) for label in labels]
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be non-empty and unique, got {labels}")
    return labels


def confusion_matrix(y_true, y_pred, labels: Sequence[str]) -> np.ndarray:
    """Counts, rows = true class, columns = predicted, every label present, in label order."""
    labels = _check_labels(labels)
    t = _as_class_indices(y_true, labels, "y_true")
    p = _as_class_indices(y_pred, labels, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred have {t.size} and {p.size} samples")
    if t.size == 0:
        raise ValueError("no samples")
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def metrics_from_confusion(cm, labels: Sequence[str]) -> dict:
    """All metrics of :func:`classification_metrics` from a confusion matrix."""
    labels = _check_labels(labels)
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (len(labels), len(labels)) or (cm < 0).any() or cm.sum() == 0:
        raise ValueError(f"confusion matrix must be a non-empty {len(labels)}x{len(labels)} "
                         f"count matrix, got shape {cm.shape}")
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    # UA averages over classes that occur in y_true: a speaker fold without "disgust" must not
    # count a recall of 0 for it (sklearn balanced_accuracy_score does the same).
    present = support > 0
    # macro-F1 over classes seen in y_true or y_pred, as sklearn's default label set.
    seen = present | (predicted > 0)
    return {
        "UA": 100.0 * float(recall[present].mean()),
        "WA": 100.0 * float(tp.sum() / cm.sum()),
        "macro_F1": 100.0 * float(f1[seen].mean()),
        "weighted_F1": 100.0 * float((f1 * support).sum() / support.sum()),
        "per_class": {label: {"precision": 100.0 * float(precision[i]),
                              "recall": 100.0 * float(recall[i]),
                              "f1": 100.0 * float(f1[i]), "support": int(support[i])}
                      for i, label in enumerate(labels)},
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
        "n_samples": int(cm.sum()),
    }


def classification_metrics(y_true, y_pred, labels: Sequence[str]) -> dict:
    """UA, WA, macro/weighted F1 (all %), per-class scores and the confusion matrix.

    Args:
        y_true, y_pred: class indices, label names, or 2-D one-hot / probability rows
            (reduced by argmax).
        labels: class names in index order; every label gets a row and a column even if it
            never occurs.
    """
    labels = _check_labels(labels)
    return metrics_from_confusion(confusion_matrix(y_true, y_pred, labels), labels)


def summarize(fold_metrics: Sequence[dict]) -> dict:
    """Mean and std of each rate over folds, plus the pooled confusion matrix and its metrics.

    ``std`` is the *sample* standard deviation (``ddof=1``): folds are a sample of possible
    splits, and it is what ``pandas`` / most papers print. A single fold has no spread and
    reports ``std = 0.0``. ``pooled`` are the metrics of the summed confusion matrix (what
    Light-SERNet's pooled ``classification_report`` shows).
    """
    fold_metrics = list(fold_metrics)
    if not fold_metrics:
        raise ValueError("no fold metrics to summarize")
    labels = fold_metrics[0].get("labels")
    shapes = {np.shape(m["confusion_matrix"]) for m in fold_metrics}
    if len(shapes) != 1 or any(m.get("labels") != labels for m in fold_metrics):
        raise ValueError("fold metrics have different label sets")
    summary = {}
    for key in RATE_KEYS:
        values = np.asarray([m[key] for m in fold_metrics], dtype=float)
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        summary[key] = {"mean": float(values.mean()), "std": std}
    pooled = np.sum([np.asarray(m["confusion_matrix"]) for m in fold_metrics], axis=0)
    summary["confusion_matrix"] = pooled.tolist()
    if labels is None:
        labels = [str(i) for i in range(pooled.shape[0])]
    summary["pooled"] = metrics_from_confusion(pooled, labels)
    summary["n_folds"] = len(fold_metrics)
    summary["std_ddof"] = 1
    return summary
