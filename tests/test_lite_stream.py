"""Streamed prediction (ser_tf.data.blocks, ser_tf.lite.stream, .timeline, .mic): the same
windows and probabilities as the whole-file algorithm, the same errors, memory that does
not grow with the recording, per-window timelines, and the rolling microphone window.

The shipped float32 / int8 models are used as they are (no TensorFlow needed); the whole
file algorithm ``predict_file`` had before it streamed (read_audio -> sliding_windows ->
one batch) is the reference.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_tf.data.audio import AudioError, read_audio
from ser_tf.data.blocks import read_blocks
from ser_tf.data.synthetic import class_signal, write_wav
from ser_tf.features.segment import percentile_window_normalisation, sliding_windows

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "tflite_models"
FLOAT32 = ["lightsernet-emodb-mfcc-float32.tflite", "lightsernet-emodb-waveform-float32.tflite"]
INT8 = "lightsernet-emodb-mfcc-int8.tflite"
needs_models = pytest.mark.skipif(not all((MODELS / m).is_file() for m in FLOAT32 + [INT8]),
                                  reason="shipped models not in tflite_models/")
# The shipped TIM-Net models: 4.35 s (EMO-DB) and 2.39 s (RAVDESS) windows at 22.05 kHz,
# MFCCs in NumPy, a calibration temperature; where shipped, the streaming tests run on them.
TIMNET_MODELS = ("timnet-emodb-mfcc-float32.tflite", "timnet-ravdess-2.39s-mfcc-float32.tflite")
WITH_TIMNET = [pytest.param(name, marks=pytest.mark.skipif(
    not (MODELS / name).is_file(), reason=f"{name} not in tflite_models/"))
    for name in TIMNET_MODELS]
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg")


def model(name):
    from ser_tf.lite.runtime import LiteModel

    return LiteModel(MODELS / name)


def whole_file_prediction(path, lite):
    """The pre-streaming algorithm: whole file, sliding_windows, every window in one batch."""
    from ser_tf.lite.inputs import (check_model_input, model_inputs, window_normalisation,
                                    window_seconds)

    from ser_tf.lite.calibration import apply_temperature
    from ser_tf.lite.stream import calibration_temperature

    spec = check_model_input(lite)
    audio, sr = read_audio(path, int(spec["sample_rate"]))
    windows = sliding_windows(audio, sr, window_seconds(lite, spec), 1.0,
                              normalize=window_normalisation(lite, spec))
    probabilities = lite.predict(model_inputs(windows, spec))
    temperature = calibration_temperature(lite)  # a --ship model's sidecar has one
    if temperature is not None:
        probabilities = apply_temperature(probabilities, temperature)
    return probabilities, windows, audio.size / sr


def window_count(seconds: float, lite) -> int:
    """Windows sliding_windows cuts from ``seconds`` of audio at the model's rate, 1 s hop:
    one per full window, one more aligned to the end for a tail."""
    from ser_tf.lite.inputs import check_model_input, window_geometry

    sr, size, step = window_geometry(lite, check_model_input(lite))
    total = int(round(seconds * sr))
    full = (total - size) // step + 1
    return full + ((full - 1) * step + size < total)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream_audio")
    speech_like = np.concatenate([class_signal(c % 7, 2.3, 48000, seed=c) for c in range(6)])
    files = {
        "16k_mono": write_wav(root / "a.wav", duration=10.0, class_index=3),  # model's rate
        "48k_stereo": write_wav(root / "b.wav", speech_like, sr=48000, channels=2),
        "44k_24bit": write_wav(root / "c.wav", sr=44100, channels=2, duration=4.5,
                               class_index=5, subtype="PCM_24"),
        "8k": write_wav(root / "d.wav", sr=8000, duration=7.3, class_index=1),
        "short_flac": write_wav(root / "e.flac", duration=1.2),
        "one_window": write_wav(root / "f.wav", duration=3.0, class_index=4),
    }
    if shutil.which("ffmpeg"):
        files["mp3"] = root / "g.mp3"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(files["48k_stereo"]),
                        str(files["mp3"])], check=True)
    return files


# --- windows ---------------------------------------------------------------------------
@pytest.mark.parametrize("total,size,step", [(0, 10, 3), (5, 10, 3), (10, 10, 3), (11, 10, 3),
                                             (37, 10, 3), (40, 10, 10), (41, 10, 10),
                                             (53, 10, 15), (100, 7, 1), (1000, 48, 16)])
def test_windower_cuts_the_windows_sliding_windows_cuts(total, size, step):
    from ser_tf.lite.stream import SlidingWindower, prepare_window

    rng = np.random.default_rng(total + size + step)
    signal = rng.uniform(-1, 1, total).astype(np.float32)
    for spec in (None, percentile_window_normalisation()):
        for block in (1, 4, 9, 1000):
            windower = SlidingWindower(size, step)
            windows = [w for i in range(0, total, block)
                       for w in windower.push(signal[i:i + block])] + windower.finish()
            assert windower.total == total
            if total == 0:
                assert windows == []
                continue
            got = np.stack([prepare_window(w.samples, size, spec) for w in windows])
            expected = sliding_windows(signal, 1, size, step, normalize=spec)
            np.testing.assert_array_equal(got, expected)
            for w in windows:  # each window says where it is
                np.testing.assert_array_equal(w.samples, signal[w.start:w.end])
            assert windows[-1].end == total


# --- reading ---------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["16k_mono", "48k_stereo", "44k_24bit", "8k", "short_flac",
                                 "mp3"])
def test_blocks_concatenate_to_read_audio_bit_for_bit(audio, key):
    if key not in audio:
        pytest.skip("no ffmpeg")
    for sr in (16000, None):
        whole, _ = read_audio(audio[key], sr)
        for block_frames in (1000, 4096, 1 << 16):
            blocks = list(read_blocks(audio[key], sr, block_frames=block_frames))
            assert all(b.dtype == np.float32 and b.ndim == 1 and b.size for b in blocks)
            np.testing.assert_array_equal(np.concatenate(blocks), whole)


def _bad_files(root: Path) -> dict:
    files = {"missing": root / "missing.wav", "empty": root / "empty.wav",
             "text": root / "notes.wav", "truncated": root / "truncated.wav",
             "silent": root / "silent.wav", "nan": root / "nan.wav",
             "short": root / "short.wav", "text_mp3": root / "notes.mp3"}
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not audio\n")
    files["text_mp3"].write_text("this is not audio either\n")
    write_wav(files["truncated"], duration=1.0)
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:30])
    sf.write(str(files["silent"]), np.zeros(48000, np.float32), 16000)
    nan = class_signal(0, 5.0)
    nan[70000] = np.nan  # in the 2nd block of 65536 frames
    sf.write(str(files["nan"]), nan, 16000, subtype="FLOAT")
    sf.write(str(files["short"]), class_signal(0, 0.05), 16000)
    return files


def test_bad_files_fail_with_read_audios_own_message(tmp_path):
    for key, path in _bad_files(tmp_path).items():
        if key == "text_mp3" and shutil.which("ffmpeg") is None:
            continue
        with pytest.raises(AudioError) as expected:
            read_audio(path, 16000)
        with pytest.raises(AudioError) as got:
            for _ in read_blocks(path, 16000):
                pass
        assert str(got.value) == str(expected.value), key
        assert str(path) in str(got.value)


@needs_ffmpeg
def test_stopping_early_ends_the_ffmpeg_decoder(audio):
    blocks = read_blocks(audio["mp3"], 16000, block_frames=1024)
    assert next(blocks).size > 0
    blocks.close()  # kills and reaps ffmpeg (a leftover would hang the test run's exit)


# --- predictions -----------------------------------------------------------------------
@needs_models
@pytest.mark.parametrize("name", FLOAT32 + [INT8] + WITH_TIMNET)
def test_predict_file_equals_the_whole_file_algorithm(audio, name):
    """Same windows (the blocks are read_audio's samples bit for bit, cut as
    sliding_windows cuts them), so the same probabilities up to the float64 running mean
    against float32's: measured < 1e-7; asserted 1e-6 (the brief asked 1e-5), at the
    model's rate and at every other rate alike."""
    from ser_tf.lite.predict import predict_file

    lite = model(name)
    for key, path in audio.items():
        expected, windows, duration = whole_file_prediction(path, lite)
        result = predict_file(path, lite)
        assert result["windows"] == len(windows), key
        assert result["duration_s"] == round(duration, 3)
        got = np.array(list(result["probabilities"].values()))
        np.testing.assert_allclose(got, expected.mean(axis=0), atol=1e-6, rtol=0, err_msg=key)
        assert result["label"] == lite.labels[int(np.argmax(expected.mean(axis=0)))]
    # Batch size and read block size change nothing.
    rows = {}
    for batch_size, block_frames in ((1, 1000), (4, 1 << 16), (16, 4096)):
        predict_file(audio["48k_stereo"], lite, batch_size=batch_size,
                     block_frames=block_frames,
                     on_window=lambda p, k=batch_size: rows.setdefault(k, []).append(p))
    stacks = [np.stack([p.probabilities for p in rows[k]]) for k in (1, 4, 16)]
    np.testing.assert_array_equal(stacks[0], stacks[1])
    np.testing.assert_array_equal(stacks[0], stacks[2])


