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

The report's two pretrained systems join as ``--model vgg16_mel`` (ImageNet VGG16 on the mel
image, ``--weights imagenet|PATH|none``, ``--trainable-blocks N``) and ``--model wav2vec2``
(wav2vec2 fine-tuned on the 3 s 16 kHz waveform through a
:class:`~ser_tf.training.sources.WaveformSource`, ``--pretrained HUB-NAME|PATH|none``,
``--train-feature-encoder``); :mod:`.pretrained` resolves those flags before training.
The three CNN models' run configs do not change (their ids are pinned by the tests).
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
#: The report's pretrained systems (:mod:`.pretrained`).
PRETRAINED_MODELS = ("vgg16_mel", "wav2vec2")
#: The issue's model names -> the package's (the run config keeps the package's).
MODEL_ALIASES = {"2cnn": "parallel", "2cnn_transformer": "transformer", "vgg16": "vgg16_mel"}
FEATURES = ("mfcc", "mel")
#: ``--features`` of each pretrained model: the mel image, the raw waveform.
PRETRAINED_FEATURES = {"vgg16_mel": "mel", "wav2vec2": "waveform"}
WAV2VEC2_DEFAULT = "facebook/wav2vec2-base"
BN_AXES = ("time", "channels")
RUNNER_SELECTS_ON_TEST = (
    "protocol 'paper' of cnn_family keeps a validation tenth for early stopping and scores "
    "the test tenth once, but this run would choose its epoch on the TEST split. Refusing "
    "to choose on the test split: use --protocol clean.")


def model_name(text: str) -> str:
    """argparse type of ``--model``: a model or an alias of one -> the model's name."""
    name = MODEL_ALIASES.get(text.strip().lower(), text.strip().lower())
    if name not in (*MODELS, *PRETRAINED_MODELS):
        accepted = ", ".join([*MODELS, *PRETRAINED_MODELS, *MODEL_ALIASES])
        raise argparse.ArgumentTypeError(f"expected one of {accepted}, got {text!r}")
    return name


def add_arguments(parser: argparse.ArgumentParser, cfg: dict) -> None:
    """The CNN family's own flags (then the pooled corpora's)."""
    rates = cfg["learning_rate"]
    parser.add_argument("--model", type=model_name, default="transformer",
                        metavar="{cnn,2cnn,2cnn_transformer}",
                        help="cnn: one CNN block; 2cnn (or parallel): two CNN blocks; "
                             "2cnn_transformer (or transformer): two CNN blocks and a "
                             "Transformer encoder in parallel (default); the report's "
                             "pretrained systems: vgg16_mel (ImageNet VGG16 on mel images) "
                             "and wav2vec2 (wav2vec2 fine-tuned on the 16 kHz waveform)")
    parser.add_argument("--features", "--input", dest="features", choices=FEATURES,
                        default=None,
                        help="mfcc: 128 MFCCs x 94 frames (default); mel: 128-band mel "
                             "spectrogram x 188 frames (vgg16_mel reads mel, wav2vec2 the "
                             "waveform: not for them)")
    parser.add_argument("--awgn", type=non_negative_int, default=0, metavar="N",
                        help="N noisy copies of every training utterance, SNR uniform in "
                             f"{cfg['awgn_snr_db']} dB (the report: 2); 0 = none (default)")
    parser.add_argument("--bn-axis", choices=BN_AXES, default="time",
                        help="time: BatchNorm over the frame axis, as the original code did "
                             "by accident (default; gives the published parameter counts); "
                             "channels: the usual per-channel BatchNorm")
    parser.add_argument("--learning-rate", type=positive_float,
                        help="Adam's rate (default: " + ", ".join(
                            f"{m} {rates[m]:g}" for m in (*MODELS, *PRETRAINED_MODELS)
                            if m in rates) + ")")
    parser.add_argument("--weights", metavar="imagenet|PATH|none",
                        help="vgg16_mel only: VGG16's ImageNet weights (default imagenet: "
                             "Keras' vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5, "
                             "downloaded into ~/.keras/models if missing), a local copy of "
                             "that file, or none (random initialisation: not comparable "
                             "with the report)")
    parser.add_argument("--trainable-blocks", type=non_negative_int, metavar="N",
                        help="vgg16_mel only: VGG16's last N of 5 convolution blocks train, "
                             "the others stay frozen (default 5: all; 0: the head only)")
    parser.add_argument("--pretrained", metavar="HUB-NAME|PATH|none",
                        help=f"wav2vec2 only: the pretrained encoder (default "
                             f"{WAV2VEC2_DEFAULT}, from the HuggingFace cache or downloaded), "
                             "a save_pretrained folder, or none (random initialisation: not "
                             "comparable with the report)")
    parser.add_argument("--train-feature-encoder", action="store_true",
                        help="wav2vec2 only: also train its convolutional feature encoder "
                             "(frozen by default, as in HuggingFace's fine-tuning)")
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
        parser.add_check(_check_model_flags)


