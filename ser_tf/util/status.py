"""Progress of long runs: durations, remaining-time estimates and a line for a silent step.

:class:`RunClock` holds what the epoch lines (:class:`ser_tf.training.progress.EpochLogger`)
need to estimate how long the folds still to train will take; the runner makes one per call
(:func:`run_clock`). :func:`step` frames a long step that prints nothing of its own (a
fold's TFLite export, a t-SNE): a line when it starts, one with its time when it ends, and,
on a terminal, the seconds counting meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import threading
import time
from typing import Iterable


def format_duration(seconds: float) -> str:
    """``3.1s``, ``45s``, ``12m05s``, ``3h02m10s``."""
    seconds = max(float(seconds), 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


class RunClock:
    """The folds one call of a run trains, for estimates of the time the run has left.

    ``n_folds``: the run's folds; ``to_train``: how many this call trains (resumed and
    ``--train-folds`` runs train fewer); ``epochs``: per fold; ``finished_fold_seconds``:
    training times of folds finished in earlier sessions. The runner calls
    :meth:`fold_started` before each fold it trains; the wall time from one fold's start to
    the next (training and what runs after it, e.g. its TFLite export) is what a fold costs.
    """

    def __init__(self, n_folds: int | None, to_train: int, *, epochs: int | None = None,
                 finished_fold_seconds: Iterable[float] = ()):
        self.n_folds, self.to_train, self.epochs = n_folds, int(to_train), epochs
        self.past = [float(s) for s in finished_fold_seconds if s]
        self.walls: list[float] = []
        self.started = 0
        self._fold_start: float | None = None
        self._fold_resumed = False

    def fold_started(self, resumed: bool = False) -> None:
        """A fold starts; ``resumed``: it continues from a backup, so its wall time is part
        of a fold's and does not stand for a whole one in the estimates."""
        now = time.perf_counter()
        if self._fold_start is not None and not self._fold_resumed:
            self.walls.append(now - self._fold_start)
        self._fold_start, self._fold_resumed = now, bool(resumed)
        self.started += 1

    @property
    def folds_after_current(self) -> int:
        """Folds this call still trains after the current one."""
        return max(self.to_train - max(self.started, 1), 0)

    def fold_seconds(self, epoch_seconds: float | None = None) -> float | None:
        """What a whole fold takes: the median of this session's folds, else of the
        earlier sessions' training times, else ``epochs`` x ``epoch_seconds``."""
        for sample in (self.walls, self.past):
            if sample:
                return float(statistics.median(sample))
        if epoch_seconds is not None and self.epochs:
            return float(epoch_seconds) * self.epochs
        return None

    def run_left(self, fold_left: float, epoch_seconds: float | None = None) -> float | None:
        """Seconds this call has left: the current fold's ``fold_left``, then the folds
        after it."""
        after = self.folds_after_current
        if after == 0:
            return fold_left
        per_fold = self.fold_seconds(epoch_seconds)
        return None if per_fold is None else fold_left + after * per_fold


_current: list[RunClock] = []


@contextlib.contextmanager
def run_clock(clock: RunClock):
    """``clock`` is :func:`current_run_clock` during the block."""
    _current.append(clock)
    try:
        yield clock
    finally:
        _current.remove(clock)


def current_run_clock() -> RunClock | None:
    return _current[-1] if _current else None


def fold_label(fold) -> str:
    """``fold 3/10`` (1-based, as the epoch lines) for a fold object or 0-based index."""
    index = int(getattr(fold, "index", fold))
    clock = current_run_clock()
    total = f"/{clock.n_folds}" if clock is not None and clock.n_folds else ""
    return f"fold {index + 1}{total}"


def _isatty(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False


def _own_stream(stream):
    """A stream writing where ``stream`` writes now, even if descriptor 2 is redirected
    later (:func:`ser_tf.util.quiet.filtered_native_stderr`); ``stream`` itself if it has
    no descriptor. The second value closes what was opened."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream, (lambda: None)
    stream.flush()
    own = open(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
    return own, own.close


@contextlib.contextmanager
def step(what: str, *, quiet: bool = False, stream=None, tty: bool | None = None,
         every: float = 1.0):
    """``<what> ...`` when the block starts, ``<what>: done in 52.3s`` (or ``failed after``)
    when it ends; on a terminal one line, its seconds counting while the block runs.
    ``quiet``: nothing."""
    if quiet:
        yield
        return
    base = stream if stream is not None else sys.stderr
    live = tty if tty is not None else _isatty(base)
    out, close = _own_stream(base) if live else (base, lambda: None)
    start = time.perf_counter()
    stop = threading.Event()
    ticker = None
    if live:
        def tick():
            while not stop.wait(every):
                out.write(f"\r{what} ... {format_duration(time.perf_counter() - start)}\x1b[K")
                out.flush()

        out.write(f"{what} ...")
        out.flush()
        ticker = threading.Thread(target=tick, name="ser-tf-step", daemon=True)
        ticker.start()
    else:
        print(f"{what} ...", file=out, flush=True)
    outcome = "failed after"
    try:
        yield
        outcome = "done in"
    finally:
        stop.set()
        if ticker is not None:
            ticker.join()
        elapsed = format_duration(time.perf_counter() - start)
        start_of_line, clear = ("\r", "\x1b[K") if live else ("", "")
        print(f"{start_of_line}{what}: {outcome} {elapsed}{clear}", file=out, flush=True)
        close()
