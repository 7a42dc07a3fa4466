"""Attention-FCN experiment: ``ser-tf train attention_fcn --variant 2d --dataset IEMOCAP``.

Two variants (``config.yaml`` beside this file holds their settings):

- ``--variant 2d`` (default): the paper's model (:func:`ser_tf.models.attention_fcn.
  build_attention_fcn_2d`) on the log spectrogram of each whole utterance, batches padded
  to their longest utterance (:class:`ser_tf.training.padded.PaddedFeatureSource`);
  ``--crop SECONDS`` trains and tests on the first SECONDS of each file instead;
  ``--trunk-weights FILE`` starts the five convolutions from saved weights.
- ``--variant 1d``: the student reproduction's 1-D model on the time-averaged 128-band mel
  spectrum; Adam 1e-3, batch 51, 200 epochs.

Corpora, 4 classes (anger, happiness, neutral, sadness): IEMOCAP (excited merged into
happiness), RAVDESS (calm left out) and EMO-DB. Protocols: ``paper`` (stratified random
5-fold, the last epoch kept), ``clean`` and ``speaker`` (epoch chosen on a validation
split). Every fold's result says whether its test predictions collapsed onto one class
(``collapsed``); every fold's model is exported to TFLite (``--no-export`` skips it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ser_tf.experiments import runner
from ser_tf.experiments.common import positive_float, positive_int
from ser_tf.experiments.spec import Experiment, PaperSpec

PAPER = "attention_fcn"
PROG = "python -m ser_tf.papers.attention_fcn"
VARIANTS = ("2d", "1d")
DATASETS = {"IEMOCAP": "IEMOCAP", "RAVDESS": "RAVDESS", "EMODB": "EMODB", "EMO-DB": "EMODB"}
DEFAULT_DATASET = {"2d": "IEMOCAP", "1d": "RAVDESS"}
#: The four classes of every run, in this order.
FOUR_CLASSES = ("anger", "happiness", "neutral", "sadness")
NO_TRANSFER_NOTE = ("The paper's ImageNet-initialised AlexNet trunk is not reproduced: the "
                    "five convolutions start from random weights (give --trunk-weights FILE "
                    "to start from saved ones).")


def add_arguments(parser: argparse.ArgumentParser, cfg: dict) -> None:
    """Attention-FCN's own flags."""
    parser.add_argument("--variant", choices=VARIANTS, default="2d",
                        help="2d: the paper's AlexNet-trunk model on spectrograms; 1d: the "
                             "student reproduction on time-averaged mel spectra (default 2d)")
    parser.add_argument("--dataset", type=str.upper, choices=sorted(DATASETS),
                        help="4 classes of IEMOCAP, RAVDESS or EMO-DB (default IEMOCAP for "
                             "2d, RAVDESS for 1d)")
    parser.add_argument("--trunk-weights", metavar="FILE",
                        help="2d: start conv1-conv5 from this saved model or weights file "
                             "(.keras, .h5, .weights.h5)")
    parser.add_argument("--crop", type=positive_float, metavar="SECONDS",
                        help="2d: train and test on the first SECONDS of each file (fixed "
                             "length) instead of whole utterances")
    parser.add_argument("--max-seconds", type=positive_float, metavar="SECONDS",
                        help="2d, whole utterances: keep at most the first SECONDS of each "
                             "(bounds a batch's memory; default: everything)")
    parser.add_argument("--lam", type=float, help="λ of the attention (default 0.3 for 2d, "
                                                  "0.8 for 1d)")
    parser.add_argument("--epochs", type=positive_int,
                        help=f"default {cfg['2d']['epochs']} (2d), {cfg['1d']['epochs']} (1d)")
    parser.add_argument("--batch-size", type=positive_int,
                        help=f"default {cfg['2d']['batch_size']} (2d), "
                             f"{cfg['1d']['batch_size']} (1d)")
    parser.add_argument("--input-scale", choices=("power", "db"), default="power",
                        help="1d: the mel spectrum as power (the student's, default) or in "
                             "dB before the mean over frames (ours: the mean log-mel spectrum)")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the TFLite export of every fold")
    if hasattr(parser, "add_check"):
        parser.add_check(check_arguments)


