"""The resumable k-fold runner: a killed cross-validation picks up where it stopped.

Two levels of resume, both driven by what is on disk in ``work_dir``::

    work_dir/folds.json             the folds (protocols.save_folds format, with digest)
    work_dir/fold_00/result.json    written atomically the moment fold 0 finishes
    work_dir/fold_01/backup/        resume state of the running fold (training.backup.FoldBackup)
    work_dir/fold_01/...            anything else the fold function keeps (best weights, history)

* Across folds: :func:`run_kfold` skips every fold whose ``result.json`` exists (and says
  so, unless ``quiet``). The file is written to a temporary name and renamed
  (``os.replace``), so it is either complete or absent, never half-written.
* Inside a fold: :func:`fold_backup_callback` gives the fold function a
  :class:`~ser_tf.training.backup.FoldBackup` in ``fold_dir/backup/``; re-running ``model.fit``
  with it resumes from the last finished epoch (weights, optimizer state, seed generators,
  epoch number; :func:`ser_tf.training.classifier.train_fold` also starts the training
  data where they stopped, so the resumed fold is the uninterrupted one).
  Keras' ``History`` only sees the epochs of the current call, so use
  :class:`ser_tf.training.progress.HistoryLog` for the whole curve and let
  :class:`~ser_tf.training.callbacks.CheckpointPolicy` keep its state on disk;
  :func:`fold_callbacks` puts all of them in the order resuming needs.

The folds are part of the experiment: resuming with different folds would silently mix
two cross-validations, so ``folds.json`` stores a digest and a mismatch is an error.
One process per ``work_dir``: :func:`run_kfold` holds an exclusive lock on
``work_dir/run.lock`` while it trains, so a second process started on the same run (say, a
``make`` that reaches a run another terminal is already training) stops with an error
instead of writing the same fold's backup and history at the same time. The operating
system drops the lock when the process dies, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ser_tf.util.jsonio import read_json, write_json_atomic

from ser_tf.training.rundir import (BACKUP_DIR, FOLDS_FILE, HISTORY_FILE, LOCK_FILE, RESULT_FILE,
                                   fold_dir_name)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one process per run is then up to the user
    fcntl = None


def as_folds(folds: Sequence[Any]) -> list:
    """``protocols.Fold`` objects; dicts (``Fold.to_dict()`` form) are converted."""
    from ser_tf.training.protocols import Fold

    return [f if isinstance(f, Fold) else Fold.from_dict(dict(f)) for f in folds]


def write_folds(path: str | os.PathLike, folds: Sequence[Any]) -> Path:
    """``protocols.save_folds`` made atomic: write beside ``path``, then rename over it."""
    from ser_tf.training.protocols import save_folds

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_folds(as_folds(folds), tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _check_or_store_folds(work_dir: Path, folds: list) -> None:
    from ser_tf.training.protocols import folds_digest, load_folds

    path = work_dir / FOLDS_FILE
    if not path.exists():
        write_folds(path, folds)
        return
    try:
        stored = folds_digest(load_folds(path))
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path} is unreadable ({err}); delete {work_dir} to start over") from err
    digest = folds_digest(folds)
    if stored != digest:
        raise ValueError(
            f"{work_dir} holds a cross-validation with different folds (stored digest "
            f"{stored[:12]}, these folds {digest[:12]}); refusing to mix them. Use a new "
            f"work dir, or delete {work_dir} to start this one over.")


_LOCKS_HELD: dict[Path, int] = {}  # lock path -> nesting depth in this process


class RunLockedError(RuntimeError):
    """Another process holds the run's lock; nothing of the run was touched."""


