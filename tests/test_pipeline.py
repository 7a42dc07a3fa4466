"""tf.data pipelines: seeded per-epoch shuffles, streamed == in-memory, split selection."""

import numpy as np
import pytest

from ser_tf.data import load_manifest
from ser_tf.data.synthetic import write_wav
from ser_tf.features.augment import SpecAugment
from ser_tf.features.cache import FeatureSet, extract_features, save_atomic
from ser_tf.features.pipeline import dataset_for_split, make_dataset, stream_dataset
from ser_tf.features.recipes import get_recipe
import ser_tf.papers.lightsernet  # noqa: F401 (registers the "lightsernet" recipe)


def toy(n=20, shape=(6, 4)):
    # Row i is filled with the value i, so a batch's first entries reveal the order.
    features = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, *shape)).copy()
    return features, np.arange(n) % 3


def epoch(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def order(ds):
    return epoch(ds)[0][:, 0, 0].astype(int).tolist()


def test_unshuffled_keeps_order_and_batches():
    features, labels = toy(10)
    ds = make_dataset(features, labels, batch_size=4, shuffle=False)
    assert [len(y) for _, y in ds] == [4, 4, 2]
    x, y = epoch(ds)
    np.testing.assert_array_equal(x, features)
    np.testing.assert_array_equal(y, labels)
    assert len(list(make_dataset(features, labels, batch_size=4, shuffle=False,
                                 drop_remainder=True))) == 2


def test_shuffle_is_seeded_differs_across_epochs_and_is_reproducible():
    features, labels = toy(30)
    ds = make_dataset(features, labels, batch_size=8, shuffle=True, seed=4)
    e1, e2 = order(ds), order(ds)
    assert sorted(e1) == list(range(30)) and sorted(e2) == list(range(30))
    assert e1 != list(range(30)) and e1 != e2  # shuffled, and anew each epoch
    fresh = make_dataset(features, labels, batch_size=8, shuffle=True, seed=4)
    assert [order(fresh), order(fresh)] == [e1, e2]  # the same sequence of epochs
    assert order(make_dataset(features, labels, batch_size=8, shuffle=True, seed=5)) != e1
    x, y = epoch(make_dataset(features, labels, batch_size=8, shuffle=True, seed=4))
    np.testing.assert_array_equal(y, labels[x[:, 0, 0].astype(int)])  # pairs stay together


def test_input_validation_and_one_hot():
    features, labels = toy(6)
    with pytest.raises(ValueError, match="seed"):
        make_dataset(features, labels, batch_size=2, shuffle=True)
    with pytest.raises(ValueError, match="num_classes"):
        make_dataset(features, labels, batch_size=2, shuffle=False, one_hot=True)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        make_dataset(features, labels, batch_size=2, shuffle=False, one_hot=True, num_classes=2)
    with pytest.raises(ValueError, match="one entry per example"):
        make_dataset(features, labels[:5], batch_size=2, shuffle=False)
    _, y = epoch(make_dataset(features, labels, batch_size=4, shuffle=False, one_hot=True,
                              num_classes=5))
    np.testing.assert_array_equal(y, np.eye(5)[labels])


def test_augment_runs_in_the_pipeline_with_training_true():
    features = np.ones((12, 30, 10), np.float32)
    layer = SpecAugment(time_masks=2, time_width=8, freq_masks=2, freq_width=4, seed=0)
    x, _ = epoch(make_dataset(features, np.zeros(12, int), batch_size=4, shuffle=False, augment=layer))
    assert (x == 0).any() and (x == 1).any()
    x, _ = epoch(make_dataset(features, np.zeros(12, int), batch_size=4, shuffle=False,
                              augment=lambda b: b * 2))
    np.testing.assert_array_equal(x, features * 2)


def write_npy(folder, features):
    paths = [folder / f"{i:02d}.npy" for i in range(len(features))]
    for path, row in zip(paths, features):
        save_atomic(path, row)
    return paths


def test_streamed_equals_in_memory_in_content_and_order(tmp_path):
    features, labels = toy(17)
    features += np.random.default_rng(0).random(features.shape, dtype=np.float32)
    paths = write_npy(tmp_path, features)
    for kwargs in (dict(shuffle=False), dict(shuffle=True, seed=9),
                   dict(shuffle=False, one_hot=True, num_classes=3)):
        memory = make_dataset(features, labels, batch_size=5, **kwargs)
        stream = stream_dataset(paths, labels, batch_size=5, **kwargs)
        for _ in range(2):  # two epochs: reshuffles match too
            (xm, ym), (xs, ys) = epoch(memory), epoch(stream)
            np.testing.assert_array_equal(xs, xm)
            np.testing.assert_array_equal(ys, ym)
    assert stream_dataset(paths, labels, batch_size=5, shuffle=False).element_spec[0].shape.as_list() \
        == [None, 6, 4]


def test_stream_rejects_a_file_of_another_shape(tmp_path):
    features, labels = toy(4)
    paths = write_npy(tmp_path, features)
    save_atomic(paths[2], np.zeros((5, 4), np.float32))
    with pytest.raises(Exception, match="02.npy"):
        epoch(stream_dataset(paths, labels, batch_size=2, shuffle=False))


def fake_set(tmp_path, n=8):
    features, labels = toy(n)
    ids = [f"u{i}" for i in range(n)]
    return FeatureSet(features, labels, ids, ("a", "b", "c"), write_npy(tmp_path, features))


def test_dataset_for_split_selects_ids_and_guards_evaluation(tmp_path):
    fs = fake_set(tmp_path)
    test_ids = ["u5", "u1", "u7"]
    x, y = epoch(dataset_for_split(fs, test_ids, training=False, batch_size=2, one_hot=True))
    assert x[:, 0, 0].astype(int).tolist() == [5, 1, 7]
    np.testing.assert_array_equal(y, np.eye(3)[fs.labels[[5, 1, 7]]])
    with pytest.raises(ValueError, match="training split only"):
        dataset_for_split(fs, test_ids, training=False, batch_size=2, augment=lambda b: b)
    with pytest.raises(KeyError, match="nope"):
        dataset_for_split(fs, ["u1", "nope"], training=False, batch_size=2)
    train = ["u0", "u2", "u3", "u4", "u6"]
    kwargs = dict(training=True, batch_size=2, seed=3)
    a, b = (order(dataset_for_split(fs, train, **kwargs)) for _ in range(2))
    assert sorted(a) == [0, 2, 3, 4, 6] and a == b
    streamed = dataset_for_split(fs, train, stream=True, **kwargs)
    assert order(streamed) == a


def test_extracted_features_stream_like_they_load(tmp_path):
    root = tmp_path / "emodb"
    for i, name in enumerate(["03a01Fa.wav", "03a01Wa.wav", "08a02Lb.wav", "16b01Nb.wav"]):
        write_wav(root / "wav" / name, duration=0.3, class_index=i, seed=i)
    manifest = load_manifest("EMODB", root)
    recipe = get_recipe("lightsernet")
    loaded = extract_features(manifest, recipe, tmp_path / "cache")
    lazy = extract_features(manifest, recipe, tmp_path / "cache", load=False)
    ids = loaded.ids[::-1]
    xm, ym = epoch(dataset_for_split(loaded, ids, training=True, batch_size=3, seed=1))
    xs, ys = epoch(dataset_for_split(lazy, ids, training=True, batch_size=3, seed=1))
    np.testing.assert_array_equal(xs, xm)
    np.testing.assert_array_equal(ys, ym)
    assert xm.shape[0] == 4 and xm.shape[1:] == loaded.features.shape[1:]


def test_pipelines_run_without_the_autotuner(tmp_path):
    """The autotuner stalls the destruction of every epoch's iterator; both builders turn it off."""
    x = np.arange(6 * 4, dtype=np.float32).reshape(6, 4)
    y = np.array([0, 1, 2, 0, 1, 2])
    paths = []
    for i, row in enumerate(x):
        paths.append(tmp_path / f"{i}.npy")
        np.save(paths[-1], row)
    for ds in (make_dataset(x, y, batch_size=4, shuffle=True, seed=3),
               stream_dataset(paths, y, batch_size=4, shuffle=True, seed=3)):
        assert ds.options().autotune.enabled is False
        assert sum(int(b[0].shape[0]) for b in ds) == 6  # still yields every example


def test_repeat_gives_full_batches_across_pass_boundaries():
    features, labels = toy(10)
    ds = make_dataset(features, labels, batch_size=4, shuffle=True, seed=3, repeat=True)
    batches = [x[:, 0, 0].numpy().astype(int) for x, _ in ds.take(10)]  # 40 = four passes
    assert all(len(b) == 4 for b in batches)
    seen = np.concatenate(batches)
    assert np.bincount(seen, minlength=10).tolist() == [4] * 10  # every row once per pass
    passes = seen.reshape(4, 10)
    assert all(sorted(p) == list(range(10)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # each pass in a new order
    # Batch 3 straddles the first and second pass (rows 8, 9 of pass 1, 0, 1 of pass 2).
    assert batches[2].tolist() == passes[0][8:].tolist() + passes[1][:2].tolist()
    with pytest.raises(ValueError, match="training split only"):
        fs = FeatureSet(features, labels, [f"u{i}" for i in range(10)], ("a", "b", "c"),
                        [None] * 10)
        dataset_for_split(fs, fs.ids, training=False, batch_size=4, repeat=True)


# --- resuming: a dataset that has already consumed examples -------------------------------

def passes(ds, k):
    """The orders of ``k`` passes, each through a new iterator (as Keras does per epoch)."""
    return [order(ds) for _ in range(k)]


def test_consumed_starts_at_the_pass_an_uninterrupted_dataset_reaches(tmp_path):
    features, labels = toy(13)
    paths = write_npy(tmp_path, features)
    kwargs = dict(labels=labels, batch_size=4, shuffle=True, seed=7)
    reference = passes(make_dataset(features, **kwargs), 5)
    assert len({tuple(p) for p in reference}) == 5
    for done in (1, 3):
        resumed = make_dataset(features, consumed=done * 13, **kwargs)
        assert passes(resumed, 5 - done) == reference[done:]
        streamed = stream_dataset(paths, consumed=done * 13, **kwargs)
        assert passes(streamed, 5 - done) == reference[done:]
    # Without it a rebuilt dataset starts over: the bug a resumed fold had.
    assert order(make_dataset(features, **kwargs)) == reference[0] != reference[3]
    fs = FeatureSet(features, labels, [f"u{i}" for i in range(13)], ("a", "b", "c"), paths)
    split = dict(training=True, batch_size=4, seed=7)
    assert order(dataset_for_split(fs, fs.ids, consumed=26, **split)) == reference[2]
    with pytest.raises(ValueError, match="whole passes"):
        make_dataset(features, consumed=14, **kwargs)
    with pytest.raises(ValueError, match="training split only"):
        dataset_for_split(fs, fs.ids, training=False, batch_size=4, consumed=13)


def test_consumed_puts_a_repeat_stream_where_it_stopped_inside_a_pass():
    features, labels = toy(10)
    kwargs = dict(labels=labels, batch_size=4, shuffle=True, seed=3, repeat=True)
    stream = [x[:, 0, 0].numpy().astype(int).tolist()
              for x, _ in make_dataset(features, **kwargs).take(12)]
    steps = 10 // 4  # steps per epoch of a full-batch training
    for done in (1, 2, 3):  # 8, 16, 24 examples read: mid-pass, mid-pass, mid-pass
        at = done * steps
        resumed = make_dataset(features, consumed=at * 4, **kwargs)
        got = [x[:, 0, 0].numpy().astype(int).tolist() for x, _ in resumed.take(12 - at)]
        assert got == stream[at:]
    with pytest.raises(ValueError, match="multiple"):
        make_dataset(features, consumed=6, **kwargs)


@pytest.mark.parametrize("kind", ["keras_layer", "awgn"])
def test_consumed_fast_forwards_a_seeded_augmentation(kind):
    from ser_tf.training.sources import awgn_augmentation

    # awgn takes waveforms (rows, samples); SpecAugment spectrograms (rows, frames, bins)
    features = np.ones((10, 12) if kind == "awgn" else (10, 12, 5), np.float32)
    labels = np.zeros(10, int)

    def make(augment, **kw):
        return make_dataset(features, labels, batch_size=4, shuffle=True, seed=2,
                            augment=augment, **kw)

    def augment():
        if kind == "awgn":
            return awgn_augmentation((5, 10), seed=4)
        return SpecAugment(time_masks=2, time_width=4, freq_masks=1, freq_width=2, seed=4)

    for repeat in (False, True):
        ds = make(augment(), repeat=repeat)
        if repeat:
            it = iter(ds)
            reference = [next(it)[0].numpy() for _ in range(9)]
            resumed = iter(make(augment(), repeat=True, consumed=5 * 4))
            got = [next(resumed)[0].numpy() for _ in range(4)]
            expected = reference[5:]
        else:
            reference = [epoch(ds)[0] for _ in range(3)]
            got = [epoch(make(augment(), consumed=2 * 10))[0]]
            expected = reference[2:]
        assert not np.array_equal(reference[0], reference[-1])
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_awgn_fast_forward_equals_drawing_the_numbers():
    from ser_tf.training.sources import awgn_augmentation

    batches = [np.ones((4, 30), np.float32), np.ones((4, 30), np.float32) * 2,
               np.ones((3, 30), np.float32)]
    drawn = awgn_augmentation((5, 10), seed=1)
    for batch in batches:
        drawn(batch)
    skipped = awgn_augmentation((5, 10), seed=1)
    skipped.fast_forward([(4, 2), (3, 1)], (30,))
    probe = np.ones((2, 30), np.float32)
    np.testing.assert_array_equal(np.asarray(drawn(probe)), np.asarray(skipped(probe)))
    drawn.reset()
    np.testing.assert_array_equal(np.asarray(drawn(batches[0])),
                                  np.asarray(awgn_augmentation((5, 10), seed=1)(batches[0])))
