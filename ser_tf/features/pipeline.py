"""``tf.data`` input pipelines over extracted features.

- :func:`make_dataset`: features already in memory (EMO-DB, RAVDESS, ... fit easily).
- :func:`stream_dataset`: the same pipeline reading cached ``.npy`` files lazily, for
  corpora whose features do not fit in memory (IEMOCAP with long segments).
- :func:`dataset_for_split`: the rows of one split of a
  :class:`~ser_tf.features.cache.FeatureSet`, selected by utterance id.

Both builders produce the same elements in the same order for the same seed: the shuffle
acts on row positions before anything is loaded, and shuffling depends only on the row
count and the seed. Order: shuffle (seeded, a new but reproducible order every epoch)
-> load -> batch -> augment (training only) -> one-hot -> prefetch (autotuner off, see
:func:`_untuned_options`).

Resuming (``consumed``): a training dataset can start where an earlier process's stopped,
as if its first ``consumed`` examples had been read: the shuffle's seed generator skips
the orders of the passes already read (one draw per pass: each iterator over a
``reshuffle_each_iteration`` shuffle takes the next order when it is made, so making an
iterator and dropping it unread skips a pass, in milliseconds), a ``repeat`` stream skips
the examples already read of the pass it resumes in (before loading, so nothing is loaded
for them), and a seeded ``augment`` skips the random numbers of the batches already made
(:func:`fast_forward_augment`). An uninterrupted run builds its dataset with
``consumed=0``: the same pipeline as before this existed, the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from ser_tf.features.cache import FeatureSet


def _check_common(n: int, labels, batch_size, shuffle, seed, one_hot, num_classes) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels must be 1-D with one entry per example ({n}), got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if shuffle and seed is None:
        # An unseeded shuffle makes a run impossible to repeat; say so instead of guessing.
        raise ValueError("shuffle=True needs an integer seed (reproducible epochs)")
    if one_hot:
        if num_classes is None or int(num_classes) < 1:
            raise ValueError("one_hot=True needs num_classes (the corpus's label count, not "
                             "the number of classes that happen to occur in this split)")
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}) for one-hot encoding, "
                             f"got range [{labels.min()}, {labels.max()}]")
    return labels.astype(np.int32)


def consumed_batches(n: int, consumed: int, *, batch_size: int, repeat: bool,
                     drop_remainder: bool = False) -> list[tuple[int, int]]:
    """The batches made from the first ``consumed`` examples of a training stream of ``n``
    examples per pass, as ``[(rows, count), ...]``: whole passes without ``repeat`` (the
    last batch of each partial unless ``drop_remainder``), full batches across pass
    boundaries with it. Raises ValueError for a ``consumed`` no epoch boundary can give."""
    consumed, n, batch_size = int(consumed), int(n), int(batch_size)
    if consumed < 0:
        raise ValueError(f"consumed must be >= 0, got {consumed}")
    if not consumed:
        return []
    if n < 1:
        raise ValueError("an empty dataset cannot have consumed examples")
    if repeat:
        if consumed % batch_size:
            raise ValueError(f"a repeat stream is read in full batches of {batch_size}: "
                             f"consumed={consumed} is not a multiple")
        return [(batch_size, consumed // batch_size)]
    passes, rest = divmod(consumed, n)
    if rest:
        raise ValueError(f"without repeat a dataset is read in whole passes of {n} examples: "
                         f"consumed={consumed} is not a multiple")
    runs = [(batch_size, passes * (n // batch_size))]
    if n % batch_size and not drop_remainder:
        runs.append((n % batch_size, passes))
    return [(rows, count) for rows, count in runs if count]


def skip_shuffled_passes(shuffled: tf.data.Dataset, passes: int) -> None:
    """Make ``passes`` iterators over ``shuffled`` (a ``reshuffle_each_iteration`` shuffle,
    or any dataset built on one) and drop them unread: its seed generator then gives the
    next iterator the order of pass ``passes``. Nothing is read (tf.data's prefetching
    starts at the first element), so this costs a few milliseconds per pass."""
    for _ in range(int(passes)):
        iter(shuffled)


def fast_forward_augment(augment, runs: Sequence[tuple[int, int]], example_shape) -> None:
    """Advance a seeded ``augment`` past the batches ``runs`` (``[(rows, count), ...]``,
    :func:`consumed_batches`) of examples of ``example_shape``, as if it had been applied
    to them.

    An augment with a ``fast_forward(runs, example_shape)`` method (e.g.
    :func:`ser_tf.training.sources.awgn_augmentation`) does it itself; any other is applied
    to zero batches of those shapes, in order, in a sequential tf.data map as in the
    training pipeline: exact when the random numbers it draws depend on the batch shape
    only, not on the values (true of additive noise and of Keras' random layers).
    """
    runs = [(int(rows), int(count)) for rows, count in runs if count]
    if not runs or augment is None:
        return
    if callable(getattr(augment, "fast_forward", None)):
        augment.fast_forward(runs, tuple(example_shape))
        return
    apply = _augment_fn(augment)
    shape = tf.constant(list(example_shape), tf.int32)
    rows = np.concatenate([np.full(count, rows, np.int32) for rows, count in runs])
    replay = tf.data.Dataset.from_tensor_slices(rows).map(
        lambda k: tf.reduce_sum(tf.cast(apply(tf.zeros(tf.concat([[k], shape], 0))),
                                        tf.float32)))
    replay.reduce(tf.constant(0.0), lambda total, value: total + value)


def _finish(ds: tf.data.Dataset, n: int, *, load: Callable | None, batch_size: int,
            shuffle: bool, seed: int | None, augment, one_hot: bool, num_classes: int | None,
            drop_remainder: bool, repeat: bool = False, consumed: int = 0,
            example_shape: Sequence[int] = ()) -> tf.data.Dataset:
    runs = consumed_batches(n, consumed, batch_size=batch_size, repeat=repeat,
                            drop_remainder=drop_remainder)
    passes, offset = divmod(int(consumed), max(n, 1))
    if shuffle:
        # Full-size buffer: a true uniform shuffle. reshuffle_each_iteration gives each epoch
        # a new order; the seed makes the sequence of orders repeatable.
        ds = ds.shuffle(max(n, 1), seed=int(seed), reshuffle_each_iteration=True)
        # Resuming: the orders of the passes already read are drawn and dropped.
        skip_shuffled_passes(ds, passes)
    if repeat:
        # An endless stream of passes, each in a new order, cut into batches across pass
        # boundaries: every batch is full (train with steps_per_epoch = n // batch_size).
        ds = ds.repeat()
        if offset:
            ds = ds.skip(offset)  # resuming inside a pass: its examples already read
    if load is not None:
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    if augment is not None:
        apply = _augment_fn(augment)
        fast_forward_augment(augment, runs, example_shape)
        # Sequential map: a seeded random layer then draws its numbers in a fixed order.
        ds = ds.map(lambda x, y: (apply(x), y))
    if one_hot:
        depth = int(num_classes)
        ds = ds.map(lambda x, y: (x, tf.one_hot(y, depth)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(PREFETCH_BATCHES).with_options(_untuned_options())


#: Batches prepared ahead of the model; two keep it fed without tf.data's autotuner.
PREFETCH_BATCHES = 2


def _untuned_options() -> tf.data.Options:
    """Options switching tf.data's autotuner off (the order of elements does not depend on it).

    Keras makes a new iterator every epoch, and destroying one can wait for the
    autotuner's background thread while the CPU idles: up to ~3.4 s on some epochs here
    (TF 2.21, 2 cores; ``python -m ser_tf.bench.pipeline`` measures it), which in
    a Light-SERNet training of 5-7 s epochs is a large share. These pipelines are small
    (in-memory rows, or one ``.npy`` read per example), so fixed parallelism (``AUTOTUNE``
    maps then run a fixed number of parallel calls, bounded by the cores) should be enough;
    the streamed variant was not timed against the autotuner.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def _augment_fn(augment) -> Callable:
    import keras

    if isinstance(augment, keras.layers.Layer):
        return lambda x: augment(x, training=True)
    if callable(augment):
        return augment
    raise TypeError(f"augment must be a Keras layer or a callable, got {type(augment).__name__}")


def make_dataset(features, labels, *, batch_size: int, shuffle: bool, seed: int | None = None,
                 augment=None, one_hot: bool = False, num_classes: int | None = None,
                 drop_remainder: bool = False, repeat: bool = False,
                 consumed: int = 0) -> tf.data.Dataset:
    """In-memory ``tf.data.Dataset`` of ``(features, labels)`` batches.

    Args:
        features: array ``(N, ...)``, cast to float32.
        labels: N class indices.
        batch_size: examples per batch (the last batch may be smaller unless
            ``drop_remainder``).
        shuffle: shuffle every epoch (training); requires ``seed``.
        augment: a Keras layer (called with ``training=True``) or a callable applied to
            each *batch* of features. Pass it for training data only.
        one_hot: labels as one-hot float vectors of length ``num_classes``.
        repeat: an endless stream of shuffled passes batched across pass boundaries (every
            batch full); give ``fit`` a ``steps_per_epoch``.
        consumed: examples an earlier process already read from this (training) dataset,
            e.g. ``epochs_done * N`` (``epochs_done * steps_per_epoch * batch_size`` with
            ``repeat``): the dataset continues from there (see the module docstring).
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim < 1:
        raise ValueError("features must have a leading example axis")
    labels = _check_common(len(features), labels, batch_size, shuffle, seed, one_hot, num_classes)
    ds = tf.data.Dataset.from_tensor_slices((features, labels))
    return _finish(ds, len(features), load=None, batch_size=batch_size, shuffle=shuffle,
                   seed=seed, augment=augment, one_hot=one_hot, num_classes=num_classes,
                   drop_remainder=drop_remainder, repeat=repeat, consumed=consumed,
                   example_shape=features.shape[1:])


def stream_dataset(paths: Sequence, labels, *, batch_size: int, shuffle: bool,
                   seed: int | None = None, augment=None, one_hot: bool = False,
                   num_classes: int | None = None, drop_remainder: bool = False,
                   repeat: bool = False, consumed: int = 0) -> tf.data.Dataset:
    """Like :func:`make_dataset`, but each example is read from its cached ``.npy`` when needed.

    All files must hold arrays of one shape (checked for the first file up front and for
    every file as it is read; a mismatch fails naming the file). Only the file names and
    labels stay in memory; reads run in parallel with ``deterministic=True``, so the
    element order equals the in-memory pipeline's for the same seed.
    """
    paths = [str(Path(p)) for p in paths]
    labels = _check_common(len(paths), labels, batch_size, shuffle, seed, one_hot, num_classes)
    if not paths:
        raise ValueError("stream_dataset needs at least one file")
    first = np.load(paths[0], mmap_mode="r", allow_pickle=False)
    shape = tuple(first.shape)
    del first

    def read(path_bytes):
        path = path_bytes.decode("utf-8")
        array = np.load(path, allow_pickle=False)
        if array.shape != shape:
            raise ValueError(f"{path}: cached features have shape {array.shape}, expected {shape}")
        return array.astype(np.float32, copy=False)

    def load(path, label):
        x = tf.numpy_function(read, [path], tf.float32, stateful=False)
        x.set_shape(shape)
        return x, label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    return _finish(ds, len(paths), load=load, batch_size=batch_size, shuffle=shuffle, seed=seed,
                   augment=augment, one_hot=one_hot, num_classes=num_classes,
                   drop_remainder=drop_remainder, repeat=repeat, consumed=consumed,
                   example_shape=shape)


def dataset_for_split(feature_set: FeatureSet, ids: Sequence[str], *, training: bool,
                      batch_size: int, seed: int | None = None, augment=None,
                      one_hot: bool = False, num_classes: int | None = None,
                      stream: bool | None = None, drop_remainder: bool = False,
                      repeat: bool = False, consumed: int = 0) -> tf.data.Dataset:
    """The dataset of the utterances ``ids`` of a feature set (rows in ``ids`` order).

    ``training=True`` shuffles (needs ``seed``) and applies ``augment``; ``training=False``
    (validation, test) keeps the order and refuses ``augment``, so evaluation data is never
    augmented. ``repeat`` (training only): endless shuffled passes, every batch full.
    ``consumed`` (training only): examples already read by an earlier process (a resumed
    fold): the dataset continues from there (:func:`make_dataset`).
    ``num_classes`` defaults to the corpus's label count. ``stream`` defaults to streaming
    from the cache when the feature set was extracted with ``load=False``.
    """
    if not isinstance(feature_set, FeatureSet):
        raise TypeError(f"feature_set must be a FeatureSet, got {type(feature_set).__name__}")
    ids = list(ids)
    if len(set(ids)) != len(ids):
        raise ValueError("ids contains duplicates")
    if augment is not None and not training:
        raise ValueError("augment is for the training split only (training=False here)")
    if repeat and not training:
        raise ValueError("repeat is for the training split only (evaluation sees each "
                         "utterance once)")
    if consumed and not training:
        raise ValueError("consumed is for the training split only (evaluation data have no "
                         "position to resume)")
    rows = feature_set.index_of(ids)
    if one_hot and num_classes is None:
        num_classes = len(feature_set.label_names)
    labels = feature_set.labels[rows]
    options = dict(batch_size=batch_size, shuffle=training, seed=seed, augment=augment,
                   one_hot=one_hot, num_classes=num_classes, drop_remainder=drop_remainder,
                   repeat=repeat, consumed=consumed)
    if stream is None:
        stream = feature_set.features is None
    if stream:
        return stream_dataset([feature_set.paths[i] for i in rows], labels, **options)
    if feature_set.features is None:
        raise ValueError("this feature set was extracted with load=False; use stream=True")
    return make_dataset(feature_set.features[rows], labels, **options)
