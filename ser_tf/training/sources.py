"""Where a fold's examples come from: a data source gives, for a list of utterance ids, a
``tf.data`` pipeline of ``(inputs, targets)`` batches and the raw targets in the order that
pipeline yields them.

- :class:`CachedFeatureSource`: features extracted once and cached (a
  :class:`~ser_tf.features.cache.FeatureSet`), in memory or streamed from ``.npy`` files.
- :class:`WaveformSource`: fixed-length waveforms (the recipe's segmentation, no front-end:
  the model computes its own features), with an optional on-the-fly augmentation of the
  training split only (:func:`awgn_augmentation`: white noise at a random SNR, seeded).
- :class:`TFRecordSource`: sharded TFRecord files (:func:`write_tfrecord_shards`), read as a
  stream with a bounded shuffle buffer, so a corpus larger than memory trains too.

The protocol a source follows (duck-typed, no base class needed)::

    source.ids                      all utterance ids it can serve
    source.dataset(ids, task=..., training=..., batch_size=..., seed=..., repeat=False,
                   consumed=0)
    source.evaluation_order(ids)    ids in the order dataset(ids, training=False) yields them
    source.targets(ids)             raw targets in ids order (class indices or (N, D) floats)
    source.stats                    what preparing it cost (printed and stored)

Training datasets shuffle (seeded) and may augment; evaluation datasets never do.

``consumed`` (optional in a source of your own): the number of examples an earlier process
already read from this training dataset (a resumed fold: ``epochs_done * len(ids)``, or
``epochs_done * steps_per_epoch * batch_size`` with ``repeat``); the dataset then continues
where that process's stopped (:mod:`ser_tf.features.pipeline`, "Resuming"). A source whose
``dataset`` does not take it still resumes, but its data order is only replayed through the
shuffle's seed generator and its augmentation restarts: the fold's result says it is not
an exact resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np


def _check_ids(ids: Sequence[str], known: Mapping[str, int], what: str) -> list[str]:
    ids = list(ids)
    if len(set(ids)) != len(ids):
        raise ValueError(f"{what}: ids contain duplicates")
    missing = [i for i in ids if i not in known]
    if missing:
        raise KeyError(f"{what}: ids not in this source: {missing[:5]}")
    return ids


def _classification_only(task, what: str) -> None:
    if getattr(task, "kind", "classification") != "classification":
        raise ValueError(f"{what} holds class labels; task {task.kind!r} needs a source with "
                         "its own targets (e.g. a TFRecordSource)")


class CachedFeatureSource:
    """Cached features of a :class:`~ser_tf.features.cache.FeatureSet` (classification)."""

    def __init__(self, feature_set):
        self.feature_set = feature_set
        self._rows = {uid: i for i, uid in enumerate(feature_set.ids)}

    @property
    def ids(self) -> list[str]:
        return list(self.feature_set.ids)

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(self.feature_set.label_names)

    @property
    def stats(self) -> dict:
        return self.feature_set.stats

    def dataset(self, ids, *, task, training: bool, batch_size: int, seed: int | None = None,
                repeat: bool = False, consumed: int = 0):
        from ser_tf.features.pipeline import dataset_for_split

        _classification_only(task, "a cached feature set")
        return dataset_for_split(self.feature_set, list(ids), training=training, seed=seed,
                                 repeat=repeat, batch_size=batch_size, one_hot=True,
                                 num_classes=task.num_outputs, consumed=consumed)

    def evaluation_order(self, ids) -> list[str]:
        return _check_ids(ids, self._rows, "cached features")

    def targets(self, ids) -> np.ndarray:
        return self.feature_set.labels[self.feature_set.index_of(ids)]


def awgn_augmentation(snr_db: tuple[float, float] = (15.0, 30.0), *, seed: int) -> Callable:
    """A batch function adding white Gaussian noise to each waveform of a batch, at an SNR
    drawn uniformly from ``snr_db`` per waveform (signal power = its mean square).

    Seeded (``tf.random.Generator``): the same seed and batch order give the same noise.
    Silent rows (power 0) stay silent. Apply it to the training split only.

    ``augment.reset()`` puts the generator back to its seed (:class:`WaveformSource` does it
    for every training dataset it builds, so a fold's noise does not depend on the folds
    trained before it in the same process); ``augment.fast_forward(runs, example_shape)``
    skips the numbers of the batches ``runs`` (``[(rows, count), ...]``) at once, as a
    resumed fold needs (:func:`ser_tf.features.pipeline.fast_forward_augment`): each
    batch of ``rows`` waveforms draws ``rows`` SNRs and ``rows * samples`` normals.
    """
    import tensorflow as tf

    low, high = (float(v) for v in snr_db)
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise ValueError(f"snr_db must be finite (low, high) with low <= high, got {snr_db}")
    generator = tf.random.Generator.from_seed(int(seed))

    def augment(batch):
        batch = tf.convert_to_tensor(batch, tf.float32)
        rows = tf.shape(batch)[0]
        snr = generator.uniform([rows], low, high)
        power = tf.reduce_mean(tf.square(batch), axis=-1)
        noise = generator.normal(tf.shape(batch))
        noise_power = tf.reduce_mean(tf.square(noise), axis=-1)
        scale = tf.sqrt(power / tf.pow(10.0, snr / 10.0) / tf.maximum(noise_power, 1e-12))
        return batch + noise * scale[:, None]

    def reset():
        generator.reset_from_seed(int(seed))

    def fast_forward(runs, example_shape):
        per_row = 1 + int(np.prod(tuple(example_shape), dtype=np.int64))
        draws = sum(int(rows) * int(count) * per_row for rows, count in runs)
        if draws:
            # Philox skips ahead: the state after skip(k) is the state after drawing k numbers.
            generator.skip(tf.constant(draws, tf.int64))

    augment.reset, augment.fast_forward = reset, fast_forward
    augment.config = {"name": "awgn", "snr_db": [low, high], "seed": int(seed)}
    return augment


class WaveformSource:
    """Waveforms of a manifest at the recipe's rate and segmentation, held in memory.

    ``recipe``: anything with ``sample_rate`` and ``segment_audio(audio)`` (a
    :class:`~ser_tf.features.recipes.FeatureRecipe`); every segment must have one length.
    ``augment``: a batch function (e.g. :func:`awgn_augmentation`) for the training split;
    one with a ``reset()`` method is reset for every training dataset built, so each fold's
    augmentation starts from its seed whatever ran before it in the process.
    """

    def __init__(self, manifest, recipe, *, augment: Callable | None = None):
        from ser_tf.data.audio import read_audio

        labels = list(manifest.labels)
        waveforms, ids, targets = [], [], []
        for utterance in manifest:
            audio, _ = read_audio(utterance.path, int(recipe.sample_rate))
            waveforms.append(np.asarray(recipe.segment_audio(audio), np.float32))
            ids.append(utterance.utterance_id)
            targets.append(labels.index(utterance.label) if utterance.label in labels else -1)
        lengths = {w.shape for w in waveforms}
        if len(lengths) > 1:
            raise ValueError(f"recipe {getattr(recipe, 'name', recipe)} gives segments of "
                             f"several lengths {sorted(lengths)}; a waveform source needs one")
        self.waveforms = np.stack(waveforms) if waveforms else np.zeros((0, 0), np.float32)
        self.labels = np.asarray(targets, np.int64)
        self._ids = ids
        self._rows = {uid: i for i, uid in enumerate(ids)}
        self.label_names = tuple(labels)
        self.augment = augment
        self.stats = {"utterances": len(ids), "samples": int(self.waveforms.shape[-1])}

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def dataset(self, ids, *, task, training: bool, batch_size: int, seed: int | None = None,
                repeat: bool = False, consumed: int = 0):
        from ser_tf.features.pipeline import make_dataset

        _classification_only(task, "a waveform source")
        rows = [self._rows[i] for i in _check_ids(ids, self._rows, "waveforms")]
        if consumed and not training:
            raise ValueError("consumed is for the training split only")
        augment = self.augment if training else None
        if callable(getattr(augment, "reset", None)):
            augment.reset()
        return make_dataset(self.waveforms[rows], self.labels[rows], batch_size=batch_size,
                            shuffle=training, seed=seed, repeat=repeat and training,
                            augment=augment, one_hot=True, num_classes=task.num_outputs,
                            consumed=consumed)

    def evaluation_order(self, ids) -> list[str]:
        return _check_ids(ids, self._rows, "waveforms")

    def targets(self, ids) -> np.ndarray:
        return self.labels[[self._rows[i] for i in _check_ids(ids, self._rows, "waveforms")]]


# --- TFRecord shards ---------------------------------------------------------------------

INDEX_FILE = "index.json"


def _float_feature(values):
    import tensorflow as tf

    return tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(values).tolist()))


def write_tfrecord_shards(examples: Iterable[Mapping], out_dir, *, shard_size: int = 256,
                          compression: str | None = None) -> Path:
    """Write examples to ``out_dir/shard-00000.tfrecord[.gz]``... and an ``index.json``.

    Each example: ``{"id": str, "inputs": {name: array of one fixed shape per name},
    "target": class index (int) or a vector of floats}``. The index holds every input's
    shape, the target kind, the shards with the ids they hold (in file order) and every
    target, so a reader finds a split's shards and its targets without reading the data.
    Returns the index path. Examples are written as they come: memory stays bounded.
    """
    import tensorflow as tf

    if compression not in (None, "GZIP"):
        raise ValueError(f"compression must be None or 'GZIP', got {compression!r}")
    if int(shard_size) < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".tfrecord.gz" if compression else ".tfrecord"
    options = tf.io.TFRecordOptions(compression_type=compression or "")
    inputs_spec, target_kind, shards, targets = None, None, [], {}
    writer = None
    for n, example in enumerate(examples):
        uid, inputs, target = str(example["id"]), example["inputs"], example["target"]
        if uid in targets:
            raise ValueError(f"example id {uid!r} appears twice")
        spec = {name: list(np.shape(value)) for name, value in inputs.items()}
        # An integer is a class index; anything else (a float, a list) a vector of values.
        kind = "class" if isinstance(target, (int, np.integer)) else "vector"
        if inputs_spec is None:
            inputs_spec, target_kind = spec, kind
        elif spec != inputs_spec or kind != target_kind:
            raise ValueError(f"example {uid!r}: inputs {spec} / target {kind} differ from the "
                             f"first example's {inputs_spec} / {target_kind}")
        if n % int(shard_size) == 0:
            if writer is not None:
                writer.close()
            name = f"shard-{len(shards):05d}{suffix}"
            shards.append({"file": name, "ids": []})
            writer = tf.io.TFRecordWriter(str(out_dir / name), options)
        feature = {f"input/{name}": _float_feature(value) for name, value in inputs.items()}
        feature["id"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[uid.encode()]))
        feature["target"] = _float_feature(target)
        writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                     .SerializeToString())
        shards[-1]["ids"].append(uid)
        targets[uid] = int(target) if kind == "class" else np.ravel(target).astype(float).tolist()
    if writer is None:
        raise ValueError("no examples to write")
    writer.close()
    index = {"format": 1, "inputs": inputs_spec, "target_kind": target_kind,
             "compression": compression, "shards": shards, "targets": targets}
    path = out_dir / INDEX_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(index), encoding="utf-8")
    tmp.replace(path)
    return path


class TFRecordSource:
    """Examples streamed from :func:`write_tfrecord_shards` output (``index.json``).

    Only the shards holding a split's ids are read; training shuffles within a buffer of
    ``shuffle_buffer`` examples (bounded memory) and reads shards in parallel; evaluation
    reads them one after the other, in index order (:meth:`evaluation_order`).
    """

    def __init__(self, index_path, *, shuffle_buffer: int = 1024):
        path = Path(index_path)
        if path.is_dir():
            path = path / INDEX_FILE
        try:
            self.index = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable TFRecord index ({error})") from None
        self.root = path.parent
        self.shuffle_buffer = int(shuffle_buffer)
        self._shard_of = {uid: k for k, shard in enumerate(self.index["shards"])
                          for uid in shard["ids"]}
        self.stats = {"shards": len(self.index["shards"]), "examples": len(self._shard_of)}

    @property
    def ids(self) -> list[str]:
        return [uid for shard in self.index["shards"] for uid in shard["ids"]]

    def _parse(self):
        import tensorflow as tf

        inputs = self.index["inputs"]
        size = None if self.index["target_kind"] == "class" else \
            len(next(iter(self.index["targets"].values())))
        spec = {f"input/{name}": tf.io.FixedLenFeature([int(np.prod(shape))], tf.float32)
                for name, shape in inputs.items()}
        spec["id"] = tf.io.FixedLenFeature([], tf.string)
        spec["target"] = tf.io.FixedLenFeature([size or 1], tf.float32)

        def parse(record):
            example = tf.io.parse_single_example(record, spec)
            x = {name: tf.reshape(example[f"input/{name}"], shape)
                 for name, shape in inputs.items()}
            if len(x) == 1:
                x = next(iter(x.values()))
            target = example["target"]
            target = tf.cast(target[0], tf.int32) if size is None else target
            return example["id"], x, target

        return parse

    def dataset(self, ids, *, task, training: bool, batch_size: int, seed: int | None = None,
                repeat: bool = False, consumed: int = 0):
        import tensorflow as tf

        from ser_tf.features.pipeline import consumed_batches, skip_shuffled_passes

        ids = _check_ids(ids, self._shard_of, str(self.root))
        if training and seed is None:
            raise ValueError("a training dataset needs a seed (reproducible shuffling)")
        if consumed and not training:
            raise ValueError("consumed is for the training split only")
        consumed_batches(len(ids), consumed, batch_size=batch_size, repeat=repeat)  # checks it
        passes, offset = divmod(int(consumed), max(len(ids), 1))
        shards = sorted({self._shard_of[i] for i in ids})
        files = [str(self.root / self.index["shards"][k]["file"]) for k in shards]
        wanted = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(ids), tf.ones(len(ids), tf.int32)),
            default_value=0)
        ds = tf.data.TFRecordDataset(files, compression_type=self.index["compression"] or "",
                                     num_parallel_reads=2 if training else None)
        ds = ds.map(self._parse()).filter(lambda uid, x, y: wanted.lookup(uid) > 0)
        if training:
            ds = ds.shuffle(self.shuffle_buffer, seed=int(seed), reshuffle_each_iteration=True)
            skip_shuffled_passes(ds, passes)  # resuming: the orders of the passes read
            if repeat:
                ds = ds.repeat()
                if offset:
                    ds = ds.skip(offset)
        encode = task.encode_targets
        ds = ds.map(lambda uid, x, y: (x, encode(y))).batch(int(batch_size))
        if not (training and repeat):
            # The filter hides the count from tf.data; the index knows it, and Keras then
            # knows an epoch's steps (no "ran out of data" guess after the first epoch).
            batches = -(-len(ids) // int(batch_size))
            ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
        return ds.prefetch(2)

    def evaluation_order(self, ids) -> list[str]:
        wanted = set(_check_ids(ids, self._shard_of, str(self.root)))
        return [uid for uid in self.ids if uid in wanted]

    def targets(self, ids) -> np.ndarray:
        ids = _check_ids(ids, self._shard_of, str(self.root))
        return np.asarray([self.index["targets"][uid] for uid in ids])
