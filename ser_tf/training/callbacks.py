"""Training callbacks: which weights a fold reports, its full history, and its progress.

:class:`CheckpointPolicy` implements the three ways of choosing the weights that get
evaluated on a fold's test set:

* ``last``: the weights after the final epoch; TIM-Net's authors switched to this for their
  corrected figures (TIM-Net_SER README, 2023-08-14 update: ``save_best_only`` should be
  ``False``).
* ``best-val``: ``ModelCheckpoint(save_best_only=True)`` + ``EarlyStopping`` on a
  validation split carved from the training speakers/utterances: the honest selection.
* ``paper``: the same selection, but the experiment passes the *test* fold as
  ``validation_data``, as the public code of Light-SERNet (``BestModelWeights`` with
  ``validation_data=test_dataset``) and TIM-Net (``ModelCheckpoint(monitor="val_accuracy",
  save_best_only=True)`` on the test fold) do. Needed to reproduce the published numbers,
  optimistic by construction; the policy records ``selection_on_test=True``.

Epochs are counted from 1 in everything these callbacks record (``chosen_epoch=7`` is the
7th epoch, Keras' ``epoch=6``). With in-fold resume (``BackupAndRestore``) the policy and
:class:`HistoryLog` keep their state on disk and pick it up when ``fit`` resumes; they must
come after the backup callback (see :func:`ser_tf.training.kfold.fold_callbacks`).
The per-epoch history and progress callbacks live in :mod:`ser_tf.training.progress`.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import keras

from ser_tf.util.jsonio import content_hash
from ser_tf.util.jsonio import read_json, write_json_atomic

POLICIES = ("last", "best-val", "paper")
WEIGHTS_SUFFIX = ".weights.h5"


def infer_mode(monitor: str) -> str:
    """``min`` for losses and errors, ``max`` for everything else (accuracy, UA, F1)."""
    name = monitor.lower()
    return "min" if any(w in name for w in ("loss", "error", "mse", "mae")) else "max"


class CheckpointPolicy(keras.callbacks.Callback):
    """Choose the reported weights: ``last``, ``best-val`` or ``paper`` (best on the test fold).

    A *check* happens at the end of epoch ``n`` (1-based) when ``n >= min_epochs`` and
    ``n % check_every == 0``: the ``monitor`` value is compared with the best so far
    (``mode`` ``min``/``max``, inferred from the name; an improvement must beat the best by
    more than ``min_delta``; NaN never improves). On improvement the weights are kept in
    memory and, with ``path``, saved to that ``.weights.h5`` file. After ``patience``
    checks in a row without improvement training stops (``patience=None``: never). At the
    end of training the chosen weights are put back into the model: the best checked ones,
    or the last ones for ``last`` (and, with a warning, when no check ever happened).

    After training: ``chosen_epoch``, ``best_value``, ``best_epoch``, ``stopped_epoch``,
    ``checks`` (the history of checks: ``{"epoch", "value", "improved"}`` dicts) and
    :meth:`to_dict` for the fold's result.

    With ``path`` the policy's state goes to ``<name>.policy.json`` beside it after every
    epoch, so a ``fit`` resumed by ``BackupAndRestore`` keeps the checks and the best
    weights of the epochs before the interruption. The best weights are saved write-ahead
    (temporary file, then the state naming its SHA-256, then the rename), so a kill at any
    point leaves a state and a weights file that agree.
    """

    def __init__(self, policy: str = "best-val", monitor: str = "val_loss", mode: str = "auto",
                 *, path: str | os.PathLike | None = None, check_every: int = 1,
                 patience: int | None = None, min_epochs: int = 0, min_delta: float = 0.0):
        super().__init__()
        if policy not in POLICIES:
            raise ValueError(f"unknown checkpoint policy {policy!r}; choose one of {POLICIES}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', not {mode!r}")
        if check_every < 1 or min_epochs < 0 or (patience is not None and patience < 1):
            raise ValueError("need check_every >= 1, min_epochs >= 0 and patience >= 1 (or None)")
        if path is not None and not str(path).endswith(WEIGHTS_SUFFIX):
            raise ValueError(f"the weights path must end with {WEIGHTS_SUFFIX} (Keras' rule): {path}")
        self.policy, self.monitor = policy, monitor
        self.mode = infer_mode(monitor) if mode == "auto" else mode
        self.path = Path(path) if path is not None else None
        self.check_every, self.patience = int(check_every), patience
        self.min_epochs, self.min_delta = int(min_epochs), float(min_delta)
        self._saved, self._started = None, False
        self._reset()

    @property
    def selection_on_test(self) -> bool:
        return self.policy == "paper"

    @property
    def state_path(self) -> Path | None:
        return None if self.path is None else self._sibling(".policy.json")

    def _sibling(self, suffix: str) -> Path:
        return self.path.with_name(self.path.name[: -len(WEIGHTS_SUFFIX)] + suffix)

    def _reset(self) -> None:
        self.checks: list[dict] = []
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.epochs_done = 0
        self.stopped_epoch: int | None = None
        self.chosen_epoch: int | None = None
        self.missed_epochs: list[int] = []
        self._best_weights = None
        self._best_sha: str | None = None
        self._replace_pending = False

    # -- state on disk -------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The policy's settings and outcome, for the fold's result."""
        return {"policy": self.policy, "monitor": None if self.policy == "last" else self.monitor,
                "mode": self.mode, "check_every": self.check_every, "patience": self.patience,
                "min_epochs": self.min_epochs, "min_delta": self.min_delta,
                "selection_on_test": self.selection_on_test, "chosen_epoch": self.chosen_epoch,
                "best_value": self.best_value, "best_epoch": self.best_epoch,
                "epochs_done": self.epochs_done, "stopped_epoch": self.stopped_epoch,
                "missed_epochs": list(self.missed_epochs), "checks": list(self.checks)}

    def _save_state(self) -> None:
        if self.path is not None:
            write_json_atomic(self.state_path, {**self.to_dict(), "best_sha256": self._best_sha})

    def _start(self, epoch: int) -> None:
        """First epoch of this ``fit`` call: start fresh (epoch 0) or resume at ``epoch``."""
        self._started = True
        if epoch == 0:
            self._reset()
        elif self._saved is not None:
            self._restore(self._saved, epoch)
        elif self.epochs_done != epoch:
            # Resumed without a saved state (no path): earlier checks are unknown.
            warnings.warn(f"CheckpointPolicy: fit resumed at epoch {epoch + 1} without the "
                          "policy's state (give it a path); epochs before it are not considered")
            self._reset()
            self.epochs_done = epoch
        # else: the same object continues in-process; its memory is the state.

    def _restore(self, state: dict, epoch: int) -> None:
        if state.get("policy") != self.policy or (
                self.policy != "last" and state.get("monitor") != self.monitor):
            raise ValueError(f"{self.state_path} was written by a {state.get('policy')!r} policy "
                             f"on {state.get('monitor')!r}; this fold now uses {self.policy!r} on "
                             f"{self.monitor!r}. Delete the fold's folder to restart it.")
        done = int(state["epochs_done"])
        best_epoch = state.get("best_epoch")
        if best_epoch is not None and best_epoch > epoch:
            raise RuntimeError(
                f"{self.state_path} records epoch {best_epoch} but the backup resumes at epoch "
                f"{epoch + 1}: the policy ran before the backup (it must come after it). "
                "Delete the fold's folder to restart it.")
        self._reset()
        self.checks = [c for c in state["checks"] if c["epoch"] <= epoch]
        self.best_value, self.best_epoch = state.get("best_value"), best_epoch
        self.wait = sum(1 for c in self.checks if best_epoch is None or c["epoch"] > best_epoch)
        self.epochs_done = epoch
        self.missed_epochs = list(state.get("missed_epochs", []))
        if done < epoch:
            # Killed between the backup's save and ours: those epochs were never checked.
            self.missed_epochs += list(range(done + 1, epoch + 1))
            warnings.warn(f"CheckpointPolicy: epoch(s) {self.missed_epochs} finished before "
                          "the interruption but were not checked")
        if best_epoch is not None:
            self._best_sha = state["best_sha256"]
            self._best_weights = self._load_best_weights()

    def _load_best_weights(self):
        tmp = self._sibling(".saving" + WEIGHTS_SUFFIX)
        if not (self.path.exists() and content_hash(self.path) == self._best_sha):
            if tmp.exists() and content_hash(tmp) == self._best_sha:
                os.replace(tmp, self.path)  # finish the save the kill interrupted
            else:
                raise RuntimeError(f"{self.path} does not hold the best weights recorded in "
                                   f"{self.state_path}; delete the fold's folder to restart it")
        # load_weights also overwrites the optimizer state the backup just restored,
        # so keep both and put them back after reading the best weights.
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)
        current = model.get_weights()
        opt_state = [v.numpy() for v in optimizer.variables] if optimizer is not None else []
        model.load_weights(self.path)
        best = model.get_weights()
        model.set_weights(current)
        if optimizer is not None:
            for variable, value in zip(optimizer.variables, opt_state):
                variable.assign(value)
        return best

    def _save_weights_ahead(self) -> None:
        """Step 1 of the write-ahead save: weights to a temporary file, remember its hash."""
        tmp = self._sibling(".saving" + WEIGHTS_SUFFIX)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(tmp, overwrite=True)
        self._best_sha = content_hash(tmp)
        self._replace_pending = True

    def _commit_weights(self) -> None:
        """Step 3: the state names the new hash, now the file may take its place."""
        if self._replace_pending:
            os.replace(self._sibling(".saving" + WEIGHTS_SUFFIX), self.path)
            self._replace_pending = False

    # -- Keras hooks ---------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._started = False
        state = self.state_path
        self._saved = read_json(state) if state is not None and state.exists() else None

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:
            self._start(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if not self._started:
            self._start(epoch)
        n = epoch + 1
        self.epochs_done = n
        if self.policy != "last" and n >= self.min_epochs and n % self.check_every == 0:
            self._check(n, logs or {})
        self._save_state()
        self._commit_weights()

    def _check(self, n: int, logs: dict) -> None:
        if self.monitor not in logs:
            hint = " (pass validation_data to fit)" if self.monitor.startswith("val_") else ""
            raise ValueError(f"CheckpointPolicy monitors {self.monitor!r} but epoch {n} only "
                             f"logged {sorted(logs)}{hint}")
        value = float(logs[self.monitor])
        best = self.best_value
        improved = math.isfinite(value) and (
            best is None or (value < best - self.min_delta if self.mode == "min"
                             else value > best + self.min_delta))
        self.checks.append({"epoch": n, "value": value, "improved": improved})
        if improved:
            self.best_value, self.best_epoch, self.wait = value, n, 0
            self._best_weights = self.model.get_weights()
            if self.path is not None:
                self._save_weights_ahead()
            return
        self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            self.model.stop_training = True
            self.stopped_epoch = n

    def on_train_end(self, logs=None):
        if not self._started and self._saved is not None:
            # No epoch ran in this call (resumed after the last one): take the saved state.
            self._restore(self._saved, int(self._saved["epochs_done"]))
        self._started = False
        if self.policy != "last" and self._best_weights is not None:
            self.model.set_weights(self._best_weights)
            self.chosen_epoch = self.best_epoch
        else:
            if self.policy != "last" and self.epochs_done:
                warnings.warn(f"CheckpointPolicy: no check of {self.monitor!r} happened in "
                              f"{self.epochs_done} epochs (min_epochs={self.min_epochs}, "
                              f"check_every={self.check_every}); keeping the last weights")
            self.chosen_epoch = self.epochs_done or None
            if self.path is not None and self.epochs_done:
                self._save_weights_ahead()
        self._save_state()
        self._commit_weights()


class LastEpochPredictions(keras.callbacks.Callback):
    """Predictions on ``dataset`` by the weights of the last epoch, taken when training ends.

    Put it BEFORE a :class:`CheckpointPolicy` in the callbacks list: the policy's
    ``on_train_end`` puts the chosen weights back, and this one must see the model first.
    One training run then yields both the chosen epoch's test scores and the last epoch's
    (e.g. TIM-Net's published best-epoch figures and the authors' corrected last-epoch
    ones), with no second run. After training: ``probabilities`` and ``epoch`` (1-based;
    ``None`` when no epoch ran in this ``fit`` call and nothing was restored).
    """

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset
        self.probabilities = None
        self.epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = int(epoch) + 1

    def on_train_end(self, logs=None):
        self.probabilities = self.model.predict(self.dataset, verbose=0)
