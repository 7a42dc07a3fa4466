"""TIM-Net experiment: ``ser-tf train timnet --dataset EMODB`` (or
``python -m ser_tf.experiments.timnet``).

Defaults are the authors' released script (``config.yaml`` beside this file): 39 MFCCs
at 22 050 Hz (recipe ``timnet-<CORPUS>``), 8 temporal-aware blocks (10 for IEMOCAP), Adam
1e-3 with betas 0.93 / 0.98, batch 64, label smoothing 0.1, 500 epochs, 10 folds.

Protocols and model selection:

- ``--protocol clean`` (default): stratified folds; ``--checkpoint best-val`` (default)
  chooses the epoch on a validation split of the training folds.
- ``--protocol paper``: the authors' ``KFold(10, shuffle=True)`` with the README's seed
  per corpus; validation = test fold, so ``best-val`` means choosing on the test fold, as
  the published numbers did (optimistic, and the record says so). ``--checkpoint last``
  keeps the last epoch, like the authors' corrected figures.
- ``--checkpoint paper`` under any protocol: selection on the test fold (optimistic).

``--features FILE.npy`` trains on the authors' pre-extracted MFCC file instead of audio
(:mod:`ser_tf.papers.timnet.authors_features`); it has no speakers, so no ``speaker`` protocol.

Besides the run record, every run writes the TFLite scores of every fold (float32,
float16, dynamic-range and full-integer int8; ``--no-export`` skips them) and ``tsne.png``:
one t-SNE panel per fold of the fused embedding of its test utterances by that fold's
model (as the paper's Fig. 3; the folds' models share no feature space). Both are computed
when each fold ends (``fold_XX/tflite.json``, ``fold_XX/embedding.npz``), so a run resumed
on another machine needs no weights files from the earlier sessions.

``--compounded-smoothing`` (``--protocol paper`` only) trains on the targets of the code
of the paper's time, smoothed again in every fold (an ablation:
:mod:`ser_tf.papers.timnet.compounded_smoothing`).

``--window SECONDS`` sets the input length (default: TIM-Net's sample count per corpus;
another length is another recipe, so another run id). ``--ship`` (the same flags) trains
nothing of the cross-validation: it ships the deployable model of the finished ``speaker``
run (:mod:`ser_tf.papers.timnet.ship`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from ser_tf.experiments import runner
from ser_tf.experiments.common import non_negative_int, positive_int
from ser_tf.experiments.deploy_flags import add_deploy_arguments
from ser_tf.experiments.spec import Experiment, PaperSpec

PAPER = "timnet"
CONFIG = Path(__file__).resolve().parent / "config.yaml"
PROG = "python -m ser_tf.experiments.timnet"
DATASETS = ("CASIA", "EMODB", "EMOVO", "IEMOCAP", "RAVDESS", "SAVEE")
CHECKPOINTS = ("last", "best-val", "paper")
_SELECTION_WARNING = ("Checkpoint 'paper': the epoch was chosen on the test fold itself; "
                      "these scores are optimistic and not comparable with 'best-val' or "
                      "'last'.")


def load_config(path=CONFIG) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def add_arguments(parser: argparse.ArgumentParser, cfg: dict) -> None:
    """TIM-Net's own flags."""
    parser.add_argument("--dataset", type=str.upper, default="EMODB", choices=DATASETS,
                        help="corpus (default EMODB)")
    parser.add_argument("--features", metavar="FILE.npy",
                        help="train on the authors' pre-extracted MFCC file (a pickled dict "
                             "with 'x' and 'y') instead of the corpus audio")
    parser.add_argument("--feature-labels", metavar="A,B,...",
                        help="class of each one-hot column of --features (ser_tf names; "
                             "default: the authors' order for --dataset)")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best-val",
                        help="which epoch's weights are tested: last; best-val (best on the "
                             "validation split; the test fold under --protocol paper); "
                             "paper (best on the test fold: optimistic). Default best-val")
    parser.add_argument("--check-every", type=positive_int, default=1, metavar="N",
                        help="validate and evaluate the selection criterion every N epochs "
                             "(default 1); the epochs between skip validation")
    parser.add_argument("--patience", type=positive_int, default=None,
                        help="stop a fold after this many checks without improvement")
    parser.add_argument("--min-epochs", type=non_negative_int, default=0,
                        help="no selection or early stop before this epoch")
    parser.add_argument("--epochs", type=positive_int, default=cfg["epochs"])
    parser.add_argument("--batch-size", type=positive_int, default=cfg["batch_size"])
    parser.add_argument("--blocks", type=positive_int, default=None, dest="n_blocks",
                        help=f"temporal-aware blocks per stream (default {cfg['n_blocks']}, "
                             f"{cfg['n_blocks_iemocap']} for IEMOCAP)")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the TFLite export of every fold at the end of the run")
    parser.add_argument("--window", type=_window_seconds, default=None, metavar="SECONDS",
                        help="model input length in seconds at 22 050 Hz (centre pad or "
                             "crop), instead of TIM-Net's per-corpus sample count; e.g. 2.39 "
                             "for the 2.39 s trimmed RAVDESS copy (a new run id)")
    parser.add_argument("--compounded-smoothing", action="store_true",
                        help="ablation (--protocol paper only): train fold k on the targets "
                             "the code of the paper's time had, smoothed once per fold so "
                             "far that trained on them (the published runs' bug, fixed "
                             "upstream in August 2023); another run id")
    add_deploy_arguments(parser, ship_dest=True)
    if hasattr(parser, "add_check"):
        parser.add_check(check_arguments)


