"""SequenceExample records: round trip, chunking, validation, and bounded memory."""

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ser_tf.data.sequence_records import (SequenceItem, parse_sequence_example,
                                          read_sequence_records, write_sequence_records)

FRAME_LEN, N_TARGETS = 6, 2


def make_item(k: int, frames: int, rng, **metadata) -> SequenceItem:
    return SequenceItem(
        key=f"rec{k:03d}",
        audio=rng.normal(size=(frames, FRAME_LEN)).astype(np.float32),
        words=rng.integers(0, 50, frames),
        targets=rng.uniform(-1, 1, (frames, N_TARGETS)).astype(np.float32),
        metadata={"speaker": f"spk{k % 3}", "corpus": "toy", "sample_rate": 16000,
                  "weight": 0.1 + k, "label": "anger", **metadata})


def make_items(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return [make_item(k, 3 + 2 * k, rng) for k in range(n)]


def by_key(ds):
    return {e["key"].decode(): e for e in ds.as_numpy_iterator()}


@pytest.mark.parametrize("compression", ["GZIP", None])
def test_round_trip_keeps_every_field_exactly(tmp_path, compression):
    items = make_items()
    index_path = write_sequence_records(iter(items), tmp_path, shard_size=3,
                                        compression=compression, target_names=["arousal",
                                                                                "valence"])
    index = json.loads(index_path.read_text())
    suffix = ".tfrecord.gz" if compression else ".tfrecord"
    assert [s["file"] for s in index["shards"]] == [f"part-0000{i}{suffix}" for i in range(3)]
    assert [s["count"] for s in index["shards"]] == [3, 3, 1]
    assert (index["frame_len"], index["n_targets"], index["compression"]) == \
        (FRAME_LEN, N_TARGETS, compression)
    assert index["target_names"] == ["arousal", "valence"]
    assert index["counts"]["frames"] == sum(i.length for i in items)
    assert all((tmp_path / s["file"]).is_file() for s in index["shards"])

    got = by_key(read_sequence_records(index_path))
    assert list(got) == [i.key for i in items]  # file order
    for item in items:
        e = got[item.key]
        np.testing.assert_array_equal(e["audio"], item.audio)  # bit-exact float32
        assert e["audio"].dtype == np.float32
        np.testing.assert_array_equal(e["words"], item.words)
        assert e["words"].dtype == np.int64
        np.testing.assert_array_equal(e["targets"], item.targets)
        np.testing.assert_array_equal(e["mask"], np.ones(item.length, np.float32))
        assert e["length"] == item.length
        assert e["speaker"].decode() == item.metadata["speaker"]
        assert e["sample_rate"] == 16000 and e["sample_rate"].dtype == np.int64
        assert e["weight"] == item.metadata["weight"]  # float64, exact (0.1 + k)
        assert e["weight"].dtype == np.float64


def test_parse_sequence_example_alone_gives_metadata_json(tmp_path):
    item = make_items(1)[0]
    index_path = write_sequence_records([item], tmp_path, compression=None)
    raw = next(iter(tf.data.TFRecordDataset(str(tmp_path / "part-00000.tfrecord"))))
    parsed = parse_sequence_example(raw, frame_len=FRAME_LEN, n_targets=N_TARGETS)
    assert parsed["key"].numpy().decode() == item.key and int(parsed["length"]) == item.length
    assert json.loads(parsed["metadata_json"].numpy()) == item.metadata
    np.testing.assert_array_equal(parsed["audio"].numpy(), item.audio)
    typed = parse_sequence_example(raw, frame_len=FRAME_LEN, n_targets=N_TARGETS,
                                   metadata_types=json.loads(index_path.read_text())
                                   ["metadata_types"])
    assert float(typed["weight"]) == item.metadata["weight"]
    with pytest.raises(tf.errors.InvalidArgumentError):
        parse_sequence_example(raw, frame_len=FRAME_LEN + 1, n_targets=N_TARGETS)


def test_chunks_cover_each_recording_with_a_mask(tmp_path):
    items = make_items(4)  # lengths 3, 5, 7, 9
    index_path = write_sequence_records(items, tmp_path, shard_size=2)
    chunks = list(read_sequence_records(index_path, chunk_frames=4).as_numpy_iterator())
    assert [(c["key"].decode(), int(c["chunk"]), int(c["start"])) for c in chunks] == [
        ("rec000", 0, 0), ("rec001", 0, 0), ("rec001", 1, 4), ("rec002", 0, 0),
        ("rec002", 1, 4), ("rec003", 0, 0), ("rec003", 1, 4), ("rec003", 2, 8)]
    for item in items:
        mine = [c for c in chunks if c["key"].decode() == item.key]
        assert all(c["audio"].shape == (4, FRAME_LEN) for c in mine)
        mask = np.concatenate([c["mask"] for c in mine])
        assert mask.sum() == item.length and mask[:item.length].all()
        audio = np.concatenate([c["audio"] for c in mine])
        np.testing.assert_array_equal(audio[:item.length], item.audio)
        np.testing.assert_array_equal(audio[item.length:], 0)  # padding is zeros
        np.testing.assert_array_equal(np.concatenate([c["targets"] for c in mine])
                                      [:item.length], item.targets)
        assert all(int(c["length"]) == item.length for c in mine)


def test_keys_select_recordings_and_shuffle_is_seeded(tmp_path):
    index_path = write_sequence_records(make_items(9), tmp_path, shard_size=2)
    chosen = ["rec007", "rec002"]
    got = [e["key"].decode() for e in read_sequence_records(index_path, keys=chosen)
           .as_numpy_iterator()]
    assert got == ["rec002", "rec007"]  # file order
    with pytest.raises(KeyError, match="rec999"):
        read_sequence_records(index_path, keys=["rec999"])

    def order(seed):
        ds = read_sequence_records(index_path, shuffle_buffer=9, seed=seed)
        return [e["key"].decode() for e in ds.as_numpy_iterator()]

    assert order(1) == order(1)
    assert sorted(order(1)) == [f"rec{k:03d}" for k in range(9)]
    assert order(1) != order(2) or order(1) != order(3)
    assert order(1) != sorted(order(1))


def test_padded_batch_pads_mask_with_zeros(tmp_path):
    index_path = write_sequence_records(make_items(3), tmp_path)
    batch = next(iter(read_sequence_records(index_path).padded_batch(3)))
    assert batch["audio"].shape == (3, 7, FRAME_LEN)
    np.testing.assert_array_equal(batch["mask"].numpy().sum(axis=1), [3, 5, 7])


def test_shape_mismatch_names_the_key():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"bad-one: frame counts differ: .*'words': 4"):
        SequenceItem("bad-one", np.zeros((5, 3)), np.zeros(4, int), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="bad-two: targets must be"):
        SequenceItem("bad-two", np.zeros((5, 3)), np.zeros(5, int), np.zeros(5))
    with pytest.raises(ValueError, match="bad-three: metadata 'when' must be"):
        SequenceItem("bad-three", np.zeros((2, 3)), np.zeros(2, int), np.zeros((2, 1)),
                     {"when": None})
    with pytest.raises(ValueError, match="bad-four: metadata names"):
        SequenceItem("bad-four", np.zeros((2, 3)), np.zeros(2, int), np.zeros((2, 1)),
                     {"mask": 1})
    with pytest.raises(ValueError, match="bad-five: no frames"):
        SequenceItem("bad-five", np.zeros((0, 3)), np.zeros(0, int), np.zeros((0, 1)))
    assert make_item(0, 2, rng).words.dtype == np.int64