@needs_models
@pytest.mark.parametrize("name", FLOAT32[:1] + WITH_TIMNET[:1])  # one TIM-Net: time
def test_peak_memory_does_not_grow_with_the_recording(tmp_path, name):
    """1 and 12 minutes of 48 kHz stereo, each classified in a fresh process that reads
    its own peak RSS: the same peak (the whole-file algorithm grew ~4.4 MB per second,
    i.e. ~3 GB more for the longer file), under the 150 MB a Pi can spare."""
    from ser_tf.bench.stream import measure_predict, write_long_recording

    short = write_long_recording(tmp_path / "1min.wav", 60)
    long = write_long_recording(tmp_path / "12min.wav", 720)
    small, large = measure_predict(MODELS / name, short), measure_predict(MODELS / name, long)
    assert small["result"]["windows"] == window_count(60, model(name))  # 58 at 3 s
    assert large["result"]["windows"] == window_count(720, model(name))  # 718 at 3 s
    assert small["tensorflow_modules"] == large["tensorflow_modules"] == []
    growth_mb = (large["peak_rss_bytes"] - small["peak_rss_bytes"]) / 2 ** 20
    assert growth_mb < 8, (small["peak_rss_mb"], large["peak_rss_mb"])
    assert large["peak_rss_mb"] < 150


