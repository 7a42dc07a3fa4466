"""``--tune``: the report's Hyperband search for the learning rate, on the training and
validation ids of the run's first fold (never its test ids).

The report found the single CNN's learning rate (1e-2) with keras-tuner's Hyperband over
{1e-5, 1e-4, 1e-3, 1e-2}. Here the search goes through the suite's hook
(:func:`ser_tf.training.tuning.tune_fold`): every trial is compiled by the run's
:class:`~ser_tf.training.classifier.FitConfig` (Adam, cross-entropy) with the drawn rate,
trained on the fold's training ids and scored on its validation ids by the run's monitor
(``val_loss``). The chosen rate and every trial are written to
``<results>/cnn_family/<corpus>/<run-id>.tuning/result.json`` beside the run's folder;
training then takes it with ``--learning-rate`` (a new run id: the rate is part of it).
"""

from __future__ import annotations

from pathlib import Path

TUNING_SUFFIX = ".tuning"
RESULT_FILE = "result.json"


def learning_rate_space(grid):
    """The search space: the learning rate from ``grid``, nothing else."""
    rates = [float(rate) for rate in grid]

    def space(hp):
        return {"fit": {"learning_rate": hp.Choice("learning_rate", rates)}}

    return space


def tune_learning_rate(fold, *, source, task, build_model, fit, grid, directory,
                       max_epochs: int, quiet: bool = True) -> dict:
    """Hyperband over ``grid`` on ``fold``'s training ids, scored on its validation ids.

    Returns ``{"learning_rate": chosen, "grid", "objective", "fold", "train_utterances",
    "val_utterances", "max_epochs", "trials": [{"values", "score"}, ...]}``; the search
    resumes from ``directory``."""
    from ser_tf.training.tuning import tune_fold

    result = tune_fold(fold, source=source, task=task, build_model=build_model, fit=fit,
                       space=learning_rate_space(grid), directory=directory,
                       tuner="hyperband", max_epochs=int(max_epochs), quiet=quiet)
    return {"learning_rate": float(result["best"]["learning_rate"]),
            "grid": [float(rate) for rate in grid], "objective": result["objective"],
            "fold": int(fold.index), "train_utterances": len(fold.train_ids),
            "val_utterances": len(fold.val_ids), "max_epochs": int(max_epochs),
            "tuner": result["tuner"], "trials": result["trials"]}


def run_tuning(args, experiment, plan, cfg: dict) -> dict:
    """The ``--tune`` command: search, write the result, say how to train with it.
    Returns what the command line prints (``run_id``, ``record``: the result file)."""
    from ser_tf.features.cache import extract_features
    from ser_tf.training.sources import CachedFeatureSource
    from ser_tf.training.tasks import ClassificationTask
    from ser_tf.util.jsonio import write_json_atomic

    quiet = bool(getattr(args, "quiet", False))
    source = experiment.source
    if source is None:
        source = CachedFeatureSource(extract_features(experiment.manifest, experiment.recipe,
                                                      args.cache_dir, progress=not quiet))
    elif callable(source) and not hasattr(source, "dataset"):
        source = source(args.cache_dir, quiet)
    folder = Path(plan.work_dir).parent / f"{plan.run_id}{TUNING_SUFFIX}"
    grid = cfg["tuning"]["learning_rates"]
    max_epochs = args.tune_epochs or cfg["tuning"]["max_epochs"]
    if not quiet:
        print(f"Hyperband over learning rates {grid} (at most {max_epochs} epochs a trial) "
              f"on fold {plan.folds[0].index}: {len(plan.folds[0].train_ids)} training, "
              f"{len(plan.folds[0].val_ids)} validation utterances", flush=True)
    result = tune_learning_rate(
        plan.folds[0], source=source, task=ClassificationTask(tuple(experiment.manifest.labels)),
        build_model=experiment.build_model, fit=experiment.fit, grid=grid,
        directory=folder / "keras_tuner", max_epochs=max_epochs, quiet=quiet)
    path = folder / RESULT_FILE
    write_json_atomic(path, {"run_id": plan.run_id, "config": plan.config, **result})
    if not quiet:
        print(f"chosen learning rate: {result['learning_rate']:g}; train with the same flags "
              f"and --learning-rate {result['learning_rate']:g}")
    return {"run_id": plan.run_id, "record": path, "tuning": result}
