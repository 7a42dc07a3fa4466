"""What a paper is to the shared runner: a :class:`PaperSpec`, and what one run of it is:
an :class:`Experiment`.

A paper lives in ``ser_tf/papers/<name>/``: its ``__init__.py`` exposes ``SPEC``, and
``config.yaml`` (its hyperparameters) and ``reference.yaml`` (its published numbers) sit
beside it as package data. The runner (:mod:`ser_tf.experiments.runner`) builds the
command line from the spec (the paper's own flags, then the shared ones), asks
``setup(args, config)`` for the :class:`Experiment` the flags describe, and trains it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

if TYPE_CHECKING:  # annotations only: building a paper's parser imports no training code
    from ser_tf.training.classifier import FitConfig


@dataclass
class Experiment:
    """One run of a paper, before it trains (made by the paper's ``setup``).

    ``config_extra`` are the paper's settings that enter the run's config (and so its id);
    ``paper_split`` its own protocols (:class:`~ser_tf.training.protocols.PaperSplit`);
    ``feature_set`` features computed elsewhere (else extracted from ``manifest`` with
    ``recipe``); ``source`` a data source instead of cached features (or a function
    ``(cache_dir, quiet) -> source``; :mod:`ser_tf.training.sources`); ``task`` what is
    learnt (:mod:`ser_tf.training.tasks`; default: classification over the manifest's labels); ``fingerprint_data`` stores the corpus copy's fingerprint in the config.
    ``on_fold_done(work_dir, fold, feature_set, result)`` and ``after_folds(work_dir, folds,
    feature_set, results) -> (details, extra_files)`` are the runner's hooks
    (:func:`~ser_tf.experiments.runner.run_experiment`); ``notes`` are printed before training.
    """

    manifest: Any
    recipe: Any
    build_model: Callable[[int], Any]
    fit: FitConfig
    config_extra: dict = field(default_factory=dict)
    paper_split: Any = None
    feature_set: Any = None
    source: Any = None
    task: Any = None
    fingerprint_data: bool = True
    on_fold_done: Callable | None = None
    after_folds: Callable | None = None
    notes: tuple[str, ...] = ()


def _no_arguments(parser: argparse.ArgumentParser, config: dict) -> None:
    return None


def shared_flag_defaults(config: dict) -> dict:
    """``--folds`` from the paper's config (10 when it names none) and ``--seed`` when the
    config names one (``null`` included: then the paper derives it)."""
    defaults = {"folds": config.get("folds", 10)}
    if "seed" in config:
        defaults["seed"] = config["seed"]
    return defaults


@dataclass(frozen=True)
class PaperSpec:
    """A paper to the runner (module docstring).

    ``name``: the results folder (``experiments/results/<name>/``) and ``ser-tf train NAME``;
    ``package``: where ``config.yaml`` and ``reference.yaml`` are;
    ``setup(args, config) -> Experiment``; ``add_arguments(parser, config)``: the paper's own
    flags (``parser`` is an :class:`~ser_tf.experiments.common.ExperimentParser`: its
    ``add_check(check)`` validates values against each other once parsed; keep this free of
    TensorFlow imports, so ``--help`` stays quick); ``parser_defaults(config) -> dict``:
    defaults of shared flags (by default ``--folds`` and ``--seed`` from the config);
    ``protocols``: those ``--protocol`` offers; ``intercept(args, experiment, plan)``: runs
    instead of training when it returns a result (e.g. exporting a finished fold).
    """

    name: str
    title: str
    package: str
    setup: Callable[[argparse.Namespace, dict], Experiment]
    description: str = ""
    add_arguments: Callable[[argparse.ArgumentParser, dict], None] = _no_arguments
    parser_defaults: Callable[[dict], dict] = shared_flag_defaults
    protocols: tuple[str, ...] = ("clean", "speaker")
    default_protocol: str = "clean"
    default_seed: int | None = 42
    intercept: Callable | None = None

    def file(self, name: str) -> Path:
        """A file of the paper's package (``config.yaml``, ``reference.yaml``, ``README.md``)."""
        return Path(str(resources.files(self.package).joinpath(name)))

    def config(self) -> dict:
        """The paper's hyperparameters (its ``config.yaml``)."""
        path = self.file("config.yaml")
        try:
            with open(path, encoding="utf-8") as f:
                return yaml.safe_load(f) or {}
        except FileNotFoundError:
            return {}
