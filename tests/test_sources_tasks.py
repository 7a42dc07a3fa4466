"""Data sources (cached, waveform, TFRecord) and tasks (classification, CCC regression):
what each gives a fold, and a fold trained through each."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from ser_tf.data import load_manifest
from ser_tf.data.synthetic import make_emodb_like
from ser_tf.features.recipes import FeatureRecipe
from ser_tf.training.classifier import FitConfig, train_fold
from ser_tf.training.metrics import ccc, classification_metrics
from ser_tf.training.protocols import Fold
from ser_tf.training.sources import (TFRecordSource, WaveformSource, awgn_augmentation,
                                     write_tfrecord_shards)
from ser_tf.training.tasks import (ClassificationTask, RegressionTask, regression_metrics,
                                   summarize_regression, task_from_config)

RNG = np.random.default_rng(0)


# --- tasks ---------------------------------------------------------------------------------

def test_classification_task_evaluates_like_classification_metrics():
    task = ClassificationTask(("a", "b", "c"))
    y = np.array([0, 1, 2, 2])
    p = np.eye(3)[[0, 2, 2, 1]]
    assert task.evaluate(y, p) == classification_metrics(y, p, ("a", "b", "c"))
    assert task.num_outputs == 3
    with pytest.raises(ValueError, match=">= 2 labels"):
        ClassificationTask(("only",))


def test_regression_metrics_per_output():
    t = RNG.normal(size=(50, 3))
    p = t + RNG.normal(scale=[0.1, 0.5, 2.0], size=(50, 3))
    m = regression_metrics(t, p, ("arousal", "valence", "liking"))
    expected = ccc(t, p)
    assert [m["ccc"][k] for k in ("arousal", "valence", "liking")] == pytest.approx(expected)
    assert m["ccc"]["arousal"] > m["ccc"]["valence"] > m["ccc"]["liking"]
    assert m["mean_ccc"] == pytest.approx(float(np.mean(expected)))
    assert m["rmse"]["liking"] == pytest.approx(float(np.sqrt(((t - p)[:, 2] ** 2).mean())))
    with pytest.raises(ValueError, match="outputs"):
        regression_metrics(t, p, ("arousal", "valence"))


@pytest.mark.parametrize("weighting,weights", [("mean", [1 / 3] * 3),
                                               ("inverse_index", np.array([1, .5, 1 / 3]) / (11 / 6))])
def test_regression_loss_is_weighted_one_minus_ccc(weighting, weights):
    task = RegressionTask(("a", "v", "l"), weighting=weighting)
    t = RNG.normal(size=(64, 3)).astype("float32")
    p = (t * [1.0, 0.5, -1.0] + RNG.normal(scale=0.3, size=(64, 3))).astype("float32")
    expected = float(np.dot(weights, 1 - ccc(t, p)))
    assert float(task.loss()(t, p)) == pytest.approx(expected, rel=1e-4)
    assert task.output_weights().sum() == pytest.approx(1.0)


def test_summarize_regression_and_task_config():
    folds = [regression_metrics(t, t * s, ("a", "v"))
             for t, s in ((RNG.normal(size=(20, 2)), 0.5), (RNG.normal(size=(20, 2)), 0.9))]
    summary = summarize_regression(folds)
    assert summary["ccc_a"]["mean"] == pytest.approx(np.mean([f["ccc"]["a"] for f in folds]))
    assert summary["n_folds"] == 2 and summary["std_ddof"] == 1
    assert task_from_config(None, ("x", "y")) == ClassificationTask(("x", "y"))
    assert task_from_config({"kind": "regression", "outputs": ["a"]}, ()).outputs == ("a",)
    with pytest.raises(ValueError, match="unknown task kind"):
        task_from_config({"kind": "ranking"}, ())


# --- AWGN ----------------------------------------------------------------------------------

def test_awgn_augmentation_hits_the_drawn_snr_and_is_seeded():
    batch = np.stack([np.sin(np.arange(4000) / (5 + i)) * (i + 1) for i in range(6)])
    batch = batch.astype("float32")
    noisy = np.asarray(awgn_augmentation((15, 30), seed=3)(batch))
    noise = noisy - batch
    snr = 10 * np.log10((batch ** 2).mean(1) / (noise ** 2).mean(1))
    assert np.all((snr > 15 - 1e-3) & (snr < 30 + 1e-3))
    assert snr.std() > 1  # drawn per row, not one SNR for the batch
    again = np.asarray(awgn_augmentation((15, 30), seed=3)(batch))
    assert np.array_equal(noisy, again)
    assert not np.array_equal(noisy, np.asarray(awgn_augmentation((15, 30), seed=4)(batch)))
    with pytest.raises(ValueError, match="low <= high"):
        awgn_augmentation((30, 15), seed=0)


# --- waveform source -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = make_emodb_like(tmp_path_factory.mktemp("c") / "emodb", per_class=2, duration=0.5,
                           classes="WLN")
    return load_manifest("EMODB", root)


WINDOW = FeatureRecipe("half_second", 16000, {"kind": "window", "offset": 0.0, "duration": 0.5})


def test_waveform_source_augments_the_training_split_only(corpus):
    source = WaveformSource(corpus, WINDOW, augment=awgn_augmentation((20, 20), seed=0))
    task = ClassificationTask(tuple(corpus.labels))
    ids = source.ids
    assert source.waveforms.shape == (len(ids), 8000)
    clean = np.concatenate([x for x, _ in source.dataset(ids, task=task, training=False,
                                                           batch_size=4)])
    assert np.array_equal(clean, source.waveforms)
    x, y = next(iter(source.dataset(ids, task=task, training=True, batch_size=len(ids),
                                    seed=1)))
    x = np.asarray(x)
    rows = [int(np.argmin(np.abs(source.waveforms - row).sum(1))) for row in x]
    noise = x - source.waveforms[rows]
    snr = 10 * np.log10((source.waveforms[rows] ** 2).mean(1) / (noise ** 2).mean(1))
    assert snr == pytest.approx(np.full(len(ids), 20.0), abs=1e-2)
    assert np.array_equal(np.argmax(y, 1), source.targets([ids[r] for r in rows]))


# --- TFRecord source -----------------------------------------------------------------------

def examples(n, *, regression=False):
    for i in range(n):
        yield {"id": f"u{i:04d}",
               "inputs": {"audio": np.full((6, 2), i, np.float32), "words": np.arange(3) + i},
               "target": [i / n, -i / n] if regression else i % 3}


def test_tfrecord_round_trip_keeps_every_field(tmp_path):
    index = write_tfrecord_shards(examples(10), tmp_path / "tfr", shard_size=4,
                                  compression="GZIP")
    meta = json.loads(index.read_text())
    assert [len(s["ids"]) for s in meta["shards"]] == [4, 4, 2]
    assert all(s["file"].endswith(".tfrecord.gz") for s in meta["shards"])
    source = TFRecordSource(index)
    task = ClassificationTask(("a", "b", "c"))
    wanted = ["u0007", "u0001", "u0005"]
    assert source.evaluation_order(wanted) == ["u0001", "u0005", "u0007"]
    (x, y), = list(source.dataset(wanted, task=task, training=False, batch_size=8))
    assert np.asarray(x["audio"]).shape == (3, 6, 2)
    assert np.asarray(x["audio"])[:, 0, 0].tolist() == [1, 5, 7]
    assert np.asarray(x["words"]).tolist() == [[1, 2, 3], [5, 6, 7], [7, 8, 9]]
    assert np.argmax(y, 1).tolist() == source.targets(["u0001", "u0005", "u0007"]).tolist()
    with pytest.raises(KeyError, match="u9999"):
        source.dataset(["u9999"], task=task, training=False, batch_size=2)


def test_tfrecord_training_stream_is_shuffled_seeded_and_complete(tmp_path):
    source = TFRecordSource(write_tfrecord_shards(examples(40), tmp_path, shard_size=8),
                            shuffle_buffer=16)
    task = ClassificationTask(("a", "b", "c"))
    ids = source.ids[5:35]

    def order(seed):
        return [int(v) for x, _ in source.dataset(ids, task=task, training=True,
                                                  batch_size=7, seed=seed)
                for v in np.asarray(x["audio"])[:, 0, 0]]

    first = order(1)
    assert sorted(first) == list(range(5, 35))
    assert first != sorted(first)
    assert order(1) == first
    with pytest.raises(ValueError, match="seed"):
        source.dataset(ids, task=task, training=True, batch_size=4)


def stream_tfrecord_source(folder) -> dict:
    """Write 240 MB of float32 examples lazily to TFRecord shards in ``folder``, then stream
    them once through :class:`TFRecordSource` (shuffled, batched): the RSS growth of this
    process over its baseline while reading, and the examples seen."""
    from tests.test_sequence_records import PeakRss, rss_mb

    big = ({"id": f"u{i:05d}", "inputs": {"x": np.full(50_000, i % 7, np.float32)},
            "target": i % 3} for i in range(1200))  # 1200 x 0.2 MB
    source = TFRecordSource(write_tfrecord_shards(big, Path(folder), shard_size=100),
                            shuffle_buffer=64)
    task = ClassificationTask(("a", "b", "c"))
    # Warm up TensorFlow's runtime (its first use allocates what it keeps for good).
    for _ in source.dataset(source.ids[:8], task=task, training=False, batch_size=8):
        pass
    baseline, seen = rss_mb(), 0
    with PeakRss() as reading:
        for x, _ in source.dataset(source.ids, task=task, training=True, batch_size=32,
                                   seed=0):
            seen += int(x.shape[0])
    on_disk = sum(p.stat().st_size for p in Path(folder).rglob("*.tfrecord*")) / 2**20
    return {"baseline": baseline, "read": reading.peak - baseline, "seen": seen,
            "on_disk_mb": on_disk}


def test_tfrecord_streaming_memory_stays_bounded(tmp_path, in_fresh_process):
    """Streaming a 240 MB set grows the RSS by less than half of it: examples come off the
    shards through the shuffle buffer (64 x 0.2 MB), batches and prefetch, never all at
    once. Measured in a fresh process, as in test_sequence_records: a test worker that has
    run other tests reuses memory it already holds and would hide the growth."""
    cap_mb = 120
    growth = in_fresh_process("tests.test_sources_tasks", "stream_tfrecord_source", tmp_path)
    assert growth["seen"] == 1200
    assert growth["on_disk_mb"] > 1.5 * cap_mb  # the set really is on disk, well over the cap
    assert growth["read"] < cap_mb, growth


def test_train_fold_regression_from_tfrecords(tmp_path):
    t = np.linspace(-1, 1, 48)
    data = ({"id": f"u{i:02d}", "inputs": {"x": np.array([v, v ** 2, 1.0], np.float32)},
             "target": [float(v), float(-v)]} for i, v in enumerate(t))
    source = TFRecordSource(write_tfrecord_shards(data, tmp_path / "tfr", shard_size=10))
    ids = source.ids
    fold = Fold(index=0, train_ids=ids[::2], val_ids=ids[1::4], test_ids=ids[3::4],
                selection_on_test=False)
    task = RegressionTask(("arousal", "valence"))

    def build(num_outputs):
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(num_outputs)])

    fit = FitConfig(epochs=40, batch_size=12, learning_rate=0.05, monitor="val_CCC",
                    jit_compile=False, seed=0)
    result = train_fold(fold, tmp_path / "fold", build_model=build, fit=fit, source=source,
                        task=task, quiet=True)
    metrics = result["metrics"]
    assert metrics["outputs"] == ["arousal", "valence"]
    assert metrics["ccc"]["arousal"] > 0.9 and metrics["ccc"]["valence"] > 0.9
    assert result["test_ids"] == source.evaluation_order(fold.test_ids)
    assert "val_CCC" in result["history"]
