"""TIM-Net experiment: ``python -m ser_tf.experiments.timnet --dataset EMODB``.

Defaults are the authors' released script (``experiments/timnet/config.yaml``): 39 MFCCs
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
(:mod:`ser_tf.data.timnet_features`); it has no speakers, so no ``speaker`` protocol.

Besides the run record, every run writes the TFLite scores of every fold (float32,
float16, dynamic-range and full-integer int8; ``--no-export`` skips them) and ``tsne.png``:
one t-SNE panel per fold of the fused embedding of its test utterances by that fold's
model (as the paper's Fig. 3; the folds' models share no feature space). Both are computed
when each fold ends (``fold_XX/tflite.json``, ``fold_XX/embedding.npz``), so a run resumed
on another machine needs no weights files from the earlier sessions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

from ser_tf.experiments.common import add_common_arguments, run_cli

PAPER = "timnet"
CONFIG = Path(__file__).resolve().parents[2] / "experiments" / PAPER / "config.yaml"
DATASETS = ("CASIA", "EMODB", "EMOVO", "IEMOCAP", "RAVDESS", "SAVEE")
CHECKPOINTS = ("last", "best-val", "paper")
_SELECTION_WARNING = ("Checkpoint 'paper': the epoch was chosen on the test fold itself; "
                      "these scores are optimistic and not comparable with 'best-val' or "
                      "'last'.")


def load_config(path=CONFIG) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def build_parser() -> argparse.ArgumentParser:
    cfg = load_config()
    parser = argparse.ArgumentParser(
        prog="python -m ser_tf.experiments.timnet",
        description="TIM-Net (Ye et al., ICASSP 2023) on CASIA, EMODB, EMOVO, IEMOCAP, "
                    "RAVDESS (8 classes, calm kept) or SAVEE. --seed defaults to the "
                    "corpus's seed of the TIM-Net README.")
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
    parser.add_argument("--check-every", type=int, default=1, metavar="N",
                        help="validate and evaluate the selection criterion every N epochs "
                             "(default 1); the epochs between skip validation")
    parser.add_argument("--patience", type=int, default=None,
                        help="stop a fold after this many checks without improvement")
    parser.add_argument("--min-epochs", type=int, default=0,
                        help="no selection or early stop before this epoch")
    parser.add_argument("--epochs", type=int, default=cfg["epochs"])
    parser.add_argument("--batch-size", type=int, default=cfg["batch_size"])
    parser.add_argument("--blocks", type=int, default=None, dest="n_blocks",
                        help=f"temporal-aware blocks per stream (default {cfg['n_blocks']}, "
                             f"{cfg['n_blocks_iemocap']} for IEMOCAP)")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the TFLite export of every fold at the end of the run")
    add_common_arguments(parser, default_protocol="clean")
    parser.set_defaults(folds=cfg["folds"], seed=cfg["seed"])
    return parser


def _data(args, corpus: str):
    """``(manifest, feature_set or None, feature source for the config)``."""
    if args.features is None:
        from ser_tf.data import load_manifest

        options = {"merge_calm": False} if corpus == "RAVDESS" else {}  # TIM-Net: 8 classes
        return load_manifest(corpus, args.data_dir, on_bad_audio=args.on_bad_audio,
                             **options), None, None
    from ser_tf.data.timnet_features import load_timnet_features

    if args.protocol == "speaker":
        raise SystemExit("--features: the authors' MFCC files carry no speaker ids, so the "
                         "speaker protocol is impossible; use --protocol clean or paper")
    columns = args.feature_labels.split(",") if args.feature_labels else None
    manifest, feature_set = load_timnet_features(args.features, corpus, column_labels=columns)
    source = {"file": Path(args.features).name, "sha256": feature_set.stats["sha256"],
              "column_labels": feature_set.stats["column_labels"]}
    return manifest, feature_set, source


def _setup(args: argparse.Namespace) -> dict:
    """Everything a run of ``args`` needs, before anything is trained: manifest, features
    (the authors' file) or None, recipe, model builder, fit and ``run_experiment`` keywords."""
    from ser_tf.features.recipes import get_recipe
    from ser_tf.models.timnet import build_timnet
    from ser_tf.training.classifier import FitConfig
    from ser_tf.training.protocols import TIMNET_PAPER_SEEDS

    cfg = load_config()
    corpus = args.dataset
    n_blocks = args.n_blocks if args.n_blocks is not None else \
        cfg["n_blocks_iemocap" if corpus == "IEMOCAP" else "n_blocks"]
    manifest, feature_set, source = _data(args, corpus)
    recipe = get_recipe(f"timnet-{corpus}")
    shape = (tuple(feature_set.features.shape[1:]) if feature_set is not None
             else recipe.feature_shape())
    # Under the paper protocol the validation ids are the test ids: best-val IS test selection.
    checkpoint = "paper" if args.protocol == "paper" and args.checkpoint == "best-val" \
        else args.checkpoint
    fit = FitConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=cfg["learning_rate"],
        beta_1=cfg["beta_1"], beta_2=cfg["beta_2"], epsilon=cfg["epsilon"], loss=cfg["loss"],
        label_smoothing=cfg["label_smoothing"], checkpoint=checkpoint,
        monitor=cfg["monitor_paper"] if checkpoint == "paper" else cfg["monitor_clean"],
        check_every=args.check_every, patience=args.patience, min_epochs=args.min_epochs,
        seed=TIMNET_PAPER_SEEDS[corpus] if args.seed is None else args.seed,
        deterministic=args.deterministic, jit_compile=cfg["jit_compile"])

    def build(num_classes):
        return build_timnet(num_classes, shape, filters=cfg["filters"],
                            kernel_size=cfg["kernel_size"], n_blocks=n_blocks,
                            dropout=cfg["dropout"])

    experiment = dict(
        paper=PAPER, protocol=args.protocol, fit=fit, results_dir=args.results_dir,
        n_folds=args.folds, fold_seed=args.fold_seed, paper_style="timnet",
        fingerprint_data=source is None,
        config_extra={"checkpoint": checkpoint, "n_blocks": n_blocks, "filters": cfg["filters"],
                      "kernel_size": cfg["kernel_size"], "dropout": cfg["dropout"],
                      "input_shape": list(shape), "features": source})
    return dict(manifest=manifest, feature_set=feature_set, recipe=recipe, build=build,
                fit=fit, checkpoint=checkpoint, corpus=corpus, experiment=experiment)


