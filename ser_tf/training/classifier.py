"""Train and evaluate a categorical SER classifier under an evaluation protocol.

The experiment modules (Light-SERNet, TIM-Net, Attention FCN, the CNN family) differ in
their model, feature recipe and hyperparameters, not in how a fold is trained; this module
is that shared part:

- :class:`FitConfig`: optimiser, loss, schedule, checkpoint policy, seed (plain data,
  stored in the run record);
- :func:`train_fold`: one fold, resumable inside the fold (``FoldBackup``), test
  fold evaluated once with the chosen weights;
- :func:`run_experiment`: features (cached) -> folds -> resumable k-fold -> atomic run record.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ser_tf.data.manifest import Manifest

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
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {self.checkpoint!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")

    def to_dict(self) -> dict:
        """The fields, less those added after the first runs while they hold their default:
        a new setting never renames the runs that did not use it."""
        config = asdict(self)
        for name, default in _ADDED_LATER.items():
            if config[name] == default:
                del config[name]
        return config

    def optimizer(self):
        """The Adam optimiser these settings describe (constant ``learning_rate``; a
        schedule is a callback)."""
        import keras

        extra = {} if self.epsilon is None else {"epsilon": float(self.epsilon)}
        return keras.optimizers.Adam(self.learning_rate, beta_1=self.beta_1, beta_2=self.beta_2,
                                     **extra)


#: FitConfig fields added after runs were recorded, with the default that leaves them out.
_ADDED_LATER = {"epsilon": None, "full_batches": False}


def _schedule_callback(config: dict):
    from ser_tf.training.schedules import lr_scheduler_callback, step_exp_decay

    params = {k: v for k, v in config.items() if k != "name"}
    if config.get("name") != "step_exp_decay":
        raise ValueError(f"unknown lr schedule {config.get('name')!r}")
    return lr_scheduler_callback(step_exp_decay(**params))


def train_fold(fold, fold_dir, *, feature_set, build_model: Callable, fit: FitConfig,
               strategy=None, n_folds: int | None = None, quiet: bool = False) -> dict:
    """Train one fold and evaluate its test part once; returns the fold's result dict.

    ``build_model(num_classes)`` returns an uncompiled Keras model taking the feature
    arrays of ``feature_set``. Validation data: ``fold.val_ids``, or ``fold.test_ids`` with
    ``fit.checkpoint == "paper"`` (selection on the test fold, flagged in the result).
    """
    import keras
    import tensorflow as tf

    from ser_tf.features.pipeline import dataset_for_split
    from ser_tf.training.callbacks import CheckpointPolicy, LastEpochPredictions
    from ser_tf.training.progress import EpochLogger
    from ser_tf.training.kfold import fold_callbacks
    from ser_tf.training.losses import get_loss
    from ser_tf.training.metrics import UnweightedAccuracy, classification_metrics
    from ser_tf.training.seeding import set_seed

    fold_dir = Path(fold_dir)
    labels = tuple(feature_set.label_names)
    val_ids = list(fold.test_ids if fit.checkpoint == "paper" else fold.val_ids)
    if fit.checkpoint == "best-val" and not val_ids:
        raise ValueError(f"fold {fold.index}: checkpoint 'best-val' needs validation ids")
    set_seed(fit.seed + int(fold.index), deterministic=fit.deterministic)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = build_model(len(labels))
        model.compile(
            optimizer=fit.optimizer(),
            loss=get_loss(fit.loss, gamma=fit.focal_gamma, label_smoothing=fit.label_smoothing),
            metrics=["accuracy", UnweightedAccuracy(len(labels))], jit_compile=fit.jit_compile)

    split = dict(batch_size=fit.batch_size, one_hot=True, num_classes=len(labels))
    train_ds = dataset_for_split(feature_set, fold.train_ids, training=True,
                                 seed=fit.seed + int(fold.index), repeat=fit.full_batches,
                                 **split)
    steps_per_epoch = None
    if fit.full_batches:
        steps_per_epoch = len(fold.train_ids) // fit.batch_size
        if steps_per_epoch < 1:
            raise ValueError(f"fold {fold.index}: full batches of {fit.batch_size} need at least "
                             f"that many training utterances, the fold has "
                             f"{len(fold.train_ids)}")
    val_ds = dataset_for_split(feature_set, val_ids, training=False, **split) if val_ids else None
    test_ds = dataset_for_split(feature_set, fold.test_ids, training=False, **split)

    policy = CheckpointPolicy(fit.checkpoint, monitor=fit.monitor,
                              path=fold_dir / "chosen.weights.h5", check_every=fit.check_every,
                              patience=fit.patience, min_epochs=fit.min_epochs)
    if val_ds is None:
        policy = CheckpointPolicy("last", path=fold_dir / "chosen.weights.h5")
    logger = EpochLogger(int(fold.index) + 1, n_folds, quiet=quiet)
    callbacks = fold_callbacks(fold_dir, policy=policy, logger=logger)
    if fit.lr_schedule:
        callbacks.insert(1, _schedule_callback(fit.lr_schedule))
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
    model.save_weights(fold_dir / "final.weights.h5")  # the chosen weights, restored by the policy

    probabilities = model.predict(test_ds, verbose=0)
    y_true = feature_set.labels[feature_set.index_of(fold.test_ids)]
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
                               "metrics": classification_metrics(y_true, last.probabilities,
                                                                 labels)}
    return {
        "metrics": classification_metrics(y_true, probabilities, labels),
        "history": history,
        "chosen_epoch": policy.chosen_epoch,
        "epochs_run": epochs_run,
        "checkpoint": policy.to_dict(),
        # The test fold chose something: the epoch (paper / best-val on paper folds) or,
        # through early stopping, when to stop; "last" without patience chooses nothing.
        "selection_on_test": policy.selection_on_test or bool(
            fold.selection_on_test and (fit.checkpoint != "last" or fit.patience is not None)),
        "seconds": round(seconds, 3),
        "test_ids": list(fold.test_ids),
        "test_probabilities": np.round(probabilities, 6).tolist(),
        **extra,
    }


@dataclass
class ExperimentPlan:
    """What a run is before it runs: its resolved config (whose hash is the run id), its
    folds and its work folder. Experiments use it to find a run's outputs again."""

    config: dict
    folds: list
    fit: FitConfig
    run_id: str
    work_dir: Path


