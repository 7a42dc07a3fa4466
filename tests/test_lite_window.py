"""A model's window is its own input length (not a fixed 3 s), and a card states it with
how it compares with the training recordings. No TensorFlow, no model file needed."""

from pathlib import Path

import pytest

from ser_tf.export.model_card import pi_commands, recordings_line, window_lines
from ser_tf.lite.inputs import window_geometry, window_seconds


class FakeModel:
    """What window_geometry reads of a LiteModel."""

    def __init__(self, input_shape):
        self.input_shape = input_shape
        self.path = Path("m.tflite")


def test_the_default_window_is_the_models_input_length():
    timnet = {"kind": "features", "sample_rate": 22050, "samples": 96000}
    model = FakeModel((188, 39))
    assert window_seconds(model, timnet) == pytest.approx(96000 / 22050)
    assert window_geometry(model, timnet) == (22050, 96000, 22050)
    assert window_geometry(model, timnet, hop=0.5) == (22050, 96000, 11025)
    # A 16 kHz 3 s model keeps its 3 s window, given or not.
    wave = {"kind": "waveform", "sample_rate": 16000, "samples": 48000}
    assert window_geometry(FakeModel((48000,)), wave) == window_geometry(
        FakeModel((48000,)), wave, 3.0) == (16000, 48000, 16000)
    with pytest.raises(ValueError, match="takes 96000 samples .* window=3.0 s does not match"):
        window_geometry(model, timnet, 3.0)
    with pytest.raises(ValueError, match="gives no sample count"):
        window_seconds(model, {"kind": "features", "sample_rate": 22050})


DATA = {"sample_rates": {"16000": 535}, "same_duration": False, "release": "original release",
        "duration_s": {"min": 1.226, "median": 2.59, "max": 8.978}}


def test_window_lines_compare_the_window_with_the_training_recordings():
    spec = {"sample_rate": 22050, "samples": 96000}
    lines = window_lines(spec, DATA)
    assert lines[0].startswith("Window: each prediction sees 4.35 s of mono audio at 22050 Hz "
                               "(96000 samples)")
    assert "(1.23 s to 8.98 s) were centre-cropped or centre-padded" in lines[1]
    assert "heard nothing above 8 kHz" in lines[2]
    # Every recording exactly the window: said so; all shorter: padding said so.
    trimmed = {**DATA, "same_duration": True, "duration_s": {"min": 2.39, "median": 2.39,
                                                             "max": 2.39}}
    assert "the length of every training recording (2.39 s)" in window_lines(
        {"sample_rate": 22050, "samples": 52700}, trimmed)[1]
    assert "shorter than the window (at most 2.39 s)" in window_lines(
        {"sample_rate": 22050, "samples": 110000}, trimmed)[1]
    # No fingerprint: only the window; a 16 kHz model of 16 kHz audio: no bandwidth line.
    assert len(window_lines(spec)) == 1
    assert len(window_lines({"sample_rate": 16000, "samples": 48000}, DATA)) == 2
    with pytest.raises(ValueError, match="without samples"):
        window_lines({"sample_rate": 16000})


def test_recordings_line_and_pi_commands():
    assert recordings_line(DATA) == ("recordings: 16 kHz, 1.23 s to 8.98 s long (median "
                                     "2.59 s); copy: original release")
    assert recordings_line(None) is None
    text = "\n".join(pi_commands("m.tflite", "m.json", window_s=96000 / 22050))
    assert "classified in 4.35 s windows with a 1 s hop" in text
    assert "3 s windows" in "\n".join(pi_commands("m.tflite", "m.json"))