@contextlib.contextmanager
def run_lock(work_dir: str | os.PathLike):
    """Hold ``work_dir/run.lock`` exclusively; :class:`RunLockedError` if another process has it.

    An advisory ``flock``: released by the kernel when the file is closed or the process
    ends, so a killed run needs no cleanup. The file keeps the holder's pid for the message.
    Re-entrant within a process, so an experiment can hold the lock around its whole run
    (feature catch-up, folds, record) while :func:`run_kfold` takes it again inside.
    """
    path = (Path(work_dir) / LOCK_FILE).resolve()
    if fcntl is None or path in _LOCKS_HELD:
        _LOCKS_HELD[path] = _LOCKS_HELD.get(path, 0) + 1
        try:
            yield path
        finally:
            _LOCKS_HELD[path] -= 1
            if not _LOCKS_HELD[path]:
                del _LOCKS_HELD[path]
        return
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunLockedError(
                f"{work_dir} is being trained by another process (pid {holder}, lock "
                f"{path}); run one process per run, or stop that one first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _LOCKS_HELD[path] = 1
        try:
            yield path
        finally:
            del _LOCKS_HELD[path]
            fcntl.flock(handle, fcntl.LOCK_UN)


class FoldSelectionError(ValueError):
    """Asked to train folds a run does not have."""


def run_kfold(work_dir: str | os.PathLike, folds: Sequence[Any],
              train_fold: Callable[[Any, Path], dict], *,
              on_fold_done: Callable[[Any, dict], None] | None = None,
              train_only: Sequence[int] | None = None, quiet: bool = False) -> list[dict]:
    """Run ``train_fold(fold, fold_dir)`` for each fold not done yet; return all results.

    Unless ``quiet``, the folds found done are named, one line per run of consecutive
    ones (``folds 1-3 of 10 done, skipped (fold_00-fold_02/result.json)``), counted from
    1 as the progress lines count them.

    ``train_only``: fold indices to train in this call (e.g. two folds of a long run first);
    the others are not trained, and only the finished folds' results come back.

    ``folds`` are :class:`ser_tf.training.protocols.Fold` objects (``make_folds``), or
    their ``to_dict()`` form, which is converted; ``fold_dir`` is ``work_dir/fold_XX`` with
    ``XX`` the fold's ``index``.

    ``train_fold`` returns the fold's result as a JSON-serialisable dict (numpy values are
    converted). The convention the run records and plots expect::

        {"metrics": classification_metrics(...),   # UA, WA, macro_F1, ..., confusion_matrix
         "history": {"loss": [...], "val_loss": [...], "accuracy": [...], ...},
         "chosen_epoch": 37, "epochs_run": 50, "checkpoint": policy.to_dict(), ...}

    The result is persisted as ``work_dir/fold_XX/result.json`` (with ``"fold"`` set to the
    fold's index) before the next fold starts, so a kill loses at most the running fold,
    and that one resumes from its last epoch if ``train_fold`` uses
    :func:`fold_backup_callback`. ``on_fold_done(fold, result)`` is called for each fold
    that ran in this call (not for folds loaded from disk). Results come back in fold order.
    """
    if not folds:
        raise ValueError("no folds to run")
    folds = as_folds(folds)
    numbers = [int(f.index) for f in folds]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"fold indices are not unique: {numbers}")
    if train_only is not None:
        unknown = sorted(set(int(i) for i in train_only) - set(numbers))
        if unknown:
            raise FoldSelectionError(f"{work_dir}: folds {unknown} are not in this run "
                                     f"(its folds: {numbers})")
        train_only = {int(i) for i in train_only}
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(work_dir):
        _check_or_store_folds(work_dir, folds)
        if not quiet:
            for line in skipped_fold_lines(work_dir, folds):
                print(line, flush=True)
        return _run_folds(work_dir, folds, numbers, train_fold, on_fold_done, train_only)