def check_arguments(args: argparse.Namespace) -> str | None:
    if args.variant == "1d":
        for flag in ("trunk_weights", "crop", "max_seconds"):
            if getattr(args, flag, None) is not None:
                return f"argument --{flag.replace('_', '-')}: only for --variant 2d"
    elif getattr(args, "input_scale", "power") != "power":
        return "argument --input-scale: only for --variant 1d"
    if args.crop is not None and args.max_seconds is not None:
        return "argument --max-seconds: not with --crop (crops have a fixed length)"
    return None


def four_class_manifest(manifest):
    """The utterances of :data:`FOUR_CLASSES`, with that label set (in that order)."""
    from ser_tf.data.manifest import Manifest

    missing = [label for label in FOUR_CLASSES if label not in manifest.labels]
    if missing:
        raise ValueError(f"{manifest.corpus} has no classes {missing}")
    kept = [u for u in manifest if u.label in FOUR_CLASSES]
    return Manifest(manifest.corpus, FOUR_CLASSES, kept, skipped=list(manifest.skipped))


def load_four_classes(corpus: str, data_dir=None, on_bad_audio: str = "fail"):
    from ser_tf.data import load_manifest

    # IEMOCAP: excited counted as happiness (5531 utterances); RAVDESS: calm is its own
    # class (and so left out), not merged into neutral.
    options = {"IEMOCAP": {"merge_excited": True}, "RAVDESS": {"merge_calm": False}}
    return four_class_manifest(load_manifest(corpus, data_dir, on_bad_audio=on_bad_audio,
                                             **options.get(corpus, {})))


def fit_config(args: argparse.Namespace, settings: dict):
    from ser_tf.training.classifier import FitConfig

    # paper: the last epoch (the test fold is only watched); clean / speaker: the epoch
    # with the lowest validation loss.
    checkpoint = "last" if args.protocol == "paper" else "best-val"
    return FitConfig(epochs=args.epochs or settings["epochs"],
                     batch_size=args.batch_size or settings["batch_size"],
                     learning_rate=settings["learning_rate"], checkpoint=checkpoint,
                     monitor=settings["monitor_clean"], seed=args.seed,
                     deterministic=args.deterministic, jit_compile=settings["jit_compile"])


def _trunk_source(path) -> dict | None:
    if path is None:
        return None
    from ser_tf.util.jsonio import content_hash

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--trunk-weights {path}: no such file")
    return {"file": path.name, "sha256": content_hash(path)}


def setup(args: argparse.Namespace, cfg: dict) -> Experiment:
    """The :class:`Experiment` ``args`` describe."""
    from ser_tf.papers.attention_fcn.folds import SPLIT

    corpus = DATASETS[args.dataset or DEFAULT_DATASET[args.variant]]
    settings = cfg[args.variant]
    lam = settings["lam"] if args.lam is None else float(args.lam)
    manifest = load_four_classes(corpus, args.data_dir, args.on_bad_audio)
    fit = fit_config(args, settings)
    make = _setup_2d if args.variant == "2d" else _setup_1d
    experiment = make(args, cfg, settings, manifest, fit, lam)
    experiment.paper_split = SPLIT
    return experiment


