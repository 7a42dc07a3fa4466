"""``--tune``: the report's search for the learning rate, on the training and validation ids
of the run's first fold (never its test ids).

The report found the single CNN's learning rate (1e-2) with keras-tuner's Hyperband over
{1e-5, 1e-4, 1e-3, 1e-2}. Here the search goes through the suite's layer
(:func:`ser_tf.tuning.search.tune_fold`): every trial is compiled by the run's
:class:`~ser_tf.training.classifier.FitConfig` (Adam, cross-entropy) with the drawn rate,
trained on the fold's training ids (with the run's AWGN copies, if any) and scored on its
validation ids by the run's monitor (``val_loss``). ``--tuner random|bayesian|grid``
searches the same grid another way (``grid``: every rate for the full budget; keras-tuner's
Hyperband ends in its first round on a grid this small, and its result says so).

Everything goes to ``<results>/cnn_family/<corpus>/<run-id>.tuning/<tuner>-<budget>/``:
``keras_tuner/`` (the oracle's state: a killed search resumes; ``tensorboard/`` inside it,
one log per trial), ``result.json`` (the search's record: grid, trials, best value, the
run's config) and ``best_hparams.json``, which ``--hparams FILE`` turns into a training run
with the chosen rate (a new run id: the rate is part of it). In a distributed search
(``docs/tuning.md``) the chief writes these; each worker writes ``worker-<id>.json``.
"""

from __future__ import annotations

from pathlib import Path

TUNING_SUFFIX = ".tuning"
RESULT_FILE = "result.json"


def learning_rate_space(grid):
    """The search space: the learning rate from ``grid``, nothing else."""
    rates = [float(rate) for rate in grid]
    if not rates or any(rate <= 0 for rate in rates):
        raise ValueError(f"learning-rate grid must be positive numbers, got {grid}")

    def space(hp):
        return {"fit": {"learning_rate": hp.Choice("learning_rate", rates)}}

    return space


def tune_learning_rate(fold, *, source, task, build_model, fit, grid, directory,
                       max_epochs: int, quiet: bool = True, tuner: str = "hyperband",
                       max_trials: int = 10, overwrite: bool = False) -> dict:
    """A search over ``grid`` on ``fold``'s training ids, scored on its validation ids.

    Returns :func:`~ser_tf.tuning.search.tune_fold`'s result plus ``{"learning_rate":
    chosen, "grid", "fold", "train_utterances", "val_utterances"}`` (a worker of a
    distributed search: no ``learning_rate``); the search resumes from ``directory``."""
    from ser_tf.tuning.search import tune_fold

    result = tune_fold(fold, source=source, task=task, build_model=build_model, fit=fit,
                       space=learning_rate_space(grid), directory=directory, tuner=tuner,
                       max_epochs=int(max_epochs), max_trials=int(max_trials),
                       overwrite=overwrite, quiet=quiet)
    if "best" in result:
        result["learning_rate"] = float(result["best"]["learning_rate"])
    return {**result, "grid": [float(rate) for rate in grid], "fold": int(fold.index),
            "train_utterances": len(fold.train_ids), "val_utterances": len(fold.val_ids)}


def _source(args, experiment):
    """The run's data source (its AWGN copies included), as training would read it."""
    from ser_tf.features.cache import extract_features
    from ser_tf.training.sources import CachedFeatureSource

    quiet = bool(getattr(args, "quiet", False))
    source = experiment.source
    if source is None:
        return CachedFeatureSource(extract_features(experiment.manifest, experiment.recipe,
                                                    args.cache_dir, progress=not quiet))
    if callable(source) and not hasattr(source, "dataset"):
        return source(args.cache_dir, quiet)
    return source


def run_tuning(args, experiment, plan, cfg: dict) -> dict:
    """The ``--tune`` command: search, write the record and ``best_hparams.json``, say how
    to train with it. Returns what the command line prints (``run_id``, ``record``)."""
    from ser_tf.training.tasks import ClassificationTask
    from ser_tf.tuning.cli import search_folder_name, search_settings
    from ser_tf.tuning.hparams import FILE_NAME, write_hparams
    from ser_tf.util.jsonio import write_json_atomic

    quiet = bool(getattr(args, "quiet", False))
    settings = search_settings(args)
    folder = Path(plan.work_dir).parent / f"{plan.run_id}{TUNING_SUFFIX}" / \
        search_folder_name(settings)
    grid = cfg["tuning"]["learning_rates"]
    fold = plan.folds[0]
    if not quiet:
        budget = ("" if settings["tuner"] in ("hyperband", "grid")
                  else f", {settings['max_trials']} trials")
        print(f"{settings['tuner']} search over learning rates {grid} (at most "
              f"{settings['max_epochs']} epochs a trial{budget}) on fold {fold.index}: "
              f"{len(fold.train_ids)} training, {len(fold.val_ids)} validation utterances; "
              f"logs in {folder}", flush=True)
    result = tune_learning_rate(
        fold, source=_source(args, experiment),
        task=ClassificationTask(tuple(experiment.manifest.labels)),
        build_model=experiment.build_model, fit=experiment.fit, grid=grid,
        directory=folder / "keras_tuner", quiet=quiet, **settings)
    if result["distributed"]["role"] == "worker":
        path = write_json_atomic(folder / f"worker-{result['distributed']['tuner_id']}.json",
                                 {"run_id": plan.run_id, **result})
        if not quiet:
            print(f"worker {result['distributed']['tuner_id']}: trained trials "
                  f"{', '.join(result['trials_run']) or 'none'}; the chief writes the result")
        return {"run_id": plan.run_id, "record": path, "tuning": result}
    hparams_path = folder / FILE_NAME
    path = folder / RESULT_FILE
    write_json_atomic(path, {"run_id": plan.run_id, "config": plan.config,
                             "best_hparams_file": str(hparams_path), **result})
    write_hparams(hparams_path, values=result["best"], fit=result["fit"], model=result["model"],
                  source={"search": str(path), "run_id": plan.run_id,
                          "tuner": result["tuner"], "objective": result["objective"],
                          "score": result["best_trial"]["score"],
                          "trial_id": result["best_trial"]["trial_id"],
                          "fold": result["fold"], "grid": result["grid"]})
    if result.get("note"):
        print(f"NOTE: {result['note']}", flush=True)
    if not quiet:
        print(f"chosen learning rate: {result['learning_rate']:g} ({result['objective']} "
              f"{result['best_trial']['score']:.4f}); train with the same flags and "
              f"--hparams {hparams_path}\nper-trial logs: tensorboard --logdir "
              f"{result['tensorboard']}")
    return {"run_id": plan.run_id, "record": path, "tuning": result,
            "hparams_file": hparams_path}
