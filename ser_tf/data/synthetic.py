"""Small generated audio for tests, notebooks and demos (no corpus needed).

:func:`class_signal` makes a tone whose pitch, vibrato and loudness depend on a class
index, so a model trained on a tiny generated corpus has something real to learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def class_signal(class_index: int, duration: float = 1.0, sr: int = 16000,
                 seed: int = 0) -> np.ndarray:
    """A 1-D float32 signal in [-1, 1] whose character depends on ``class_index``."""
    if duration <= 0 or sr <= 0:
        raise ValueError(f"duration and sr must be positive, got {duration}, {sr}")
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration * sr))) / sr
    f0 = 110.0 * 2 ** (class_index / 4) * (1 + 0.03 * rng.standard_normal())
    vibrato = 1 + 0.02 * (class_index % 3) * np.sin(2 * np.pi * (3 + class_index) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sr
    harmonics = sum(np.sin(k * phase) / k ** (1 + 0.3 * (class_index % 2)) for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (1.5 + 0.5 * class_index) * t) ** 2
    signal = harmonics * envelope + 0.05 * rng.standard_normal(t.size)
    return (0.8 * signal / np.max(np.abs(signal))).astype(np.float32)


def write_wav(path, signal: np.ndarray | None = None, *, sr: int = 16000, duration: float = 1.0,
              class_index: int = 0, seed: int = 0, channels: int = 1,
              subtype: str = "PCM_16") -> Path:
    """Write a WAV file (parents created); ``signal`` defaults to :func:`class_signal`."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if signal is None:
        signal = class_signal(class_index, duration, sr, seed)
    signal = np.asarray(signal, dtype=np.float32)
    if channels > 1 and signal.ndim == 1:
        signal = np.stack([signal * (1 - 0.1 * c) for c in range(channels)], axis=1)
    sf.write(str(path), signal, sr, subtype=subtype)
    return path


#: IEMOCAP category codes the generator writes, with the class index of their signal
#: (excited shares happiness's, as the 4-class setups merge them; frustration is outside).
IEMOCAP_CODES = {"ang": 0, "hap": 1, "exc": 1, "neu": 2, "sad": 3, "fru": 4}


def make_iemocap_like(root, *, sessions=(1, 2, 3), per_code: int = 2, duration: float = 1.0,
                      sr: int = 16000) -> Path:
    """A tiny corpus in IEMOCAP's layout (``Session1/dialog/EmoEvaluation/<dialog>.txt``
    and ``Session1/sentences/wav/<dialog>/<utterance>.wav``): per session one improvised
    dialog whose two speakers (F, M) each say ``per_code`` utterances of every code in
    :data:`IEMOCAP_CODES`, with a learnable signal per class (:func:`class_signal`)."""
    root = Path(root)
    n = 0
    for session in sessions:
        dialog = f"Ses{int(session):02d}F_impro01"
        folder = root / f"Session{int(session)}"
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        turn = {"F": 0, "M": 0}
        start = 1.0
        for code, class_index in IEMOCAP_CODES.items():
            for i in range(per_code):
                for speaker in ("F", "M"):
                    utterance = f"{dialog}_{speaker}{turn[speaker]:03d}"
                    turn[speaker] += 1
                    write_wav(folder / "sentences" / "wav" / dialog / f"{utterance}.wav",
                              sr=sr, duration=duration * (0.8 + 0.4 * ((n * 7) % 10) / 10),
                              class_index=class_index, seed=n)
                    lines += [f"[{start:.4f} - {start + duration:.4f}]\t{utterance}\t{code}\t"
                              "[2.5000, 2.5000, 2.5000]", ""]
                    start += duration + 0.5
                    n += 1
        evaluation = folder / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        evaluation.parent.mkdir(parents=True, exist_ok=True)
        evaluation.write_text("\n".join(lines) + "\n")
    return root


def make_emodb_like(root, *, per_class: int = 4, speakers=("03", "08", "09", "10"),
                    duration: float = 1.0, sr: int = 16000, classes: str = "WLEAFTN") -> Path:
    """A tiny corpus in the exact EMO-DB layout (``root/wav/03a01Fa.wav``) whose classes are
    learnable (:func:`class_signal`); for notebooks, demos and end-to-end tests."""
    from ser_tf.data.corpora.emodb import EMOTIONS, TEXTS

    root = Path(root)
    texts = sorted(TEXTS)
    order = list(EMOTIONS)
    n = 0
    for letter in classes:
        for i in range(per_class):
            speaker = speakers[i % len(speakers)]
            text = texts[(i // len(speakers)) % len(texts)]
            version = "abcdefghij"[(i // (len(speakers) * len(texts))) % 10]
            write_wav(root / "wav" / f"{speaker}{text}{letter}{version}.wav", sr=sr,
                      duration=duration * (0.8 + 0.4 * ((n * 7) % 10) / 10),
                      class_index=order.index(letter), seed=n)
            n += 1
    return root