def plan(args: argparse.Namespace):
    """The :class:`ExperimentPlan` (run id, folds, work folder) of the run ``args`` describe;
    nothing is trained."""
    from ser_tf.experiments.runner import plan_experiment

    setup = _setup(args)
    return plan_experiment(setup["manifest"], setup["recipe"], **setup["experiment"])


def run(args: argparse.Namespace) -> dict:
    """Run the experiment described by parsed arguments; returns ``run_experiment``'s dict."""
    from ser_tf.experiments.runner import run_experiment
    from ser_tf.training.seeding import get_strategy

    setup = _setup(args)
    build, recipe, fit = setup["build"], setup["recipe"], setup["fit"]
    checkpoint, corpus = setup["checkpoint"], setup["corpus"]
    warning = _SELECTION_WARNING if checkpoint == "paper" and args.protocol != "paper" else None
    if warning and not args.quiet:
        print(f"NOTE: {warning}")

    def on_fold_done(work_dir, fold, features, result):
        # While this fold's weights are on disk: keep what the run's end needs (idempotent,
        # as run_experiment also calls it for finished folds when a run resumes).
        if not args.no_export:
            from ser_tf.export.evaluate import ensure_fold_export

            ensure_fold_export(work_dir, fold, features, build, recipe=recipe,
                               name=f"timnet-{corpus.lower()}-mfcc")
        ensure_fold_embedding(work_dir, fold, features, build)

    def after_folds(work_dir, folds, features, results):
        details = {"checkpoint_warning": warning} if warning else {}
        if not args.no_export:
            from ser_tf.experiments.lightsernet_export import export_all_folds

            details["tflite"] = export_all_folds(work_dir, folds, features, build, recipe,
                                                 name=f"timnet-{corpus.lower()}-mfcc")
        tsne = Path(work_dir) / "tsne.png"
        details["tsne"] = write_tsne(work_dir, folds, features, build, tsne, seed=fit.seed,
                                     title=f"TIM-Net {corpus}: fused embedding of each fold's "
                                           f"test utterances ({args.protocol}, {checkpoint})")
        return details, ({"tsne.png": tsne} if details["tsne"]["file"] else {})

    return run_experiment(
        setup["manifest"], recipe, build, cache_dir=args.cache_dir,
        strategy=get_strategy(args.strategy), quiet=args.quiet, after_folds=after_folds,
        on_fold_done=on_fold_done, train_only=args.train_folds,
        feature_set=setup["feature_set"], **setup["experiment"])


from ser_tf.training.rundir import EMBEDDING_FILE  # noqa: E402


