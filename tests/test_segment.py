import numpy as np
import pytest

from ser_tf.features import segment as seg


def ramp(n):
    return (np.arange(n, dtype=np.float32) + 1) / n


def test_lightsernet_long_file_is_centre_cropped_floor_in_front():
    sr, dur = 100, 3.0
    audio = ramp(307)  # 7 samples too many: 3 removed in front, 4 behind
    out = seg.segment_lightsernet(audio, sr, dur)
    assert out.shape == (300,)
    scale = np.percentile(np.abs(audio[3:303]), 99.9) + 1e-6
    np.testing.assert_allclose(out, np.clip(audio[3:303] / scale, -1, 1), rtol=1e-6)


def test_lightsernet_short_file_normalised_then_padded_symmetrically():
    sr = 100
    audio = np.full(295, 0.25, dtype=np.float32)
    audio[10] = 0.5  # above the 99.9th percentile: clipped to 1 after scaling
    out = seg.segment_lightsernet(audio, sr, 3.0)
    assert out.shape == (300,)
    assert np.all(out[:2] == 0) and np.all(out[-3:] == 0) and out[2] != 0 and out[-4] != 0
    assert out.max() == 1.0 and np.all(np.abs(out) <= 1.0)
    np.testing.assert_allclose(out[3], 0.25 / (np.percentile(np.abs(audio), 99.9) + 1e-6), rtol=1e-6)


def test_percentile_normalize_makes_robust_peak_one():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(10000).astype(np.float32)
    out = seg.percentile_normalize(audio)
    assert np.isclose(np.percentile(np.abs(out), 99.9), 1.0, atol=1e-3)
    assert np.abs(out).max() <= 1.0


def test_sliding_windows_cover_the_whole_recording():
    sr = 10
    audio = ramp(75)  # 7.5 s: windows at 0,1,2,3,4 s and one aligned to the end
    w = seg.sliding_windows(audio, sr, window=3.0, hop=1.0, normalize=False)
    assert w.shape == (6, 30)
    np.testing.assert_array_equal(w[0], audio[:30])
    np.testing.assert_array_equal(w[-1], audio[-30:])
    short = seg.sliding_windows(ramp(12), sr, window=3.0, hop=1.0, normalize=False)
    assert short.shape == (1, 30) and short[0, 9] == ramp(12)[0] and short[0, 8] == 0


@pytest.mark.parametrize("corpus,length", sorted(seg.TIMNET_LENGTHS.items()))
def test_timnet_lengths(corpus, length):
    assert seg.segment_timnet(ramp(1000), corpus).shape == (length,)
    assert seg.segment_timnet(ramp(length + 11), corpus)[0] == ramp(length + 11)[5]


def test_timnet_unknown_corpus():
    with pytest.raises(ValueError, match="no TIM-Net length"):
        seg.segment_timnet(ramp(10), "TESS")


def test_window_from_offset_and_padding():
    audio = ramp(100)
    out = seg.segment_window(audio, sr=10, offset=0.5, duration=3.0)
    np.testing.assert_array_equal(out, audio[5:35])
    tail = seg.segment_window(audio, sr=10, offset=9.0, duration=3.0)
    assert tail.shape == (30,) and np.all(tail[10:] == 0)


def test_rejects_multichannel():
    with pytest.raises(ValueError, match="1-D"):
        seg.pad_or_crop_center(np.zeros((10, 2)), 5)
