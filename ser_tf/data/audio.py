"""The one audio reader of the suite.

Every corpus, feature recipe and the on-device predictor read audio through
:func:`read_audio`, so a bad file fails the same way everywhere: an :class:`AudioError`
naming the file and the reason, never a bare decoder traceback.

Decoding: soundfile (libsndfile) for the formats it knows (wav, flac, ogg, aiff, ...);
``ffmpeg`` for anything else (mp3, m4a, ...). Multi-channel audio is averaged to mono,
integer PCM is scaled to [-1, 1) float32, and the signal is resampled with soxr when the
caller asks for a sample rate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

#: Shorter recordings are rejected: no recipe in the suite can use less than 0.1 s.
MIN_DURATION_S = 0.1

# Extensions decoded by libsndfile directly; everything else goes through ffmpeg.
_SOUNDFILE_EXTENSIONS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".au", ".snd"}


class AudioError(ValueError):
    """A file that cannot be used as audio. ``str(err)`` is ``"<path>: <reason>"``."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def read_audio(path, sr: int | None = None, *, mono: bool = True,
               min_duration: float = MIN_DURATION_S) -> tuple[np.ndarray, int]:
    """Read an audio file as float32.

    Args:
        path: the file.
        sr: resample to this rate (Hz); ``None`` keeps the file's rate.
        mono: average the channels (the default); otherwise shape is (samples, channels).
        min_duration: reject recordings shorter than this many seconds.

    Returns:
        ``(samples, sample_rate)``.

    Raises:
        AudioError: the file is missing, empty, not audio, truncated, silent (all zeros),
            contains NaN/inf, or is shorter than ``min_duration``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")

    if path.suffix.lower() in _SOUNDFILE_EXTENSIONS:
        audio, file_sr = _decode_soundfile(path)
    else:
        audio, file_sr = _decode_ffmpeg(path)

    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.shape[0] == 0:
        raise AudioError(path, "no audio samples (header present, data missing)")
    if not np.all(np.isfinite(audio)):
        raise AudioError(path, "contains NaN or infinite samples")
    if not np.any(audio):
        raise AudioError(path, "all samples are zero (silent file)")
    duration = audio.shape[0] / file_sr
    if duration < min_duration:
        raise AudioError(path, f"too short: {duration:.3f} s (minimum {min_duration} s)")

    if mono:
        audio = audio.mean(axis=1)
    if sr is not None and sr != file_sr:
        audio = resample(audio, file_sr, sr)
        file_sr = sr
    return np.ascontiguousarray(audio, dtype=np.float32), int(file_sr)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality resampling (soxr 'HQ') along the first axis."""
    import soxr

    if orig_sr == target_sr:
        return audio
    return soxr.resample(audio, orig_sr, target_sr, quality="HQ").astype(np.float32)


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        audio, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except sf.LibsndfileError as err:
        raise AudioError(path, f"not a readable audio file (corrupt or truncated header, "
                               f"or not audio at all): {err.error_string}") from None
    except (RuntimeError, ValueError, TypeError) as err:
        raise AudioError(path, f"could not be decoded: {err}") from None
    return audio, int(file_sr)


def _decode_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Decode any format ffmpeg knows to float32 at the file's own rate and channels."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(path, f"format {path.suffix!r} needs ffmpeg, which is not installed "
                               "(apt-get install ffmpeg)")
    probe = _ffprobe_stream(path)
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le",
           "-acodec", "pcm_f32le", "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or probe is None:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(path, "not a readable audio file: " + (message[-1] if message else "ffmpeg failed"))
    channels, file_sr = probe
    audio = np.frombuffer(proc.stdout, dtype="<f4")
    usable = len(audio) - len(audio) % channels
    return audio[:usable].reshape(-1, channels).copy(), file_sr


def _ffprobe_stream(path: Path) -> tuple[int, int] | None:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    cmd = [ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=channels,sample_rate", "-of", "default=noprint_wrappers=1", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    fields = dict(line.split("=", 1) for line in proc.stdout.split() if "=" in line)
    try:
        return int(fields["channels"]), int(fields["sample_rate"])
    except (KeyError, ValueError):
        return None


def audio_duration(path) -> float:
    """Duration in seconds from the header only (cheap; does not validate the samples)."""
    import soundfile as sf

    try:
        info = sf.info(os.fspath(path))
    except Exception as err:  # noqa: BLE001 - any decoder failure becomes one clear error
        raise AudioError(path, f"not a readable audio file: {err}") from None
    return info.frames / info.samplerate