def _check_model_flags(args: argparse.Namespace) -> str | None:
    """The pretrained models' flags against ``--model``; fills in ``--features`` (mfcc for
    the CNN models, the pretrained model's own input otherwise)."""
    model = getattr(args, "model", "transformer")
    only = {"weights": ("--weights", "vgg16_mel"), "trainable_blocks":
            ("--trainable-blocks", "vgg16_mel"), "pretrained": ("--pretrained", "wav2vec2"),
            "train_feature_encoder": ("--train-feature-encoder", "wav2vec2")}
    for key, (flag, owner) in only.items():
        if getattr(args, key, None) not in (None, False) and model != owner:
            return f"argument {flag}: for --model {owner} only"
    if model in PRETRAINED_MODELS:
        own = PRETRAINED_FEATURES[model]
        if args.features not in (None, own):
            return (f"argument --features/--input: --model {model} reads the "
                    f"{'mel image' if own == 'mel' else '16 kHz waveform'}; leave it out")
        args.features = own
        if getattr(args, "tune", False):
            return f"argument --tune: the learning-rate search is for the CNN models, not {model}"
        if model == "wav2vec2" and getattr(args, "awgn", 0) > 1:
            return ("argument --awgn: wav2vec2 adds the noise on the fly, a new draw every "
                    "epoch (--awgn 1 turns it on); N stored copies are for the other models")
        if getattr(args, "trainable_blocks", None) is not None and args.trainable_blocks > 5:
            return "argument --trainable-blocks: VGG16 has 5 blocks"
    elif args.features is None:
        args.features = "mfcc"
    return None


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

    if model in PRETRAINED_MODELS:
        from ser_tf.papers.cnn_family.pretrained import builder_arguments

        accepted = builder_arguments(model)
    else:
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
    model_kwargs = dict(hparams.model) if hparams is not None else {}
    _check_model_kwargs(args.model, model_kwargs, hparams)
    quiet = bool(getattr(args, "quiet", False))
    snr = [float(v) for v in cfg["awgn_snr_db"]]
    if args.model in PRETRAINED_MODELS:
        # Resolved before the corpus is read: a missing file or an offline download fails
        # at once, with one message.
        recipe, build, pretrained_config = _pretrained_setup(args, model_kwargs, quiet)
    else:
        recipe = RECIPES[args.features]
        build = model_builder(args.model, recipe.feature_shape(), args.bn_axis,
                              **model_kwargs)
    manifest = load_pooled(args)
    if args.model in PRETRAINED_MODELS:
        config_extra = {"model": args.model, "features": args.features, **pretrained_config,
                        "awgn_copies": args.awgn, "awgn_snr_db": snr if args.awgn else None,
                        "label_mapping": LABEL_MAPPING}
    else:
        config_extra = {"model": args.model, "features": args.features,
                        "bn_axis": args.bn_axis, "awgn_copies": args.awgn,
                        "awgn_snr_db": snr if args.awgn else None,
                        "label_mapping": LABEL_MAPPING}
    if model_kwargs:  # only then: runs without model settings keep their ids
        config_extra["model_kwargs"] = model_kwargs
    experiment = Experiment(
        manifest=manifest, recipe=recipe, build_model=build,
        fit=fit_config(args, cfg, hparams), paper_split=SPLIT, config_extra=config_extra)
    if args.model == "wav2vec2":
        experiment.source = _waveform_source_factory(args, manifest, recipe, snr)
    elif args.awgn:
        experiment.source = _noisy_source_factory(args, manifest, recipe, snr)
    export_name = None if args.no_export else f"{PAPER}-{args.model}-{args.features}"
    if args.model == "wav2vec2" and export_name is not None:
        # The per-fold export scores four variants on cached features; the wav2vec2
        # classifier converts (float32 / float16, builtin ops) but its int8 variants
        # quantise the raw waveform: README, "The pretrained models".
        export_name = None
        experiment.notes = ("wav2vec2: no per-fold TFLite export (the model converts to "
                            "float32 / float16 TFLite by hand: README, 'The pretrained "
                            "models')",)
    snrs = list(getattr(args, "noise_eval", None) or [])
    hooks = dict(build=build, recipe=recipe, manifest=manifest, export_name=export_name,
                 snrs_db=snrs, seed=args.seed, quiet=quiet)
    experiment.on_fold_done = make_on_fold_done(**hooks)
    provenance = None
    if hparams is not None:
        from ser_tf.tuning.hparams import provenance as hparams_provenance

        provenance = hparams_provenance(hparams)
        settings = ", ".join(f"{k}={v}" for k, v in {**hparams.fit, **hparams.model}.items())
        experiment.notes = (*experiment.notes,
                            f"hyperparameters from {hparams.path}: {settings}")
    experiment.after_folds = make_after_folds(**hooks, hparams_provenance=provenance)
    return experiment