def _setup_2d(args, cfg, settings, manifest, fit, lam) -> Experiment:
    from ser_tf.models.attention_fcn import build_attention_fcn_2d, load_trunk_weights
    from ser_tf.papers.attention_fcn import recipes

    bins = recipes.RECIPE.feature_shape()[1]
    trunk = _trunk_source(args.trunk_weights)

    def builder(frames, start_from_trunk=True, lengths_input=None):
        def build(num_classes):
            model = build_attention_fcn_2d(num_classes, (frames, bins), lam=lam,
                                           dropout=settings["dropout"],
                                           lengths_input=lengths_input)
            if args.trunk_weights and start_from_trunk:
                load_trunk_weights(model, args.trunk_weights)
            return model
        return build

    # The exported models get each fold's trained weights: no trunk file needed there.
    max_frames = None if args.max_seconds is None else int(round(100 * args.max_seconds))
    name = f"attention_fcn-{manifest.corpus.lower()}-2d"
    if args.crop is not None:
        recipe = recipes.crop_recipe(args.crop)
        frames = recipe.feature_shape()[0]
        source, build = None, builder(frames)
        plan = _ExportPlan(recipe, builder(frames, False), name)
        extra = {}
    else:
        recipe, build = recipes.UTTERANCE_RECIPE, builder(None)
        plan = _PaddedExportPlan(builder, name)
        # Runs before this export existed took a 3 s crop without lengths: another id.
        extra = {"tflite_input": "whole utterances, padded, with lengths"}

        def source(cache_dir, quiet):
            from ser_tf.training.padded import PaddedFeatureSource, extract_utterance_features

            # IEMOCAP's spectrograms (~2 GB) stay on disk, read per batch.
            features = extract_utterance_features(manifest, recipe, cache_dir,
                                                  load=manifest.corpus != "IEMOCAP",
                                                  progress=not quiet)
            return PaddedFeatureSource(features, max_frames=max_frames)

    hooks = _Hooks(args, cfg, manifest, "2d", plan)
    return Experiment(
        manifest=manifest, recipe=recipe, build_model=build, fit=fit, source=source,
        config_extra={"variant": "2d", "lam": lam, "dropout": settings["dropout"],
                      "crop_seconds": args.crop, "max_frames": max_frames,
                      "trunk_weights": trunk, **extra},
        on_fold_done=hooks.on_fold_done, after_folds=hooks.after_folds,
        notes=() if trunk else (NO_TRANSFER_NOTE,))


def _setup_1d(args, cfg, settings, manifest, fit, lam) -> Experiment:
    from ser_tf.models.attention_fcn import build_attention_fcn_1d
    from ser_tf.papers.attention_fcn.recipes import RECIPES_1D

    scale = getattr(args, "input_scale", "power")
    recipe = RECIPES_1D[scale]
    bins = int(recipe.frontend["num_mel_bins"])

    def build(num_classes):
        return build_attention_fcn_1d(num_classes, bins, lam=lam)

    def source(cache_dir, quiet):
        from ser_tf.training.padded import extract_utterance_features, mean_over_time
        from ser_tf.training.sources import CachedFeatureSource

        return CachedFeatureSource(mean_over_time(extract_utterance_features(
            manifest, recipe, cache_dir, progress=not quiet)))

    hooks = _Hooks(args, cfg, manifest, "1d",
                   _ExportPlan(recipe, build, f"attention_fcn-{manifest.corpus.lower()}-1d"))
    # The power run's config (and id) is the one it had before --input-scale existed.
    described = {"power": "mel power, mean over time", "db": "mel dB, mean over time"}
    return Experiment(
        manifest=manifest, recipe=recipe, build_model=build, fit=fit, source=source,
        config_extra={"variant": "1d", "lam": lam, "input": described[scale]},
        on_fold_done=hooks.on_fold_done, after_folds=hooks.after_folds)


class _ExportPlan:
    """What a fold's TFLite export takes: the run's own features (the 1-D mean spectra, or
    the fixed-length crops of ``--crop``), the model built for them, their recipe."""

    input_note = None

    def __init__(self, recipe, build_model, name):
        self.recipe, self.build_model, self.name = recipe, build_model, name

    def features(self, feature_set):
        # The 1-D run's CachedFeatureSource holds its FeatureSet; a --crop run's source is
        # the FeatureSet itself.
        return getattr(feature_set, "feature_set", feature_set)


