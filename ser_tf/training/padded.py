"""Variable-length features: every utterance's features at its own length, cached, and a
data source that pads each batch to its longest utterance and passes the true lengths.

- :func:`extract_utterance_features`: the recipe's front-end on each whole segment (a
  recipe with segment kind ``"none"`` gives the whole recording), one ``(frames, dim)``
  array per utterance, cached like :mod:`ser_tf.features.cache` (same key scheme and
  folder: the key covers the audio bytes and the recipe's config, so a whole-utterance
  recipe never meets a fixed-length one's entries).
- :class:`PaddedFeatureSource`: the data source protocol of :mod:`ser_tf.training.sources`;
  its batches are ``({"features": (batch, longest, dim), "lengths": (batch,)}, targets)``,
  padded with ``pad_value``. A model on it must ignore what lies past each row's length
  (e.g. :func:`ser_tf.models.attention_fcn.build_attention_fcn_2d` masks it).
- :meth:`PaddedFeatureSource.fixed_length`: the same utterances as a fixed-size input
  (:class:`FixedLengthInputs`: zero-padded at the end to ``frames``, with lengths), what a
  fixed-shape export (TFLite) of a masking model takes.
- :func:`mean_over_time`: one vector per utterance (its frames averaged), as a
  :class:`~ser_tf.features.cache.FeatureSet` for the usual cached-feature source.

Shuffling follows :mod:`ser_tf.features.pipeline`: a seeded full-size shuffle of row
positions, a new order every pass, and ``consumed`` resumes a training stream exactly.
Batches are not bucketed by length: the order is the shuffle's, as for fixed-length
features (bucketing would save padding at the price of batches of similar lengths).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ser_tf.data.audio import read_audio
from ser_tf.features.cache import (FeatureSet, cache_key, cache_path, default_cache_dir,
                                   load_cached, progress_bar, save_atomic)
from ser_tf.util.jsonio import content_hash

#: Batches prepared ahead of the model (as the fixed-length pipelines).
PREFETCH_BATCHES = 2


@dataclass
class UtteranceFeatures:
    """Features of a manifest's utterances, each ``(frames, dim)`` with its own frames.

    ``arrays`` holds them in memory (``None`` after ``load=False``: read from ``paths``,
    the cache files, when needed); ``lengths`` are the frame counts, ``labels`` class
    indices into ``label_names`` (-1 without a label)."""

    ids: list[str]
    labels: np.ndarray
    label_names: tuple[str, ...]
    lengths: np.ndarray
    paths: list[Path]
    dim: int
    arrays: list[np.ndarray] | None = None
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row positions of ``ids`` (``KeyError`` for an unknown id, ``ValueError`` for
        duplicates)."""
        where = {uid: i for i, uid in enumerate(self.ids)}
        ids = list(ids)
        if len(set(ids)) != len(ids):
            raise ValueError("ids contain duplicates")
        missing = [uid for uid in ids if uid not in where]
        if missing:
            raise KeyError(f"ids not in these features: {missing[:5]}")
        return np.asarray([where[uid] for uid in ids], dtype=np.int64)

    def array(self, row: int) -> np.ndarray:
        """Row ``row``'s ``(frames, dim)`` float32 features."""
        if self.arrays is not None:
            return self.arrays[int(row)]
        array = load_cached(self.paths[int(row)])
        if array is None:
            raise FileNotFoundError(f"{self.paths[int(row)]}: cached features of "
                                    f"{self.ids[int(row)]} are gone; extract them again")
        return np.asarray(array, np.float32)


def _frontend(recipe):
    """``audio (samples,) -> (frames, dim)`` for any number of samples, traced once."""
    import tensorflow as tf

    from ser_tf.features.frontends import TF_KINDS, build_frontend

    if recipe.frontend.get("kind") not in TF_KINDS:
        return lambda audio: np.asarray(recipe.compute(audio[None]))[0]
    layer = build_frontend(recipe.frontend, recipe.sample_rate)
    # One trace for every length (compute_features traces once per length: thousands of
    # traces for a corpus of distinct durations).
    run = tf.function(layer.__call__, input_signature=[tf.TensorSpec([1, None], tf.float32)])
    return lambda audio: run(tf.constant(audio[None])).numpy()[0]


def _min_samples(recipe) -> int:
    """Samples giving one frame: shorter segments are zero-padded to it."""
    front = recipe.frontend
    if front.get("center"):
        return 1
    return int(front.get("frame_length") or front.get("fft_length") or 1)


