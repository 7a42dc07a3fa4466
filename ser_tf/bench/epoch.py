"""Where a training epoch's time goes: ``python -m ser_tf.bench.epoch``.

For Light-SERNet and TIM-Net on EMO-DB (fold 0 of the ``paper`` protocol: 9/10 of the
corpus trains, the test fold validates), after ``--warmup`` untimed epochs:

- ``runner``: :func:`ser_tf.training.classifier.train_fold` exactly as a benchmark run
  trains (validation every epoch, per-epoch backup for resuming, checkpoint policy, history
  file, last-epoch predictions), timed by its own ``epoch_seconds``;
- ``fit_and_validation``: the same compiled model in a bare ``model.fit`` with the same
  validation data and no callbacks;
- ``fit_only``: ``model.fit`` on the training data alone.

The differences say what validation and the runner's callbacks cost per epoch. Threads are
TensorFlow's unless ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` are set (the
record says which). The record goes to
``<results-dir>/bench/epoch-<paper>-<corpus>-<YYYY-MM-DD>[-<tag>].json``; run it on an idle
machine (the load average before and after is in the record).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ser_tf.bench.lightsernet import _EpochTimer, _load, _threads, default_data_dir
from ser_tf.util.machine import cpu_info

FORMAT = "ser_tf.bench.epoch/1"
PAPERS = ("lightsernet", "timnet")


def paper_setup(paper: str, manifest):
    """``(recipe, build_model, fit)`` of a paper's benchmark run on ``manifest``'s corpus."""
    from ser_tf.training.classifier import FitConfig

    if paper == "lightsernet":
        from ser_tf.papers.lightsernet import experiment as exp
        from ser_tf.models.lightsernet import build_lightsernet

        cfg, recipe = exp.load_config(), exp.feature_recipe("mfcc", 3.0)
        shape = recipe.feature_shape()
        fit = FitConfig(batch_size=cfg["batch_size"], learning_rate=cfg["learning_rate"],
                        lr_schedule=cfg["lr_schedule"], checkpoint="paper",
                        monitor=cfg["monitor_paper"], seed=cfg["seed"],
                        jit_compile=cfg["jit_compile"], full_batches=cfg["full_batches"])
        return recipe, (lambda n: build_lightsernet(n, shape)), fit
    if paper == "timnet":
        from ser_tf.papers.timnet import experiment as exp
        from ser_tf.features.recipes import get_recipe
        from ser_tf.models.timnet import build_timnet
        from ser_tf.papers.timnet.folds import PAPER_SEEDS

        cfg, recipe = exp.load_config(), get_recipe(f"timnet-{manifest.corpus}")
        shape = recipe.feature_shape()
        fit = FitConfig(batch_size=cfg["batch_size"], learning_rate=cfg["learning_rate"],
                        beta_1=cfg["beta_1"], beta_2=cfg["beta_2"], epsilon=cfg["epsilon"],
                        label_smoothing=cfg["label_smoothing"], checkpoint="paper",
                        monitor=cfg["monitor_paper"], seed=PAPER_SEEDS[manifest.corpus],
                        jit_compile=cfg["jit_compile"])
        return recipe, (lambda n: build_timnet(n, shape, filters=cfg["filters"],
                                               kernel_size=cfg["kernel_size"],
                                               n_blocks=cfg["n_blocks"],
                                               dropout=cfg["dropout"])), fit
    raise ValueError(f"paper must be one of {PAPERS}, got {paper!r}")


def _median(seconds) -> dict:
    seconds = [float(s) for s in seconds]
    return {"epoch_seconds": [round(s, 4) for s in seconds],
            "median_seconds": round(float(np.median(seconds)), 4)}


def _bare_fit(build, fit, feature_set, fold, *, epochs: int, warmup: int, validate: bool):
    import keras

    from ser_tf.features.pipeline import dataset_for_split
    from ser_tf.training.seeding import set_seed
    from ser_tf.training.tasks import ClassificationTask

    n = len(feature_set.label_names)
    set_seed(fit.seed)
    model = fit.compile(build(n), ClassificationTask(tuple(feature_set.label_names)))
    split = dict(batch_size=fit.batch_size, one_hot=True, num_classes=n)
    train = dataset_for_split(feature_set, fold.train_ids, training=True, seed=fit.seed,
                              repeat=fit.full_batches, **split)
    val = dataset_for_split(feature_set, fold.test_ids, training=False, **split)
    timer = _EpochTimer()
    steps = len(fold.train_ids) // fit.batch_size if fit.full_batches else None
    model.fit(train, validation_data=val if validate else None, epochs=warmup + epochs,
              steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[timer])
    keras.backend.clear_session()
    return _median(timer.seconds[warmup:])


def benchmark(paper: str, manifest, *, epochs: int = 6, warmup: int = 2, cache_dir=None,
              quiet: bool = False) -> dict:
    """Time the three settings (module docstring) on fold 0; returns the record dict."""
    from dataclasses import replace

    import keras

    from ser_tf.features.cache import extract_features
    from ser_tf.training.classifier import train_fold
    from ser_tf.training.protocols import make_folds

    recipe, build, fit = paper_setup(paper, manifest)
    fit = replace(fit, epochs=warmup + epochs)
    features = extract_features(manifest, recipe, cache_dir, progress=not quiet)
    from ser_tf.papers.lightsernet.folds import SPLIT as LIGHTSERNET
    from ser_tf.papers.timnet.folds import SPLIT as TIMNET

    fold = make_folds(manifest, "paper", n_folds=10,
                      paper_split=TIMNET if paper == "timnet" else LIGHTSERNET)[0]
    load_before = _load()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        result = train_fold(fold, Path(tmp) / "fold", feature_set=features, build_model=build,
                            fit=fit, quiet=True)
        results["runner"] = _median(result["history"]["epoch_seconds"][warmup:])
        keras.backend.clear_session()
    results["fit_and_validation"] = _bare_fit(build, fit, features, fold, epochs=epochs,
                                              warmup=warmup, validate=True)
    results["fit_only"] = _bare_fit(build, fit, features, fold, epochs=epochs, warmup=warmup,
                                    validate=False)
    med = {k: v["median_seconds"] for k, v in results.items()}
    return {
        "format": FORMAT, "paper": paper, "corpus": manifest.corpus,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fold": {"protocol": "paper", "index": 0, "train": len(fold.train_ids),
                 "validation": len(fold.test_ids)},
        "fit": {"batch_size": fit.batch_size, "full_batches": fit.full_batches,
                "jit_compile": fit.jit_compile, "epochs_timed": epochs, "warmup_epochs": warmup},
        "threads": {**_threads(),
                    "env": {k: os.environ.get(k) for k in ("TF_NUM_INTRAOP_THREADS",
                                                           "TF_NUM_INTEROP_THREADS")}},
        "machine": cpu_info(),
        "load_average_before": load_before, "load_average_after": _load(),
        "settings": results,
        "validation_seconds_per_epoch": round(med["fit_and_validation"] - med["fit_only"], 4),
        "callbacks_seconds_per_epoch": round(med["runner"] - med["fit_and_validation"], 4),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ser_tf.bench.epoch",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--paper", choices=PAPERS, default="lightsernet")
    parser.add_argument("--data-dir", help="EMO-DB folder (default: $SER_TF_DATA/emodb, else "
                                           "../shared/data/emodb beside the repository)")
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs (default 6)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed epochs first (default 2)")
    parser.add_argument("--cache-dir", help="feature cache")
    parser.add_argument("--tag", help="appended to the record's file name (e.g. 1thread)")
    parser.add_argument("--results-dir", default="experiments/results")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv=None) -> int:
    from ser_tf.data import load_manifest
    from ser_tf.util.jsonio import write_json_atomic

    args = build_parser().parse_args(argv)
    if args.epochs < 1 or args.warmup < 0:
        raise SystemExit("--epochs must be >= 1 and --warmup >= 0")
    data_dir = args.data_dir or default_data_dir("EMODB")
    manifest = load_manifest("EMODB", data_dir)
    start = time.perf_counter()
    record = benchmark(args.paper, manifest, epochs=args.epochs, warmup=args.warmup,
                       cache_dir=args.cache_dir, quiet=args.quiet)
    record["wall_seconds"] = round(time.perf_counter() - start, 1)
    from ser_tf.data.fingerprint import fingerprint

    record["data"] = fingerprint(manifest)
    name = f"epoch-{args.paper}-{manifest.corpus.lower()}-{record['created'][:10]}"
    out = Path(args.results_dir) / "bench" / f"{name}{'-' + args.tag if args.tag else ''}.json"
    write_json_atomic(out, record)
    print(f"{args.paper}: runner {record['settings']['runner']['median_seconds']} s/epoch, "
          f"bare fit + validation {record['settings']['fit_and_validation']['median_seconds']}, "
          f"fit only {record['settings']['fit_only']['median_seconds']}; record {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
