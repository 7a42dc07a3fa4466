"""Read an audio file block by block, so memory does not grow with the recording's length.

:func:`read_blocks` yields the same samples :func:`ser_tf.data.audio.read_audio` returns
for the whole file (mono float32 at the requested rate), a block at a time, and fails with
the same :class:`AudioError` messages. Concatenating its blocks gives ``read_audio``'s
array bit for bit (tested): the channels are averaged with the same NumPy reduction, and
:class:`soxr.ResampleStream` fed block by block, then flushed, produces exactly what
``soxr.resample`` produces for the whole signal (both run libsoxr's streaming engine; the
whole-file call just feeds it internally).

Decoding follows ``read_audio``'s choice of decoder (its extension list):

- formats libsndfile reads (wav, flac, ogg, aiff, ...) are read with
  ``soundfile.SoundFile.read(frames)``;
- everything else (mp3, m4a, ...) is decoded by an ``ffmpeg`` subprocess whose raw
  float32 output is read from a pipe block by block (the same command ``read_audio`` runs);
- only when streaming cannot start (``ffmpeg`` or ``ffprobe`` missing, or ``ffprobe``
  cannot describe the file) is the whole file handed to ``read_audio``, which then reports
  its usual error; on success its array is cut into blocks.

Validation is the same as ``read_audio``'s, but some of it can only happen as the file is
read: NaN / infinite samples raise at the block holding them; "no samples", "silent" and
"too short" raise after the last block, in ``read_audio``'s order. A consumer that acts on
blocks as they come (a timeline written as it goes) may therefore have acted on the blocks
before such an error.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

# The decoder choice and the stream probe are read_audio's own, so the two readers never
# disagree about which files go through ffmpeg or how many channels a file has.
from ser_tf.data.audio import (_SOUNDFILE_EXTENSIONS, MIN_DURATION_S, AudioError,
                               _ffprobe_stream, check_file, read_audio)

#: Frames (per channel, at the file's rate) read at a time: 1.4 s of 48 kHz audio, 512 KiB
#: for stereo float32. Big enough that per-block overhead is negligible, small enough that
#: it is a rounding error next to the interpreter.
DEFAULT_BLOCK_FRAMES = 1 << 16
#: Resampler quality; read_audio's resample() uses the same.
RESAMPLE_QUALITY = "HQ"


def read_blocks(path, sr: int | None = None, *, block_frames: int = DEFAULT_BLOCK_FRAMES,
                min_duration: float = MIN_DURATION_S) -> Iterator[np.ndarray]:
    """Yield a file's audio as 1-D float32 mono blocks at ``sr`` (``None``: the file's rate).

    The blocks concatenated equal ``read_audio(path, sr, min_duration=min_duration)[0]``.
    Block lengths vary (resampling, the decoder); empty blocks are not yielded.

    Raises:
        AudioError: as :func:`read_audio` does (see the module docstring for when).
    """
    if isinstance(block_frames, bool) or int(block_frames) != block_frames or block_frames < 1:
        raise ValueError(f"block_frames must be a positive integer, got {block_frames!r}")
    path = Path(path)
    # The same checks as read_audio (a directory, permission, a truncated WAV data chunk).
    check_file(path)
    if path.suffix.lower() in _SOUNDFILE_EXTENSIONS:
        file_sr, raw = _soundfile_source(path, int(block_frames))
    else:
        source = _ffmpeg_source(path, int(block_frames))
        file_sr, raw = source if source is not None else _whole_file_source(
            path, int(block_frames), min_duration)
    yield from _checked_mono_resampled(path, file_sr, raw, sr, min_duration)


def _checked_mono_resampled(path: Path, file_sr: int, raw: Iterator[np.ndarray],
                            sr: int | None, min_duration: float) -> Iterator[np.ndarray]:
    """Validate raw ``(frames, channels)`` blocks as read_audio validates the whole array,
    average them to mono and resample them to ``sr``."""
    import soxr

    resampler = (soxr.ResampleStream(file_sr, sr, 1, dtype="float32", quality=RESAMPLE_QUALITY)
                 if sr is not None and sr != file_sr else None)
    frames, audible = 0, False
    for block in raw:
        if not np.all(np.isfinite(block)):
            raise AudioError(path, "contains NaN or infinite samples")
        frames += block.shape[0]
        audible = audible or bool(np.any(block))
        mono = np.ascontiguousarray(block.mean(axis=1), dtype=np.float32)
        if resampler is not None:
            mono = resampler.resample_chunk(mono)
        if mono.size:
            yield mono
    # The checks read_audio makes on the whole array, in its order.
    if frames == 0:
        raise AudioError(path, "no audio samples (header present, data missing)")
    if not audible:
        raise AudioError(path, "all samples are zero (silent file)")
    duration = frames / file_sr
    if duration < min_duration:
        raise AudioError(path, f"too short: {duration:.3f} s (minimum {min_duration} s)")
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        if tail.size:
            yield tail


def _soundfile_source(path: Path, block_frames: int) -> tuple[int, Iterator[np.ndarray]]:
    """(file rate, raw blocks) from libsndfile; its errors become read_audio's AudioErrors."""
    import soundfile as sf

    def decode_error(error: Exception) -> AudioError:
        if isinstance(error, sf.LibsndfileError):
            return AudioError(path, "not a readable audio file (corrupt or truncated header, "
                                    f"or not audio at all): {error.error_string}")
        return AudioError(path, f"could not be decoded: {error}")

    decoder_errors = (sf.LibsndfileError, RuntimeError, ValueError, TypeError)
    try:
        handle = sf.SoundFile(str(path))
    except decoder_errors as error:
        raise decode_error(error) from None

    def blocks() -> Iterator[np.ndarray]:
        with handle:
            while True:
                try:
                    block = handle.read(block_frames, dtype="float32", always_2d=True)
                except decoder_errors as error:
                    raise decode_error(error) from None
                if block.shape[0] == 0:
                    return
                yield block

    return int(handle.samplerate), blocks()


