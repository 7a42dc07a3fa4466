"""Hyperparameter search with keras-tuner over any paper's model: the ``build(hp)`` hook.

A paper describes what may vary with a *search space*, ``space(hp) -> {"fit": {...},
"model": {...}}``: values drawn from ``hp`` (``hp.Choice``, ``hp.Float``, ...) for
:class:`~ser_tf.training.classifier.FitConfig` fields (e.g. ``learning_rate``) and for
keyword arguments of the paper's ``build_model(num_outputs, **model)``.
:func:`hypermodel` turns the paper's builder, fit settings, task and space into a
``keras_tuner.HyperModel`` whose ``build(hp)`` compiles through :meth:`FitConfig.compile`
(the same call the runner uses), so any tuner (Hyperband, random search, Bayesian) can
drive it. :func:`tune_fold` searches on one fold's training and validation ids only: the
test ids are never read, so a tuned setting can still be tested honestly.

keras-tuner is the ``tuning`` extra (``pip install ser-tf[tuning]``).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Callable

TUNERS = ("hyperband", "random")


def _keras_tuner():
    try:
        import keras_tuner
    except ImportError:
        raise ImportError("hyperparameter search needs keras-tuner: "
                          "pip install 'ser-tf[tuning]'") from None
    return keras_tuner


def resolve(space: Callable, hp) -> tuple[dict, dict]:
    """``space(hp)`` checked: ``(fit_overrides, model_kwargs)``; unknown fit fields fail."""
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
    settings, compiled by :meth:`FitConfig.compile` for ``task``."""
    from ser_tf.training.classifier import FitConfig

    kt = _keras_tuner()

    class PaperHyperModel(kt.HyperModel):
        def build(self, hp):
            fit_overrides, model_kwargs = resolve(space, hp)
            settings = FitConfig(**{**fit.to_dict(), **fit_overrides})
            return settings.compile(build_model(task.num_outputs, **model_kwargs), task)

    return PaperHyperModel()


def tune_fold(fold, *, source, task, build_model: Callable, fit, space: Callable,
              directory, tuner: str = "hyperband", max_epochs: int | None = None,
              max_trials: int = 10, objective: str | None = None, overwrite: bool = False,
              quiet: bool = True) -> dict:
    """Search ``space`` on ``fold``'s training ids, scored on its validation ids.

    ``tuner``: ``hyperband`` (``max_epochs`` per model at most, default ``fit.epochs``) or
    ``random`` (``max_trials`` models of ``fit.epochs`` epochs). ``objective`` defaults to
    ``fit.monitor``. The search resumes from ``directory`` unless ``overwrite``.
    Returns ``{"best": {name: value}, "objective", "trials", "tuner"}``.
    """
    from ser_tf.training.callbacks import infer_mode

    kt = _keras_tuner()
    if tuner not in TUNERS:
        raise ValueError(f"tuner must be one of {TUNERS}, got {tuner!r}")
    if not fold.val_ids or fold.selection_on_test:
        raise ValueError(f"fold {fold.index}: tuning needs validation ids apart from the test "
                         "ids (a protocol with a validation split, not 'paper')")
    objective = objective or fit.monitor
    goal = kt.Objective(objective, direction=infer_mode(objective))
    common = dict(objective=goal, seed=fit.seed, directory=str(Path(directory)),
                  project_name=f"fold_{int(fold.index):02d}", overwrite=overwrite)
    model = hypermodel(build_model, fit, task, space)
    if tuner == "hyperband":
        search = kt.Hyperband(model, max_epochs=int(max_epochs or fit.epochs), **common)
    else:
        search = kt.RandomSearch(model, max_trials=int(max_trials), **common)
    train = source.dataset(fold.train_ids, task=task, training=True, seed=fit.seed,
                           batch_size=fit.batch_size)
    val = source.dataset(fold.val_ids, task=task, training=False, batch_size=fit.batch_size)
    search.search(train, validation_data=val, epochs=int(max_epochs or fit.epochs), shuffle=False,
                  verbose=0 if quiet else 1)
    best = search.get_best_hyperparameters(1)[0]
    trials = search.oracle.get_best_trials(num_trials=10_000)
    return {"best": dict(best.values), "objective": objective, "tuner": tuner,
            "trials": [{"values": dict(t.hyperparameters.values), "score": t.score}
                       for t in trials]}
