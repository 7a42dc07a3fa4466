"""A keras-tuner search over any paper's model: the ``build(hp)`` hook and one fold's search.

A paper describes what may vary with a *search space*, ``space(hp) -> {"fit": {...},
"model": {...}}``: values drawn from ``hp`` (``hp.Choice``, ``hp.Float``, ...) for
:class:`~ser_tf.training.classifier.FitConfig` fields (e.g. ``learning_rate``) and for
keyword arguments of the paper's ``build_model(num_outputs, **model)``.
:func:`hypermodel` turns the paper's builder, fit settings, task and space into a
``keras_tuner.HyperModel`` whose ``build(hp)`` compiles through :meth:`FitConfig.compile`
(the same call the runner uses), so any tuner drives it.

:func:`tune_fold` searches on one fold's training ids, scored on its validation ids: the
test ids are never read, so a tuned setting can still be tested honestly. It

- runs Hyperband, random search, Bayesian optimisation or a grid search
  (:data:`ser_tf.tuning.TUNERS`), and says when Hyperband ended before any trial reached the
  full budget (:func:`hyperband_shortfall`: keras-tuner stops a Hyperband search once its
  space has no new values to draw, which a grid of a few values reaches in the first round);
- writes each trial's TensorBoard logs under ``<directory>/<project>/tensorboard/<trial>/``
  (``tensorboard --logdir`` that folder compares the trials, hyperparameters included);
- resumes: keras-tuner keeps the oracle's state in the directory, so a killed search run
  again continues (finished trials are not rerun, the one that was running is retried);
- distributes with keras-tuner's chief/worker mode (:mod:`ser_tf.tuning.distributed`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

from ser_tf.tuning import TUNERS

#: keras-tuner's own hyperparameters (Hyperband's budget and bracket), not the space's.
INTERNAL_PREFIX = "tuner/"
TENSORBOARD_DIR = "tensorboard"


def _keras_tuner():
    try:
        import keras_tuner
    except ImportError:
        raise ImportError("hyperparameter search needs keras-tuner: "
                          "pip install 'ser-tf[tuning]'") from None
    _write_state_atomically()
    return keras_tuner


def _write_state_atomically() -> None:
    """Make keras-tuner write its state files (``oracle.json``, each ``trial.json``, the
    tuner's own) to a temporary file beside them and rename it into place.

    keras-tuner opens the file for writing (which empties it) and then writes: a search
    killed in between leaves an empty file, and the search can no longer resume (measured:
    a Hyperband search killed mid-trial failed to reload with a JSONDecodeError, in
    ``tests/test_tuning_processes.py``). A rename is atomic on one file system, so a killed
    search leaves the previous state or the new one. Remote paths (``gs://``) are left to
    keras-tuner."""
    from keras_tuner.src import utils

    if getattr(utils.save_json, "atomic", False):
        return
    original = utils.save_json

    def save_json(path, obj):
        if "://" in str(path):
            return original(path, obj)
        text = json.dumps(obj)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
        return text

    save_json.atomic = True
    utils.save_json = save_json


def resolve(space: Callable, hp) -> tuple[dict, dict]:
    """``space(hp)`` checked: ``(fit_overrides, model_kwargs)``; unknown fit fields fail."""
    from dataclasses import fields

    from ser_tf.training.classifier import FitConfig

    drawn = space(hp) or {}
    unknown_sections = set(drawn) - {"fit", "model"}
    if unknown_sections:
        raise ValueError(f"a search space returns 'fit' and 'model' sections, got "
                         f"{sorted(unknown_sections)}")
    fit_overrides, model_kwargs = dict(drawn.get("fit", {})), dict(drawn.get("model", {}))
    known = {f.name for f in fields(FitConfig)}
    wrong = sorted(set(fit_overrides) - known)
    if wrong:
        raise ValueError(f"search space sets unknown FitConfig fields {wrong}")
    return fit_overrides, model_kwargs


def hypermodel(build_model: Callable, fit, task, space: Callable):
    """A ``keras_tuner.HyperModel``: ``build(hp)`` = the paper's model with the drawn
    settings, compiled by :meth:`FitConfig.compile` for ``task``.

    Every build starts from ``fit.seed`` (Keras, NumPy and Python generators), so a trial's
    initial weights and dropout draws do not depend on the trials, callbacks or processes
    that came before it: the trials compare settings, not random starts, and a trial
    retried after a kill or run by another worker starts the same way."""
    import keras

    from ser_tf.training.classifier import FitConfig

    kt = _keras_tuner()

    class PaperHyperModel(kt.HyperModel):
        def build(self, hp):
            fit_overrides, model_kwargs = resolve(space, hp)
            settings = FitConfig(**{**fit.to_dict(), **fit_overrides})
            keras.utils.set_random_seed(int(settings.seed))
            return settings.compile(build_model(task.num_outputs, **model_kwargs), task)

    return PaperHyperModel()


def space_values(values: dict) -> dict:
    """A trial's values without keras-tuner's own (``tuner/epochs``, ``tuner/bracket``...)."""
    return {k: v for k, v in values.items() if not k.startswith(INTERNAL_PREFIX)}


def make_tuner(name: str, model, *, objective, directory, project_name: str, seed: int,
               max_epochs: int, max_trials: int, overwrite: bool):
    """A keras-tuner tuner of kind ``name`` that also lists the trials *this process* ran
    (``tuner.trials_run``: a worker's share of a distributed search)."""
    kt = _keras_tuner()
    kinds = {"hyperband": kt.Hyperband, "random": kt.RandomSearch,
             "bayesian": kt.BayesianOptimization, "grid": kt.GridSearch}
    if name not in kinds:
        raise ValueError(f"tuner must be one of {TUNERS}, got {name!r}")

    class RecordingTuner(kinds[name]):
        def __init__(self, *args, **kwargs):
            self.trials_run: list[str] = []
            super().__init__(*args, **kwargs)

        def on_trial_end(self, trial):
            self.trials_run.append(trial.trial_id)
            super().on_trial_end(trial)

    budget = {"hyperband": {"max_epochs": int(max_epochs)},
              "grid": {"max_trials": None}}.get(name, {"max_trials": int(max_trials)})
    return RecordingTuner(model, objective=objective, seed=seed, directory=str(directory),
                          project_name=project_name, overwrite=overwrite, **budget)


def _check_fold(fold) -> None:
    """Tuning reads training and validation ids only, and those must not be test ids."""
    if not fold.val_ids or fold.selection_on_test:
        raise ValueError(f"fold {fold.index}: tuning needs validation ids apart from the test "
                         "ids (a protocol with a validation split, not one that chooses on "
                         "its test fold)")
    test = set(fold.test_ids)
    leaked = sorted((set(fold.train_ids) | set(fold.val_ids)) & test)
    if leaked:
        raise ValueError(f"fold {fold.index}: {len(leaked)} test ids are also training or "
                         f"validation ids (e.g. {leaked[:3]}); a search must never read them")


def trial_rows(oracle) -> list[dict]:
    """Every trial of the oracle, in id order: id, status, values, score, best step."""
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        score = trial.score
        rows.append({"trial_id": trial.trial_id, "status": str(trial.status),
                     "values": dict(trial.hyperparameters.values),
                     "score": None if score is None else float(score),
                     "best_step": trial.best_step})
    return rows


def trial_epochs(trial_values: dict, max_epochs: int) -> int:
    """Epochs a trial trained: Hyperband's ``tuner/epochs``, else the full budget."""
    return int(trial_values.get(f"{INTERNAL_PREFIX}epochs", max_epochs))


def hyperband_shortfall(trials: Sequence[dict], max_epochs: int) -> str | None:
    """A note when a Hyperband search ended with no trial trained for ``max_epochs``.

    keras-tuner's Hyperband fills each bracket's first round with new values drawn from the
    space and ends the whole search the first time it cannot draw one: with a small
    discrete space (four learning rates) that happens before any trial is promoted, so
    every trial trains the smallest budget and "best" means best after those few epochs."""
    finished = [t for t in trials if t.get("score") is not None]
    if not finished:
        return None
    longest = max(trial_epochs(t["values"], max_epochs) for t in finished)
    if longest >= int(max_epochs):
        return None
    return (f"Hyperband ended after {len(finished)} trials, none trained more than {longest} "
            f"of the {int(max_epochs)} epochs: keras-tuner stops a Hyperband search as soon "
            "as its space has no new values to draw, before a bracket is filled or a trial "
            f"promoted; the chosen value is the best after {longest} epochs. A grid search "
            "(--tuner grid) trains every value for the full budget.")


def tune_fold(fold, *, source, task, build_model: Callable, fit, space: Callable,
              directory, tuner: str = "hyperband", max_epochs: int | None = None,
              max_trials: int = 10, objective: str | None = None, overwrite: bool = False,
              quiet: bool = True, tensorboard: bool = True,
              callbacks: Sequence = (), project_name: str | None = None) -> dict:
    """Search ``space`` on ``fold``'s training ids, scored on its validation ids.

    ``tuner``: ``hyperband`` (``max_epochs`` per model at most, default ``fit.epochs``),
    ``random`` or ``bayesian`` (``max_trials`` models of ``max_epochs`` epochs), ``grid``
    (every combination of the space, ``max_epochs`` epochs each).
    ``objective`` defaults to ``fit.monitor`` (its direction from its name). The search
    resumes from ``directory`` unless ``overwrite``; ``callbacks`` (deep-copyable) join every
    trial's ``fit``; ``tensorboard`` adds a TensorBoard log per trial.

    Returns, for a lone search or the chief of a distributed one: ``{"best": {name: value}
    (the space's values), "fit", "model" (the sections they set), "best_trial", "objective",
    "direction", "tuner", "trials" (every trial: id, status, values, score), "trials_run"
    (those this process trained), "directory", "tensorboard", "distributed", "note" (None,
    or why Hyperband trained no trial for the full budget)}``. A worker of a
    distributed search returns ``{"tuner", "objective", "trials_run", "directory",
    "distributed"}``: the best values are the chief's to report.
    """
    from ser_tf.training.callbacks import infer_mode
    from ser_tf.tuning.distributed import describe

    kt = _keras_tuner()
    if tuner not in TUNERS:
        raise ValueError(f"tuner must be one of {TUNERS}, got {tuner!r}")
    _check_fold(fold)
    distributed = describe()  # checks the KERASTUNER_* variables first
    objective = objective or fit.monitor
    direction = infer_mode(objective)
    epochs = int(max_epochs or fit.epochs)
    project = project_name or f"fold_{int(fold.index):02d}"
    project_dir = Path(directory) / project
    try:
        search = make_tuner(tuner, hypermodel(build_model, fit, task, space),
                            objective=kt.Objective(objective, direction=direction),
                            directory=Path(directory), project_name=project, seed=fit.seed,
                            max_epochs=epochs, max_trials=max_trials, overwrite=overwrite)
    except json.JSONDecodeError as error:
        # A state file emptied by a search killed while keras-tuner wrote it (before
        # _write_state_atomically): the search cannot continue from it.
        raise ValueError(f"{project_dir}: a saved search state file is unreadable ({error}); "
                         "the search cannot resume from it: start it afresh "
                         "(--tune-overwrite)") from None
    logdir = project_dir / TENSORBOARD_DIR if tensorboard else None
    verbose = 0 if quiet else 1
    if distributed["role"] == "chief":
        search.search(verbose=verbose)  # serves the oracle until the workers are done
    else:
        import keras

        trial_callbacks = list(callbacks)
        if logdir is not None:
            # keras-tuner gives each trial its own subfolder of this one, plus its hparams.
            trial_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(logdir),
                                                               write_graph=False))
        train = source.dataset(fold.train_ids, task=task, training=True, seed=fit.seed,
                               batch_size=fit.batch_size)
        val = source.dataset(fold.val_ids, task=task, training=False,
                             batch_size=fit.batch_size)
        search.search(train, validation_data=val, epochs=epochs, shuffle=False,
                      callbacks=trial_callbacks, verbose=verbose)
    common = {"tuner": tuner, "objective": objective, "direction": direction,
              "max_epochs": epochs,
              "max_trials": None if tuner in ("hyperband", "grid") else max_trials,
              "trials_run": list(search.trials_run), "directory": str(project_dir),
              "tensorboard": str(logdir) if logdir is not None else None,
              "distributed": distributed}
    if distributed["role"] == "worker":
        return common
    trials = trial_rows(search.oracle)
    note = hyperband_shortfall(trials, epochs) if tuner == "hyperband" else None
    return {**_best(search, space), **common, "trials": trials, "note": note}


def _best(search, space: Callable) -> dict:
    """The best trial's values and the sections they set; a clear error if none finished."""
    trials = search.oracle.get_best_trials(1)
    if not trials:
        messages = [t.message for t in search.oracle.trials.values() if t.message]
        hint = f"; the first failure:\n{messages[0]}" if messages else ""
        raise RuntimeError(f"no trial of the search in {search.project_dir} finished" + hint)
    best = trials[0]
    fit_overrides, model_kwargs = resolve(space, best.hyperparameters)
    return {"best": space_values(best.hyperparameters.values), "fit": fit_overrides,
            "model": model_kwargs,
            "best_trial": {"trial_id": best.trial_id, "score": float(best.score),
                           "best_step": best.best_step,
                           "values": dict(best.hyperparameters.values)}}
