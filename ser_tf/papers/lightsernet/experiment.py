"""Light-SERNet experiment: ``ser-tf train lightsernet --dataset EMODB`` (or
``python -m ser_tf.experiments.lightsernet``).

Defaults are the paper's (``config.yaml`` beside this file): 3 s MFCC input,
300 epochs, batch 32, Adam 1e-4 decayed by e^-0.15 every 20 epochs from epoch 60, seed 42,
10 folds. The original script's flags work too: ``-dn EMO-DB -id 3 -at all -ln focal
-v 1 -it mfcc``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import yaml

from ser_tf.experiments import runner
from ser_tf.experiments.deploy_flags import add_deploy_arguments
from ser_tf.experiments.common import non_negative_int, positive_int
from ser_tf.experiments.spec import Experiment, PaperSpec

PAPER = "lightsernet"
CONFIG = Path(__file__).resolve().parent / "config.yaml"
PROG = "python -m ser_tf.experiments.lightsernet"
#: Prefix of the shipped files (``tflite_models/lightsernet-emodb-...``).
SHIP_PREFIX = "lightsernet-emodb"
DATASETS = {"EMODB": "EMODB", "EMO-DB": "EMODB", "IEMOCAP": "IEMOCAP"}
INPUTS = ("mfcc", "spectrogram", "mel_spectrogram")
LOSSES = {"cross_entropy": "cross_entropy", "categorical_crossentropy": "cross_entropy",
          "cross-entropy": "cross_entropy", "focal": "focal"}
#: ``paper-time`` repetitions there are: pairs of its 10 parts (``folds.PAPER_TIME_PARTS``;
#: spelled here because ``folds.py`` imports scikit-learn, too slow for ``--help``).
PAPER_TIME_MAX_REPETITIONS = math.comb(10, 2)


def load_config(path=CONFIG) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def feature_recipe(input_type: str = "mfcc", duration: float = 3.0):
    """The paper's front-end for each input type (Sec. 3.1): STFT frame 1024, hop 256 at
    16 kHz; magnitude spectrogram (513 bins), log mel spectrogram (128 bins, 80-7600 Hz), or
    40 MFCCs from it."""
    from ser_tf.features.recipes import FeatureRecipe, get_recipe

    if input_type not in INPUTS:
        raise ValueError(f"input type must be one of {INPUTS}, got {input_type!r}")
    recipe = get_recipe("lightsernet", segment={"duration": float(duration)})
    if input_type == "mfcc":
        return recipe
    front = dict(recipe.frontend)
    for key in ("num_mfcc", "dct_norm", "clip"):
        front.pop(key, None)
    if input_type == "spectrogram":
        for key in ("num_mel_bins", "fmin", "fmax", "mel_scale", "norm", "log", "log_offset"):
            front.pop(key, None)
        front["kind"] = "spectrogram"
    else:
        front["kind"] = "log_mel"
    # A new recipe, not recipe.replace(): replace() merges dicts and would keep MFCC keys.
    return FeatureRecipe(name=f"lightsernet-{input_type}", sample_rate=recipe.sample_rate,
                         segment=dict(recipe.segment), frontend=front)


def add_arguments(parser: argparse.ArgumentParser, cfg: dict) -> None:
    """Light-SERNet's own flags (the original script's short forms work too)."""
    parser.add_argument("--dataset", "-dn", type=str.upper, default="EMODB",
                        choices=sorted(DATASETS), help="EMODB (EMO-DB) or IEMOCAP (4 classes)")
    parser.add_argument("--duration", "-id", type=float, default=3.0, choices=(3.0, 7.0),
                        help="input segment length in seconds (paper: 3 for EMO-DB, 7 for IEMOCAP)")
    parser.add_argument("--input", "-it", dest="input_type", default="mfcc", choices=INPUTS)
    parser.add_argument("--loss", "-ln", default="cross_entropy", choices=sorted(LOSSES))
    parser.add_argument("--audio-type", "-at", default="all", choices=("all", "impro", "script"),
                        help="IEMOCAP subset (ignored for EMO-DB)")
    # -v/--verbose (the original script's -v 0 / -v 1, and 2 or -v alone: TensorFlow's
    # messages too) is a shared flag (ser_tf.experiments.common).
    parser.add_argument("--epochs", type=positive_int, default=cfg["epochs"])
    parser.add_argument("--batch-size", type=positive_int, default=cfg["batch_size"])
    parser.add_argument("--partial-batches", action="store_true",
                        help="ablation: one pass over the training data per epoch, the last "
                             "batch short (the authors' code from April 2022 on, and this "
                             "project's runs before December 2026); default: full batches only, "
                             "as the code of the paper's time")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the TFLite export of every fold at the end of the run")
    parser.add_argument("--ship-fold", type=non_negative_int, metavar="N",
                        help="do not train: export fold N (0-based) of this run's finished "
                             "folds to --ship-dest with model cards, named "
                             "lightsernet-emodb-foldNN-* (beside the --ship models, never "
                             "over them)")
    parser.add_argument("--ship-dest", default="tflite_models", help="(default: tflite_models)")
    add_deploy_arguments(parser)
    if hasattr(parser, "add_check"):
        parser.add_check(check_arguments)


def check_arguments(args: argparse.Namespace) -> str | None:
    """``--folds`` of ``paper-time`` (at most :data:`PAPER_TIME_MAX_REPETITIONS`) and
    ``--ship-fold`` (a fold the run has) once parsed."""
    folds = getattr(args, "folds", None)
    if folds is None:
        return None
    if args.protocol == "paper-time" and folds > PAPER_TIME_MAX_REPETITIONS:
        return (f"argument --folds: paper-time has {PAPER_TIME_MAX_REPETITIONS} repetitions "
                f"(pairs of its 10 parts), got {folds}")
    if args.ship_fold is not None and args.ship_fold >= folds:
        return (f"argument --ship-fold: folds are numbered 0 to {folds - 1} (--folds {folds}), "
                f"got {args.ship_fold}")
    return None


def fit_config(args: argparse.Namespace, cfg: dict | None = None):
    """The :class:`FitConfig` of the run ``args`` describe (paper's settings, flags on top)."""
    from ser_tf.training.classifier import FitConfig
    from ser_tf.training.protocols import TEST_SELECTING

    cfg = cfg or load_config()
    return FitConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=cfg["learning_rate"],
        lr_schedule=cfg["lr_schedule"], loss=LOSSES[args.loss], focal_gamma=cfg["focal_gamma"],
        checkpoint="paper" if args.protocol in TEST_SELECTING else "best-val",
        monitor=cfg["monitor_paper"] if args.protocol in TEST_SELECTING else cfg["monitor_clean"],
        seed=args.seed, deterministic=args.deterministic, jit_compile=cfg["jit_compile"],
        full_batches=cfg["full_batches"] and not args.partial_batches)


