"""Classify live audio from the default input device: ``ser-tf predict --from-mic``.

A rolling window: the microphone is read in short blocks, averaged to mono, resampled to
the model's rate, and every time a window is complete (first after ``window`` seconds,
then every ``hop`` seconds) it is classified on its own and printed, so each row says what
the last ``window`` seconds sounded like. Ctrl-C (or ``seconds`` of audio) stops it; the
mean over the session is printed last. It is the same chain as a file
(:func:`ser_tf.lite.stream.predict_blocks`) with a batch of one window, so a row appears
as soon as its audio has been heard.

The device is read through the optional ``sounddevice`` package (the ``mic`` extra, with
the system's PortAudio library); without it, one message says what to install.
:func:`microphone_blocks` takes any object with sounddevice's blocking-read interface
(``samplerate`` and ``read(frames) -> (array, overflowed)``), which is how it is tested
without an audio device.
"""

from __future__ import annotations

import sys
from typing import Iterator

import numpy as np

from ser_tf.lite.inputs import check_model_input, window_geometry
from ser_tf.lite.stream import predict_blocks

#: The setup.cfg extra that installs sounddevice.
MIC_EXTRA = "mic"
MIC_INSTALL = f"pip install 'ser-tf[{MIC_EXTRA}]' (or pip install sounddevice==0.5.6)"
#: Seconds read per call: short, so a window is classified within 0.1 s of being heard.
READ_SECONDS = 0.1


class MicrophoneUnavailable(RuntimeError):
    """No way to read the microphone; the message says what to install or check."""


def open_default_input():
    """A started-on-enter ``sounddevice.InputStream`` on the default input device at its
    own rate, mono float32; :class:`MicrophoneUnavailable` without sounddevice / PortAudio
    / an input device."""
    try:
        import sounddevice
    except ImportError:
        raise MicrophoneUnavailable(f"--from-mic needs the optional sounddevice package: "
                                    f"{MIC_INSTALL}") from None
    except OSError as error:  # sounddevice is there, the PortAudio library is not
        raise MicrophoneUnavailable(f"sounddevice cannot load PortAudio ({error}): install "
                                    "it, e.g. sudo apt-get install libportaudio2") from None
    try:
        return sounddevice.InputStream(channels=1, dtype="float32")
    except Exception as error:  # noqa: BLE001 - PortAudioError, ValueError: one clear line
        raise MicrophoneUnavailable(f"cannot open the default input device: {error}") from None


def microphone_blocks(stream, sample_rate: int, *, seconds: float | None = None,
                      read_seconds: float = READ_SECONDS, err=None) -> Iterator[np.ndarray]:
    """Mono float32 blocks at ``sample_rate`` from a started input ``stream``.

    Stops after ``seconds`` of input (``None``: when the stream ends, i.e. never for a
    device, or at Ctrl-C). An overflow (audio lost because the CPU fell behind) is
    reported once on ``err``: the windows around it then skip that audio.
    """
    import soxr

    device_rate = int(round(stream.samplerate))
    frames = max(1, int(round(read_seconds * device_rate)))
    limit = None if seconds is None else int(round(seconds * device_rate))
    resampler = (soxr.ResampleStream(device_rate, sample_rate, 1, dtype="float32", quality="HQ")
                 if device_rate != sample_rate else None)
    heard, warned = 0, False
    try:
        while limit is None or heard < limit:
            want = frames if limit is None else min(frames, limit - heard)
            data, overflowed = stream.read(want)
            data = np.asarray(data, dtype=np.float32)
            if data.size == 0:
                break
            if overflowed and not warned:
                warned = True
                print("predict: warning: input overflow, some audio was lost (the CPU did "
                      "not keep up)", file=err or sys.stderr, flush=True)
            heard += data.shape[0]
            mono = np.ascontiguousarray(data.reshape(data.shape[0], -1).mean(axis=1))
            block = resampler.resample_chunk(mono) if resampler is not None else mono
            if block.size:
                yield block
    except KeyboardInterrupt:
        pass  # Ctrl-C while waiting for audio: end the stream, keep what was heard
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        if tail.size:
            yield tail


def classify_microphone(model, *, window: float | None = None, hop: float = 1.0,
                        seconds: float | None = None, on_window=None, err=None,
                        open_stream=open_default_input) -> dict:
    """Classify the microphone until Ctrl-C (while listening) or ``seconds`` of audio.

    ``on_window(prediction)`` gets each window as soon as it is classified (one window per
    interpreter call). Returns the session's :func:`ser_tf.lite.stream.predict_blocks`
    result (mean over its windows).

    Raises:
        MicrophoneUnavailable: no sounddevice, PortAudio or input device.
        ValueError: the session ended before any sample was heard.
    """
    spec = check_model_input(model)
    sample_rate, _, _ = window_geometry(model, spec, window, hop)  # model errors first
    stream = open_stream()
    print(f"listening at {stream.samplerate:g} Hz (Ctrl-C stops)", file=err or sys.stderr,
          flush=True)
    with stream:
        blocks = microphone_blocks(stream, sample_rate, seconds=seconds, err=err)
        return predict_blocks(blocks, model, window=window, hop=hop, batch_size=1,
                              on_window=on_window)
