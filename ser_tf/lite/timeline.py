"""Per-window timelines of a prediction: one row per window, written as the windows are
classified, so an hour-long recording never holds its rows in memory.

Each row: the file, ``start_s``, ``end_s`` (seconds from the recording's start; the end of
the single window of a recording shorter than a window is the recording's end), the
window's most likely ``label`` and every class probability. Three sinks, chosen by
:func:`open_timeline`:

- ``*.csv``: a header ``file,start_s,end_s,label,<class>...`` then one line per window;
- ``*.json``: one JSON array of ``{"file", "start_s", "end_s", "label", "probabilities":
  {class: p}}`` objects, written element by element (valid JSON once closed);
- ``None`` / ``"-"``: a compact fixed-width table on the given text stream, a header per
  file.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

#: What a timeline path may end with.
TIMELINE_SUFFIXES = (".csv", ".json")
#: Decimals written: start/end to the millisecond, probabilities to 1e-6.
TIME_DECIMALS, PROBABILITY_DECIMALS = 3, 6


def is_timeline_path(text) -> bool:
    """Whether ``text`` names a file a timeline can be written to (by its suffix)."""
    return Path(str(text)).suffix.lower() in TIMELINE_SUFFIXES


class _Timeline:
    """What every sink shares: labels, the most likely label, closing once."""

    def __init__(self, labels: list[str]):
        self.labels = list(labels)
        self.rows = 0

    def _label(self, probabilities: np.ndarray) -> str:
        return self.labels[int(np.argmax(probabilities))]

    def add(self, file: str, prediction) -> None:
        """One window of ``file`` (a :class:`ser_tf.lite.stream.WindowPrediction`)."""
        self._write(str(file), round(float(prediction.start_s), TIME_DECIMALS),
                    round(float(prediction.end_s), TIME_DECIMALS),
                    np.asarray(prediction.probabilities, dtype=np.float64))
        self.rows += 1

    def _write(self, file, start_s, end_s, probabilities) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CsvTimeline(_Timeline):
    def __init__(self, path, labels):
        super().__init__(labels)
        self.path = Path(path)
        self._handle = open(self.path, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._handle)
        self._csv.writerow(["file", "start_s", "end_s", "label", *self.labels])

    def _write(self, file, start_s, end_s, probabilities):
        self._csv.writerow([file, f"{start_s:.{TIME_DECIMALS}f}", f"{end_s:.{TIME_DECIMALS}f}",
                            self._label(probabilities),
                            *(f"{p:.{PROBABILITY_DECIMALS}f}" for p in probabilities)])

    def close(self):
        if not self._handle.closed:
            self._handle.close()


class JsonTimeline(_Timeline):
    def __init__(self, path, labels):
        super().__init__(labels)
        self.path = Path(path)
        self._handle = open(self.path, "w", encoding="utf-8")
        self._handle.write("[")

    def _write(self, file, start_s, end_s, probabilities):
        row = {"file": file, "start_s": start_s, "end_s": end_s,
               "label": self._label(probabilities),
               "probabilities": {label: round(float(p), PROBABILITY_DECIMALS)
                                 for label, p in zip(self.labels, probabilities)}}
        self._handle.write(("," if self.rows else "") + "\n  " + json.dumps(row))

    def close(self):
        if not self._handle.closed:
            self._handle.write("\n]\n" if self.rows else "]\n")
            self._handle.close()


class TableTimeline(_Timeline):
    """Fixed-width rows on a text stream, flushed per row (live use: the microphone)."""

    def __init__(self, labels, out=None):
        super().__init__(labels)
        self.out = out
        self._file = None
        self._widths = [max(len(label), 5) for label in self.labels]
        self._label_width = max(len(label) for label in self.labels)

    def _write(self, file, start_s, end_s, probabilities):
        out = self.out or sys.stdout
        if file != self._file:
            self._file = file
            header = "  ".join(f"{label:>{w}}" for label, w in zip(self.labels, self._widths))
            print(f"{file}: timeline\n{'start_s':>8} {'end_s':>8}  "
                  f"{'label':<{self._label_width}}  {header}", file=out)
        values = "  ".join(f"{p:>{w}.3f}" for p, w in zip(probabilities, self._widths))
        print(f"{start_s:>8.2f} {end_s:>8.2f}  {self._label(probabilities):<{self._label_width}}"
              f"  {values}", file=out, flush=True)


def open_timeline(target, labels: list[str], out=None) -> _Timeline:
    """A timeline sink: a ``.csv`` / ``.json`` path, or ``None`` / ``"-"`` for a table on
    ``out`` (default stdout). ``ValueError`` for any other suffix."""
    if target is None or str(target) == "-":
        return TableTimeline(labels, out)
    path = Path(target)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return CsvTimeline(path, labels)
    if suffix == ".json":
        return JsonTimeline(path, labels)
    raise ValueError(f"timeline {path}: must end in {' or '.join(TIMELINE_SUFFIXES)} "
                     "(or give no path to print a table)")