def setup(args: argparse.Namespace, cfg: dict) -> Experiment:
    """The :class:`Experiment` ``args`` describe."""
    from ser_tf.data import load_manifest
    from ser_tf.models.lightsernet import build_lightsernet
    from ser_tf.papers.lightsernet.folds import SPLIT

    args.quiet = args.quiet or args.verbose == 0  # the original script's -v 0
    corpus = DATASETS[args.dataset]
    options = {"subset": args.audio_type} if corpus == "IEMOCAP" else {}
    manifest = load_manifest(corpus, args.data_dir, on_bad_audio=args.on_bad_audio, **options)
    recipe = feature_recipe(args.input_type, args.duration)
    shape = recipe.feature_shape()

    def build(num_classes):
        return build_lightsernet(num_classes, shape)

    experiment = Experiment(
        manifest=manifest, recipe=recipe, build_model=build, fit=fit_config(args, cfg),
        paper_split=SPLIT,
        config_extra={"loss": LOSSES[args.loss], "duration": args.duration,
                      "input": args.input_type,
                      "audio_type": args.audio_type if corpus == "IEMOCAP" else None})
    if not args.no_export:
        experiment.on_fold_done = lambda work_dir, fold, features, result: _export_fold(
            work_dir, fold, features, build, recipe, quiet=args.quiet)
        experiment.after_folds = lambda work_dir, folds, features, results: (
            {"tflite": _export_all(work_dir, folds, features, build, recipe,
                                   quiet=args.quiet)}, None)
    return experiment


