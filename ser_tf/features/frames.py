"""Fixed-length frames of raw audio and the word spoken in each frame.

A recording becomes a sequence of ``T`` frames of ``frame_seconds`` each (0.1 s: 4410
samples at 44.1 kHz), the audio of every frame kept whole (no features: a model reads raw
samples), and, for each frame, the id of the word being spoken at its centre, so an audio
stream and a word-embedding stream of the same length ``T`` can be fed side by side.

- :func:`frame_audio`: waveform -> ``(T, frame_len)`` (or ``(T, frame_len * channels)``).
- :func:`words_per_frame`: word timings -> ``(T,)`` word ids (0 = silence / no word).
- :func:`uniform_word_times`: a fallback timing spreading a transcript's words evenly over a
  recording, for corpora that ship a transcript but no word alignment.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

__all__ = ["frame_audio", "frame_length", "words_per_frame", "uniform_word_times"]


def frame_length(sample_rate: int, frame_seconds: float = 0.1) -> int:
    """Samples in one frame: ``round(sample_rate * frame_seconds)`` (>= 1)."""
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if not (isinstance(frame_seconds, (int, float)) and math.isfinite(frame_seconds)
            and frame_seconds > 0):
        raise ValueError(f"frame_seconds must be a positive number, got {frame_seconds!r}")
    samples = int(round(int(sample_rate) * float(frame_seconds)))
    if samples < 1:
        raise ValueError(f"a frame of {frame_seconds} s at {sample_rate} Hz holds no sample")
    return samples


def frame_audio(waveform: np.ndarray, sample_rate: int, frame_seconds: float = 0.1
                ) -> np.ndarray:
    """Cut a waveform into consecutive, non-overlapping frames of ``frame_seconds``.

    Args:
        waveform: ``(n,)`` mono samples, or ``(n, channels)`` (e.g. subject and partner
            microphones): each frame then holds the channels side by side, channel 0's
            ``frame_len`` samples first, so a 2-channel frame at 44.1 kHz is 2 x 4410 values.
        sample_rate: samples per second.
        frame_seconds: frame duration.

    Returns:
        float32 ``(T, frame_len * channels)`` with ``T = ceil(n / frame_len)``; the last
        frame is zero-padded. An empty waveform gives ``(0, frame_len * channels)``.
    """
    frame_len = frame_length(sample_rate, frame_seconds)
    audio = np.asarray(waveform)
    if audio.ndim not in (1, 2):
        raise ValueError(f"waveform must be (samples,) or (samples, channels), got shape "
                         f"{audio.shape}")
    if not (np.issubdtype(audio.dtype, np.floating) or np.issubdtype(audio.dtype, np.integer)):
        raise ValueError(f"waveform must be numeric, got dtype {audio.dtype}")
    audio = audio.astype(np.float32, copy=False)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.shape[1] < 1:
        raise ValueError(f"waveform has no channel: shape {np.shape(waveform)}")
    if not np.isfinite(audio).all():
        raise ValueError("waveform holds NaN or infinite samples")
    samples, channels = audio.shape
    n_frames = -(-samples // frame_len)
    padded = np.zeros((n_frames * frame_len, channels), np.float32)
    padded[:samples] = audio
    # (T, frame_len, channels) -> (T, channels, frame_len): each channel's run stays whole.
    frames = padded.reshape(n_frames, frame_len, channels).transpose(0, 2, 1)
    return np.ascontiguousarray(frames.reshape(n_frames, channels * frame_len))


def _timing(entry, position: int) -> tuple[str, float, float]:
    if all(hasattr(entry, name) for name in ("word", "start", "end")):
        word, start, end = entry.word, entry.start, entry.end
    else:
        try:
            word, start, end = entry
        except (TypeError, ValueError):
            raise ValueError(f"word timing #{position} must have .word/.start/.end or be a "
                             f"(word, start, end) tuple, got {entry!r}") from None
    try:
        start, end = float(start), float(end)
    except (TypeError, ValueError):
        raise ValueError(f"word timing #{position} ({word!r}): start/end must be numbers, "
                         f"got {start!r}, {end!r}") from None
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
        raise ValueError(f"word timing #{position} ({word!r}): needs 0 <= start <= end, got "
                         f"start={start}, end={end}")
    return str(word), start, end


def words_per_frame(words: Iterable, n_frames: int, vocabulary,
                    frame_seconds: float = 0.1) -> np.ndarray:
    """The id of the word spoken at the centre of each frame (0 where no word is).

    Args:
        words: word timings in seconds: objects with ``.word``, ``.start``, ``.end`` or
            ``(word, start, end)`` tuples. Overlapping words: the later-starting one wins
            at a frame both cover (it is the one being said by then).
        n_frames: ``T``, the number of frames (``len(frame_audio(...))``).
        vocabulary: anything with ``.id(word)`` (a
            :class:`~ser_tf.features.word_vectors.Vocabulary`: unknown words get its OOV id).
        frame_seconds: frame duration (the one given to :func:`frame_audio`).

    Returns:
        int64 ``(n_frames,)``. A word covers frame ``t`` when ``start <= centre_t < end``,
        ``centre_t = (t + 0.5) * frame_seconds``; a word too short to cover any centre is
        not seen in any frame (its neighbours' frames show them instead).
    """
    if isinstance(n_frames, bool) or int(n_frames) != n_frames or n_frames < 0:
        raise ValueError(f"n_frames must be a non-negative integer, got {n_frames!r}")
    if not (isinstance(frame_seconds, (int, float)) and frame_seconds > 0):
        raise ValueError(f"frame_seconds must be a positive number, got {frame_seconds!r}")
    if not callable(getattr(vocabulary, "id", None)):
        raise TypeError(f"vocabulary must have an .id(word) method, got {type(vocabulary)}")
    ids = np.zeros(int(n_frames), np.int64)
    centres = (np.arange(int(n_frames)) + 0.5) * float(frame_seconds)
    timings = [_timing(entry, k) for k, entry in enumerate(words)]
    # Stable sort by start: a later-starting word overwrites an earlier one it overlaps.
    for word, start, end in sorted(timings, key=lambda t: t[1]):
        covered = (centres >= start) & (centres < end)
        if covered.any():
            ids[covered] = int(vocabulary.id(word))
    return ids


def uniform_word_times(text: str | Sequence[str], duration: float,
                       tokenize=None) -> list[tuple[str, float, float]]:
    """Spread a transcript's words evenly over ``[0, duration)``: word ``k`` of ``n`` spans
    ``[k * duration / n, (k + 1) * duration / n)``.

    A FALLBACK for recordings with a transcript and no word alignment (no forced aligner
    was run, or it failed): timings are only roughly right (pauses, word lengths and
    leading silence are ignored), so prefer real alignments where they exist and record
    which recordings used this.

    Args:
        text: the transcript (split with ``tokenize``, default
            :func:`ser_tf.features.word_vectors.tokenize`) or a sequence of words.
        duration: the recording's length in seconds.
    """
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a non-negative number of seconds, got {duration!r}")
    if isinstance(text, str):
        if tokenize is None:
            from ser_tf.features.word_vectors import tokenize
        tokens = list(tokenize(text))
    else:
        tokens = [str(w) for w in text]
    if not tokens:
        return []
    step = float(duration) / len(tokens)
    return [(word, k * step, (k + 1) * step) for k, word in enumerate(tokens)]
