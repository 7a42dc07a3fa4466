"""CNN-family experiment: ``ser-tf train cnn_family --model 2cnn_transformer --data-root DIR``.

The report's pooled 7-class corpus (RAVDESS + SAVEE + TESS + CREMA-D, :mod:`.corpora`; or
fewer, e.g. ``--dataset RAVDESS``), librosa features (128 MFCCs × 94 frames, or a 128-band
mel spectrogram × 188 frames; :mod:`.recipes`), one of three models
(:mod:`ser_tf.models.cnn_family`), Adam and cross-entropy, early stopping on validation
with the best weights restored, optional AWGN copies of the training utterances
(:mod:`.source`). Every fold is exported to TFLite and scored under white noise
(:mod:`.hooks`). Defaults: ``config.yaml`` beside this file. ``--tune`` runs a
keras-tuner search instead of training (:mod:`.tune`); ``--hparams FILE`` trains with its
best values.
"""

from __future__ import annotations

import argparse

from ser_tf.experiments import runner
from ser_tf.experiments.common import non_negative_int, positive_float, positive_int
from ser_tf.experiments.spec import Experiment, PaperSpec
from ser_tf.papers.cnn_family.corpora import (LABEL_MAPPING, add_corpus_arguments,
                                              check_corpus_arguments)
from ser_tf.training.robustness import DEFAULT_SNRS_DB, snr_list
from ser_tf.tuning.cli import add_tuning_arguments

PAPER = "cnn_family"
PROG = "python -m ser_tf.papers.cnn_family"
MODELS = ("cnn", "parallel", "transformer")
#: The issue's model names -> the package's (the run config keeps the package's).
MODEL_ALIASES = {"2cnn": "parallel", "2cnn_transformer": "transformer"}
FEATURES = ("mfcc", "mel")
BN_AXES = ("time", "channels")
RUNNER_SELECTS_ON_TEST = (
    "protocol 'paper' of cnn_family keeps a validation tenth for early stopping and scores "
    "the test tenth once, but this run would choose its epoch on the TEST split. Refusing "
    "to choose on the test split: use --protocol clean.")


def model_name(text: str) -> str:
    """argparse type of ``--model``: a model or an alias of one -> the model's name."""
    name = MODEL_ALIASES.get(text.strip().lower(), text.strip().lower())
    if name not in MODELS:
        accepted = ", ".join([*MODELS, *MODEL_ALIASES])
        raise argparse.ArgumentTypeError(f"expected one of {accepted}, got {text!r}")
    return name


def add_arguments(parser: argparse.ArgumentParser, cfg: dict) -> None:
    """The CNN family's own flags (then the pooled corpora's)."""
    rates = cfg["learning_rate"]
    parser.add_argument("--model", type=model_name, default="transformer",
                        metavar="{cnn,2cnn,2cnn_transformer}",
                        help="cnn: one CNN block; 2cnn (or parallel): two CNN blocks; "
                             "2cnn_transformer (or transformer): two CNN blocks and a "
                             "Transformer encoder in parallel (default)")
    parser.add_argument("--features", "--input", dest="features", choices=FEATURES,
                        default="mfcc",
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
    parser.add_argument("--no-export", action="store_true",
                        help="skip the TFLite export of every fold")
    parser.add_argument("--noise-eval", type=snr_list, metavar="SNR,...",
                        default=list(DEFAULT_SNRS_DB),
                        help="score every fold's test utterances clean and with white noise at "
                             "these SNRs in dB, added to the audio before the features "
                             "(default 20,10,0; 'off' skips it)")
    add_tuning_arguments(parser, max_epochs=cfg["tuning"]["max_epochs"],
                         default_tuner=cfg["tuning"].get("tuner", "hyperband"),
                         max_trials=cfg["tuning"].get("max_trials", 10),
                         what="the learning rates "
                              f"{cfg['tuning']['learning_rates']}")
    add_corpus_arguments(parser)
    if hasattr(parser, "add_check"):
        parser.add_check(check_corpus_arguments)
        parser.add_check(_check_hparams_and_rate)


def _check_hparams_and_rate(args: argparse.Namespace) -> str | None:
    if getattr(args, "hparams", None) and getattr(args, "learning_rate", None):
        return ("argument --learning-rate: not with --hparams (the file sets the values; "
                "edit it, or leave --hparams out)")
    return None


def fit_config(args: argparse.Namespace, cfg: dict, hparams=None):
    """Adam, cross-entropy, the best validation epoch restored after ``patience`` epochs
    without improvement; ``hparams`` (a read ``--hparams`` file) replaces what it sets."""
    from ser_tf.training.classifier import FitConfig

    rate = args.learning_rate or cfg["learning_rate"][args.model]
    patience = args.patience or cfg["patience"]["awgn" if args.awgn else "plain"]
    fit = FitConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=rate,
                    loss="cross_entropy", checkpoint="best-val", monitor=cfg["monitor"],
                    patience=patience, seed=args.seed, deterministic=args.deterministic,
                    jit_compile=cfg["jit_compile"])
    if hparams is None:
        return fit
    from ser_tf.tuning.hparams import apply_fit

    return apply_fit(fit, hparams)


