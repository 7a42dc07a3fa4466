"""CNN-family experiment: ``ser-tf train cnn_family --model transformer --data-root DIR``.

The report's pooled 7-class corpus (RAVDESS + SAVEE + TESS + CREMA-D, :mod:`.corpora`),
librosa features (128 MFCCs × 94 frames, or a 128-band mel spectrogram × 188 frames;
:mod:`.recipes`), one of three models (:mod:`ser_tf.models.cnn_family`), Adam and
cross-entropy, early stopping on validation with the best weights restored, optional AWGN
copies of the training utterances (:mod:`.source`), TFLite export of every fold.
Defaults: ``config.yaml`` beside this file. ``--tune`` runs the learning-rate search
instead of training (:mod:`.tune`).
"""

from __future__ import annotations

import argparse

from ser_tf.experiments import runner
from ser_tf.experiments.common import non_negative_int, positive_float, positive_int
from ser_tf.experiments.spec import Experiment, PaperSpec
from ser_tf.papers.cnn_family.corpora import (LABEL_MAPPING, add_corpus_arguments,
                                              check_corpus_arguments)

PAPER = "cnn_family"
PROG = "python -m ser_tf.papers.cnn_family"
MODELS = ("cnn", "parallel", "transformer")
FEATURES = ("mfcc", "mel")
BN_AXES = ("time", "channels")
RUNNER_SELECTS_ON_TEST = (
    "protocol 'paper' of cnn_family keeps a validation tenth for early stopping and scores "
    "the test tenth once, but this run would choose its epoch on the TEST split. Refusing "
    "to choose on the test split: use --protocol clean.")


def add_arguments(parser: argparse.ArgumentParser, cfg: dict) -> None:
    """The CNN family's own flags (then the pooled corpora's)."""
    rates = cfg["learning_rate"]
    parser.add_argument("--model", choices=MODELS, default="transformer",
                        help="cnn: one CNN block; parallel: two CNN blocks; transformer: two "
                             "CNN blocks and a Transformer encoder in parallel (default)")
    parser.add_argument("--features", choices=FEATURES, default="mfcc",
                        help="mfcc: 128 MFCCs x 94 frames (default); mel: 128-band mel "
                             "spectrogram x 188 frames")
    parser.add_argument("--awgn", type=non_negative_int, default=0, metavar="N",
                        help="N noisy copies of every training utterance, SNR uniform in "
                             f"{cfg['awgn_snr_db']} dB (the report: 2); 0 = none (default)")
    parser.add_argument("--bn-axis", choices=BN_AXES, default="time",
                        help="time: BatchNorm over the frame axis, as the original code did "
                             "by accident (default; gives the published parameter counts); "
                             "channels: the usual per-channel BatchNorm")
    parser.add_argument("--learning-rate", type=positive_float,
                        help="Adam's rate (default: " + ", ".join(
                            f"{m} {rates[m]:g}" for m in MODELS) + ")")
    parser.add_argument("--epochs", type=positive_int, default=cfg["epochs"],
                        help="at most this many epochs (early stopping ends sooner)")
    parser.add_argument("--batch-size", type=positive_int, default=cfg["batch_size"])
    parser.add_argument("--patience", type=positive_int,
                        help=f"early-stopping patience in epochs (default "
                             f"{cfg['patience']['plain']}, with --awgn {cfg['patience']['awgn']})")
    parser.add_argument("--tune", action="store_true",
                        help="do not train: Hyperband over the learning rates "
                             f"{cfg['tuning']['learning_rates']} on the first fold's training "
                             "and validation ids; prints and records the chosen rate")
    parser.add_argument("--tune-epochs", type=positive_int, metavar="N",
                        help=f"--tune: at most N epochs a trial (default "
                             f"{cfg['tuning']['max_epochs']})")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the TFLite export of every fold")
    add_corpus_arguments(parser)
    if hasattr(parser, "add_check"):
        parser.add_check(check_corpus_arguments)


def fit_config(args: argparse.Namespace, cfg: dict):
    """Adam, cross-entropy, the best validation epoch restored after ``patience`` epochs
    without improvement."""
    from ser_tf.training.classifier import FitConfig

    rate = args.learning_rate or cfg["learning_rate"][args.model]
    patience = args.patience or cfg["patience"]["awgn" if args.awgn else "plain"]
    return FitConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=rate,
                     loss="cross_entropy", checkpoint="best-val", monitor=cfg["monitor"],
                     patience=patience, seed=args.seed, deterministic=args.deterministic,
                     jit_compile=cfg["jit_compile"])