def skipped_fold_lines(work_dir: str | os.PathLike, folds: Sequence[Any]) -> list[str]:
    """One line per run of consecutive folds (in ``folds`` order) whose ``result.json``
    exists: what a rerun skips. Folds count from 1 here, as in the progress lines
    (``fold 3/10 epoch ...`` is ``fold_02``); the folder names are given too."""
    folds = as_folds(folds)
    groups: list[list] = []
    previous_done = False
    for fold in folds:
        done = (Path(work_dir) / fold_dir_name(fold) / RESULT_FILE).exists()
        if done:
            if previous_done:
                groups[-1].append(fold)
            else:
                groups.append([fold])
        previous_done = done
    lines = []
    for group in groups:
        first, last = group[0], group[-1]
        if len(group) == 1:
            lines.append(f"fold {int(first.index) + 1} of {len(folds)} done, skipped "
                         f"({fold_dir_name(first)}/{RESULT_FILE})")
        else:
            lines.append(f"folds {int(first.index) + 1}-{int(last.index) + 1} of {len(folds)} "
                         f"done, skipped ({fold_dir_name(first)}-{fold_dir_name(last)}/"
                         f"{RESULT_FILE})")
    return lines


def _run_folds(work_dir: Path, folds: list, numbers: list[int],
               train_fold: Callable[[Any, Path], dict],
               on_fold_done: Callable[[Any, dict], None] | None,
               train_only: set[int] | None = None) -> list[dict]:
    results = []
    for fold, number in zip(folds, numbers):
        fold_dir = work_dir / fold_dir_name(fold)
        result_path = fold_dir / RESULT_FILE
        if result_path.exists():
            results.append(read_json(result_path))
            continue
        if train_only is not None and number not in train_only:
            continue
        fold_dir.mkdir(parents=True, exist_ok=True)
        result = train_fold(fold, fold_dir)
        if not isinstance(result, Mapping):
            raise TypeError(f"train_fold must return a dict, got {type(result).__name__}")
        result = {"fold": number, **result}
        write_json_atomic(result_path, result)
        # Read back what was stored so fresh and resumed runs return identical objects.
        results.append(read_json(result_path))
        if on_fold_done is not None:
            on_fold_done(fold, results[-1])
    return results


def load_fold_results(work_dir: str | os.PathLike) -> list[dict]:
    """The results of the folds finished so far, in fold order (for inspecting a run)."""
    paths = sorted(Path(work_dir).glob(f"fold_*/{RESULT_FILE}"))
    return [read_json(p) for p in paths]


def fold_backup_callback(fold_dir: str | os.PathLike):
    """:class:`~ser_tf.training.backup.FoldBackup` in ``fold_dir/backup/``, for in-fold resume.

    It saves weights, optimizer state, the model's seed generators and the epoch number
    after every epoch (one file, replaced atomically) and deletes the backup when ``fit``
    ends normally; a rerun of ``fit`` with the same (freshly built) model continues at the
    epoch after the last saved one. (The training data must continue there too:
    :func:`ser_tf.training.classifier.train_fold` builds them so.) A backup written by
    ``keras.callbacks.BackupAndRestore`` (runs started before) is resumed too.

    Put it FIRST in the callbacks list: callbacks that persist their own state
    (:class:`~ser_tf.training.callbacks.CheckpointPolicy`, ``HistoryLog``) must save after
    the backup, so their files never describe an epoch the backup does not have.
    """
    from ser_tf.training.backup import FoldBackup  # lazy: the runner itself needs no TensorFlow

    return FoldBackup(Path(fold_dir) / BACKUP_DIR)


def fold_callbacks(fold_dir: str | os.PathLike, *, policy=None, logger=None,
                   history: bool = True) -> list:
    """The callbacks of one resumable fold, in the order resuming needs.

    ``[FoldBackup, CheckpointPolicy, HistoryLog, EpochLogger]`` (the ones given):
    backup first, then the callbacks that persist state after it, progress last. The
    ``HistoryLog`` (``fold_dir/history.json``) is returned inside the list; find it with
    ``next(c for c in cbs if isinstance(c, HistoryLog))`` or keep your own.
    """
    from ser_tf.training.progress import HistoryLog

    callbacks = [fold_backup_callback(fold_dir)]
    if policy is not None:
        callbacks.append(policy)
    if history:
        callbacks.append(HistoryLog(Path(fold_dir) / HISTORY_FILE))
    if logger is not None:
        callbacks.append(logger)
    return callbacks
