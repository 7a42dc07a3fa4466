"""The search flags every paper can offer: ``--tune``, ``--tuner``, ``--tune-epochs``,
``--tune-trials``, ``--tune-overwrite`` and ``--hparams FILE``.

A paper calls :func:`add_tuning_arguments` from its ``add_arguments`` and, when
``args.tune`` is set, runs its search (:func:`ser_tf.tuning.search.tune_fold`) instead of
training; ``--hparams`` makes a training run take a search's best values
(:mod:`ser_tf.tuning.hparams`). Imports no TensorFlow, so ``--help`` stays quick.
"""

from __future__ import annotations

import argparse

from ser_tf.tuning import TUNERS
from ser_tf.util.argtypes import positive_int


def add_tuning_arguments(parser: argparse.ArgumentParser, *, max_epochs: int,
                         default_tuner: str = "hyperband", max_trials: int = 10,
                         what: str = "the paper's search space") -> None:
    """Add the search flags in their own group. ``max_epochs``: the default epochs a trial
    (Hyperband: the largest budget); ``max_trials``: the default trials of random and
    Bayesian searches."""
    if default_tuner not in TUNERS:
        raise ValueError(f"default_tuner must be one of {TUNERS}, got {default_tuner!r}")
    group = parser.add_argument_group("hyperparameter search (keras-tuner; docs/tuning.md)")
    group.add_argument("--tune", action="store_true",
                       help=f"do not train: search {what} on the first fold's training and "
                            "validation ids (never its test ids); writes the trials, TensorBoard "
                            "logs per trial and best_hparams.json for --hparams; resumes an "
                            "interrupted search")
    group.add_argument("--tuner", choices=TUNERS, default=None,
                       help=f"--tune: the search algorithm (default {default_tuner})")
    group.add_argument("--tune-epochs", type=positive_int, metavar="N",
                       help=f"--tune: at most N epochs a trial (default {max_epochs})")
    group.add_argument("--tune-trials", type=positive_int, metavar="N",
                       help=f"--tune with random or bayesian: N trials (default {max_trials}; "
                            "grid tries every value)")
    group.add_argument("--tune-overwrite", action="store_true",
                       help="--tune: start the search afresh instead of resuming it")
    group.add_argument("--hparams", metavar="FILE",
                       help="train with the values of a search's best_hparams.json (the run "
                            "record says which file and search they came from)")
    parser.set_defaults(tuning_defaults={"tuner": default_tuner, "max_epochs": int(max_epochs),
                                         "max_trials": int(max_trials)})
    if hasattr(parser, "add_check"):
        parser.add_check(check_tuning_arguments)


def check_tuning_arguments(args: argparse.Namespace) -> str | None:
    """Search flags without ``--tune``, or ``--hparams`` with it."""
    tune = getattr(args, "tune", False)
    if not tune:
        for name, flag in (("tuner", "--tuner"), ("tune_epochs", "--tune-epochs"),
                           ("tune_trials", "--tune-trials")):
            if getattr(args, name, None) is not None:
                return f"argument {flag}: only with --tune"
        if getattr(args, "tune_overwrite", False):
            return "argument --tune-overwrite: only with --tune"
    elif getattr(args, "hparams", None):
        return ("argument --hparams: a search draws its own values; give --hparams to the "
                "training run after it")
    if tune and getattr(args, "tune_trials", None) is not None and tuner_of(args) == "hyperband":
        return ("argument --tune-trials: Hyperband sets its own number of trials from "
                "--tune-epochs; use --tuner random or bayesian")
    if tune and getattr(args, "tune_trials", None) is not None and tuner_of(args) == "grid":
        return ("argument --tune-trials: a grid search tries every value once; use --tuner "
                "random or bayesian")
    return None


def tuner_of(args: argparse.Namespace) -> str:
    """The ``--tuner`` in effect (the paper's default when not given)."""
    return getattr(args, "tuner", None) or args.tuning_defaults["tuner"]


def search_settings(args: argparse.Namespace) -> dict:
    """``{"tuner", "max_epochs", "max_trials", "overwrite"}`` of the parsed flags."""
    defaults = args.tuning_defaults
    return {"tuner": tuner_of(args),
            "max_epochs": int(getattr(args, "tune_epochs", None) or defaults["max_epochs"]),
            "max_trials": int(getattr(args, "tune_trials", None) or defaults["max_trials"]),
            "overwrite": bool(getattr(args, "tune_overwrite", False))}


def search_folder_name(settings: dict) -> str:
    """A search's folder under the run's ``.tuning`` folder: one per tuner and budget, so a
    resumed search never reloads another algorithm's or budget's state
    (``hyperband-30ep``, ``random-30ep-10trials``)."""
    name = f"{settings['tuner']}-{settings['max_epochs']}ep"
    if settings["tuner"] not in ("hyperband", "grid"):
        name += f"-{settings['max_trials']}trials"
    return name
