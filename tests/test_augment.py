"""Augmentation: exact-SNR noise, train-split-only copies, SpecAugment, image augmentation."""

from collections.abc import Mapping

import keras
import numpy as np
import pytest

from ser_tf.data.synthetic import class_signal
from ser_tf.features.augment import (LeakageError, SpecAugment, add_awgn, augment_training_split,
                                     awgn_copies, image_augmentation)


def snr_of(clean, noisy):
    clean, noise = clean.astype(np.float64), noisy.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean ** 2) / np.mean(noise ** 2))


@pytest.mark.parametrize("snr", [0.0, 15.0, 22.5, 30.0])
def test_add_awgn_hits_the_requested_snr_exactly(snr):
    clean = class_signal(2, duration=0.5)
    noisy = add_awgn(clean, snr, np.random.default_rng(1))
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    assert snr_of(clean, noisy) == pytest.approx(snr, abs=0.01)
    noise = noisy.astype(np.float64) - clean
    # White: no correlation between neighbouring samples, zero mean.
    assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.05
    assert abs(noise.mean()) < 0.1 * noise.std()


def test_add_awgn_rejects_silence_and_non_mono():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="silent"):
        add_awgn(np.zeros(100), 20, rng)
    with pytest.raises(ValueError, match="1-D"):
        add_awgn(np.ones((100, 2)), 20, rng)


def test_awgn_copies_shapes_sources_range_and_seeding():
    waves = np.stack([class_signal(c, duration=0.2, seed=c) for c in range(3)])
    copies = awgn_copies(waves, [0, 1, 2], ["a", "b", "c"], k=4, snr_range=(10, 20), seed=7)
    assert copies.waveforms.shape == (12, waves.shape[1])
    assert copies.source_ids == ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    assert copies.ids[:2] == ["a+awgn0", "a+awgn1"]
    assert list(copies.labels) == [0] * 4 + [1] * 4 + [2] * 4
    assert np.all((copies.snr_db >= 10) & (copies.snr_db <= 20))
    assert len(set(np.round(copies.snr_db, 6))) == 12  # drawn, not constant
    for row, src, snr in zip(copies.waveforms, copies.source_ids, copies.snr_db):
        assert snr_of(waves["abc".index(src)], row) == pytest.approx(snr, abs=0.01)

    again = awgn_copies(waves, [0, 1, 2], ["a", "b", "c"], k=4, snr_range=(10, 20), seed=7)
    np.testing.assert_array_equal(again.waveforms, copies.waveforms)
    other = awgn_copies(waves, [0, 1, 2], ["a", "b", "c"], k=4, snr_range=(10, 20), seed=8)
    assert not np.allclose(other.waveforms, copies.waveforms)
    # A copy depends only on (seed, id, copy): augmenting a subset changes nothing.
    only_b = awgn_copies(waves[1:2], [1], ["b"], k=4, snr_range=(10, 20), seed=7)
    np.testing.assert_array_equal(only_b.waveforms, copies.waveforms[4:8])


def test_awgn_copies_keeps_variable_lengths_as_list():
    waves = [class_signal(0, duration=0.1), class_signal(1, duration=0.2)]
    copies = awgn_copies(waves, [0, 1], ["a", "b"], k=2)
    assert isinstance(copies.waveforms, list)
    assert [w.size for w in copies.waveforms] == [1600, 1600, 3200, 3200]


class RecordingMapping(Mapping):
    """A dict that remembers which keys were read."""

    def __init__(self, data):
        self.data, self.read = dict(data), set()

    def __getitem__(self, key):
        self.read.add(key)
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def test_no_augmented_copy_of_a_held_out_utterance_reaches_training():
    ids = [f"u{i}" for i in range(10)]
    corpus = RecordingMapping({u: class_signal(i, duration=0.1, seed=i) for i, u in enumerate(ids)})
    labels = {u: i % 4 for i, u in enumerate(ids)}
    train, val, test = ids[:6], ids[6:8], ids[8:]
    rows = augment_training_split(train, corpus, labels, test_ids=test, val_ids=val, k=3, seed=0)
    assert set(rows.source_ids) == set(train)
    assert not set(rows.source_ids) & (set(val) | set(test))
    assert not set(rows.ids) & (set(val) | set(test))
    assert len(rows.ids) == 6 + 6 * 3 and rows.ids[:6] == train
    assert np.isnan(rows.snr_db[:6]).all() and not np.isnan(rows.snr_db[6:]).any()
    # Held-out audio is never even read.
    assert corpus.read == set(train)
    # No training row is (a noisy version of) a held-out recording.
    held_out = np.stack([corpus.data[u] for u in val + test])
    corr = np.abs(np.corrcoef(np.vstack([rows.waveforms, held_out]))[: len(rows.ids), len(rows.ids):])
    assert corr.max() < 0.9


@pytest.mark.parametrize("split", ["test", "val"])
def test_augmenting_a_held_out_id_raises(split):
    ids = ["a", "b", "c", "d"]
    waves = {u: class_signal(0, duration=0.1, seed=i) for i, u in enumerate(ids)}
    labels = dict.fromkeys(ids, 0)
    held = {"test_ids": ["d"], "val_ids": ["c"]}
    leaked = ["a", "d"] if split == "test" else ["a", "c"]
    with pytest.raises(LeakageError, match="test" if split == "test" else "validation"):
        augment_training_split(leaked, waves, labels, **held)


def test_specaugment_is_identity_at_inference_and_masks_bands_in_training():
    x = np.ones((16, 50, 20), dtype=np.float32)
    layer = SpecAugment(time_masks=2, time_width=6, freq_masks=1, freq_width=4, seed=3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    assert (y == 0).any() and (y == 1).any()
    for example in y:
        zero = example == 0
        rows, cols = zero.all(axis=1), zero.all(axis=0)
        # Every masked value lies in a fully masked frame or a fully masked bin.
        assert np.array_equal(zero, rows[:, None] | cols[None, :])
        assert rows.sum() <= 2 * 6 and cols.sum() <= 1 * 4


def test_specaugment_is_seeded_and_supports_channels():
    x = np.random.default_rng(0).random((8, 40, 16, 1)).astype(np.float32)
    a = SpecAugment(time_width=10, freq_width=5, seed=11)
    b = SpecAugment(time_width=10, freq_width=5, seed=11)
    ya1, yb1 = (keras.ops.convert_to_numpy(layer(x, training=True)) for layer in (a, b))
    np.testing.assert_array_equal(ya1, yb1)
    ya2 = keras.ops.convert_to_numpy(a(x, training=True))
    assert not np.array_equal(ya1, ya2)  # new masks on every call
    assert ya1.shape == x.shape
    clone = SpecAugment.from_config(a.get_config())
    assert clone.get_config() == a.get_config()
    with pytest.raises(ValueError):
        SpecAugment(time_masks=-1)


def test_image_augmentation_layers_training_only_and_seeded():
    aug = image_augmentation(seed=5)
    assert [type(layer).__name__ for layer in aug.layers] == ["RandomFlip", "RandomRotation",
                                                              "RandomZoom"]
    images = np.random.default_rng(0).random((4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(aug(images, training=False)), images)
    out1 = keras.ops.convert_to_numpy(aug(images, training=True))
    assert out1.shape == images.shape and not np.allclose(out1, images)
    out2 = keras.ops.convert_to_numpy(image_augmentation(seed=5)(images, training=True))
    np.testing.assert_allclose(out1, out2)
    assert [type(la).__name__ for la in image_augmentation(flip=False, zoom=0).layers] == ["RandomRotation"]