def _ffmpeg_source(path: Path, block_frames: int) -> tuple[int, Iterator[np.ndarray]] | None:
    """(file rate, raw blocks) read from an ffmpeg pipe; ``None`` when ffmpeg or ffprobe is
    missing or ffprobe cannot describe the file (read_audio then gives the error)."""
    ffmpeg = shutil.which("ffmpeg")
    probe = _ffprobe_stream(path) if ffmpeg is not None else None
    if probe is None:
        return None
    channels, file_sr = probe
    # read_audio's command: the file's own rate and channels, raw little-endian float32.
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le",
           "-acodec", "pcm_f32le", "-"]
    frame_bytes = 4 * channels

    def blocks() -> Iterator[np.ndarray]:
        # stderr goes to a file, not a pipe: a pipe nobody reads can fill up and stall
        # ffmpeg while we wait on stdout.
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
            try:
                while True:
                    data = proc.stdout.read(block_frames * frame_bytes)
                    usable = len(data) - len(data) % frame_bytes  # a partial frame at EOF
                    if usable:
                        yield np.frombuffer(data[:usable], "<f4").reshape(-1, channels)
                    if len(data) < block_frames * frame_bytes:
                        break
                proc.stdout.close()
                if proc.wait() != 0:
                    errors.seek(0)
                    message = errors.read().decode(errors="replace").strip().splitlines()
                    raise AudioError(path, "not a readable audio file: "
                                     + (message[-1] if message else "ffmpeg failed"))
            finally:
                # The consumer stopped early or failed: do not leave ffmpeg running.
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    return file_sr, blocks()


def _whole_file_source(path: Path, block_frames: int,
                       min_duration: float) -> tuple[int, Iterator[np.ndarray]]:
    """read_audio's whole-file path, for the rare files streaming cannot start on; it
    raises read_audio's own error for them (e.g. "needs ffmpeg, which is not installed")."""
    audio, file_sr = read_audio(path, None, mono=False, min_duration=min_duration)
    audio = audio.reshape(audio.shape[0], -1)
    return file_sr, (audio[i:i + block_frames] for i in range(0, len(audio), block_frames))
