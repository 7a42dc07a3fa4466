"""The label smoothing of TIM-Net's code of the paper's time, kept as an ablation.

The code that produced the published numbers (TIM-Net 1.0, February 2023) smoothed the
training targets with ``y[train] = smooth_labels(y[train], 0.1)`` inside its fold loop,
writing them back into the one label array of the whole corpus; the authors' pull request
#14 (merged August 2023) made it a copy. So fold ``k`` (in the order ``KFold.split`` gives
them) trained each utterance on its one-hot target smoothed once for every fold ``0 … k``
whose training part held it:

    y (1 - s)^n + (1 - (1 - s)^n) / K,   n = the count of those folds (1 ≤ n ≤ k + 1),

i.e. from the ordinary smoothing (s = 0.1) in the first fold up to an effective
1 - 0.9^9 ≈ 0.61 in the tenth of ten (each utterance is tested in one fold, so trained in
at most nine). Validation targets were smoothed too, which changes ``val_loss`` but not
``val_accuracy`` (the argmax), the criterion the authors' checkpoint used, so here
validation and test keep hard labels. Our default runs smooth once, inside the loss
(:mod:`ser_tf.training.losses`): the fixed code. ``--compounded-smoothing`` trains the
published code's targets instead (``label_smoothing`` of the loss 0, the factor in the
config as ``compounded_smoothing``, so another run id).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ser_tf.training.sources import CachedFeatureSource


def smoothing_counts(folds: Sequence) -> list[dict[str, int]]:
    """For each fold in order, how many times each of its training ids has been smoothed
    when it trains: the number of folds up to and including this one that trained on it."""
    seen: dict[str, int] = {}
    counts = []
    for fold in folds:
        for uid in fold.train_ids:
            seen[uid] = seen.get(uid, 0) + 1
        counts.append({uid: seen[uid] for uid in fold.train_ids})
    return counts


def compounded_targets(labels, counts, num_classes: int, factor: float) -> np.ndarray:
    """One-hot targets of class indices ``labels``, each smoothed ``counts[i]`` times by
    ``y (1 - factor) + factor / num_classes``: ``(len(labels), num_classes)`` float32."""
    labels = np.asarray(labels)
    counts = np.asarray(counts)
    if labels.shape != counts.shape or labels.ndim != 1:
        raise ValueError(f"need one count per label, got shapes {labels.shape} and "
                         f"{counts.shape}")
    if not 0.0 <= float(factor) < 1.0:
        raise ValueError(f"factor must be in [0, 1), got {factor!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range "
                         f"[{labels.min()}, {labels.max()}]")
    if counts.size and counts.min() < 0:
        raise ValueError("smoothing counts must be >= 0")
    kept = (1.0 - float(factor)) ** counts.astype(np.float64)
    targets = np.eye(num_classes)[labels] * kept[:, None] + ((1.0 - kept) / num_classes)[:, None]
    return targets.astype(np.float32)


class CompoundedSmoothingSource(CachedFeatureSource):
    """Cached features whose training batches carry the compounded targets of ``folds``
    (module docstring); validation and test batches are the plain one-hot ones.

    A training split must be exactly the training ids of one of ``folds`` (the folds the
    run trains, in their order): anything else is refused, since its smoothing counts
    would be undefined."""

    def __init__(self, feature_set, folds: Sequence, factor: float):
        super().__init__(feature_set)
        if feature_set.features is None:
            raise ValueError("compounded smoothing needs the features in memory (a feature "
                             "set extracted with load=False streams them)")
        if not 0.0 < float(factor) < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        self.factor = float(factor)
        self._counts = {frozenset(fold.train_ids): counts
                        for fold, counts in zip(folds, smoothing_counts(folds))}

    def dataset(self, ids, *, task, training: bool, batch_size: int, seed: int | None = None,
                repeat: bool = False, consumed: int = 0):
        if not training:
            return super().dataset(ids, task=task, training=False, batch_size=batch_size,
                                   seed=seed, repeat=repeat, consumed=consumed)
        import tensorflow as tf

        from ser_tf.features.pipeline import make_dataset

        ids = list(ids)
        counts = self._counts.get(frozenset(ids))
        if counts is None or len(ids) != len(counts):
            raise ValueError(f"compounded smoothing: these {len(ids)} training ids are not "
                             "the training part of any fold of this run, so how often each "
                             "was smoothed is undefined")
        rows = self.feature_set.index_of(ids)
        table = tf.constant(compounded_targets(self.feature_set.labels[rows],
                                               [counts[uid] for uid in ids],
                                               task.num_outputs, self.factor))
        # The examples carry their position in ``ids``; the shuffle, resume and batching
        # are the shared pipeline's, and the position picks the example's soft target.
        positions = np.arange(len(ids), dtype=np.int32)
        batches = make_dataset(self.feature_set.features[rows], positions,
                               batch_size=batch_size, shuffle=True, seed=seed, repeat=repeat,
                               consumed=consumed)
        return batches.map(lambda x, position: (x, tf.gather(table, position)))
