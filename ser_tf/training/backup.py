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

What a resumed fold needs to continue exactly as an uninterrupted one would:

* the weights (BatchNorm moving statistics included: they are non-trainable weights) and
  the optimizer's variables (its step count and learning rate among them);
* the state of the model's random seed generators (``keras.random.SeedGenerator``: Dropout,
  SpatialDropout1D, ...). ``model.weights`` leaves them out, so ``state.npz`` keeps them
  apart (``s0``, ``s1``, ...). A state written before they were saved (and a Keras backup)
  has none: they are then derived from the step count, since every seed generator of a
  fresh model starts at ``[seed, 0]`` and each training step draws once from it
  (``[seed, steps]`` after ``steps`` steps; true of Dropout and SpatialDropout1D, the
  random layers of this project's models; ``tests/test_exact_resume.py`` checks it);
* the position in the training data (shuffle order, augmentation noise): not model state,
  so the data pipeline fast-forwards itself (:func:`ser_tf.training.classifier.train_fold`
  asks for it with :func:`saved_epoch` before building the training dataset).

Every resume is logged (:attr:`FoldBackup.resumes`, kept in the state across later
resumes) so the fold's result says it was resumed, at which epoch and how.
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
#: How a resume set the model's seed generators (see the module docstring).
SEEDS_RESTORED, SEEDS_DERIVED, SEEDS_NONE = "restored", "derived from the step count", "none"
#: What ``keras.callbacks.BackupAndRestore`` left in the same folder.
KERAS_WEIGHTS, KERAS_METADATA = "latest.weights.h5", "training_metadata.json"


def saved_epoch(backup_dir: str | os.PathLike) -> int | None:
    """The number of epochs a backup in ``backup_dir`` holds (a ``fit`` with it continues at
    that 0-based epoch), or ``None`` when there is none: what a trainer needs to know
    before it builds the training data, to start them where the backup stops."""
    backup_dir = Path(backup_dir)
    if (backup_dir / STATE_FILE).is_file():
        with np.load(backup_dir / STATE_FILE, allow_pickle=False) as state:
            return int(state["epoch"])
    if (backup_dir / KERAS_WEIGHTS).is_file():
        metadata = backup_dir / KERAS_METADATA
        return int(json.loads(metadata.read_text())["epoch"]) if metadata.is_file() else 0
    return None


def seed_state_variables(model) -> list:
    """The state variables of ``model``'s random seed generators: ``model.variables`` less
    ``model.weights`` (Keras 3 keeps them out of the weights, and so out of
    ``save_weights``/``get_weights``), in the model's order."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class FoldBackup(keras.callbacks.Callback):
    """Save ``model`` + optimizer + seed generator state after every epoch to
    ``backup_dir/state.npz``; resume from it at the start of ``fit`` (of a freshly built
    model). Put it FIRST among the callbacks (see
    :func:`ser_tf.training.kfold.fold_callbacks`).

    ``resumes``: one dict per ``fit`` call that resumed this fold (this one and, from the
    state, the earlier ones): ``{"at_epoch": epochs done before it, "seed_generators":
    "restored" | "derived from the step count" | "none", "exact": bool, ...}`` plus
    ``resume_notes``, which the trainer sets before ``fit`` (how the data were
    fast-forwarded; :func:`ser_tf.training.classifier.train_fold` does). Empty when the
    fold was never resumed.
    """

    def __init__(self, backup_dir: str | os.PathLike):
        super().__init__()
        self.backup_dir = Path(backup_dir)
        self.resumed_epoch: int | None = None
        self.resumes: list[dict] = []
        #: Merged into this call's resume entry; ``"exact": False`` in it makes it inexact.
        #: Left empty, the entry says the data were not positioned (``"exact": False``):
        #: only the trainer knows whether it started them where the backup stops.
        self.resume_notes: dict = {}
        self._derivable = True

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
        self.resumes = []
        if self.path.is_file():
            epoch, seeds, self.resumes = self._load()
        elif (self.backup_dir / KERAS_WEIGHTS).is_file():
            epoch, seeds = self._load_keras(), None
        else:
            return
        how = self._restore_seeds(seeds)
        notes = dict(self.resume_notes) or {"data": "not positioned by the trainer",
                                            "exact": False}
        exact = how != SEEDS_DERIVED or self._derivable
        entry = {"at_epoch": int(epoch), "seed_generators": how,
                 "exact": bool(exact and notes.pop("exact", True)), **notes}
        self.resumes = [*self.resumes, entry]
        self.resumed_epoch = epoch
        self.model._initial_epoch = epoch  # what BackupAndRestore sets: fit continues there

    def _load(self) -> tuple[int, list | None, list[dict]]:
        with np.load(self.path, allow_pickle=False) as state:
            weights = [state[f"w{i}"] for i in range(int(state["n_weights"]))]
            optimizer = [state[f"o{i}"] for i in range(int(state["n_optimizer"]))]
            epoch = int(state["epoch"])
            seeds = ([state[f"s{i}"] for i in range(int(state["n_seeds"]))]
                     if "n_seeds" in state.files else None)  # None: written before seeds were
            resumes = json.loads(str(state["resumes"])) if "resumes" in state.files else []
        variables = self._optimizer_variables()
        model_weights = self.model.weights
        if len(weights) != len(model_weights) or len(optimizer) != len(variables) or any(
                tuple(a.shape) != tuple(v.shape) for a, v in zip(weights + optimizer,
                                                                  list(model_weights) + variables)):
            raise ValueError(f"{self.path} holds the state of another model (variable count or "
                             "shapes differ); delete the fold's folder to restart it")
        for variable, value in zip(list(model_weights) + variables, weights + optimizer):
            variable.assign(value)
        return epoch, seeds, resumes

    def _load_keras(self) -> int:
        self._optimizer_variables()  # built, so load_weights fills the optimizer state too
        self.model.load_weights(self.backup_dir / KERAS_WEIGHTS)
        metadata = self.backup_dir / KERAS_METADATA
        return int(json.loads(metadata.read_text())["epoch"]) if metadata.is_file() else 0

    def _restore_seeds(self, seeds: list | None) -> str:
        """Put the seed generators where the saved epoch left them: the saved states, or
        (a state written before they were saved) ``[seed, 0] + [0, steps]`` per generator."""
        variables = seed_state_variables(self.model)
        self._derivable = True
        if not variables:
            return SEEDS_NONE
        if seeds is not None:
            if len(seeds) != len(variables) or any(tuple(a.shape) != tuple(v.shape)
                                                   for a, v in zip(seeds, variables)):
                raise ValueError(f"{self.path} holds the seed generators of another model; "
                                 "delete the fold's folder to restart it")
            for variable, value in zip(variables, seeds):
                variable.assign(value)
            return SEEDS_RESTORED
        optimizer = getattr(self.model, "optimizer", None)
        steps = int(np.asarray(optimizer.iterations)) if optimizer is not None else 0
        for variable in variables:
            value = np.asarray(variable)
            if value.shape != (2,) or value[1] != 0:
                # Not a fresh ordered generator: nothing to derive from.
                self._derivable = False
                continue
            variable.assign(np.asarray([value[0], steps], dtype=value.dtype))
        return SEEDS_DERIVED

    def on_epoch_end(self, epoch, logs=None):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        arrays = {f"w{i}": np.asarray(v) for i, v in enumerate(self.model.weights)}
        variables = self._optimizer_variables()
        arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(variables)})
        seeds = seed_state_variables(self.model)
        arrays.update({f"s{i}": np.asarray(v) for i, v in enumerate(seeds)})
        arrays.update(n_weights=len(self.model.weights), n_optimizer=len(variables),
                      n_seeds=len(seeds), epoch=int(epoch) + 1,
                      resumes=np.asarray(json.dumps(self.resumes)))
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