def plan_experiment(manifest: Manifest, recipe, *, paper: str, protocol: str, fit: FitConfig,
                    results_dir="experiments/results", n_folds: int | None = 10,
                    fold_seed: int | None = None, paper_style: str = "lightsernet",
                    val_fraction: float = 0.1, config_extra: dict | None = None,
                    fingerprint_data: bool = True) -> ExperimentPlan:
    """Resolve the config, the folds and the work folder of a run (nothing is trained).

    ``fingerprint_data``: store the corpus copy's fingerprint (:mod:`ser_tf.data.fingerprint`:
    file count, sample rates, durations, release check) in the config, so a run on another
    copy of the corpus gets another run id. Off only for features that come with their own
    digest (e.g. the TIM-Net authors' MFCC file) and manifests without audio files.
    """
    from ser_tf.data.fingerprint import fingerprint
    from ser_tf.reporting.records import run_id
    from ser_tf.training.protocols import TEST_SELECTING, make_folds

    if protocol in TEST_SELECTING and fit.checkpoint == "best-val":
        # Under the paper protocol the validation ids ARE the test ids; say so in the policy.
        fit = FitConfig(**{**fit.to_dict(), "checkpoint": "paper"})
    folds = make_folds(manifest, protocol, n_folds=n_folds, seed=fold_seed,
                       val_fraction=val_fraction, paper_style=paper_style)
    config = {"paper": paper, "corpus": manifest.corpus, "protocol": protocol,
              "recipe": recipe.config(), "fit": fit.to_dict(), "n_folds": len(folds),
              "fold_seed": fold_seed, "paper_style": paper_style, "val_fraction": val_fraction,
              "labels": list(manifest.labels), "n_utterances": len(manifest),
              **(config_extra or {})}
    if fingerprint_data:
        config["data"] = fingerprint(manifest)
    rid = run_id(config)
    work_dir = Path(results_dir) / paper / manifest.corpus / f"{rid}.work"
    return ExperimentPlan(config, folds, fit, rid, work_dir)


def _catch_up_finished_folds(work_dir, folds, feature_set, on_fold_done) -> None:
    """``on_fold_done`` for finished folds whose weights are still here (see run_experiment)."""
    from ser_tf.export.evaluate import WEIGHTS_FILE
    from ser_tf.training.kfold import RESULT_FILE, fold_dir_name
    from ser_tf.util.jsonio import read_json

    for fold in folds:
        fold_dir = Path(work_dir) / fold_dir_name(fold)
        if (fold_dir / RESULT_FILE).is_file() and (fold_dir / WEIGHTS_FILE).is_file():
            on_fold_done(work_dir, fold, feature_set, read_json(fold_dir / RESULT_FILE))


