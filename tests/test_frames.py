"""Framing raw audio and aligning words to frames."""

from collections import namedtuple

import numpy as np
import pytest

from ser_tf.features.frames import frame_audio, frame_length, uniform_word_times, words_per_frame
from ser_tf.features.word_vectors import Vocabulary

Word = namedtuple("Word", "word start end")


def test_frame_audio_mono_pads_last_frame_with_zeros():
    wave = np.arange(1, 26, dtype=np.float64)  # 25 samples, 10 per frame at 100 Hz / 0.1 s
    frames = frame_audio(wave, 100, 0.1)
    assert frames.dtype == np.float32 and frames.shape == (3, 10)
    np.testing.assert_array_equal(frames.ravel()[:25], wave)
    np.testing.assert_array_equal(frames[2, 5:], 0)


def test_frame_audio_paper_frame_length_at_44k():
    frames = frame_audio(np.ones(44100), 44100)
    assert frames.shape == (10, 4410)
    assert frame_length(44100, 0.1) == 4410


def test_frame_audio_stereo_keeps_channels_side_by_side():
    subject = np.arange(20, dtype=np.float32)
    partner = -np.arange(20, dtype=np.float32) - 100
    frames = frame_audio(np.stack([subject, partner], axis=1), 100, 0.1)
    assert frames.shape == (2, 20)
    np.testing.assert_array_equal(frames[1, :10], subject[10:20])
    np.testing.assert_array_equal(frames[1, 10:], partner[10:20])


def test_frame_audio_exact_multiple_has_no_extra_frame_and_empty_gives_zero_frames():
    assert frame_audio(np.zeros(30), 100).shape == (3, 10)
    assert frame_audio(np.zeros(0), 100).shape == (0, 10)


@pytest.mark.parametrize("wave, rate, seconds, match", [
    (np.zeros((2, 2, 2)), 100, 0.1, "samples"),
    (np.zeros(10), 0, 0.1, "sample_rate"),
    (np.zeros(10), 100, -1.0, "frame_seconds"),
    (np.array([0.0, np.nan]), 100, 0.1, "NaN"),
    (np.array(["a", "b"]), 100, 0.1, "numeric"),
    (np.zeros(10), 100, 0.001, "no sample"),
])
def test_frame_audio_rejects_bad_input(wave, rate, seconds, match):
    with pytest.raises(ValueError, match=match):
        frame_audio(wave, rate, seconds)


def test_words_per_frame_uses_frame_centres_and_zero_for_silence():
    vocab = Vocabulary(["hello", "world"])
    # frame centres: 0.05, 0.15, 0.25, 0.35, 0.45, 0.55
    words = [Word("hello", 0.1, 0.3), ("World", 0.3, 0.4), ("unseen", 0.5, 0.52)]
    ids = words_per_frame(words, 6, vocab)
    assert ids.dtype == np.int64
    # "unseen" covers no centre (0.55 is past its end): not shown in any frame
    assert ids.tolist() == [0, 2, 2, 3, 0, 0]
    ids = words_per_frame([("unseen", 0.5, 0.6)], 6, vocab)
    assert ids.tolist() == [0, 0, 0, 0, 0, 1]  # unknown word -> the OOV id


def test_words_per_frame_later_word_wins_overlap_and_clips_to_n_frames():
    vocab = Vocabulary(["a", "b"])
    ids = words_per_frame([("b", 0.2, 0.9), ("a", 0.0, 0.35)], 4, vocab)
    assert ids.tolist() == [2, 2, 3, 3]


@pytest.mark.parametrize("words, match", [
    ([("a", 0.5, 0.2)], "start <= end"),
    ([("a", "x", 1.0)], "numbers"),
    ([("a", 0.1)], "tuple"),
])
def test_words_per_frame_rejects_bad_timings(words, match):
    with pytest.raises(ValueError, match=match):
        words_per_frame(words, 5, Vocabulary(["a"]))


def test_words_per_frame_rejects_bad_frame_count():
    with pytest.raises(ValueError, match="n_frames"):
        words_per_frame([], -1, Vocabulary())


def test_uniform_word_times_spreads_evenly_and_feeds_words_per_frame():
    times = uniform_word_times("Guten Morgen, schöne Grüße!", 2.0)
    assert [w for w, _, _ in times] == ["guten", "morgen", "schöne", "grüße"]
    np.testing.assert_allclose([s for _, s, _ in times], [0.0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose([e for _, _, e in times], [0.5, 1.0, 1.5, 2.0])
    vocab = Vocabulary.build(["Guten Morgen, schöne Grüße!"])
    ids = words_per_frame(times, 20, vocab)
    assert [vocab.word(i) for i in ids[::5]] == ["guten", "morgen", "schöne", "grüße"]
    assert uniform_word_times("", 3.0) == []
    assert uniform_word_times(["a", "b"], 1.0) == [("a", 0.0, 0.5), ("b", 0.5, 1.0)]
    with pytest.raises(ValueError, match="duration"):
        uniform_word_times("a b", -1)