def model_builder(model: str, shape, bn_axis: str):
    """``build(num_classes) -> keras.Model`` of ``--model`` on features of ``shape``."""

    def build(num_classes: int):
        from ser_tf.models.cnn_family import build_model

        return build_model(model, num_classes, shape, bn_axis=bn_axis)

    return build


def setup(args: argparse.Namespace, cfg: dict) -> Experiment:
    """The :class:`Experiment` ``args`` describe."""
    from ser_tf.papers.cnn_family.corpora import load_pooled
    from ser_tf.papers.cnn_family.folds import SPLIT
    from ser_tf.papers.cnn_family.recipes import RECIPES

    manifest = load_pooled(args)
    recipe = RECIPES[args.features]
    shape = recipe.feature_shape()
    build = model_builder(args.model, shape, args.bn_axis)
    snr = [float(v) for v in cfg["awgn_snr_db"]]
    experiment = Experiment(
        manifest=manifest, recipe=recipe, build_model=build, fit=fit_config(args, cfg),
        paper_split=SPLIT,
        config_extra={"model": args.model, "features": args.features, "bn_axis": args.bn_axis,
                      "awgn_copies": args.awgn, "awgn_snr_db": snr if args.awgn else None,
                      "label_mapping": LABEL_MAPPING})
    if args.awgn:
        experiment.source = _noisy_source_factory(args, manifest, recipe, snr)
    if not args.no_export:
        name = f"{PAPER}-{args.model}-{args.features}"
        experiment.on_fold_done = lambda work_dir, fold, features, result: _export_fold(
            work_dir, fold, features, build, recipe, name, args.quiet)
        experiment.after_folds = lambda work_dir, folds, features, results: (
            {"tflite": _export_all(work_dir, folds, features, build, recipe, name,
                                   args.quiet)}, None)
    return experiment


def _noisy_source_factory(args, manifest, recipe, snr):
    """``(cache_dir, quiet) -> NoisyCopiesSource``, called once the run holds its lock. The
    folds are the run's: the same call the runner's plan makes."""

    def make(cache_dir, quiet):
        from ser_tf.papers.cnn_family.folds import SPLIT
        from ser_tf.papers.cnn_family.source import NoisyCopiesSource
        from ser_tf.training.protocols import make_folds

        folds = make_folds(manifest, args.protocol, n_folds=args.folds, seed=args.fold_seed,
                           paper_split=SPLIT)
        return NoisyCopiesSource(manifest, recipe, cache_dir, copies=args.awgn, folds=folds,
                                 snr_db=snr, seed=args.seed, quiet=quiet)

    return make


def _features(features_or_source):
    """The cached features of the originals, from the source the hooks get (or itself)."""
    return getattr(features_or_source, "feature_set", features_or_source)


def _export_fold(work_dir, fold, features, build, recipe, name, quiet):
    from ser_tf.export.folds import export_fold

    export_fold(work_dir, fold, _features(features), build, recipe, name=name, quiet=quiet)


def _export_all(work_dir, folds, features, build, recipe, name, quiet):
    from ser_tf.export.folds import export_all_folds

    return export_all_folds(work_dir, folds, _features(features), build, recipe, name=name,
                            quiet=quiet)


def intercept(args: argparse.Namespace, experiment: Experiment, plan) -> dict | None:
    """``--tune`` replaces training; under protocol ``paper`` training refuses to start if
    the run would choose the epoch on the test split (:data:`RUNNER_SELECTS_ON_TEST`: a
    guard; the runner keeps best-val for folds that do not validate on their test ids)."""
    if args.tune:
        from ser_tf.papers.cnn_family.tune import run_tuning

        return run_tuning(args, experiment, plan, SPEC.config())
    if plan.fit.checkpoint != experiment.fit.checkpoint \
            and not any(fold.selection_on_test for fold in plan.folds):
        from ser_tf.util.errors import UserError

        raise UserError(RUNNER_SELECTS_ON_TEST)
    return None


SPEC = PaperSpec(
    name=PAPER, title="CNN family (student report 2023, after Bautista et al. 2022)",
    description="CNN, two parallel CNNs, or two CNNs and a Transformer encoder in parallel "
                "(a student report after Bautista et al., Electronics 2022) on RAVDESS + "
                "SAVEE + TESS + CREMA-D pooled, 7 classes.",
    package="ser_tf.papers.cnn_family", setup=setup, add_arguments=add_arguments,
    parser_defaults=lambda cfg: {"folds": cfg["folds"], "seed": cfg["seed"]},
    protocols=("paper", "clean", "speaker"), default_protocol="paper", default_seed=42,
    intercept=intercept)


build_parser, plan, run, main = runner.commands(SPEC, PROG)
