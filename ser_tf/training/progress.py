"""Callbacks that record and show a fold's training: :class:`HistoryLog` keeps every epoch's
logs on disk across resumed ``fit`` calls; :class:`EpochLogger` prints progress."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import keras

from ser_tf.util.jsonio import read_json, write_json_atomic
from ser_tf.util.status import current_run_clock, format_duration


class HistoryLog(keras.callbacks.Callback):
    """Every epoch's logs of a fold, on disk, so a resumed ``fit`` still has the full curve.

    Keras' ``History`` only holds the epochs of the current ``fit`` call. This keeps
    ``history`` (``{"loss": [...], "val_loss": [...], ...}``, one entry per epoch from the
    first) in ``path`` (JSON, rewritten atomically each epoch). On resume at epoch ``r`` the
    saved lists are cut (or padded with ``None``) to ``r`` entries, matching the backup.
    ``epoch_seconds`` is each epoch's wall time (validation included), so a fold's training
    time adds up over every ``fit`` call that trained it.
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)
        self.history: dict[str, list] = {}
        self._saved = None
        self._started = False
        self._epoch_start = None

    @property
    def epochs(self) -> int:
        return max((len(v) for v in self.history.values()), default=0)

    def on_train_begin(self, logs=None):
        self._started = False
        self._saved = read_json(self.path) if self.path.exists() else None

    def _start(self, epoch: int) -> None:
        self._started = True
        if epoch == 0:
            self.history = {}
            return
        saved = self._saved if self._saved is not None else self.history
        self.history = {k: list(v[:epoch]) + [None] * (epoch - len(v)) for k, v in saved.items()}

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:
            self._start(epoch)
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if not self._started:
            self._start(epoch)
        elapsed = None if self._epoch_start is None else time.perf_counter() - self._epoch_start
        logs = {**(logs or {}), "epoch_seconds": elapsed}
        for key in logs:
            self.history.setdefault(key, [])
        for key, values in self.history.items():
            del values[epoch:]
            values.extend([None] * (epoch - len(values)))
            values.append(_as_float(logs.get(key)))
        write_json_atomic(self.path, self.history, indent=None)

    def on_train_end(self, logs=None):
        if not self._started and self._saved is not None:
            self.history = self._saved
        self._started = False


def _as_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def format_logs(logs: dict) -> str:
    """``loss 0.4321 accuracy 0.8125 val_loss ...``: training first, loss leading, then
    validation, then anything else (learning rate)."""
    def rank(key: str) -> tuple:
        val = key.startswith("val_")
        name = key[4:] if val else key
        return (key == "learning_rate", val, name != "loss", name)

    parts = []
    for key, value in sorted(logs.items(), key=lambda kv: rank(kv[0])):
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        small = value != 0 and not 1e-3 <= abs(value) < 1e4
        parts.append(f"{key} {value:.3e}" if small else f"{key} {value:.4f}")
    return " ".join(parts)


class EpochLogger(keras.callbacks.Callback):
    """Training progress for long k-fold runs (use with ``fit(verbose=0)``).

    On a terminal (stderr is a TTY): a tqdm bar per fold counting epochs, with the latest
    metrics, and a transient bar per epoch counting batches. Otherwise (logs, CI,
    notebooks): one plain line per epoch,
    ``fold 2/10 epoch 7/300 loss ... 3.1s | left: fold 15m20s, run 3h02m10s``.
    ``quiet=True``: nothing.

    The time left: the fold's, the median epoch time so far times the epochs still to run
    (an upper bound when early stopping may end the fold sooner); the run's, that plus the
    folds this call still trains, each taking what the folds before took (their median),
    or as many epochs as this one, from the run's :class:`~ser_tf.util.status.RunClock`
    (``clock``, else the runner's current one; without either only the fold's).
    """

    def __init__(self, fold: int | None = None, n_folds: int | None = None, *,
                 quiet: bool = False, stream=None, tty: bool | None = None, clock=None):
        super().__init__()
        self.fold, self.n_folds, self.quiet = fold, n_folds, quiet
        self.stream, self.tty, self.clock = stream, tty, clock
        self._fold_bar = self._epoch_bar = None
        self._t0 = 0.0
        self._epoch_times: list[float] = []

    def _prefix(self) -> str:
        if self.fold is None:
            return ""
        return f"fold {self.fold}/{self.n_folds} " if self.n_folds else f"fold {self.fold} "

    def on_train_begin(self, logs=None):
        # Resolved now, not in __init__, so redirected/captured stderr is honoured.
        self._out = self.stream if self.stream is not None else sys.stderr
        isatty = getattr(self._out, "isatty", None)
        self._use_bars = self.tty if self.tty is not None else bool(isatty and isatty())
        self._epoch_times = []

    def time_left(self, epoch: int) -> str:
        """`` | left: fold 15m20s, run 3h02m10s`` after epoch ``epoch`` (0-based) ended;
        empty when nothing is left or nothing can be estimated."""
        if not self._epoch_times:
            return ""
        per_epoch = float(statistics.median(self._epoch_times))
        epochs = self.params.get("epochs") if self.params else None
        fold_left = per_epoch * max(int(epochs) - (epoch + 1), 0) if epochs else None
        parts = []
        if fold_left:
            parts.append(f"fold {format_duration(fold_left)}")
        clock = self.clock if self.clock is not None else current_run_clock()
        if clock is not None and clock.folds_after_current and fold_left is not None:
            run_left = clock.run_left(fold_left, per_epoch)
            if run_left is not None:
                parts.append(f"run {format_duration(run_left)}")
        return f" | left: {', '.join(parts)}" if parts else ""

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        if self.quiet or not self._use_bars:
            return
        from tqdm import tqdm

        epochs = self.params.get("epochs")
        if self._fold_bar is None:  # created at the first epoch: a resumed fit starts mid-way
            self._fold_bar = tqdm(total=epochs, initial=epoch, desc=self._prefix().strip() or "fit",
                                  unit="epoch", file=self._out, dynamic_ncols=True)
        steps = self.params.get("steps")
        if steps:
            self._epoch_bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                                   leave=False, file=self._out, dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch_bar is not None:
            self._epoch_bar.update(1)
            if logs and "loss" in logs:
                self._epoch_bar.set_postfix_str(f"loss {float(logs['loss']):.4f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.quiet:
            return
        seconds = time.perf_counter() - self._t0
        self._epoch_times.append(seconds)
        metrics = format_logs(logs or {})
        left = self.time_left(epoch)
        if not self._use_bars:
            epochs = self.params.get("epochs")
            total = f"/{epochs}" if epochs else ""
            print(f"{self._prefix()}epoch {epoch + 1}{total} {metrics} {seconds:.1f}s{left}"
                  .replace("  ", " "), file=self._out, flush=True)
            return
        if self._epoch_bar is not None:
            self._epoch_bar.close()
            self._epoch_bar = None
        if self._fold_bar is not None:
            self._fold_bar.set_postfix_str(f"{metrics} {seconds:.1f}s{left}", refresh=False)
            self._fold_bar.update(1)

    def on_train_end(self, logs=None):
        for bar in (self._epoch_bar, self._fold_bar):
            if bar is not None:
                bar.close()
        self._fold_bar = self._epoch_bar = None
