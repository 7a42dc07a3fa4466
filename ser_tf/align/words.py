"""Timed words: the :class:`Word` record, transcript normalisation, JSON and TextGrid files.

Nothing here runs an aligner; these are the plain data helpers the aligner, the batch mode
and the benchmark share.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ser_tf.util.jsonio import write_json_atomic

#: Identifies the words JSON written by :func:`write_words_json`.
WORDS_FORMAT = "ser_tf.align.words/1"

# A word is a run of letters/digits, optionally joined by an apostrophe or hyphen
# ("don't", "Holz-stück"): the surface form is kept, everything else is punctuation.
_WORD_PATTERN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")


@dataclass(frozen=True)
class Word:
    """One word of the transcript and where it is in the audio, in seconds."""

    word: str
    start: float
    end: float

    def __post_init__(self):
        if not isinstance(self.word, str) or not self.word:
            raise ValueError(f"a Word needs a non-empty word, got {self.word!r}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"word {self.word!r}: {name} must be a finite time >= 0 s, "
                                 f"got {value!r}")
        if self.end < self.start:
            raise ValueError(f"word {self.word!r}: ends ({self.end}) before it starts "
                             f"({self.start})")

    @property
    def duration(self) -> float:
        return self.end - self.start


def normalise_transcript(text: str) -> list[str]:
    """The transcript's words in order, surface forms kept, punctuation dropped.

    ``"Der Lappen liegt auf dem Eisschrank."`` gives ``["Der", "Lappen", "liegt", "auf",
    "dem", "Eisschrank"]``.
    """
    if not isinstance(text, str):
        raise TypeError(f"a transcript is text, got {type(text).__name__}")
    return _WORD_PATTERN.findall(text)


def check_words(words) -> list[Word]:
    """``words`` as a list, checked to be :class:`Word` records in order, not overlapping."""
    words = list(words)
    for index, item in enumerate(words):
        if not isinstance(item, Word):
            raise TypeError(f"item {index} is a {type(item).__name__}, not a Word")
        if index and item.start < words[index - 1].end - 1e-9:
            raise ValueError(f"word {index} {item.word!r} starts at {item.start} s, before "
                             f"the previous word ends ({words[index - 1].end} s)")
    return words


def write_words_json(words, path: str | os.PathLike, **metadata) -> Path:
    """Write the words as JSON (``{"format", "words": [{word, start, end}], ...}``)."""
    words = check_words(words)
    record = {"format": WORDS_FORMAT, **metadata,
              "words": [asdict(w) for w in words]}
    return write_json_atomic(path, record)


def words_from_records(records, source: str = "words") -> list[Word]:
    """Words from ``[{"word", "start", "end"}, ...]``; errors name ``source``."""
    try:
        return check_words(Word(str(r["word"]), float(r["start"]), float(r["end"]))
                           for r in records)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{source}: not a list of timed words ({err})") from None


def read_words_json(path: str | os.PathLike) -> list[Word]:
    """The words of a file written by :func:`write_words_json`."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(record, dict) or record.get("format") != WORDS_FORMAT:
        raise ValueError(f"{path}: not a words file (format {WORDS_FORMAT!r} expected)")
    return words_from_records(record.get("words", []), source=str(path))


def _textgrid_text(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'  # Praat doubles quotes inside strings


def _intervals(words: list[Word], duration: float) -> list[tuple[float, float, str]]:
    """The words plus empty intervals over every gap, covering 0 .. ``duration``."""
    intervals, cursor = [], 0.0
    for w in words:
        if w.start > cursor:
            intervals.append((cursor, w.start, ""))
        if w.end > w.start:  # Praat rejects zero-length intervals
            intervals.append((w.start, w.end, w.word))
        cursor = max(cursor, w.end)
    if duration > cursor:
        intervals.append((cursor, duration, ""))
    return intervals


def write_textgrid(words, path: str | os.PathLike, duration: float) -> Path:
    """Write a Praat TextGrid (long text format) with one IntervalTier "words".

    Gaps between words (and before the first / after the last) become empty intervals,
    so the tier covers 0 .. ``duration`` as Praat requires.
    """
    words = check_words(words)
    duration = float(duration)
    if words and duration < words[-1].end - 1e-6:
        raise ValueError(f"duration {duration} s is shorter than the last word's end "
                         f"({words[-1].end} s)")
    intervals = _intervals(words, duration)
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "",
             "xmin = 0", f"xmax = {duration!r}", "tiers? <exists>", "size = 1", "item []:",
             "    item [1]:", '        class = "IntervalTier"', '        name = "words"',
             "        xmin = 0", f"        xmax = {duration!r}",
             f"        intervals: size = {len(intervals)}"]
    for index, (xmin, xmax, text) in enumerate(intervals, start=1):
        lines += [f"        intervals [{index}]:", f"            xmin = {xmin!r}",
                  f"            xmax = {xmax!r}", f"            text = {_textgrid_text(text)}"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_textgrid(path: str | os.PathLike, tier: str = "words") -> tuple[list[Word], float]:
    """(non-empty intervals of ``tier`` as words, xmax) from a long-format TextGrid."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    tiers = re.split(r"\n\s*item \[\d+\]:\s*\n", text)
    header, tiers = tiers[0], tiers[1:]
    xmax = re.search(r"^xmax = ([0-9.eE+-]+)", header, re.MULTILINE)
    for body in tiers:
        if re.search(r'name = "' + re.escape(tier) + '"', body):
            found = re.findall(r'xmin = ([0-9.eE+-]+)\s+xmax = ([0-9.eE+-]+)\s+'
                               r'text = "((?:[^"]|"")*)"', body)
            words = [Word(t.replace('""', '"'), float(a), float(b)) for a, b, t in found if t]
            return words, float(xmax.group(1)) if xmax else 0.0
    raise ValueError(f"{path}: no tier named {tier!r}")