def _pretrained_setup(args, model_kwargs: dict, quiet: bool):
    """``(recipe, build, config entries)`` of ``--model vgg16_mel`` or ``wav2vec2``."""
    from ser_tf.papers.cnn_family import pretrained
    from ser_tf.papers.cnn_family.recipes import LOGMEL, WAVEFORM

    if args.model == "vgg16_mel":
        weights_path, weights = pretrained.resolve_vgg16_weights(args.weights, quiet=quiet)
        blocks = 5 if args.trainable_blocks is None else int(args.trainable_blocks)
        build = pretrained.vgg16_builder(LOGMEL.feature_shape(), weights_path,
                                         trainable_blocks=blocks, **model_kwargs)
        return LOGMEL, build, {"weights": weights, "trainable_blocks": blocks}
    source, identity = pretrained.resolve_wav2vec2(args.pretrained, WAV2VEC2_DEFAULT)
    freeze = not args.train_feature_encoder
    build = pretrained.wav2vec2_builder(WAVEFORM.num_samples(), source,
                                        freeze_feature_encoder=freeze, **model_kwargs)
    return WAVEFORM, build, {"pretrained": identity, "freeze_feature_encoder": freeze}


def _waveform_source_factory(args, manifest, recipe, snr):
    """``(cache_dir, quiet) -> WaveformSource`` of the 3 s windows; with ``--awgn 1``
    white noise at an SNR drawn from ``snr`` on every training waveform, a new draw each
    epoch (seeded by ``--seed``)."""

    def make(cache_dir, quiet):
        from ser_tf.training.sources import WaveformSource, awgn_augmentation

        augment = awgn_augmentation(tuple(snr), seed=args.seed) if args.awgn else None
        return WaveformSource(manifest, recipe, augment=augment)

    return make


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
    refuse_test_selection(plan)
    return None


def refuse_test_selection(plan) -> None:
    """Raise :data:`RUNNER_SELECTS_ON_TEST` if ``plan`` would choose an epoch on test ids:
    a fold validating on its test ids, or the checkpoint policy the runner sets for them."""
    if plan.fit.checkpoint == "paper" or any(fold.selection_on_test for fold in plan.folds):
        from ser_tf.util.errors import UserError

        raise UserError(RUNNER_SELECTS_ON_TEST)


SPEC = PaperSpec(
    name=PAPER, title="CNN family (student report 2023, after Bautista et al. 2022)",
    description="CNN, two parallel CNNs, or two CNNs and a Transformer encoder in parallel "
                "(a student report after Bautista et al., Electronics 2022) on RAVDESS + "
                "SAVEE + TESS + CREMA-D pooled, 7 classes.",
    package="ser_tf.papers.cnn_family", setup=setup, add_arguments=add_arguments,
    protocols=("paper", "clean", "speaker"), default_protocol="paper", default_seed=42,
    intercept=intercept)


build_parser, plan, run, main = runner.commands(SPEC, PROG)