def _window_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 60.0:
        raise argparse.ArgumentTypeError(f"must be seconds in [0.1, 60], got {text!r}")
    return value


def check_arguments(args: argparse.Namespace) -> str | None:
    """Flags that need the corpus audio cannot go with ``--features``; compounded smoothing
    is a property of the authors' fold loop, so of ``--protocol paper`` only."""
    if getattr(args, "compounded_smoothing", False):
        if args.protocol != "paper":
            return ("argument --compounded-smoothing: the code of the paper's time smoothed "
                    "again in each fold of its own split; use it with --protocol paper")
        if getattr(args, "ship", False):
            return "argument --compounded-smoothing: an ablation of the cross-validation; "\
                   "--ship ships the speaker run's model"
    if getattr(args, "features", None) is None:
        return None
    for flag, given in (("--ship", args.ship), ("--window", args.window is not None)):
        if given:
            return (f"argument {flag}: needs the corpus audio (speaker ids, recordings); "
                    "--features files have neither")
    return None


def _data(args, corpus: str):
    """``(manifest, feature_set or None, feature source for the config)``."""
    if args.features is None:
        from ser_tf.data import load_manifest

        options = {"merge_calm": False} if corpus == "RAVDESS" else {}  # TIM-Net: 8 classes
        return load_manifest(corpus, args.data_dir, on_bad_audio=args.on_bad_audio,
                             **options), None, None
    from ser_tf.papers.timnet.authors_features import load_timnet_features

    if args.protocol == "speaker":
        raise SystemExit("--features: the authors' MFCC files carry no speaker ids, so the "
                         "speaker protocol is impossible; use --protocol clean or paper")
    columns = args.feature_labels.split(",") if args.feature_labels else None
    manifest, feature_set = load_timnet_features(args.features, corpus, column_labels=columns)
    source = {"file": Path(args.features).name, "sha256": feature_set.stats["sha256"],
              "column_labels": feature_set.stats["column_labels"]}
    return manifest, feature_set, source


