"""The one audio reader of the suite.

Every corpus, feature recipe and the on-device predictor read audio through
:func:`read_audio`, so a bad file fails the same way everywhere: an :class:`AudioError`
naming the file and the reason, never a bare decoder traceback.

Decoding: soundfile (libsndfile) for the formats it knows (wav, flac, ogg, aiff, ...);
``ffmpeg`` for anything else (mp3, m4a, ...). Multi-channel audio is averaged to mono,
integer PCM is scaled to [-1, 1) float32, and the signal is resampled with soxr when the
caller asks for a sample rate.

Before decoding, :func:`check_file` says plainly when the path is missing, a directory or
unreadable for this user, and a WAV file's data chunk is compared with the bytes present:
libsndfile silently shortens a file whose data chunk was cut off (it takes the length from
the file size), so a truncated copy would otherwise pass as a shorter recording.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import numpy as np

#: Shorter recordings are rejected: no recipe in the suite can use less than 0.1 s.
MIN_DURATION_S = 0.1

# Extensions decoded by libsndfile directly; everything else goes through ffmpeg.
_SOUNDFILE_EXTENSIONS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc",
                         ".au", ".snd", ".caf", ".w64", ".rf64"}

#: Audio-only formats :func:`read_audio` decodes through ffmpeg (when it is installed).
#: Video containers (mp4, mkv, webm, mov) are left out on purpose: ffmpeg could take their
#: sound track, but a folder of videos next to the recordings is not a set of recordings.
FFMPEG_EXTENSIONS = frozenset({".mp3", ".m4a", ".aac", ".opus", ".wma", ".amr", ".mka"})

#: Every extension :func:`read_audio` reads (lower case, with the dot). Loaders that pick
#: files by extension (FOLDER) use this, so no readable recording is left out unnoticed.
AUDIO_EXTENSIONS = frozenset(_SOUNDFILE_EXTENSIONS) | FFMPEG_EXTENSIONS


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
        AudioError: the file is missing, a directory, unreadable (permission), empty, not
            audio, truncated (header or data chunk), silent (all zeros), contains NaN/inf, or
            is shorter than ``min_duration``.
    """
    path = Path(path)
    check_file(path)

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