def model_builder(model: str, shape, bn_axis: str, **model_kwargs):
    """``build(num_classes, **more) -> keras.Model`` of ``--model`` on features of
    ``shape``; ``model_kwargs`` (from ``--hparams``) and ``more`` (a search's draws) go to
    the builder."""

    def build(num_classes: int, **more):
        from ser_tf.models.cnn_family import build_model

        return build_model(model, num_classes, shape, bn_axis=bn_axis,
                           **{**model_kwargs, **more})

    return build


def _check_model_kwargs(model: str, model_kwargs: dict, hparams) -> None:
    """A ``--hparams`` file's model settings must be arguments of ``model``'s builder: a
    clear error now rather than a TypeError when the first fold builds it."""
    if not model_kwargs:
        return
    import inspect

    from ser_tf.models.cnn_family import BUILDERS
    from ser_tf.tuning.hparams import HParamsError

    fixed = {"num_classes", "input_shape", "bn_axis", "name"}  # set by the run itself
    accepted = set(inspect.signature(BUILDERS[model]).parameters) - fixed
    unknown = sorted(set(model_kwargs) - accepted)
    if unknown:
        raise HParamsError(f"--hparams {hparams.path}: {unknown} are not settings of the "
                           f"{model} model; it takes {sorted(accepted)}")


def setup(args: argparse.Namespace, cfg: dict) -> Experiment:
    """The :class:`Experiment` ``args`` describe."""
    from ser_tf.papers.cnn_family.corpora import load_pooled
    from ser_tf.papers.cnn_family.folds import SPLIT
    from ser_tf.papers.cnn_family.hooks import make_after_folds, make_on_fold_done
    from ser_tf.papers.cnn_family.recipes import RECIPES

    hparams = None
    if getattr(args, "hparams", None):
        from ser_tf.tuning.hparams import read_hparams

        hparams = read_hparams(args.hparams)
    manifest = load_pooled(args)
    recipe = RECIPES[args.features]
    shape = recipe.feature_shape()
    model_kwargs = dict(hparams.model) if hparams is not None else {}
    _check_model_kwargs(args.model, model_kwargs, hparams)
    build = model_builder(args.model, shape, args.bn_axis, **model_kwargs)
    snr = [float(v) for v in cfg["awgn_snr_db"]]
    config_extra = {"model": args.model, "features": args.features, "bn_axis": args.bn_axis,
                    "awgn_copies": args.awgn, "awgn_snr_db": snr if args.awgn else None,
                    "label_mapping": LABEL_MAPPING}
    if model_kwargs:  # only then: runs without model settings keep their ids
        config_extra["model_kwargs"] = model_kwargs
    experiment = Experiment(
        manifest=manifest, recipe=recipe, build_model=build,
        fit=fit_config(args, cfg, hparams), paper_split=SPLIT, config_extra=config_extra)
    if args.awgn:
        experiment.source = _noisy_source_factory(args, manifest, recipe, snr)
    quiet = bool(getattr(args, "quiet", False))
    export_name = None if args.no_export else f"{PAPER}-{args.model}-{args.features}"
    snrs = list(getattr(args, "noise_eval", None) or [])
    hooks = dict(build=build, recipe=recipe, manifest=manifest, export_name=export_name,
                 snrs_db=snrs, seed=args.seed, quiet=quiet)
    experiment.on_fold_done = make_on_fold_done(**hooks)
    provenance = None
    if hparams is not None:
        from ser_tf.tuning.hparams import provenance as hparams_provenance

        provenance = hparams_provenance(hparams)
        settings = ", ".join(f"{k}={v}" for k, v in {**hparams.fit, **hparams.model}.items())
        experiment.notes = (f"hyperparameters from {hparams.path}: {settings}",)
    experiment.after_folds = make_after_folds(**hooks, hparams_provenance=provenance)
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


def intercept(args: argparse.Namespace, experiment: Experiment, plan) -> dict | None:
    """``--tune`` replaces training (:mod:`.tune`). A guard: training refuses to start if
    the runner would choose the epoch on the test split (:data:`RUNNER_SELECTS_ON_TEST`;
    the runner keeps best-val for this package's split, which validates apart from its
    test ids)."""
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
