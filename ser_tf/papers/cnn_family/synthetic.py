"""A tiny generated pooled corpus: RAVDESS, SAVEE, TESS and CREMA-D folders in their real
layouts, a few files per class, for tests, the notebook and demos (no corpus needed).

Each file is a :func:`ser_tf.data.synthetic.class_signal` tone whose character depends on
its *common* class (RAVDESS calm sounds like neutral, since it is pooled into it), so a
model trained on the pooled corpus has something to learn.
"""

from __future__ import annotations

from pathlib import Path

from ser_tf.data.synthetic import write_wav
from ser_tf.papers.cnn_family.corpora import SEVEN_CLASSES

#: Each corpus's file code per common class (RAVDESS: the emotion field; calm is 02).
RAVDESS_CODES = {"01": "neutral", "02": "neutral", "03": "happiness", "04": "sadness",
                 "05": "anger", "06": "fear", "07": "disgust", "08": "surprise"}
SAVEE_CODES = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "n": "neutral",
               "sa": "sadness", "su": "surprise"}
TESS_CODES = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
              "neutral": "neutral", "sad": "sadness", "ps": "surprise"}
CREMAD_CODES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness",
                "NEU": "neutral", "SAD": "sadness"}
TESS_WORDS = ("back", "bar", "base", "bath", "bean", "beg", "bite", "boat")
CREMAD_SENTENCES = ("DFA", "IEO", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI")


def _file_names(per_class: int) -> dict[str, list[tuple[str, str]]]:
    """``{corpus folder: [(relative path, common label), ...]}``."""
    names: dict[str, list[tuple[str, str]]] = {"ravdess": [], "savee": [], "tess": [],
                                               "cremad": []}
    for code, label in RAVDESS_CODES.items():
        for i in range(per_class):
            actor = f"{1 + (i % 4):02d}"  # actors 01-04
            statement, repetition = 1 + (i // 4) % 2, 1 + (i // 8) % 2
            names["ravdess"].append((f"Actor_{actor}/03-01-{code}-01-{statement:02d}-"
                                     f"{repetition:02d}-{actor}.wav", label))
    for code, label in SAVEE_CODES.items():
        for i in range(per_class):
            speaker = ("DC", "JE", "JK", "KL")[i % 4]
            names["savee"].append((f"AudioData/{speaker}/{code}{1 + i:02d}.wav", label))
    for code, label in TESS_CODES.items():
        for i in range(per_class):
            speaker = ("OAF", "YAF")[i % 2]
            word = TESS_WORDS[(i // 2) % len(TESS_WORDS)]
            names["tess"].append((f"{speaker}_{code}/{speaker}_{word}_{code}.wav", label))
    for code, label in CREMAD_CODES.items():
        for i in range(per_class):
            actor = 1001 + i % 4
            sentence = CREMAD_SENTENCES[(i // 4) % len(CREMAD_SENTENCES)]
            names["cremad"].append((f"AudioWAV/{actor}_{sentence}_{code}_XX.wav", label))
    return names


def make_pooled_corpora(root, *, per_class: int = 3, duration: float = 1.2,
                        sr: int = 16000, corpora=("ravdess", "savee", "tess", "cremad")) -> Path:
    """Write ``per_class`` files per class of each corpus under ``root/<corpus folder>``
    (``per_class`` up to 8; every corpus gets several speakers) and return ``root``: the
    ``--data-root`` of ``ser-tf train cnn_family``. Durations vary around ``duration``."""
    if not 1 <= per_class <= 8:
        raise ValueError(f"per_class must be 1 to 8, got {per_class}")
    root = Path(root)
    n = 0
    for corpus, files in _file_names(per_class).items():
        if corpus not in corpora:
            continue
        for name, label in files:
            write_wav(root / corpus / name, sr=sr,
                      duration=duration * (0.8 + 0.4 * ((n * 7) % 10) / 10),
                      class_index=SEVEN_CLASSES.index(label), seed=n)
            n += 1
    return root