def check_file(path) -> None:
    """Raise :class:`AudioError` unless ``path`` is a non-empty regular file this process
    can open for reading; for a RIFF/WAVE file, also unless its data chunk is complete.

    Cheap (a ``stat``, an ``open`` and a few header reads, no decoding): loaders call it
    while scanning, :func:`read_audio` before decoding, so every reader gives the true
    reason (a directory, permission denied) instead of a decoder's "System error".
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise AudioError(path, f"broken symbolic link (points to {os.readlink(path)}, "
                                   "which does not exist)") from None
        raise AudioError(path, "file not found") from None
    except NotADirectoryError:
        raise AudioError(path, "file not found (a part of the path is a file, not a "
                               "folder)") from None
    except PermissionError:
        raise AudioError(path, "permission denied: a folder on the path cannot be "
                               "searched by this user") from None
    except OSError as err:
        raise AudioError(path, f"cannot be accessed: {err.strerror or err}") from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(path, "is a directory, not an audio file")
    if not stat.S_ISREG(info.st_mode):
        # Not opened: reading a named pipe would block until someone writes to it.
        raise AudioError(path, "not a regular file (a device, named pipe or socket)")
    try:
        # Opening is the only true test: os.access ignores ACLs and is always true for root.
        with _open_for_reading(path) as f:
            if info.st_size == 0:
                raise AudioError(path, "empty file (0 bytes)")
            problem = _wav_data_shortfall(f, info.st_size)
    except PermissionError:
        raise AudioError(path, f"permission denied: this user cannot read it (mode "
                               f"{stat.filemode(info.st_mode)}, owner uid {info.st_uid})"
                         ) from None
    except OSError as err:
        raise AudioError(path, f"cannot be opened or read: {err.strerror or err}") from None
    if problem:
        raise AudioError(path, problem)


def _open_for_reading(path: Path):
    return open(path, "rb")


# RIFF family: the classic little-endian WAV, its big-endian twin, and the 64-bit variants
# whose sizes live in a ``ds64`` chunk when the 32-bit field holds 0xFFFFFFFF.
_RIFF_MAGIC = {b"RIFF": "<", b"RIFX": ">", b"RF64": "<", b"BW64": "<"}
_UNKNOWN_SIZE = 0xFFFFFFFF
# PCM, IEEE float and WAVE_FORMAT_EXTENSIBLE: one block is one frame (all channels).
_FRAME_FORMATS = {0x0001, 0x0003, 0xFFFE}
_MAX_CHUNKS = 512  # a WAV header holds a handful; a corrupt one must not loop for long


def _wav_data_shortfall(f, file_size: int) -> str | None:
    """What is missing from a WAV file's data chunk, or ``None``.

    Compares the data chunk size in the header with the bytes that follow it. libsndfile
    quietly takes the length from the file size when the header promises more, so without
    this a cut-off copy reads as a shorter recording. Files that are not RIFF/WAVE, and
    sizes written as "unknown" (0xFFFFFFFF by streaming writers, 0 is caught later as "no
    samples"), are left to the decoder.
    """
    head = f.read(12)
    if len(head) < 12 or head[:4] not in _RIFF_MAGIC or head[8:12] != b"WAVE":
        return None
    order = _RIFF_MAGIC[head[:4]]
    wide_data_size = None  # from ds64 (RF64/BW64)
    block_align = format_tag = sample_rate = None
    offset = 12
    for _ in range(_MAX_CHUNKS):
        f.seek(offset)
        chunk = f.read(8)
        if len(chunk) < 8:
            return None  # no data chunk at all: the decoder says "not readable"
        chunk_id, size = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
        body = offset + 8
        if chunk_id == b"ds64":
            fields = f.read(16)
            if len(fields) == 16:
                wide_data_size = struct.unpack(order + "QQ", fields)[1]
        elif chunk_id == b"fmt ":
            fields = f.read(14)
            if len(fields) == 14:
                format_tag, _channels, sample_rate, _rate, block_align = struct.unpack(
                    order + "HHIIH", fields)
        elif chunk_id == b"data":
            if size == _UNKNOWN_SIZE:
                if wide_data_size is None:
                    return None  # a stream whose writer never went back to fill it in
                size = wide_data_size
            present = file_size - body
            return _describe_shortfall(size, present, format_tag, block_align, sample_rate)
        offset = body + size + (size & 1)  # chunks are padded to an even length
    return None


def _describe_shortfall(declared: int, present: int, format_tag, block_align,
                        sample_rate) -> str | None:
    unit = block_align if block_align else 1
    if present // unit >= declared // unit:
        return None  # at most part of one frame short: nothing a decoder would return
    missing = declared - present
    if format_tag in _FRAME_FORMATS and block_align and sample_rate:
        frames = declared // block_align, max(present, 0) // block_align
        return (f"truncated: the WAV header declares {frames[0]} frames "
                f"({frames[0] / sample_rate:.3f} s) of audio, the file holds only {frames[1]} "
                f"({frames[1] / sample_rate:.3f} s); {_bytes(missing)} of the data chunk "
                "are missing (an interrupted download or copy?)")
    return (f"truncated: the WAV header declares {declared} bytes of audio data, the file "
            f"holds only {max(present, 0)}; {_bytes(missing)} are missing (an interrupted "
            "download or copy?)")


def _bytes(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"


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

    check_file(path)
    try:
        info = sf.info(os.fspath(path))
    except Exception as err:  # noqa: BLE001 - any decoder failure becomes one clear error
        raise AudioError(path, f"not a readable audio file: {err}") from None
    return info.frames / info.samplerate