def run_experiment(manifest: Manifest, recipe, build_model: Callable, *, paper: str,
                   protocol: str, fit: FitConfig, results_dir="experiments/results",
                   cache_dir=None, n_folds: int | None = 10, fold_seed: int | None = None,
                   paper_style: str = "lightsernet", val_fraction: float = 0.1,
                   config_extra: dict | None = None, fingerprint_data: bool = True,
                   strategy=None, quiet: bool = False,
                   after_folds: Callable | None = None, on_fold_done: Callable | None = None,
                   feature_set=None, train_only=None) -> dict:
    """Features -> folds -> resumable k-fold training -> run record.

    The work folder ``<results_dir>/<paper>/<corpus>/<run-id>.work/`` holds each finished
    fold's ``result.json`` (and, mid-fold, the Keras backup): the same call after a kill
    resumes at the first unfinished fold. When every fold is done, the record is written
    atomically to ``<results_dir>/<paper>/<corpus>/<run-id>/``.

    ``after_folds(work_dir, folds, feature_set, results) -> (details, extra_files)`` runs
    once all folds are done (e.g. TFLite export of every fold's model); ``details`` become
    sections of ``record.json`` and ``extra_files`` ({name: path}) are copied into the record.
    It is not part of the config, so adding it does not change the run id.

    ``on_fold_done(work_dir, fold, feature_set, result)`` runs right after each fold that
    trains in this call has stored its result (e.g. score that fold's TFLite variants or
    store its test embeddings while its weights are on disk), and, when a run resumes, for
    every finished fold whose weights file is on this machine: it must be idempotent (skip
    what is already done), and it makes what an earlier session left undone while the
    weights still exist. ``after_folds`` should still cope with folds lacking its outputs.

    ``feature_set``: features computed elsewhere (e.g. the TIM-Net authors' MFCC files,
    :mod:`ser_tf.data.timnet_features`) instead of extracting them from the manifest's audio;
    its ids must be the manifest's. Say where they came from in ``config_extra``.

    ``train_only``: train just these fold indices in this call (the others wait); the
    record is written only once every fold has finished, so until then ``record`` is None.

    Returns ``{"run_id", "work_dir", "record" (its folder or None), "n_folds",
    "folds_done" (indices), "feature_stats"}``.
    """
    from ser_tf.features.cache import extract_features
    from ser_tf.reporting.records import write_run_record
    from ser_tf.training.kfold import run_kfold, run_lock
    from ser_tf.util.jsonio import write_json_atomic
    from ser_tf.training.protocols import paper_protocol_warning

    plan = plan_experiment(manifest, recipe, paper=paper, protocol=protocol, fit=fit,
                           results_dir=results_dir, n_folds=n_folds, fold_seed=fold_seed,
                           paper_style=paper_style, val_fraction=val_fraction,
                           config_extra=config_extra, fingerprint_data=fingerprint_data)
    folds, work_dir = plan.folds, plan.work_dir
    warning = paper_protocol_warning(protocol, plan.fit.checkpoint, plan.fit.patience)
    if warning and not quiet:
        print(f"NOTE: {warning}")
    work_dir.mkdir(parents=True, exist_ok=True)
    # One process per run: a second one (another terminal, a make reaching this run) stops
    # here, before it writes anything the first is writing.
    with run_lock(work_dir):
        # config.json tells a later session what this run is
        write_json_atomic(work_dir / "config.json", plan.config)
        if feature_set is None:
            feature_set = extract_features(manifest, recipe, cache_dir, progress=not quiet)
        elif list(feature_set.ids) != [u.utterance_id for u in manifest]:
            raise ValueError("feature_set ids differ from the manifest's utterance ids")
        from ser_tf.reporting.records import git_info

        # The code this process runs: commits landing during a long run do not change it.
        git = git_info()
        if on_fold_done is not None:
            _catch_up_finished_folds(work_dir, folds, feature_set, on_fold_done)
        start = time.perf_counter()
        trained = []

        def train(fold, fold_dir):
            trained.append(fold.index)
            return train_fold(fold, fold_dir, feature_set=feature_set, build_model=build_model,
                              fit=plan.fit, strategy=strategy, n_folds=len(folds), quiet=quiet)

        results = run_kfold(work_dir, folds, train, train_only=train_only,
            on_fold_done=None if on_fold_done is None else
            lambda fold, result: on_fold_done(work_dir, fold, feature_set, result))
        done = [int(r["fold"]) for r in results]
        if len(results) < len(folds):
            return {"run_id": plan.run_id, "work_dir": work_dir, "record": None,
                    "n_folds": len(folds), "folds_done": done,
                    "feature_stats": feature_set.stats}
        wall = sum(float(r.get("seconds", 0.0)) for r in results) or time.perf_counter() - start
        details, extra_files = {}, None
        if after_folds is not None:
            details, extra_files = after_folds(work_dir, folds, feature_set, results)
        if manifest.skipped:
            details = {**details, "skipped_audio": list(manifest.skipped)}
        provenance = {"git": git}
        previous = plan.work_dir.parent / plan.run_id / "record.json"
        if not trained and previous.is_file():
            # Nothing trained in this call (a rerun of a finished run, e.g. by make): the
            # record is rebuilt from the same fold results, and keeps naming the commit, time,
            # machine and package versions of the process that trained them, not this one's.
            from ser_tf.util.jsonio import read_json

            old = read_json(previous)
            provenance = {"git": old.get("git", git), "created": old.get("created"),
                          "machine": old.get("machine"), "versions": old.get("versions")}
        record = write_run_record(results_dir, config=plan.config, protocol=protocol, folds=folds,
                                  fold_results=results, wall_time=wall, labels=manifest.labels,
                                  extra_files=extra_files, details=details, overwrite=True,
                                  **provenance)
    return {"run_id": plan.run_id, "work_dir": work_dir, "record": record,
            "n_folds": len(folds), "folds_done": done, "feature_stats": feature_set.stats}
