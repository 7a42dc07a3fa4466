"""A fold's data from frame-sequence records (:mod:`ser_tf.data.sequence_records`): the
data-source protocol of :mod:`ser_tf.training.sources` for per-frame sequence models.

Each batch is ``(inputs, targets, sample_weight)``: ``inputs = {"audio": (B, T, frame_len),
"words": (B, T)}``, ``targets (B, T, D)`` and a ``(B, T)`` weight from the frame mask, so
padding frames add nothing to the loss. Weights are rescaled per batch to average 1
(``mask * B*T / sum(mask)``): Keras divides a weighted loss by ``B*T``, so the loss is then
exactly the mean over the batch's real frames, whatever the padding.

Recordings are chosen by key (the utterance ids of a fold). With ``chunk_frames`` each
recording is served as chunks of that many frames (long recordings train in bounded
memory); one dataset element, and so one prediction row, is one chunk. Without it one row is
one recording, padded to the longest recording of the split in evaluation (every batch then
has the same ``T``, as ``model.predict`` needs to join batches) and to the longest of the
batch in training.

Evaluation helpers: :meth:`SequenceRecordSource.targets` gives the rows' targets with NaN
on padding frames (a metric that forgets the mask fails loudly instead of scoring padding);
:meth:`~SequenceRecordSource.real_frames` turns ``(rows, T, D)`` predictions into the
``(frames, D)`` real frames, and :meth:`~SequenceRecordSource.frame_targets` gives the
matching targets, for frame-level CCC with
:func:`~ser_tf.training.tasks.regression_metrics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ser_tf.data.sequence_records import chunk_count, load_sequence_index, read_sequence_records

__all__ = ["SequenceRecordSource"]

INPUT_NAMES = ("audio", "words")


class SequenceRecordSource:
    """Serve train/val/test datasets of recordings chosen by key from sequence records.

    Args:
        index_path: :func:`~ser_tf.data.sequence_records.write_sequence_records` output.
        chunk_frames: serve chunks of this many frames (``None``: whole recordings).
        shuffle_buffer: elements in the training shuffle buffer (bounded memory).
    """

    def __init__(self, index_path, *, chunk_frames: int | None = None,
                 shuffle_buffer: int = 256):
        self.index, self.root = load_sequence_index(index_path)
        if chunk_frames is not None and (isinstance(chunk_frames, bool) or
                                         int(chunk_frames) != chunk_frames or chunk_frames < 1):
            raise ValueError(f"chunk_frames must be a positive integer or None, got "
                             f"{chunk_frames!r}")
        if int(shuffle_buffer) < 1:
            raise ValueError(f"shuffle_buffer must be positive, got {shuffle_buffer!r}")
        self.chunk_frames = None if chunk_frames is None else int(chunk_frames)
        self.shuffle_buffer = int(shuffle_buffer)
        self._length = {k: int(n) for shard in self.index["shards"]
                        for k, n in zip(shard["keys"], shard["lengths"])}
        self._metadata = {k: dict(m) for shard in self.index["shards"]
                          for k, m in zip(shard["keys"], shard["metadata"])}
        self._order = {k: i for i, k in enumerate(self._length)}
        self.stats = {"shards": len(self.index["shards"]), "recordings": len(self._length),
                      "frames": int(sum(self._length.values())),
                      "chunk_frames": self.chunk_frames}

    # --- what it holds -------------------------------------------------------------------

    @property
    def ids(self) -> list[str]:
        return list(self._length)

    @property
    def frame_len(self) -> int:
        return int(self.index["frame_len"])

    @property
    def n_targets(self) -> int:
        return int(self.index["n_targets"])

    @property
    def label_names(self) -> tuple[str, ...]:
        """The target columns' names (``target_0``... when the writer gave none)."""
        names = self.index.get("target_names")
        return tuple(names) if names else tuple(f"target_{i}" for i in range(self.n_targets))

    def metadata(self, key: str) -> dict:
        """A recording's metadata, from the index (no data read)."""
        return dict(self._metadata[self._check([key])[0]])

    def lengths(self, ids) -> list[int]:
        return [self._length[k] for k in self._check(ids)]

    def _check(self, ids) -> list[str]:
        ids = [str(i) for i in ids]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self.root}: ids contain duplicates")
        missing = [i for i in ids if i not in self._length]
        if missing:
            raise KeyError(f"{self.root}: ids not in these sequence records: {missing[:5]}")
        return ids

    def _rows(self, ids) -> int:
        return sum(chunk_count(self._length[k], self.chunk_frames) for k in ids)

    def _eval_frames(self, ids) -> int:
        return self.chunk_frames or max(self._length[k] for k in ids)

    # --- the source protocol -------------------------------------------------------------

    def dataset(self, ids, *, task=None, training: bool, batch_size: int,
                seed: int | None = None, repeat: bool = False, consumed: int = 0):
        """Batches ``({"audio", "words"}, targets, weights)`` of the recordings ``ids``.

        Training shuffles (seeded; ``seed`` required), evaluation reads in index order
        (:meth:`evaluation_order`). ``task``: its ``encode_targets`` is applied (a
        classification task is refused: targets are per-frame values). ``consumed``:
        elements already read by a resumed run: whole passes of ``len(ids)`` (the runner's
        count per epoch) without ``repeat``, elements of the stream with it.
        """
        import tensorflow as tf

        from ser_tf.features.pipeline import skip_shuffled_passes

        ids = self._check(ids)
        if not ids:
            raise ValueError("no ids: an empty split has no dataset")
        if getattr(task, "kind", None) == "classification":
            raise ValueError("sequence records hold per-frame continuous targets; a "
                             "classification task needs class labels")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size!r}")
        if training and seed is None:
            raise ValueError("a training dataset needs a seed (reproducible shuffling)")
        if consumed and not training:
            raise ValueError("consumed is for the training split only")
        rows, consumed = self._rows(ids), int(consumed)
        if consumed < 0 or (consumed and not repeat and consumed % len(ids)):
            raise ValueError(f"consumed={consumed}: without repeat it counts whole passes of "
                             f"{len(ids)} recordings")
        passes, offset = (divmod(consumed, rows) if repeat else (consumed // len(ids), 0))
        ds = read_sequence_records(self.index_path, chunk_frames=self.chunk_frames, keys=ids,
                                   shuffle_buffer=self.shuffle_buffer if training else 0,
                                   seed=0 if seed is None else int(seed))
        if training:
            skip_shuffled_passes(ds, passes)  # resuming: the orders of the passes read
            if repeat:
                ds = ds.repeat()
                if offset:
                    ds = ds.skip(offset)
        encode = task.encode_targets if task is not None else (lambda y: y)
        ds = ds.map(lambda e: ({name: e[name] for name in INPUT_NAMES}, e["targets"],
                               e["mask"]))
        frames = None if training and self.chunk_frames is None else self._eval_frames(ids)
        shapes = ({"audio": [frames, self.frame_len], "words": [frames]},
                  [frames, self.n_targets], [frames])
        ds = ds.padded_batch(int(batch_size), padded_shapes=shapes)
        ds = ds.map(lambda x, y, mask: (x, encode(y), _mean_one(mask)))
        if not (training and repeat):
            ds = ds.apply(tf.data.experimental.assert_cardinality(-(-rows // int(batch_size))))
        return ds.prefetch(2)

    def evaluation_order(self, ids) -> list[str]:
        """``ids`` in the order an evaluation dataset yields them (index order)."""
        return sorted(self._check(ids), key=self._order.__getitem__)

    def examples(self, ids) -> list[tuple[str, int, int]]:
        """``(key, start frame, real frames)`` of every row of ``dataset(ids,
        training=False)``, in order (ids taken in :meth:`evaluation_order`)."""
        rows = []
        for key in self.evaluation_order(ids):
            length, step = self._length[key], self.chunk_frames or self._length[key]
            rows += [(key, start, min(step, length - start)) for start in range(0, length, step)]
        return rows

    def _eval_arrays(self, ids):
        ids = self.evaluation_order(ids)
        frames = self._eval_frames(ids)
        ds = read_sequence_records(self.index_path, chunk_frames=self.chunk_frames, keys=ids)
        ds = ds.map(lambda e: (e["targets"], e["mask"])).padded_batch(
            64, padded_shapes=([frames, self.n_targets], [frames]))
        targets, masks = [], []
        for y, mask in ds.as_numpy_iterator():
            targets.append(y)
            masks.append(mask)
        return np.concatenate(targets), np.concatenate(masks)

    def targets(self, ids) -> np.ndarray:
        """``(rows, T, D)`` float32 targets of the evaluation rows of ``ids`` (in
        :meth:`evaluation_order`), NaN on padding frames."""
        targets, mask = self._eval_arrays(ids)
        targets[mask == 0] = np.nan
        return targets

    def mask(self, ids) -> np.ndarray:
        """``(rows, T)`` float32: 1.0 on real frames of the evaluation rows, 0.0 on padding."""
        return self._eval_arrays(ids)[1]

    def real_frames(self, ids, predictions) -> np.ndarray:
        """``(frames, D)``: the real frames of ``(rows, T, D)`` predictions of
        ``dataset(ids, training=False)``, concatenated in row order."""
        predictions = np.asarray(predictions)
        rows = self.examples(ids)
        if predictions.ndim != 3 or predictions.shape[0] != len(rows):
            raise ValueError(f"predictions must be (rows={len(rows)}, T, D), got "
                             f"{predictions.shape}")
        return np.concatenate([predictions[r, :n] for r, (_, _, n) in enumerate(rows)])

    def frame_targets(self, ids) -> np.ndarray:
        """``(frames, D)`` targets of the real frames, matching :meth:`real_frames`."""
        targets, mask = self._eval_arrays(ids)
        return targets[mask > 0]

    @property
    def index_path(self) -> Path:
        return self.root / "index.json"


def _mean_one(mask):
    """``mask`` scaled so its batch mean is 1 (all-zero stays zero): with Keras' division by
    the number of weights, the loss is then the mean over real frames."""
    import tensorflow as tf

    total = tf.reduce_sum(mask)
    size = tf.cast(tf.size(mask), mask.dtype)
    return tf.math.divide_no_nan(mask * size, total)


def split_lengths(source: SequenceRecordSource, ids: Sequence[str]) -> dict:
    """Recordings, rows and real frames of a split (for a fold's printed summary)."""
    ids = source._check(ids)
    return {"recordings": len(ids), "rows": source._rows(ids),
            "frames": int(sum(source._length[k] for k in ids))}