# --- timeline --------------------------------------------------------------------------
@needs_models
def test_timeline_csv_and_json_rows_are_the_windows(audio, tmp_path, capsys):
    from ser_tf.lite import predict

    lite = model(FLOAT32[0])
    files = [audio["48k_stereo"], audio["short_flac"]]
    expected = {str(f): whole_file_prediction(f, lite) for f in files}
    for suffix in (".csv", ".json"):
        out = tmp_path / f"timeline{suffix}"
        code = predict.main(["--model", str(MODELS / FLOAT32[0]), *map(str, files),
                             "--timeline", str(out)])
        assert code == 0
        assert "timeline" not in capsys.readouterr().out  # rows went to the file only
        if suffix == ".csv":
            with open(out, newline="") as handle:
                rows = list(csv.DictReader(handle))
            assert list(rows[0]) == ["file", "start_s", "end_s", "label", *lite.labels]
            probabilities = [[float(r[label]) for label in lite.labels] for r in rows]
        else:
            rows = json.loads(out.read_text())
            probabilities = [list(r["probabilities"].values()) for r in rows]
        for path in map(str, files):
            mine = [i for i, r in enumerate(rows) if r["file"] == path]
            window_probabilities, windows, duration = expected[path]
            assert len(mine) == len(windows)
            np.testing.assert_allclose([probabilities[i] for i in mine], window_probabilities,
                                       atol=1e-6)
            assert [rows[i]["label"] for i in mine] == [
                lite.labels[j] for j in window_probabilities.argmax(axis=1)]
            starts = [float(rows[i]["start_s"]) for i in mine]
            ends = [float(rows[i]["end_s"]) for i in mine]
            if len(mine) > 1:  # 13.8 s: 0, 1, ..., 10 s, then one window ending at the end
                assert starts == [*range(len(mine) - 1), round(duration - 3.0, 3)]
                assert ends == [s + 3.0 for s in starts[:-1]] + [round(duration, 3)]
            else:  # shorter than a window: one window over all of it
                assert starts == [0.0] and ends == [round(duration, 3)]