def store_fold_embedding(work_dir, fold, feature_set, build_model) -> Path:
    """``fold_XX/embedding.npz``: the fused embedding of the fold's test utterances by its
    chosen weights, with their class indices, ids and the weights' sha256. Written when the
    fold ends, so the run's t-SNE does not need the weights to outlive that session."""
    from ser_tf.training.rundir import WEIGHTS_FILE
    from ser_tf.util.jsonio import content_hash
    from ser_tf.models.timnet import embedding_model
    from ser_tf.training.rundir import fold_dir_name

    fold_dir = Path(work_dir) / fold_dir_name(fold)
    model = build_model(len(feature_set.label_names))
    model.load_weights(fold_dir / WEIGHTS_FILE)
    embed = embedding_model(model)
    rows = feature_set.index_of(fold.test_ids)
    x = np.asarray(feature_set.features[rows], np.float32)
    # Plain eager calls: predict() would trace a new function for each fold's model.
    embedding = np.concatenate([np.asarray(embed(x[i:i + 64], training=False))
                                for i in range(0, len(x), 64)])
    path = fold_dir / EMBEDDING_FILE
    tmp = path.with_name(f".{EMBEDDING_FILE}.tmp.npz")
    np.savez_compressed(tmp, embedding=embedding, labels=feature_set.labels[rows],
                        ids=np.asarray(fold.test_ids),
                        weights_sha256=np.asarray(content_hash(fold_dir / WEIGHTS_FILE)))
    tmp.replace(path)  # complete or absent, like the fold's result.json
    return path


def ensure_fold_embedding(work_dir, fold, feature_set, build_model) -> dict:
    """The fold's ``embedding.npz`` contents, (re)computed from its weights when missing or
    stale (other test ids, or weights on disk with another hash); idempotent."""
    from ser_tf.training.rundir import WEIGHTS_FILE
    from ser_tf.util.jsonio import content_hash
    from ser_tf.training.rundir import fold_dir_name

    path = Path(work_dir) / fold_dir_name(fold) / EMBEDDING_FILE
    weights = path.with_name(WEIGHTS_FILE)
    if path.is_file():
        with np.load(path) as stored:
            data = {key: stored[key] for key in stored.files}
        current = list(data["ids"]) == list(fold.test_ids) and (
            not weights.is_file() or str(data.get("weights_sha256")) == content_hash(weights))
        if current:
            return data
    with np.load(store_fold_embedding(work_dir, fold, feature_set, build_model)) as stored:
        return {key: stored[key] for key in stored.files}


def fold_embeddings(work_dir, folds, feature_set,
                    build_model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fused embedding of every fold's test utterances by that fold's chosen weights,
    stacked over folds, their class indices and their fold numbers (1-based), via
    :func:`ensure_fold_embedding` per fold."""
    stored = [ensure_fold_embedding(work_dir, fold, feature_set, build_model) for fold in folds]
    return (np.concatenate([s["embedding"] for s in stored]),
            np.concatenate([s["labels"] for s in stored]),
            np.concatenate([np.full(len(s["labels"]), number)
                            for number, s in enumerate(stored, start=1)]))


def write_tsne(work_dir, folds, feature_set, build_model, path, *, seed: int = 0,
               title: str | None = None) -> dict:
    """``tsne.png`` of :func:`fold_embeddings`, one panel per fold; returns what the record
    says about it.

    The folds' models are different networks whose embeddings share no coordinate system:
    one t-SNE of all folds together separated the folds (ten islands of mixed classes), so
    each fold's test utterances get their own t-SNE, each showing how well that fold's
    model separates the classes."""
    from ser_tf.reporting.plots import TSNE_MIN_SAMPLES, plot_tsne

    from threadpoolctl import threadpool_limits

    x, y, fold_numbers = fold_embeddings(work_dir, folds, feature_set, build_model)
    # A fold with fewer test utterances than t-SNE accepts (tiny corpora) gets no panel,
    # and the record says so, rather than the finished run losing its record.
    numbers, counts = np.unique(fold_numbers, return_counts=True)
    too_small = [int(n) for n, c in zip(numbers, counts) if c < TSNE_MIN_SAMPLES]
    keep = ~np.isin(fold_numbers, too_small)
    about = {"layer": "fused", "points": int(keep.sum()), "dims": int(x.shape[1]),
             "folds": len(folds), "seed": int(seed), "panels": "one t-SNE per fold",
             **({"folds_without_panel": too_small} if too_small else {})}
    if not keep.any():
        return {"file": None, **about}
    # One OpenMP thread: the embedding does not depend on the thread count, and on a busy
    # machine sklearn's spinning OpenMP workers made a 14-point t-SNE take 5 s, not 0.1 s.
    with threadpool_limits(1):
        plot_tsne(x[keep], y[keep], list(feature_set.label_names), path, seed=seed,
                  title=title, groups=fold_numbers[keep], group_title="fold {}")
    return {"file": Path(path).name, **about}


def main(argv=None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