def extract_utterance_features(manifest, recipe, cache_dir=None, *, load: bool = True,
                               progress: bool = False) -> UtteranceFeatures:
    """Each utterance's ``recipe`` features at its own length, computed once and cached.

    Every file is read at ``recipe.sample_rate`` and cut by ``recipe.segment_audio``
    (kind ``"none"``: the whole recording); a segment too short for one frame is
    zero-padded to one frame. ``load=False`` keeps only the cache paths (for corpora whose
    spectrograms do not fit in memory); the source then reads each file when needed.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    config = recipe.config()
    label_index = {name: i for i, name in enumerate(manifest.labels)}
    run, minimum = None, _min_samples(recipe)
    start, counts = time.perf_counter(), {"computed": 0, "cached": 0}
    ids, labels, lengths, paths, arrays, dims = [], [], [], [], [], set()
    bar = progress_bar(len(manifest), progress, config.get("name", "features"))
    for utterance in manifest:
        bar.update(1)
        path = cache_path(cache_dir, cache_key(content_hash(utterance.path), config))
        features = load_cached(path)
        if features is None:
            audio, _ = read_audio(utterance.path, sr=recipe.sample_rate)
            segment = np.asarray(recipe.segment_audio(audio), np.float32)
            if segment.size < minimum:
                segment = np.pad(segment, (0, minimum - segment.size))
            run = run or _frontend(recipe)
            features = np.asarray(run(segment), np.float32)
            save_atomic(path, features)
            counts["computed"] += 1
        else:
            counts["cached"] += 1
        if features.ndim != 2:
            raise ValueError(f"recipe {config.get('name')}: features of shape {features.shape}; "
                             "variable-length features must be (frames, dim)")
        dims.add(int(features.shape[1]))
        ids.append(utterance.utterance_id)
        labels.append(label_index.get(utterance.label, -1))
        lengths.append(features.shape[0])
        paths.append(path)
        if load:
            arrays.append(np.asarray(features, np.float32))
    bar.close()
    if len(dims) > 1:
        raise ValueError(f"recipe {config.get('name')}: feature dims differ between files {dims}")
    lengths = np.asarray(lengths, np.int64)
    stats = {**counts, "seconds": time.perf_counter() - start, "utterances": len(ids),
             "frames": {"min": int(lengths.min()), "mean": float(lengths.mean()),
                        "max": int(lengths.max())} if len(ids) else {}}
    return UtteranceFeatures(ids, np.asarray(labels, np.int64), tuple(manifest.labels), lengths,
                             paths, dims.pop() if dims else 0, arrays if load else None, stats)


def mean_over_time(features: UtteranceFeatures) -> FeatureSet:
    """One ``(dim,)`` vector per utterance, the mean of its frames, as a
    :class:`~ser_tf.features.cache.FeatureSet` (in memory, rows in ``features`` order)."""
    vectors = np.stack([features.array(row).mean(axis=0) for row in range(len(features))]) \
        if len(features) else np.zeros((0, features.dim), np.float32)
    return FeatureSet(features=vectors.astype(np.float32), labels=features.labels.copy(),
                      ids=list(features.ids), label_names=tuple(features.label_names),
                      paths=list(features.paths),
                      stats={**features.stats, "reduction": "mean over time"})


class PaddedFeatureSource:
    """Variable-length features batched with padding (module docstring).

    ``pad_value``: what fills a row past its length (a model must not look there);
    ``max_frames``: keep at most this many frames of an utterance (its beginning), to bound
    the memory a very long one takes in a batch; ``None`` keeps everything.
    ``names``: the keys of the features and the lengths in each batch's input dict (the
    model's input names).
    """

    def __init__(self, features: UtteranceFeatures, *, pad_value: float = 0.0,
                 max_frames: int | None = None, names: tuple[str, str] = ("features", "lengths")):
        if max_frames is not None and int(max_frames) < 1:
            raise ValueError(f"max_frames must be positive, got {max_frames}")
        self.features = features
        self.pad_value = float(pad_value)
        self.max_frames = None if max_frames is None else int(max_frames)
        self.names = tuple(names)
        self.label_names = tuple(features.label_names)

    @property
    def ids(self) -> list[str]:
        return list(self.features.ids)

    @property
    def stats(self) -> dict:
        return self.features.stats

    def lengths(self, ids) -> np.ndarray:
        """The frames of each utterance as the batches give them (after ``max_frames``)."""
        lengths = self.features.lengths[self.features.index_of(ids)]
        return lengths if self.max_frames is None else np.minimum(lengths, self.max_frames)

    def _row(self, row) -> tuple[np.ndarray, np.int32]:
        array = self.features.array(int(row))
        if self.max_frames is not None:
            array = array[:self.max_frames]
        return np.asarray(array, np.float32), np.int32(array.shape[0])

    def dataset(self, ids, *, task, training: bool, batch_size: int, seed: int | None = None,
                repeat: bool = False, consumed: int = 0):
        import tensorflow as tf

        from ser_tf.features.pipeline import consumed_batches, skip_shuffled_passes

        if getattr(task, "kind", "classification") != "classification":
            raise ValueError(f"padded features hold class labels; task {task.kind!r} needs "
                             "a source with its own targets")
        rows = self.features.index_of(ids)
        if len(rows) == 0:
            raise ValueError("no ids to make a dataset of")
        if training and seed is None:
            raise ValueError("a training dataset needs a seed (reproducible shuffling)")
        if (consumed or repeat) and not training:
            raise ValueError("repeat and consumed are for the training split only")
        consumed_batches(len(rows), consumed, batch_size=batch_size, repeat=repeat)  # checks it
        passes, offset = divmod(int(consumed), len(rows))
        labels = tf.constant(self.features.labels.astype(np.int32))
        dim = int(self.features.dim)

        def load(row):
            x, length = tf.numpy_function(self._row, [row], (tf.float32, tf.int32),
                                          stateful=False)
            x.set_shape([None, dim])
            length.set_shape([])
            return x, length, tf.gather(labels, row)

        ds = tf.data.Dataset.from_tensor_slices(rows)
        if training:
            ds = ds.shuffle(len(rows), seed=int(seed), reshuffle_each_iteration=True)
            skip_shuffled_passes(ds, passes)  # resuming: the orders of the passes read
            if repeat:
                ds = ds.repeat()
                if offset:
                    ds = ds.skip(offset)
        ds = ds.map(load, num_parallel_calls=2, deterministic=True)
        ds = ds.padded_batch(int(batch_size), padded_shapes=([None, dim], [], []),
                             padding_values=(self.pad_value, np.int32(0), np.int32(0)))
        encode, (x_name, length_name) = task.encode_targets, self.names
        ds = ds.map(lambda x, length, y: ({x_name: x, length_name: length}, encode(y)))
        options = tf.data.Options()
        options.autotune.enabled = False  # as ser_tf.features.pipeline: no autotuner stalls
        return ds.prefetch(PREFETCH_BATCHES).with_options(options)

    def evaluation_order(self, ids) -> list[str]:
        self.features.index_of(ids)  # checks them
        return list(ids)

    def targets(self, ids) -> np.ndarray:
        return self.features.labels[self.features.index_of(ids)]

    def fixed_length(self, frames: int | None = None) -> "FixedLengthInputs":
        """These utterances as a fixed-size two-input set (:class:`FixedLengthInputs`);
        ``frames`` defaults to the longest utterance as the batches give it."""
        if frames is None:
            frames = int(self.lengths(self.ids).max())
        return FixedLengthInputs(self, frames)

    def batch(self, ids) -> dict:
        """The model inputs of ``ids`` as one padded NumPy batch (explaining, tests)."""
        rows = [self._row(row) for row in self.features.index_of(ids)]
        longest = max(x.shape[0] for x, _ in rows)
        x = np.full((len(rows), longest, self.features.dim), self.pad_value, np.float32)
        for i, (array, _) in enumerate(rows):
            x[i, :array.shape[0]] = array
        return {self.names[0]: x,
                self.names[1]: np.asarray([length for _, length in rows], np.int32)}


class FixedLengthInputs:
    """A :class:`PaddedFeatureSource`'s utterances at one fixed size: ``features[rows]`` is
    ``{"features": (n, frames, dim) zero-padded at the end, "lengths": (n,) int32}`` (a
    longer utterance keeps its first ``frames``), built on demand, so the set never holds
    every utterance at once. Offers what :mod:`ser_tf.export.evaluate` reads of a
    :class:`~ser_tf.features.cache.FeatureSet`: ``features``, ``labels``, ``label_names``,
    ``index_of`` and ``input_shapes`` (``{name: example shape}``)."""

    def __init__(self, source: PaddedFeatureSource, frames: int):
        if int(frames) < 1:
            raise ValueError(f"frames must be positive, got {frames}")
        self.source, self.frames = source, int(frames)
        self.names = tuple(source.names)
        self.labels = source.features.labels
        self.label_names = source.label_names
        self.input_shapes = {self.names[0]: (self.frames, int(source.features.dim)),
                             self.names[1]: ()}
        self.features = _FixedLengthRows(self)

    def __len__(self) -> int:
        return len(self.source.features)

    def index_of(self, ids) -> np.ndarray:
        return self.source.features.index_of(ids)

    def rows(self, rows) -> dict:
        """The inputs of row positions ``rows`` (see the class docstring)."""
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        x = np.full((len(rows), *self.input_shapes[self.names[0]]), self.source.pad_value,
                    np.float32)
        lengths = np.zeros(len(rows), np.int32)
        for i, row in enumerate(rows):
            array = self.source._row(row)[0][:self.frames]
            x[i, :array.shape[0]] = array
            lengths[i] = array.shape[0]
        return {self.names[0]: x, self.names[1]: lengths}


class _FixedLengthRows:
    """``FixedLengthInputs.features``: indexing by row positions gives the inputs dict."""

    def __init__(self, owner: FixedLengthInputs):
        self._owner = owner

    def __len__(self) -> int:
        return len(self._owner)

    def __getitem__(self, rows) -> dict:
        return self._owner.rows(rows)