def setup(args: argparse.Namespace, cfg: dict) -> Experiment:
    """The :class:`Experiment` ``args`` describe."""
    from ser_tf.features.recipes import get_recipe
    from ser_tf.models.timnet import build_timnet
    from ser_tf.papers.timnet.folds import PAPER_SEEDS, SPLIT
    from ser_tf.training.classifier import FitConfig

    problem = check_arguments(args)
    if problem:  # what the parser refuses, refused for a Namespace built by hand too
        raise ValueError(problem)
    corpus = args.dataset
    n_blocks = args.n_blocks if args.n_blocks is not None else \
        cfg["n_blocks_iemocap" if corpus == "IEMOCAP" else "n_blocks"]
    manifest, feature_set, source = _data(args, corpus)
    if getattr(args, "window", None) is None:
        recipe = get_recipe(f"timnet-{corpus}")
    else:  # another length: another recipe config, so another run id (default runs keep theirs)
        from ser_tf.papers.timnet.recipes import window_recipe

        recipe = window_recipe(corpus, args.window)
    shape = (tuple(feature_set.features.shape[1:]) if feature_set is not None
             else recipe.feature_shape())
    # Under the paper protocol the validation ids are the test ids: best-val IS test selection.
    checkpoint = "paper" if args.protocol == "paper" and args.checkpoint == "best-val" \
        else args.checkpoint
    compounded = bool(getattr(args, "compounded_smoothing", False))
    fit = FitConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=cfg["learning_rate"],
        beta_1=cfg["beta_1"], beta_2=cfg["beta_2"], epsilon=cfg["epsilon"], loss=cfg["loss"],
        # Compounded: the targets come smoothed from the source; the loss must not smooth.
        label_smoothing=0.0 if compounded else cfg["label_smoothing"], checkpoint=checkpoint,
        monitor=cfg["monitor_paper"] if checkpoint == "paper" else cfg["monitor_clean"],
        check_every=args.check_every, patience=args.patience, min_epochs=args.min_epochs,
        seed=PAPER_SEEDS[corpus] if args.seed is None else args.seed,
        deterministic=args.deterministic, jit_compile=cfg["jit_compile"])

    def build(num_classes):
        return build_timnet(num_classes, shape, filters=cfg["filters"],
                            kernel_size=cfg["kernel_size"], n_blocks=n_blocks,
                            dropout=cfg["dropout"])

    warning = _SELECTION_WARNING if checkpoint == "paper" and args.protocol != "paper" else None
    name = f"timnet-{corpus.lower()}-mfcc"

    def on_fold_done(work_dir, fold, features, result):
        features = getattr(features, "feature_set", features)  # a source: its features
        # While this fold's weights are on disk: keep what the run's end needs (idempotent,
        # as the runner also calls it for finished folds when a run resumes).
        from ser_tf.models.timnet import embedding_model
        from ser_tf.reporting.embeddings import ensure_fold_embedding

        if not args.no_export:
            from ser_tf.export.folds import export_fold

            export_fold(work_dir, fold, features, build, recipe, name=name, quiet=args.quiet)
        ensure_fold_embedding(work_dir, fold, features, build, embedding_model,
                              quiet=args.quiet)

    def after_folds(work_dir, folds, features, results):
        from ser_tf.models.timnet import embedding_model
        from ser_tf.reporting.embeddings import write_tsne

        features = getattr(features, "feature_set", features)  # a source: its features
        details = {"checkpoint_warning": warning} if warning else {}
        if not args.no_export:
            from ser_tf.export.folds import export_all_folds

            details["tflite"] = export_all_folds(work_dir, folds, features, build, recipe,
                                                 name=name, quiet=args.quiet)
        tsne = Path(work_dir) / "tsne.png"
        details["tsne"] = write_tsne(work_dir, folds, features, build, embedding_model, tsne,
                                     seed=fit.seed, quiet=args.quiet,
                                     title=f"TIM-Net {corpus}: fused embedding of each fold's "
                                           f"test utterances ({args.protocol}, {checkpoint})")
        return details, ({"tsne.png": tsne} if details["tsne"]["file"] else {})

    config_extra = {"checkpoint": checkpoint, "n_blocks": n_blocks, "filters": cfg["filters"],
                    "kernel_size": cfg["kernel_size"], "dropout": cfg["dropout"],
                    "input_shape": list(shape), "features": source}
    notes = (warning,) if warning else ()
    training_source = None
    if compounded:
        config_extra["compounded_smoothing"] = cfg["label_smoothing"]
        training_source = _compounded_source(manifest, recipe, feature_set, args,
                                             cfg["label_smoothing"])
        notes += ("Ablation --compounded-smoothing: fold k trains on targets smoothed once "
                  "per fold so far that trained on them, as the code of the paper's time "
                  "did (not the fixed code).",)
    return Experiment(
        manifest=manifest, recipe=recipe, build_model=build, fit=fit, paper_split=SPLIT,
        feature_set=None if compounded else feature_set, source=training_source,
        fingerprint_data=source is None, config_extra=config_extra,
        on_fold_done=on_fold_done, after_folds=after_folds, notes=notes)


def _compounded_source(manifest, recipe, feature_set, args, factor: float):
    """The runner's ``(cache_dir, quiet) -> source`` for ``--compounded-smoothing``: the
    run's features, and the run's folds (the same call as the runner's plan) to count how
    often each fold's training targets were smoothed."""
    def make(cache_dir, quiet):
        from ser_tf.features.cache import extract_features
        from ser_tf.papers.timnet.compounded_smoothing import CompoundedSmoothingSource
        from ser_tf.papers.timnet.folds import SPLIT
        from ser_tf.training.protocols import make_folds

        features = feature_set if feature_set is not None else extract_features(
            manifest, recipe, cache_dir, progress=not quiet)
        folds = make_folds(manifest, "paper", n_folds=args.folds, seed=args.fold_seed,
                           paper_split=SPLIT)
        return CompoundedSmoothingSource(features, folds, factor)
    return make


def _ship(args, experiment, plan):
    """``--ship`` replaces training (:mod:`ser_tf.papers.timnet.ship`)."""
    from ser_tf.papers.timnet.ship import ship

    return ship(SPEC, args, experiment, plan)


SPEC = PaperSpec(
    name=PAPER, title="TIM-Net (Ye et al., ICASSP 2023)",
    description="TIM-Net (Ye et al., ICASSP 2023) on CASIA, EMODB, EMOVO, IEMOCAP, RAVDESS "
                "(8 classes, calm kept) or SAVEE. --seed defaults to the corpus's seed of the "
                "TIM-Net README.",
    package="ser_tf.papers.timnet", setup=setup, add_arguments=add_arguments,
    protocols=("paper", "clean", "speaker"), default_protocol="clean", intercept=_ship)


build_parser, plan, run, main = runner.commands(SPEC, PROG)