def test_writer_rejects_inconsistent_items(tmp_path):
    rng = np.random.default_rng(0)
    first = make_item(0, 3, rng)
    other_frame = SequenceItem("wide", np.zeros((3, FRAME_LEN + 1)), np.zeros(3, int),
                               np.zeros((3, N_TARGETS)), first.metadata)
    with pytest.raises(ValueError, match="wide: frame_len 7"):
        write_sequence_records([first, other_frame], tmp_path / "a")
    with pytest.raises(ValueError, match="rec000: key appears twice"):
        write_sequence_records([first, first], tmp_path / "b")
    with pytest.raises(ValueError, match="rec001: metadata"):
        write_sequence_records([first, make_item(1, 3, rng, extra=1)], tmp_path / "c")
    with pytest.raises(ValueError, match="no items"):
        write_sequence_records([], tmp_path / "d")
    with pytest.raises(ValueError, match="target_names"):
        write_sequence_records([first], tmp_path / "e", target_names=["a"])
    with pytest.raises(ValueError, match="compression"):
        write_sequence_records([first], tmp_path / "f", compression="ZLIB")


# --- bounded memory ----------------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakRss:
    """Samples this process's RSS every 5 ms in a thread: the peak between start and stop."""

    def __enter__(self):
        self.peak, self._stop = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def stream_a_large_set(folder) -> dict:
    """Write ~490 MB of frames (116 recordings of 4.4 MB, generated lazily: the set never
    exists in memory) to ``folder`` and read them four times (whole and chunked); the RSS
    growth of this process over its baseline while writing and during each read."""
    frames, frame_len, n_items = 250, 4410, 116
    folder = Path(folder)
    base = np.random.default_rng(0).normal(size=(frames, frame_len)).astype(np.float32)
    words, targets = np.arange(frames) % 7, np.zeros((frames, 2), np.float32)

    def items():
        for k in range(n_items):
            yield SequenceItem(f"big{k:04d}", base + np.float32(k), words, targets,
                               {"speaker": f"s{k % 4}"})

    # Warm up TensorFlow's runtime (its first use allocates what it keeps for good).
    warm = write_sequence_records(
        [SequenceItem("w", base, words, targets, {"speaker": "s"})], folder / "warm",
        compression=None)
    for _ in read_sequence_records(warm, chunk_frames=50).as_numpy_iterator():
        pass
    start = time.perf_counter()
    baseline = rss_mb()
    with PeakRss() as writing:
        index_path = write_sequence_records(items(), folder / "big", shard_size=16,
                                            compression=None)
    on_disk = sum(p.stat().st_size for p in (folder / "big").glob("*.tfrecord")) / 2**20
    peaks, seen = [], []
    for chunk_frames in (None, 64, None, 64):
        frames_read = 0
        with PeakRss() as reading:
            for element in read_sequence_records(index_path, chunk_frames=chunk_frames,
                                                 shuffle_buffer=4).as_numpy_iterator():
                frames_read += int(element["mask"].sum())
        seen.append(frames_read)
        peaks.append(reading.peak)
    return {"baseline": baseline, "write": writing.peak - baseline,
            "reads": [p - baseline for p in peaks], "seen": seen,
            "expected": n_items * frames, "on_disk_mb": on_disk,
            "seconds": time.perf_counter() - start}


def test_bounded_memory_streams_a_set_far_larger_than_the_cap(tmp_path, in_fresh_process):
    """PROVES: writing and reading a data set ~4x larger than a 120 MB cap never grows the
    RSS by the cap: records are streamed one at a time both ways (the writer holds no shard
    in memory, the reader holds no more than a record, its chunks and the shuffle buffer).
    Four passes (~2 GB read, whole and chunked) stay under the cap too, so nothing kept per
    record read adds up. Measured in a fresh process: a test worker that has run many
    tests already holds gigabytes whose allocator reuse would be measured instead.
    Uncompressed (GZIP would test zlib's speed, not memory)."""
    cap_mb = 120
    growth = in_fresh_process("tests.test_sequence_records", "stream_a_large_set", tmp_path)
    print(f"RSS growth over baseline {growth['baseline']:.0f} MB: {growth}")
    assert growth["on_disk_mb"] > 4 * cap_mb  # several times the cap, really on disk
    assert growth["seen"] == [growth["expected"]] * 4  # every frame read, every pass
    assert growth["write"] < cap_mb, growth
    assert max(growth["reads"]) < cap_mb, growth