@needs_models
def test_timeline_table_and_usage_errors(audio, capsys):
    from ser_tf.lite import predict

    lite_path = str(MODELS / FLOAT32[1])
    # `--timeline FILE`: argparse hands the audio file to --timeline; it is still the file.
    assert predict.main(["--model", lite_path, "--timeline", str(audio["16k_mono"])]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"{audio['16k_mono']}: timeline"
    assert lines[1].split()[:3] == ["start_s", "end_s", "label"]
    table = lines[2:2 + 8]
    assert [row.split()[:2] for row in table] == [[f"{s:.2f}", f"{s + 3:.2f}"]
                                                  for s in range(8)]
    assert f"{audio['16k_mono']}: " in lines[10] and "(8 windows, 10.00 s)" in lines[10]
    for argv, rule in ((["--json", "--timeline"], "--json prints one document"),
                       (["--from-mic"], "--from-mic takes no FILE"),
                       (["--seconds", "3"], "--seconds goes with --from-mic"),
                       ([], "give at least one FILE (or --from-mic)")):
        files = [] if argv == [] else [str(audio["16k_mono"])]
        with pytest.raises(SystemExit) as exit_:
            predict.main(["--model", lite_path, *files, *argv])
        assert exit_.value.code == 2
        assert rule in capsys.readouterr().err, argv


# --- int8 ------------------------------------------------------------------------------
@needs_models
def test_int8_probabilities_sum_to_one(audio):
    from ser_tf.lite.predict import predict_file

    lite = model(INT8)
    assert lite.renormalises_output and not model(FLOAT32[0]).renormalises_output
    rows = []
    result = predict_file(audio["48k_stereo"], lite, on_window=rows.append)
    sums = np.array([row.probabilities.sum() for row in rows])
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)


# --- microphone ------------------------------------------------------------------------
class FakeInputStream:
    """sounddevice.InputStream's blocking-read interface over a known signal."""

    def __init__(self, signal, samplerate, overflow_at=None):
        self.signal = np.asarray(signal, np.float32).reshape(len(signal), -1)
        self.samplerate = float(samplerate)
        self.position, self.reads, self.overflow_at = 0, 0, overflow_at
        self.entered = self.exited = False

    def read(self, frames):
        data = self.signal[self.position:self.position + frames]
        self.position += len(data)
        self.reads += 1
        return data.copy(), self.reads == self.overflow_at

    def __enter__(self):
        self.entered = True
        return self

    def __exit__(self, *exc):
        self.exited = True


@needs_models
def test_microphone_rolling_window_classifies_each_window_once_heard(capsys):
    """A 44.1 kHz stereo 'microphone': every window is the one sliding_windows cuts from the
    resampled signal, classified alone, in order; the session mean is their mean."""
    import soxr

    from ser_tf.lite.inputs import check_model_input, model_inputs, window_normalisation
    from ser_tf.lite.mic import classify_microphone

    lite = model(FLOAT32[0])
    signal = np.concatenate([class_signal(c, 2.0, 44100, seed=c) for c in range(4)])
    stereo = np.stack([signal, 0.5 * signal], axis=1)
    stream = FakeInputStream(stereo, 44100, overflow_at=3)
    heard = []
    result = classify_microphone(lite, on_window=heard.append, open_stream=lambda: stream)
    assert stream.entered and stream.exited
    spec = check_model_input(lite)
    resampled = soxr.resample(stereo.mean(axis=1).astype(np.float32), 44100, 16000, "HQ")
    windows = sliding_windows(resampled, 16000, 3.0, 1.0,
                              normalize=window_normalisation(lite, spec))
    expected = lite.predict(model_inputs(windows, spec))
    assert result["windows"] == len(heard) == len(windows) == 6  # 8 s: 0..5 s
    np.testing.assert_allclose(np.stack([h.probabilities for h in heard]), expected, atol=1e-6)
    assert [h.start_s for h in heard] == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(list(result["probabilities"].values()), expected.mean(0),
                               atol=1e-6)
    err = capsys.readouterr().err
    assert err.count("input overflow") == 1 and "listening at 44100 Hz" in err

    # `seconds` stops the session after that much audio: 4 s -> windows at 0 and 1 s.
    stream = FakeInputStream(stereo, 44100)
    result = classify_microphone(lite, seconds=4.0, open_stream=lambda: stream)
    assert result["windows"] == 2 and stream.position == 4 * 44100


@needs_models
def test_from_mic_without_sounddevice_names_the_extra(monkeypatch, capsys):
    import sys

    from ser_tf.lite import predict

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import sounddevice -> ImportError
    code = predict.main(["--model", str(MODELS / FLOAT32[0]), "--from-mic"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "pip install 'ser-tf[mic]'" in err and "sounddevice" in err


def test_block_reader_gives_read_audios_file_checks(tmp_path):
    from ser_tf.data.audio import AudioError
    from ser_tf.data.blocks import read_blocks
    from ser_tf.data.synthetic import write_wav

    with pytest.raises(AudioError, match="directory"):
        next(read_blocks(tmp_path, 16000))
    wav = write_wav(tmp_path / "cut.wav", duration=1.0)
    wav.write_bytes(wav.read_bytes()[:-12000])  # the data chunk cut short
    with pytest.raises(AudioError, match="truncated"):
        next(read_blocks(wav, 16000))
