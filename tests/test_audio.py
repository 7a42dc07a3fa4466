"""The one audio reader: formats, channels, resampling, and every kind of bad input."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from ser_tf.data import BadAudioError, load_manifest
from ser_tf.data.audio import AudioError, read_audio
from ser_tf.data.synthetic import class_signal, write_wav


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_int_and_float_pcm_read_as_same_float_signal(tmp_path, subtype):
    signal = class_signal(2, duration=0.5, sr=16000)
    path = write_wav(tmp_path / "a.wav", signal, sr=16000, subtype=subtype)
    audio, sr = read_audio(path)
    assert sr == 16000 and audio.dtype == np.float32 and audio.shape == signal.shape
    np.testing.assert_allclose(audio, signal, atol=1 / 2 ** 15 + 1e-6)


def test_stereo_is_averaged_to_mono(tmp_path):
    left = class_signal(0, 0.5)
    right = class_signal(3, 0.5)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    audio, _ = read_audio(path)
    np.testing.assert_allclose(audio, (left + right) / 2, atol=1e-6)
    both, _ = read_audio(path, mono=False)
    assert both.shape == (left.size, 2)


def test_resampling_keeps_duration_and_pitch(tmp_path):
    sr_in = 48000
    t = np.arange(sr_in) / sr_in
    path = write_wav(tmp_path / "hi.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr=sr_in, subtype="FLOAT")
    audio, sr = read_audio(path, sr=16000)
    assert sr == 16000 and audio.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / audio.size - 440) < 2


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_flac_and_ogg(tmp_path, suffix):
    path = tmp_path / f"a{suffix}"
    sf.write(path, class_signal(1, 0.5), 16000)
    audio, sr = read_audio(path)
    assert sr == 16000 and audio.size == 8000


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_other_formats_go_through_ffmpeg(tmp_path):
    wav = write_wav(tmp_path / "a.wav", duration=1.0, sr=22050)
    mp3 = tmp_path / "a.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-ac", "2", str(mp3)], check=True)
    audio, sr = read_audio(mp3, sr=16000)
    assert sr == 16000 and abs(audio.size - 16000) < 1600 and np.abs(audio).max() > 0.1


def _truncated_header(path):
    write_wav(path, duration=0.5)
    path.write_bytes(path.read_bytes()[:20])


def _renamed_text(path):
    path.write_text("this is not audio at all\n" * 20)


def _empty(path):
    path.write_bytes(b"")


def _zeros(path):
    write_wav(path, np.zeros(8000, dtype=np.float32))


def _nan(path):
    signal = class_signal(0, 0.5)
    signal[100] = np.nan
    sf.write(path, signal, 16000, subtype="FLOAT")


def _inf(path):
    signal = class_signal(0, 0.5)
    signal[5] = np.inf
    sf.write(path, signal, 16000, subtype="FLOAT")


def _short(path):
    write_wav(path, duration=0.05)


BAD = {
    "empty": (_empty, "empty file"),
    "truncated": (_truncated_header, "not a readable audio file"),
    "not-audio": (_renamed_text, "not a readable audio file"),
    "zeros": (_zeros, "all samples are zero"),
    "nan": (_nan, "NaN or infinite"),
    "inf": (_inf, "NaN or infinite"),
    "short": (_short, "too short"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_file_and_reason(tmp_path, case):
    make, reason = BAD[case]
    path = tmp_path / f"{case}.wav"
    make(path)
    with pytest.raises(AudioError) as info:
        read_audio(path)
    assert str(path) in str(info.value) and reason in str(info.value)
    assert info.value.__cause__ is None  # no decoder traceback chained underneath


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        read_audio(tmp_path / "nope.wav")


def _emodb_with_bad_files(root):
    write_wav(root / "wav" / "03a01Fa.wav", duration=0.3)
    write_wav(root / "wav" / "03a01Wa.wav", duration=0.3, class_index=1)
    _empty(root / "wav" / "08a02Nb.wav")
    _zeros(root / "wav" / "09b01Tc.wav")
    return root


def test_manifest_fails_listing_every_bad_file(tmp_path):
    root = _emodb_with_bad_files(tmp_path / "emodb")
    with pytest.raises(BadAudioError) as info:
        load_manifest("EMODB", root)
    text = str(info.value)
    assert "08a02Nb.wav: empty file" in text and "09b01Tc.wav: all samples are zero" in text
    assert "--on-bad-audio skip" in text and len(info.value.errors) == 2


def test_manifest_skip_keeps_good_files_and_lists_skipped(tmp_path):
    root = _emodb_with_bad_files(tmp_path / "emodb")
    m = load_manifest("EMODB", root, on_bad_audio="skip")
    assert sorted(u.utterance_id for u in m) == ["03a01Fa", "03a01Wa"]
    assert sorted((s["path"].rsplit("/", 1)[-1], s["reason"].split(" (")[0]) for s in m.skipped) == [
        ("08a02Nb.wav", "empty file"), ("09b01Tc.wav", "all samples are zero")]


def test_manifest_rejects_unknown_policy(tmp_path):
    with pytest.raises(ValueError, match="on_bad_audio"):
        load_manifest("EMODB", tmp_path, on_bad_audio="ignore")


# --- What a path is, and who may read it -----------------------------------------------------

def test_directory_is_named_as_a_directory(tmp_path):
    folder = tmp_path / "take1.wav"  # a folder, even with an audio extension
    folder.mkdir()
    with pytest.raises(AudioError) as info:
        read_audio(folder)
    assert str(info.value) == f"{folder}: is a directory, not an audio file"
    assert "not found" not in str(info.value)


def test_broken_symlink_says_where_it_points(tmp_path):
    link = tmp_path / "a.wav"
    link.symlink_to(tmp_path / "gone.wav")
    with pytest.raises(AudioError, match=r"a\.wav: broken symbolic link .*gone\.wav"):
        read_audio(link)


def test_unreadable_file_says_permission_denied(tmp_path, monkeypatch):
    # Root reads any file whatever its mode, so the refusal is simulated where the file is
    # opened; tests/test_data_messages.py checks a real chmod 000 file.
    import errno

    from ser_tf.data import audio

    path = write_wav(tmp_path / "locked.wav", duration=0.3)

    def refuse(p):
        raise PermissionError(errno.EACCES, "Permission denied", str(p))

    monkeypatch.setattr(audio, "_open_for_reading", refuse)
    with pytest.raises(AudioError) as info:
        read_audio(path)
    assert str(info.value).startswith(f"{path}: permission denied")
    assert "corrupt" not in str(info.value) and "System error" not in str(info.value)


# --- A data chunk cut short ------------------------------------------------------------------

def _cut(path, keep_bytes):
    path.write_bytes(path.read_bytes()[:keep_bytes])
    return path


def test_truncated_data_chunk_names_both_lengths(tmp_path):
    path = write_wav(tmp_path / "cut.wav", duration=1.0, sr=16000)  # 16000 frames, 16-bit
    _cut(path, 44 + 2 * 6000)  # header + 6000 frames
    with pytest.raises(AudioError) as info:
        read_audio(path)
    message = str(info.value)
    assert message.startswith(f"{path}: truncated")
    assert "declares 16000 frames (1.000 s)" in message
    assert "holds only 6000 (0.375 s)" in message and "20000 bytes" in message


def test_one_frame_short_is_truncated_too(tmp_path):
    path = write_wav(tmp_path / "cut.wav", duration=0.5, sr=16000)
    _cut(path, path.stat().st_size - 1)  # half of the last 16-bit frame
    with pytest.raises(AudioError, match="declares 8000 frames .* holds only 7999 .*1 byte of"):
        read_audio(path)


@pytest.mark.parametrize("fmt, endian", [("RF64", "FILE"), ("WAV", "BIG")])
def test_truncated_rf64_and_rifx(tmp_path, fmt, endian):
    path = tmp_path / "cut.wav"
    sf.write(path, class_signal(0, 1.0), 16000, format=fmt, endian=endian, subtype="PCM_24")
    assert read_audio(path)[0].size == 16000  # intact: read as before
    _cut(path, path.stat().st_size // 2)
    with pytest.raises(AudioError, match="truncated: the WAV header declares 16000 frames"):
        read_audio(path)


def test_truncated_compressed_wav_compares_bytes(tmp_path):
    path = tmp_path / "adpcm.wav"
    sf.write(path, class_signal(0, 1.0), 16000, subtype="IMA_ADPCM")
    _cut(path, path.stat().st_size // 2)
    with pytest.raises(AudioError, match="declares \\d+ bytes of audio data, the file holds only"):
        read_audio(path)


def test_complete_wavs_with_unusual_headers_still_read(tmp_path):
    import struct

    # A streaming writer leaves the data size as 0xFFFFFFFF: unknown, not truncated.
    stream = write_wav(tmp_path / "stream.wav", duration=0.5)
    data = bytearray(stream.read_bytes())
    at = data.find(b"data")
    data[at + 4:at + 8] = struct.pack("<I", 0xFFFFFFFF)
    stream.write_bytes(bytes(data))
    assert read_audio(stream)[0].size == 8000
    # Chunks after the data chunk (metadata) are more bytes, not fewer.
    tail = write_wav(tmp_path / "tail.wav", duration=0.5)
    tail.write_bytes(tail.read_bytes() + b"LIST" + struct.pack("<I", 4) + b"INFO")
    assert read_audio(tail)[0].size == 8000
    # A WAV-named file that is really FLAC is left to the decoder, which reads it.
    flac = tmp_path / "flac.wav"
    sf.write(flac, class_signal(0, 0.5), 16000, format="FLAC")
    assert read_audio(flac)[0].size == 8000


def test_header_duration_refuses_truncated_file(tmp_path):
    from ser_tf.data.audio import audio_duration

    path = _cut(write_wav(tmp_path / "cut.wav", duration=1.0), 44 + 2 * 4000)
    with pytest.raises(AudioError, match="truncated"):
        audio_duration(path)
    with pytest.raises(AudioError, match="is a directory"):
        audio_duration(tmp_path)


@pytest.mark.integration
def test_real_corpora_pass_the_file_checks(shared_data):
    from ser_tf.data.audio import check_file

    files = sorted((shared_data / "emodb" / "wav").glob("*.wav"))
    files += sorted((shared_data / "ravdess").rglob("*.wav"))
    assert len(files) == 535 + 1434
    failed = []
    for path in files:
        try:
            check_file(path)
        except AudioError as err:
            failed.append(str(err))
    assert failed == []
