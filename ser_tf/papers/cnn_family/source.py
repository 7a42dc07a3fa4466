"""The report's "k-fold" AWGN augmentation as a data source: k noisy copies of every
*training* utterance, materialised (their features cached like the originals').

For each training utterance the report added white Gaussian noise at an SNR drawn
uniformly from [15, 30] dB, twice ("2-fold"), and trained on the originals plus the copies:
9,728 training utterances became 29,184 examples. Validation and test utterances are never
noised.

:class:`NoisyCopiesSource` serves the cached features of every utterance (validation and
test: the originals only) and, when asked for a training dataset, the fold's training
originals plus their copies, shuffled together. The copies come from
:func:`ser_tf.features.cache.extract_augmented_features` (through
:mod:`ser_tf.features.augment`): seeded per (file content, seed, copy), cached on disk, and
refused for any id that is in the fold's validation or test split. The source only makes
copies for a request that is exactly the training ids of one of the run's folds, so a
training request for anything else (a validation split, by mistake) fails instead of
noising it.
"""

from __future__ import annotations

import numpy as np


def _rows(feature_set, ids):
    """The rows of ``ids`` of a loaded :class:`~ser_tf.features.cache.FeatureSet`."""
    from ser_tf.features.cache import FeatureSet

    index = feature_set.index_of(ids)
    return FeatureSet(feature_set.features[index], feature_set.labels[index], list(ids),
                      feature_set.label_names, [feature_set.paths[i] for i in index],
                      [feature_set.source_ids[i] for i in index])


class NoisyCopiesSource:
    """Cached features plus ``copies`` AWGN copies of each training utterance of a fold.

    ``folds``: the run's folds (copies are made for their training ids only);
    ``snr_db``: the SNR range in dB; ``seed``: the noise seed. The originals are extracted
    (or read from the cache) when the source is made, each fold's copies when its training
    dataset is first asked for; one fold's copies are kept in memory at a time.
    """

    def __init__(self, manifest, recipe, cache_dir=None, *, copies: int, folds,
                 snr_db=(15.0, 30.0), seed: int = 0, quiet: bool = False):
        from ser_tf.features.cache import extract_features
        from ser_tf.training.sources import CachedFeatureSource

        if int(copies) != copies or copies < 1:
            raise ValueError(f"copies must be a positive integer, got {copies}")
        self.manifest, self.recipe, self.cache_dir = manifest, recipe, cache_dir
        self.copies, self.snr_db, self.seed = int(copies), tuple(snr_db), int(seed)
        self.quiet = quiet
        self.folds = list(folds)
        self.feature_set = extract_features(manifest, recipe, cache_dir, progress=not quiet)
        self._originals = CachedFeatureSource(self.feature_set)
        self._made: dict[int, object] = {}
        self.stats = {**self.feature_set.stats, "awgn_copies_per_training_utterance": self.copies}

    @property
    def ids(self) -> list[str]:
        return self._originals.ids

    @property
    def label_names(self) -> tuple[str, ...]:
        return self._originals.label_names

    def evaluation_order(self, ids) -> list[str]:
        return self._originals.evaluation_order(ids)

    def targets(self, ids) -> np.ndarray:
        return self._originals.targets(ids)

    def fold_of(self, train_ids):
        """The fold whose training ids are exactly ``train_ids``; ``ValueError`` if none."""
        wanted = set(train_ids)
        for fold in self.folds:
            if set(fold.train_ids) == wanted:
                return fold
        raise ValueError(f"a training dataset of {len(wanted)} ids that are not the training "
                         "ids of any fold of this run: noisy copies are made for a fold's "
                         "training split only")

    def copies_of(self, fold):
        """The features of the AWGN copies of ``fold``'s training utterances (ids
        ``<id>+awgn<j>``, ``source_ids`` the originals), made or read from the cache."""
        from ser_tf.features.cache import extract_augmented_features

        key = int(fold.index)
        if key not in self._made:
            self._made.clear()  # one fold's copies in memory at a time
            self._made[key] = extract_augmented_features(
                self.manifest, self.recipe, self.cache_dir, train_ids=fold.train_ids,
                val_ids=fold.val_ids, test_ids=fold.test_ids, k=self.copies,
                snr_range=self.snr_db, seed=self.seed, progress=not self.quiet)
        return self._made[key]

    def training_rows(self, fold):
        """The FeatureSet a training epoch reads: the fold's training originals, then
        their copies."""
        return _rows(self.feature_set, fold.train_ids).concat(self.copies_of(fold))

    def dataset(self, ids, *, task, training: bool, batch_size: int, seed: int | None = None,
                repeat: bool = False, consumed: int = 0):
        """Evaluation: the originals of ``ids``. Training: ``ids`` must be a fold's training
        ids; one epoch is every original and copy once, shuffled together. ``consumed``
        counts training utterances as the runner does (``epochs done × len(ids)``)."""
        from ser_tf.features.pipeline import dataset_for_split

        if not training:
            return self._originals.dataset(ids, task=task, training=False,
                                           batch_size=batch_size)
        if repeat:
            raise ValueError("noisy copies are read one pass per epoch; full batches "
                             "(repeat) are not supported with them")
        rows = self.training_rows(self.fold_of(ids))
        passes, rest = divmod(int(consumed), max(len(ids), 1))
        if rest:
            raise ValueError(f"consumed={consumed} is not a whole number of passes over "
                             f"{len(ids)} training utterances")
        return dataset_for_split(rows, rows.ids, training=True, seed=seed,
                                 batch_size=batch_size, one_hot=True,
                                 num_classes=task.num_outputs, consumed=passes * len(rows))