def _export_fold(work_dir, fold, feature_set, build, recipe, quiet=False):
    from ser_tf.export.folds import export_fold

    export_fold(work_dir, fold, feature_set, build, recipe, name=SHIP_PREFIX + "-mfcc",
                quiet=quiet)


def _export_all(work_dir, folds, feature_set, build, recipe, quiet=False):
    from ser_tf.export.folds import export_all_folds

    return export_all_folds(work_dir, folds, feature_set, build, recipe,
                            name=SHIP_PREFIX + "-mfcc", quiet=quiet)


def ship(args: argparse.Namespace, experiment: Experiment, plan) -> dict | None:
    """``--ship``: the deployable model (every speaker; :mod:`ser_tf.experiments.deploy`);
    ``--ship-fold N``: export a finished fold of the run these flags describe. Either
    replaces training; ``None`` without them."""
    if args.ship:
        from ser_tf.experiments.deploy import deploy

        return deploy(SPEC, args, prefix=SHIP_PREFIX, dest=args.ship_dest,
                      title=f"Light-SERNet EMO-DB {args.duration:g} s, all speakers")
    if args.ship_fold is None:
        return None
    from ser_tf.export.ship import ship_fold
    from ser_tf.features.cache import extract_features
    from ser_tf.training.rundir import RunDir
    from ser_tf.util.errors import UserError
    from ser_tf.util.quiet import filtered_native_stderr
    from ser_tf.util.status import step

    if args.ship_fold >= len(plan.folds):  # e.g. fewer speakers than --folds
        raise UserError(f"--ship-fold {args.ship_fold}: run {plan.run_id} has "
                        f"{len(plan.folds)} folds, numbered 0 to {len(plan.folds) - 1}")
    fold_dir = RunDir(plan.work_dir).fold(args.ship_fold)
    if not fold_dir.finished:
        raise FileNotFoundError(f"{fold_dir.path}: fold {args.ship_fold} of run {plan.run_id} "
                                "has not finished; run the same command without --ship-fold")
    feature_set = extract_features(experiment.manifest, experiment.recipe, args.cache_dir)
    record = plan.work_dir.parent / f"shipped-{plan.run_id}-fold{args.ship_fold:02d}.json"
    with step(f"fold {args.ship_fold + 1}/{len(plan.folds)}: shipping its TFLite models to "
              f"{args.ship_dest} (conversions, parity and latency)", quiet=args.quiet), \
            filtered_native_stderr():
        # A fold's model (eight speakers) never takes the name of the --ship model (all
        # ten), which is the one predict and the demo pick.
        measured = ship_fold(plan, args.ship_fold, experiment.manifest, feature_set,
                             experiment.build_model, experiment.recipe,
                             prefix=f"{SHIP_PREFIX}-fold{args.ship_fold:02d}",
                             dest=args.ship_dest, record_path=record,
                             title=f"Light-SERNet EMO-DB {args.duration:g} s")
    return {"run_id": plan.run_id, "record": record, "shipped": measured["shipped"]}


SPEC = PaperSpec(
    name=PAPER, title="Light-SERNet (Aftab et al., ICASSP 2022)",
    description="Light-SERNet (Aftab et al., ICASSP 2022) on EMO-DB or IEMOCAP.",
    package="ser_tf.papers.lightsernet", setup=setup, add_arguments=add_arguments,
    protocols=("paper-time", "paper", "clean", "speaker"), default_protocol="paper",
    default_seed=42, intercept=ship)


build_parser, plan, run, main = runner.commands(SPEC, PROG)
