"""A tiny generated corpus in the SEWA (AVEC 2017) layout, for tests and the notebook.

``audio/Train_01.wav`` (22.05 kHz), ``labels/Train_01.csv`` (``instance;time;arousal;
valence;liking`` every 0.1 s, no header, as AVEC ships them), ``transcriptions/`` (segments
``start;end;text``) and ``turns/`` (the subject's speaking turns). The labels are learnable
from both modalities: arousal follows the loudness of the tone (audio), valence follows the
words being said (a "positive" and a "negative" word list: text), liking is their mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

POSITIVE = ("gut", "schön", "super", "toll", "prima")
NEGATIVE = ("schlecht", "doof", "langweilig", "teuer", "schade")


def _recording(seed: int, seconds: float, sr: int):
    """Waveform, label rows, segments and turns of one generated conversation."""
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * 10))
    t = np.arange(int(seconds * sr)) / sr
    loud = 0.5 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(3.0, 6.0) + rng.uniform(0, 6))
    wave = (0.05 + 0.6 * loud) * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.standard_normal(t.size)
    segments, turns, valence = [], [], np.zeros(frames)
    start = 0.3
    while start < seconds - 1.0:
        length = float(rng.uniform(0.8, 1.6))
        end = min(start + length, seconds - 0.1)
        positive = bool(rng.integers(2))
        words = rng.choice(POSITIVE if positive else NEGATIVE, size=3)
        segments.append((start, end, " ".join(words)))
        turns.append((start, end))
        valence[int(start * 10):int(end * 10) + 1] = 0.6 if positive else -0.6
        start = end + float(rng.uniform(0.3, 0.8))
    times = np.arange(frames) / 10
    arousal = np.interp(times, t, loud) * 1.2 - 0.6
    liking = (arousal + valence) / 2
    return wave.astype(np.float32), times, (arousal, valence, liking), segments, turns


def make_sewa_like(root, *, train: int = 3, devel: int = 2, seconds: float = 8.0,
                   sr: int = 22050, seed: int = 0) -> Path:
    """Write ``train`` Train and ``devel`` Devel recordings of ``seconds`` each; returns
    ``root``."""
    import soundfile as sf

    root = Path(root)
    stems = [f"Train_{i + 1:02d}" for i in range(train)] + \
            [f"Devel_{i + 1:02d}" for i in range(devel)]
    for sub in ("audio", "labels", "transcriptions", "turns"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for n, stem in enumerate(stems):
        wave, times, dims, segments, turns = _recording(seed + n, seconds, sr)
        sf.write(str(root / "audio" / f"{stem}.wav"), wave, sr, subtype="PCM_16")
        rows = [f"'{stem}';{tm:.1f};{a:.4f};{v:.4f};{l:.4f}"
                for tm, a, v, l in zip(times, *dims)]
        (root / "labels" / f"{stem}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        (root / "transcriptions" / f"{stem}.csv").write_text(
            "".join(f"{s:.2f};{e:.2f};{text}\n" for s, e, text in segments), encoding="utf-8")
        (root / "turns" / f"{stem}.csv").write_text(
            "".join(f"{s:.2f};{e:.2f}\n" for s, e in turns), encoding="utf-8")
    return root
