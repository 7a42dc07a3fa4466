"""Frame sequences on disk: TFRecord shards of ``tf.train.SequenceExample``, streamed back.

One record per recording: ``T`` frames of raw audio ``(T, frame_len)``, the word id of every
frame ``(T,)`` and per-frame continuous targets ``(T, D)``, plus the recording's key and
metadata (speaker, corpus, sample rate, label...). Written as a stream (one item at a time),
read as a stream (``tf.data.TFRecordDataset``), optionally cut into fixed chunks of frames
so that long recordings train in bounded memory.

Layout of a record:

- context: ``key`` (bytes), ``length`` (int64, T), ``metadata_json`` (the metadata as JSON,
  so a record describes itself), and one typed feature per metadata entry: ``meta/<name>``
  as bytes (str), int64 (int) or int64 holding a float64's bits (float: exact, where a
  float_list would round to float32).
- feature lists: ``audio`` (one bytes feature per frame: ``frame_len`` little-endian float32;
  exact, and ~10x faster to write than a float_list), ``words`` (int64), ``targets``
  (float_list of D float32).

``index.json`` beside the shards lists the shards with the keys, lengths and metadata of
their recordings, so readers choose shards and folds without opening the data.

Batching is the caller's: elements have different ``T`` (unless chunked), so use
``ds.padded_batch(n)``, which pads ``audio``/``words``/``targets`` with zeros and ``mask``
with 0.0 (padding frames then weigh nothing when ``mask`` is the sample weight).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["INDEX_FILE", "RESERVED_NAMES", "SequenceItem", "chunk_count", "load_sequence_index",
           "parse_sequence_example", "read_sequence_records", "write_sequence_records"]

INDEX_FILE = "index.json"
#: Element fields of a read record: metadata may not take these names.
RESERVED_NAMES = frozenset({"audio", "words", "targets", "mask", "key", "length", "chunk",
                            "start", "metadata_json"})
_META_TYPES = {"str": "bytes", "int": "int64", "float": "float64-bits"}


def _meta_type(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("bool")  # ambiguous: store it as int 0/1 or as a string
    if isinstance(value, str):
        return "str"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    raise TypeError(type(value).__name__)


@dataclass(frozen=True)
class SequenceItem:
    """One recording as frames: ``audio (T, frame_len)`` float32, ``words (T,)`` int64,
    ``targets (T, D)`` float32 and ``metadata`` (str -> str | int | float). Arrays are
    converted and checked on construction (ValueError naming the key)."""

    key: str
    audio: np.ndarray
    words: np.ndarray
    targets: np.ndarray
    metadata: Mapping[str, str | int | float] = field(default_factory=dict)

    def __post_init__(self):
        key = self.key
        if not isinstance(key, str) or not key:
            raise ValueError(f"a sequence item needs a non-empty string key, got {key!r}")
        audio = np.asarray(self.audio, np.float32)
        words = np.asarray(self.words)
        targets = np.asarray(self.targets, np.float32)
        if audio.ndim != 2 or audio.shape[1] < 1:
            raise ValueError(f"{key}: audio must be (T, frame_len), got shape {audio.shape}")
        if words.ndim != 1 or not (words.size == 0 or np.issubdtype(words.dtype, np.integer)):
            raise ValueError(f"{key}: words must be (T,) integer ids, got {words.dtype} "
                             f"{words.shape}")
        if targets.ndim != 2 or targets.shape[1] < 1:
            raise ValueError(f"{key}: targets must be (T, D) with D >= 1, got {targets.shape}")
        lengths = {"audio": audio.shape[0], "words": words.shape[0], "targets": targets.shape[0]}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{key}: frame counts differ: {lengths}")
        if audio.shape[0] == 0:
            raise ValueError(f"{key}: no frames")
        if (words < 0).any():
            raise ValueError(f"{key}: word ids must be >= 0")
        if not (np.isfinite(audio).all() and np.isfinite(targets).all()):
            raise ValueError(f"{key}: audio and targets must be finite (no NaN/inf)")
        metadata = {}
        for name, value in dict(self.metadata).items():
            if not isinstance(name, str) or not name or "/" in name or name in RESERVED_NAMES:
                raise ValueError(f"{key}: metadata names must be non-empty strings without "
                                 f"'/' and not one of {sorted(RESERVED_NAMES)}, got {name!r}")
            try:
                kind = _meta_type(value)
            except TypeError as error:
                raise ValueError(f"{key}: metadata {name!r} must be str, int or float, got "
                                 f"{error}") from None
            metadata[name] = {"str": str, "int": int, "float": float}[kind](value)
        object.__setattr__(self, "audio", audio)
        object.__setattr__(self, "words", words.astype(np.int64))
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "metadata", metadata)

    @property
    def length(self) -> int:
        return int(self.audio.shape[0])


def _serialize(item: SequenceItem) -> bytes:
    import tensorflow as tf

    train = tf.train

    def ints(values):
        return train.Feature(int64_list=train.Int64List(value=[int(v) for v in values]))

    def raw(data: bytes):
        return train.Feature(bytes_list=train.BytesList(value=[data]))

    context = {"key": raw(item.key.encode()), "length": ints([item.length]),
               "metadata_json": raw(json.dumps(item.metadata, sort_keys=True).encode())}
    for name, value in item.metadata.items():
        kind = _meta_type(value)
        if kind == "str":
            context[f"meta/{name}"] = raw(value.encode())
        elif kind == "int":
            context[f"meta/{name}"] = ints([value])
        else:  # float64 bits as an int64: exact (a float_list would be float32)
            context[f"meta/{name}"] = ints([np.float64(value).view(np.int64)])
    audio = np.ascontiguousarray(item.audio, "<f4")
    lists = {
        "audio": train.FeatureList(feature=[raw(frame.tobytes()) for frame in audio]),
        "words": train.FeatureList(feature=[ints([w]) for w in item.words.tolist()]),
        "targets": train.FeatureList(feature=[
            train.Feature(float_list=train.FloatList(value=row)) for row in item.targets.tolist()]),
    }
    return train.SequenceExample(context=train.Features(feature=context),
                                 feature_lists=train.FeatureLists(feature_list=lists)
                                 ).SerializeToString()


def write_sequence_records(items: Iterable[SequenceItem], out_dir, *, shard_size: int = 64,
                           compression: str | None = "GZIP", prefix: str = "part",
                           target_names: Sequence[str] | None = None) -> Path:
    """Write ``items`` to ``out_dir/<prefix>-00000.tfrecord[.gz]``... and ``index.json``.

    Streaming: each item is serialized and written as it comes (a generator of items keeps
    memory at one item). Every item must share ``frame_len``, ``D`` and metadata names and
    types; keys must be unique. ``target_names``: the D target columns' names (recorded in
    the index). Returns the index path; the index is written last (atomically), so a
    directory with an index holds complete shards.
    """
    import tensorflow as tf

    if compression not in (None, "GZIP"):
        raise ValueError(f"compression must be None or 'GZIP', got {compression!r}")
    if isinstance(shard_size, bool) or int(shard_size) != shard_size or shard_size < 1:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
    if not prefix or "/" in prefix:
        raise ValueError(f"prefix must be a non-empty file-name prefix, got {prefix!r}")
    names = None if target_names is None else [str(n) for n in target_names]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".tfrecord.gz" if compression else ".tfrecord"
    options = tf.io.TFRecordOptions(compression_type=compression or "")
    frame_len = n_targets = meta_types = None
    shards, seen, writer, frames = [], set(), None, 0
    try:
        for n, item in enumerate(items):
            if not isinstance(item, SequenceItem):
                raise TypeError(f"item #{n} is a {type(item).__name__}, not a SequenceItem")
            types = {k: _meta_type(v) for k, v in item.metadata.items()}
            if frame_len is None:
                frame_len, n_targets, meta_types = item.audio.shape[1], item.targets.shape[1], types
                if names is not None and len(names) != n_targets:
                    raise ValueError(f"{len(names)} target_names {names} for {n_targets} "
                                     f"targets (first item {item.key!r})")
            elif (item.audio.shape[1], item.targets.shape[1]) != (frame_len, n_targets):
                raise ValueError(f"{item.key}: frame_len {item.audio.shape[1]} / targets "
                                 f"{item.targets.shape[1]} differ from the first item's "
                                 f"{frame_len} / {n_targets}")
            elif types != meta_types:
                raise ValueError(f"{item.key}: metadata {types} differ in names or types from "
                                 f"the first item's {meta_types}")
            if item.key in seen:
                raise ValueError(f"{item.key}: key appears twice")
            seen.add(item.key)
            if n % int(shard_size) == 0:
                if writer is not None:
                    writer.close()
                name = f"{prefix}-{len(shards):05d}{suffix}"
                shards.append({"file": name, "keys": [], "lengths": [], "metadata": []})
                writer = tf.io.TFRecordWriter(str(out_dir / name), options)
            writer.write(_serialize(item))
            shards[-1]["keys"].append(item.key)
            shards[-1]["lengths"].append(item.length)
            shards[-1]["metadata"].append(item.metadata)
            frames += item.length
    finally:
        if writer is not None:
            writer.close()
    if frame_len is None:
        raise ValueError("no items to write")
    index = {"format": 1, "kind": "sequence_records", "compression": compression,
             "frame_len": int(frame_len), "n_targets": int(n_targets), "target_names": names,
             "metadata_types": meta_types, "audio_encoding": "float32-le-bytes",
             "counts": {"recordings": len(seen), "frames": int(frames),
                        "shards": [len(s["keys"]) for s in shards]},
             "shards": [{**s, "count": len(s["keys"])} for s in shards]}
    path = out_dir / INDEX_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(index), encoding="utf-8")
    tmp.replace(path)
    return path


def load_sequence_index(index_path) -> tuple[dict, Path]:
    """``(index, folder)`` of :func:`write_sequence_records` output (a folder or its
    ``index.json``); ValueError for anything else."""
    path = Path(index_path)
    if path.is_dir():
        path = path / INDEX_FILE
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable sequence-record index ({error})") from None
    if not isinstance(index, dict) or index.get("kind") != "sequence_records":
        raise ValueError(f"{path}: not a sequence-record index (write_sequence_records)")
    return index, path.parent


def parse_sequence_example(serialized, *, frame_len: int, n_targets: int,
                           metadata_types: Mapping[str, str] | None = None) -> dict:
    """One serialized record -> ``audio (T, frame_len)`` float32, ``words (T,)`` int64,
    ``targets (T, n_targets)`` float32, ``key`` (string), ``length`` (int64),
    ``metadata_json`` (string) and, for each ``metadata_types`` entry (``{name: "str" |
    "int" | "float"}``, the index's ``metadata_types``), the value as a string / int64 /
    float64 tensor under its name. Works eagerly and inside ``tf.data`` maps."""
    import tensorflow as tf

    metadata_types = dict(metadata_types or {})
    context = {"key": tf.io.FixedLenFeature([], tf.string),
               "length": tf.io.FixedLenFeature([], tf.int64),
               "metadata_json": tf.io.FixedLenFeature([], tf.string)}
    for name, kind in metadata_types.items():
        if kind not in _META_TYPES:
            raise ValueError(f"metadata {name!r}: type must be one of {list(_META_TYPES)}, "
                             f"got {kind!r}")
        context[f"meta/{name}"] = tf.io.FixedLenFeature(
            [], tf.string if kind == "str" else tf.int64)
    sequence = {"audio": tf.io.FixedLenSequenceFeature([], tf.string),
                "words": tf.io.FixedLenSequenceFeature([], tf.int64),
                "targets": tf.io.FixedLenSequenceFeature([int(n_targets)], tf.float32)}
    ctx, seq = tf.io.parse_single_sequence_example(serialized, context_features=context,
                                                   sequence_features=sequence)
    audio = tf.io.decode_raw(seq["audio"], tf.float32, little_endian=True)
    audio = tf.reshape(audio, [-1, int(frame_len)])  # fails loudly on a wrong frame_len
    parsed = {"audio": audio, "words": seq["words"], "targets": seq["targets"],
              "key": ctx["key"], "length": ctx["length"], "metadata_json": ctx["metadata_json"]}
    for name, kind in metadata_types.items():
        value = ctx[f"meta/{name}"]
        parsed[name] = tf.bitcast(value, tf.float64) if kind == "float" else value
    return parsed


def _chunks(example: dict, chunk_frames: int):
    """A recording -> a dataset of its chunks of ``chunk_frames`` frames (last one padded),
    each with ``mask`` (1.0 on real frames), ``chunk`` (its position) and ``start``."""
    import tensorflow as tf

    length = tf.shape(example["audio"])[0]
    n_chunks = (length + chunk_frames - 1) // chunk_frames
    pad = n_chunks * chunk_frames - length
    framed = {}
    for name in ("audio", "words", "targets", "mask"):
        value = example[name]
        rank = len(value.shape)
        value = tf.pad(value, [[0, pad]] + [[0, 0]] * (rank - 1))
        framed[name] = tf.reshape(value, tf.concat([[n_chunks, chunk_frames],
                                                    tf.shape(value)[1:]], 0))
    framed["chunk"] = tf.range(n_chunks, dtype=tf.int64)
    framed["start"] = framed["chunk"] * chunk_frames
    for name, value in example.items():
        if name not in framed:  # key, length, metadata: the same for every chunk
            framed[name] = tf.repeat(value[None], n_chunks, axis=0)
    return tf.data.Dataset.from_tensor_slices(framed)


def read_sequence_records(index_path, *, chunk_frames: int | None = None,
                          shuffle_buffer: int = 0, seed: int = 0,
                          keys: Iterable[str] | None = None):
    """Stream :func:`write_sequence_records` output as a ``tf.data.Dataset`` of dicts.

    Each element: ``audio``, ``words``, ``targets``, ``mask`` ``(T,)`` float32 (1.0 on real
    frames), ``key``, ``length`` (frames of the whole recording) and every metadata entry
    (typed as written). Records are read from disk one at a time; memory is bounded by the
    shuffle buffer, not by the data set.

    Args:
        chunk_frames: cut each recording into chunks of this many frames (the last chunk
            zero-padded, ``mask`` 0.0 there); elements then also have ``chunk`` and
            ``start`` (first frame). ``None``: one element per recording, ``T`` frames.
        shuffle_buffer: > 0 shuffles elements within a buffer of that many elements (seeded
            by ``seed``, a new order each pass; shards are read in index order, so records
            far apart in the files mix only as far as the buffer reaches); 0 keeps file order.
        keys: read only these recordings (only the shards holding them are opened).

    Batch with ``ds.padded_batch(batch_size)`` (chunked elements all have ``chunk_frames``
    frames, so ``ds.batch`` works for them too).
    """
    import tensorflow as tf

    index, root = load_sequence_index(index_path)
    if chunk_frames is not None and (isinstance(chunk_frames, bool)
                                     or int(chunk_frames) != chunk_frames or chunk_frames < 1):
        raise ValueError(f"chunk_frames must be a positive integer or None, got {chunk_frames!r}")
    if isinstance(shuffle_buffer, bool) or int(shuffle_buffer) != shuffle_buffer \
            or shuffle_buffer < 0:
        raise ValueError(f"shuffle_buffer must be an integer >= 0, got {shuffle_buffer!r}")
    shards = index["shards"]
    wanted = None
    if keys is not None:
        wanted = list(dict.fromkeys(str(k) for k in keys))
        known = {k for s in shards for k in s["keys"]}
        missing = [k for k in wanted if k not in known]
        if missing:
            raise KeyError(f"{root}: keys not in these records: {missing[:5]}")
        if not wanted:
            raise ValueError(f"{root}: keys is empty: no recording to read")
        wanted_set = set(wanted)
        shards = [s for s in shards if wanted_set.intersection(s["keys"])]
    files = [str(root / s["file"]) for s in shards]
    compression = index["compression"] or ""
    # Shards are read in index order, shuffled only through the element buffer: a second,
    # file-order shuffle would not be replayed by iterators made and dropped unread
    # (skip_shuffled_passes: how a resumed run finds its pass's order).
    ds = tf.data.TFRecordDataset(files, compression_type=compression)
    if wanted is not None:
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(wanted),
                                                tf.ones(len(wanted), tf.int32)), default_value=0)
        key_only = {"key": tf.io.FixedLenFeature([], tf.string)}

        def is_wanted(record):
            # Only the key is parsed here: skipped records cost no audio decoding.
            ctx, _ = tf.io.parse_single_sequence_example(record, context_features=key_only)
            return table.lookup(ctx["key"]) > 0

        ds = ds.filter(is_wanted)
    frame_len, n_targets = int(index["frame_len"]), int(index["n_targets"])
    meta_types = index.get("metadata_types") or {}

    def parse(record):
        example = parse_sequence_example(record, frame_len=frame_len, n_targets=n_targets,
                                         metadata_types=meta_types)
        example.pop("metadata_json")
        example["mask"] = tf.ones(tf.shape(example["words"]), tf.float32)
        return example

    ds = ds.map(parse)
    if chunk_frames is not None:
        ds = ds.flat_map(lambda example: _chunks(example, int(chunk_frames)))
    if shuffle_buffer:
        ds = ds.shuffle(int(shuffle_buffer), seed=int(seed), reshuffle_each_iteration=True)
    return ds


def chunk_count(length: int, chunk_frames: int | None) -> int:
    """Elements a recording of ``length`` frames gives (1 unchunked)."""
    return 1 if chunk_frames is None else math.ceil(int(length) / int(chunk_frames))
