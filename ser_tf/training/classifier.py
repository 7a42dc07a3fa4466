"""Train and evaluate a categorical SER classifier under an evaluation protocol.

The experiment modules (Light-SERNet, TIM-Net, Attention FCN, the CNN family) differ in
their model, feature recipe and hyperparameters, not in how a fold is trained; this module
is that shared part:

- :class:`FitConfig`: optimiser, loss, schedule, checkpoint policy, seed (plain data,
  stored in the run record);
- :func:`train_fold`: one fold, resumable inside the fold (``FoldBackup``) and resumed
  exactly: a fold killed at any epoch and resumed trains the same weights as an
  uninterrupted one (see :func:`train_fold`); test fold evaluated once with the chosen
  weights;
The run around the folds (features, folds, run folder, record) is
:func:`ser_tf.experiments.runner.run_experiment`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ser_tf.training.rundir import BACKUP_DIR, CHOSEN_WEIGHTS_FILE, WEIGHTS_FILE

CHECKPOINTS = ("last", "best-val", "paper")


@dataclass
class FitConfig:
    """How one fold is trained. Defaults are neutral; each paper's config sets its own."""

    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    #: Adam's epsilon; ``None`` is Keras' default (1e-7, what Light-SERNet's code used).
    #: Left out of :meth:`to_dict` when ``None``, so configs written before this field
    #: existed (and their run ids) are unchanged.
    epsilon: float | None = None
    #: ``None`` or ``{"name": "step_exp_decay", "start_epoch": 60, "every": 20, "factor": ...}``.
    lr_schedule: dict | None = None
    loss: str = "cross_entropy"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.0
    #: ``last``, ``best-val`` (validation split from the training folds) or ``paper`` (the
    #: test fold is the validation data: optimistic, as some original code did it).
    checkpoint: str = "best-val"
    monitor: str = "val_accuracy"
    check_every: int = 1
    patience: int | None = None
    min_epochs: int = 0
    seed: int = 42
    deterministic: bool = False
    jit_compile: bool | str = "auto"
    #: Train on full batches only: an endless stream of shuffled passes cut into batches
    #: across pass boundaries, ``steps_per_epoch = n_train // batch_size`` (Light-SERNet's
    #: ``.repeat()`` pipeline). False: one pass per epoch, the last batch partial.
    full_batches: bool = False
    #: :data:`ser_tf.training.optim.OPTIMIZERS`: ``adam``, ``adamw`` or ``sgd``. Adam and
    #: AdamW take ``beta_1``, ``beta_2`` and ``epsilon`` above; the rest (``weight_decay``,
    #: ``momentum``, ``nesterov``, ``clipnorm``) go in ``optimizer_params``.
    optimizer: str = "adam"
    optimizer_params: dict = field(default_factory=dict)
    #: Per-layer-group learning rates: ``[{"match": regex on variable paths,
    #: "lr_multiplier": 0.1}, ...]``, first match wins, 0 freezes (see ``optim.py``).
    lr_groups: list | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {self.checkpoint!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        from ser_tf.training.optim import OPTIMIZERS

        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: {OPTIMIZERS}")

    def to_dict(self) -> dict:
        """The fields, less those added after the first runs while they hold their default:
        a new setting never renames the runs that did not use it."""
        config = asdict(self)
        for name, default in _ADDED_LATER.items():
            if config[name] == default:
                del config[name]
        return config

    def compile(self, model, task):
        """Compile ``model`` for ``task`` with these settings: the one place a model meets
        its optimiser, loss and metrics (runner, benchmarks and tuners all call it).
        Returns the model."""
        from ser_tf.training.tasks import compile_metrics

        # A masked (per-frame) metric must get the sample weights: compile_metrics passes
        # it as weighted_metrics; every other task's metrics go in as before.
        model.compile(optimizer=self.make_optimizer(), loss=task.loss(self),
                      jit_compile=self.jit_compile, **compile_metrics(task))
        return model

    def make_optimizer(self):
        """The optimiser these settings describe (constant ``learning_rate``; a schedule is
        a callback, :meth:`schedule_callback`). The defaults give exactly the Adam every
        run before the registry used."""
        from ser_tf.training.optim import make_optimizer

        params = dict(self.optimizer_params)
        if self.optimizer in ("adam", "adamw"):
            params = {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                      **params}
        return make_optimizer(self.optimizer, self.learning_rate, groups=self.lr_groups,
                              **params)

    def schedule_callback(self):
        """The ``LearningRateScheduler`` of ``lr_schedule`` (``None`` without one): a closed
        form of the epoch number, so a resumed fold gets the right rate."""
        if not self.lr_schedule:
            return None
        from ser_tf.training.schedules import lr_scheduler_callback, make_schedule

        return lr_scheduler_callback(make_schedule(self.lr_schedule, initial_lr=self.learning_rate,
                                                   epochs=self.epochs))


#: FitConfig fields added after runs were recorded, with the default that leaves them out.
_ADDED_LATER = {"epsilon": None, "full_batches": False, "optimizer": "adam",
                "optimizer_params": {}, "lr_groups": None}


def train_fold(fold, fold_dir, *, build_model: Callable, fit: FitConfig, feature_set=None,
               source=None, task=None, strategy=None, n_folds: int | None = None,
               quiet: bool = False) -> dict:
    """Train one fold and evaluate its test part once; returns the fold's result dict.

    Data come from ``source`` (:mod:`ser_tf.training.sources`), or from ``feature_set``
    (cached features, the classification case); ``task`` (:mod:`ser_tf.training.tasks`)
    defaults to classification over the source's labels. ``build_model(num_outputs)``
    returns an uncompiled Keras model taking the source's inputs; :meth:`FitConfig.compile`
    compiles it. Validation data: ``fold.val_ids``, or ``fold.test_ids`` with
    ``fit.checkpoint == "paper"`` (selection on the test fold, flagged in the result).

    Resuming (a backup in ``fold_dir/backup``): the backup restores the weights, the
    optimizer and the seed generators; the training data continue where the killed
    process's stopped, so the resumed fold trains bit for bit what an uninterrupted one
    does. The sources are asked for a dataset that has already ``consumed`` the examples of
    the epochs done (shuffle orders of those passes skipped, a ``repeat`` stream's position
    in its pass, augmentation noise), and the iterators Keras' ``fit`` made and dropped
    unread are made again: with a finite training dataset it opens one at the start of each
    epoch and one more when the epoch's last step is reached (``EpochIterator``), and each
    takes the next shuffle order. The result then has ``"resumed": [{"at_epoch": ...,
    "exact": ...}, ...]`` and, unless ``quiet``, a line says where the fold resumes.
    """
    import tensorflow as tf

    from ser_tf.training.callbacks import CheckpointPolicy, LastEpochPredictions
    from ser_tf.training.progress import EpochLogger
    from ser_tf.training.kfold import fold_callbacks
    from ser_tf.training.seeding import set_seed
    from ser_tf.training.sources import CachedFeatureSource
    from ser_tf.training.tasks import ClassificationTask

    if (source is None) == (feature_set is None):
        raise ValueError("give exactly one of feature_set and source")
    source = source if source is not None else CachedFeatureSource(feature_set)
    task = task if task is not None else ClassificationTask(tuple(source.label_names))
    fold_dir = Path(fold_dir)
    val_ids = list(fold.test_ids if fit.checkpoint == "paper" else fold.val_ids)
    if fit.checkpoint == "best-val" and not val_ids:
        raise ValueError(f"fold {fold.index}: checkpoint 'best-val' needs validation ids")
    set_seed(fit.seed + int(fold.index), deterministic=fit.deterministic)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = fit.compile(build_model(task.num_outputs), task)

    split = dict(task=task, batch_size=fit.batch_size)
    steps_per_epoch = None
    if fit.full_batches:
        steps_per_epoch = len(fold.train_ids) // fit.batch_size
        if steps_per_epoch < 1:
            raise ValueError(f"fold {fold.index}: full batches of {fit.batch_size} need at least "
                             f"that many training utterances, the fold has "
                             f"{len(fold.train_ids)}")
    done = _epochs_in_backup(fold_dir)
    train_ds, resume_notes = _training_dataset(source, fold, fit, split, done, steps_per_epoch)
    if done and not quiet:
        where = (f"at epoch {done + 1}/{fit.epochs}" if done < fit.epochs
                 else f"after its last epoch ({fit.epochs})")
        label = f"{int(fold.index) + 1}/{n_folds}" if n_folds else f"{int(fold.index) + 1}"
        exact = "" if resume_notes.get("exact", True) else " (not exactly: see its result)"
        print(f"fold {label} resumes {where}: {done} epoch(s) done, state in "
              f"{fold_dir / BACKUP_DIR}{exact}", flush=True)
    val_ds = source.dataset(val_ids, training=False, **split) if val_ids else None
    test_ids = source.evaluation_order(fold.test_ids)
    test_ds = source.dataset(test_ids, training=False, **split)

    policy = CheckpointPolicy(fit.checkpoint, monitor=fit.monitor,
                              path=fold_dir / CHOSEN_WEIGHTS_FILE, check_every=fit.check_every,
                              patience=fit.patience, min_epochs=fit.min_epochs)
    if val_ds is None:
        policy = CheckpointPolicy("last", path=fold_dir / CHOSEN_WEIGHTS_FILE)
    logger = EpochLogger(int(fold.index) + 1, n_folds, quiet=quiet)
    callbacks = fold_callbacks(fold_dir, policy=policy, logger=logger)
    backup = callbacks[0]
    backup.resume_notes = resume_notes
    if fit.lr_schedule:
        callbacks.insert(1, fit.schedule_callback())
    last = None
    if policy.policy != "last":  # the last epoch's test scores too: before the policy restores
        last = LastEpochPredictions(test_ds)
        callbacks.insert(callbacks.index(policy), last)

    start = time.perf_counter()
    # Validation runs only on the epochs the policy checks (every check_every-th): the
    # other epochs' val_* entries are None in the history.
    model.fit(train_ds, validation_data=val_ds, epochs=fit.epochs, verbose=0, shuffle=False,
              validation_freq=fit.check_every, steps_per_epoch=steps_per_epoch,
              callbacks=callbacks)  # tf.data already shuffles, seeded per fold
    seconds = time.perf_counter() - start
    model.save_weights(fold_dir / WEIGHTS_FILE)  # the chosen weights, restored by the policy

    probabilities = model.predict(test_ds, verbose=0)
    y_true = source.targets(test_ids)
    history = next(c for c in callbacks if type(c).__name__ == "HistoryLog").history
    epochs_run = max((len(v) for v in history.values()), default=0)
    timed = history.get("epoch_seconds") or []
    if len(timed) == epochs_run and None not in timed:
        # A resumed fold: every fit call's epochs, not only this call's.
        seconds = float(sum(timed))
    extra = {}
    if last is not None and last.probabilities is not None:
        # Same training run, other weights: what `--checkpoint last` would have reported.
        extra["last_epoch"] = {"epoch": policy.epochs_done or epochs_run,
                               "metrics": task.evaluate(y_true, last.probabilities)}
    return {
        "metrics": task.evaluate(y_true, probabilities),
        "history": history,
        "chosen_epoch": policy.chosen_epoch,
        "epochs_run": epochs_run,
        "checkpoint": policy.to_dict(),
        # The test fold chose something: the epoch (paper / best-val on paper folds) or,
        # through early stopping, when to stop; "last" without patience chooses nothing.
        "selection_on_test": policy.selection_on_test or bool(
            fold.selection_on_test and (fit.checkpoint != "last" or fit.patience is not None)),
        "seconds": round(seconds, 3),
        "test_ids": list(test_ids),
        "test_probabilities": np.round(probabilities, 6).tolist(),
        # Only a resumed fold has it: [{"at_epoch": 8, "exact": true, ...}, ...].
        **({"resumed": list(backup.resumes)} if backup.resumes else {}),
        **extra,
    }


def _epochs_in_backup(fold_dir) -> int:
    from ser_tf.training.backup import saved_epoch

    return saved_epoch(Path(fold_dir) / BACKUP_DIR) or 0


def _takes_consumed(source) -> bool:
    import inspect

    try:
        parameters = inspect.signature(source.dataset).parameters
    except (TypeError, ValueError):
        return False
    return "consumed" in parameters  # named: a **kwargs catch-all may drop it unnoticed


def _training_dataset(source, fold, fit: FitConfig, split: dict, done: int,
                      steps_per_epoch: int | None):
    """The fold's training dataset, positioned after ``done`` epochs (0: from the start),
    and the notes for the resume's entry in the result."""
    from ser_tf.features.pipeline import skip_shuffled_passes

    seed = fit.seed + int(fold.index)
    if not done:
        return source.dataset(fold.train_ids, training=True, seed=seed,
                              repeat=fit.full_batches, **split), {}
    n_train = len(fold.train_ids)
    consumed = done * (steps_per_epoch * fit.batch_size if fit.full_batches else n_train)
    notes = {"data": "fast-forwarded"}
    if _takes_consumed(source):
        train_ds = source.dataset(fold.train_ids, training=True, seed=seed,
                                  repeat=fit.full_batches, consumed=consumed, **split)
    else:
        # Only the shuffle's seed generator can be replayed from outside the source (below,
        # and one draw per pass here); a repeat stream's place in its pass and any
        # augmentation restart.
        train_ds = source.dataset(fold.train_ids, training=True, seed=seed,
                                  repeat=fit.full_batches, **split)
        skip_shuffled_passes(train_ds, consumed // max(n_train, 1))
        notes = {"data": f"shuffle orders replayed only ({type(source).__name__}.dataset takes "
                         "no `consumed`: augmentation restarted"
                         + (", stream restarted at a pass boundary" if fit.full_batches else "")
                         + ")", "exact": False}
    if not fit.full_batches:
        # The iterators fit opened and dropped unread: one more per finished epoch, when a
        # finite dataset's last step is reached (keras EpochIterator._enumerate_iterator).
        if int(train_ds.cardinality()) > 0:
            skip_shuffled_passes(train_ds, done)
        else:
            notes = {**notes, "exact": False,
                     "data": notes["data"] + "; training dataset of unknown length: the "
                                             "iterators Keras made were not replayed"}
    return train_ds, notes
