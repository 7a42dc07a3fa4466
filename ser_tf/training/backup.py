"""In-fold resume state, saved after every epoch in one atomic file.

:class:`FoldBackup` does what ``keras.callbacks.BackupAndRestore`` does for a fold (save the
weights, the optimizer's variables and the epoch after every epoch; on the next ``fit`` of
a freshly built model, put them back and continue at the next epoch; delete them when
``fit`` ends normally), at a fraction of the cost: Keras writes an HDF5 group per layer and
variable, which took 0.67 s per save for TIM-Net's 16 temporal blocks on this project's
2-core host under a profiler (the runner's callbacks cost about a sixth of an epoch:
``experiments/results/bench/epoch-timnet-*-before.json``),
where one ``np.savez`` of the arrays takes milliseconds.

One file, ``state.npz``, holds everything and is replaced atomically (temporary file +
``os.replace``), so a kill at any moment leaves the previous epoch's complete state: no
second copy is needed. A folder written by ``BackupAndRestore`` (``latest.weights.h5`` +
``training_metadata.json``, from runs started before this module) is still resumed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

STATE_FILE = "state.npz"
#: What ``keras.callbacks.BackupAndRestore`` left in the same folder.
KERAS_WEIGHTS, KERAS_METADATA = "latest.weights.h5", "training_metadata.json"


class FoldBackup(keras.callbacks.Callback):
    """Save ``model`` + optimizer state after every epoch to ``backup_dir/state.npz``;
    resume from it at the start of ``fit``. Put it FIRST among the callbacks (see
    :func:`ser_tf.training.kfold.fold_callbacks`)."""

    def __init__(self, backup_dir: str | os.PathLike):
        super().__init__()
        self.backup_dir = Path(backup_dir)
        self.resumed_epoch: int | None = None

    @property
    def path(self) -> Path:
        return self.backup_dir / STATE_FILE

    def _optimizer_variables(self) -> list:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return []
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        return list(optimizer.variables)

    def on_train_begin(self, logs=None):
        self.resumed_epoch = None
        if self.path.is_file():
            epoch = self._load()
        elif (self.backup_dir / KERAS_WEIGHTS).is_file():
            epoch = self._load_keras()
        else:
            return
        self.resumed_epoch = epoch
        self.model._initial_epoch = epoch  # what BackupAndRestore sets: fit continues there

    def _load(self) -> int:
        with np.load(self.path, allow_pickle=False) as state:
            weights = [state[f"w{i}"] for i in range(int(state["n_weights"]))]
            optimizer = [state[f"o{i}"] for i in range(int(state["n_optimizer"]))]
            epoch = int(state["epoch"])
        variables = self._optimizer_variables()
        model_weights = self.model.weights
        if len(weights) != len(model_weights) or len(optimizer) != len(variables) or any(
                tuple(a.shape) != tuple(v.shape) for a, v in zip(weights + optimizer,
                                                                  list(model_weights) + variables)):
            raise ValueError(f"{self.path} holds the state of another model (variable count or "
                             "shapes differ); delete the fold's folder to restart it")
        for variable, value in zip(list(model_weights) + variables, weights + optimizer):
            variable.assign(value)
        return epoch

    def _load_keras(self) -> int:
        self._optimizer_variables()  # built, so load_weights fills the optimizer state too
        self.model.load_weights(self.backup_dir / KERAS_WEIGHTS)
        metadata = self.backup_dir / KERAS_METADATA
        return int(json.loads(metadata.read_text())["epoch"]) if metadata.is_file() else 0

    def on_epoch_end(self, epoch, logs=None):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        arrays = {f"w{i}": np.asarray(v) for i, v in enumerate(self.model.weights)}
        variables = self._optimizer_variables()
        arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(variables)})
        arrays.update(n_weights=len(self.model.weights), n_optimizer=len(variables),
                      epoch=int(epoch) + 1)
        fd, tmp = tempfile.mkstemp(dir=self.backup_dir, prefix=".state.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # A Keras backup left from an older run is now out of date: drop it.
        for name in (KERAS_WEIGHTS, KERAS_METADATA, KERAS_WEIGHTS + ".bkp",
                     KERAS_METADATA + ".bkp"):
            (self.backup_dir / name).unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        # fit ended normally (a kill raises past this): nothing left to resume.
        shutil.rmtree(self.backup_dir, ignore_errors=True)