class _PaddedExportPlan(_ExportPlan):
    """Whole-utterance 2-D runs: the exported model takes ``features`` (frames fixed at
    :func:`~ser_tf.papers.attention_fcn.export.export_frames` of the corpus) and
    ``lengths``, and masks the padding as the trained model does, so it is scored on the
    whole test utterances the Keras scores are of."""

    def __init__(self, builder, name):
        self._builder, self.name = builder, name
        self.recipe = self.build_model = self.input_note = None

    def features(self, feature_set):
        from ser_tf.papers.attention_fcn import recipes
        from ser_tf.papers.attention_fcn.export import export_frames

        frames = export_frames(int(feature_set.lengths(feature_set.ids).max()))
        self.recipe = recipes.crop_recipe(frames / 100)
        self.build_model = self._builder(frames, False, lengths_input=True)
        self.input_note = (f"whole test utterances, zero-padded at the end to {frames} "
                           "frames with their lengths: the exported model masks the padding "
                           "as the Keras model does")
        return feature_set.fixed_length(frames)


class _Hooks:
    """What runs when a fold ends (collapse flag, TFLite export) and when all have."""

    def __init__(self, args, cfg, manifest, variant, plan: _ExportPlan):
        self.args, self.manifest, self.variant = args, manifest, variant
        self.share = float(cfg["collapse_share"])
        self.plan = plan

    def _export(self, work_dir, folds, feature_set, every: bool):
        from ser_tf.papers.attention_fcn import export

        features = self.plan.features(feature_set)
        call = export.export_all_folds if every else export.export_fold
        return call(work_dir, folds, features, self.plan.build_model, self.plan.recipe,
                    variant=self.variant, name=self.plan.name, quiet=self.args.quiet)

    def on_fold_done(self, work_dir, fold, feature_set, result):
        from ser_tf.export.evaluate import current_fold_export
        from ser_tf.papers.attention_fcn.collapse import flag_fold

        flag_fold(work_dir, fold, result, self.manifest.labels, self.share)
        # Also called for every finished fold when a run resumes: skip what is done.
        if not self.args.no_export and current_fold_export(work_dir, fold) is None:
            self._export(work_dir, fold, feature_set, every=False)
        if self.variant == "2d" and not self.args.no_export:
            self._keep_explain_model(work_dir, fold)

    def _keep_explain_model(self, work_dir, fold):
        """The fold's explain model (float16) while its weights are here: the per-class
        figure and the shipped explain model can then be made after the weights are gone
        (:func:`ser_tf.papers.attention_fcn.figures.ensure_explain_model`)."""
        from ser_tf.papers.attention_fcn.explain_models import (FinishedRun,
                                                                ensure_explain_model,
                                                                stored_explain_model)
        from ser_tf.training.rundir import RunDir
        from ser_tf.util.jsonio import read_json
        from ser_tf.util.status import fold_label, step

        run = RunDir(Path(work_dir))
        config = read_json(run.config)
        if not run.fold(fold).weights.is_file() or stored_explain_model(run.fold(fold), config):
            return
        finished = FinishedRun(Path(work_dir), Path(work_dir).name[: -len(".work")], config,
                               [fold])
        with step(f"{fold_label(fold)}: explain model (α as a second output)",
                  quiet=self.args.quiet):
            ensure_explain_model(finished, fold)

    def after_folds(self, work_dir, folds, feature_set, results):
        from ser_tf.papers.attention_fcn.collapse import collapse_summary, flag_fold

        for fold, result in zip(folds, results):
            flag_fold(work_dir, fold, result, self.manifest.labels, self.share)
        details = {"collapse": collapse_summary(results, self.share)}
        if not self.args.no_export:
            details["tflite"] = self._export(work_dir, folds, feature_set, every=True)
            if self.plan.input_note:
                details["tflite"]["input"] = self.plan.input_note
        return details, None


SPEC = PaperSpec(
    name=PAPER, title="Attention FCN (Zhang et al., APSIPA ASC 2018)",
    description="Attention-based fully convolutional network (Zhang et al., APSIPA ASC "
                "2018; --variant 2d) and a student's 1-D reproduction (--variant 1d), 4 "
                "classes of IEMOCAP, RAVDESS or EMO-DB.",
    package="ser_tf.papers.attention_fcn", setup=setup, add_arguments=add_arguments,
    protocols=("paper", "clean", "speaker"), default_protocol="clean", default_seed=42)


build_parser, plan, run, main = runner.commands(SPEC, PROG)
