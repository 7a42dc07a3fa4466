"""How fast Light-SERNet trains and runs: ``python -m ser_tf.bench.lightsernet``.

Measures, on EMO-DB (3 s MFCC, 184 × 40; batch 32; the training split of one fold of the
``paper`` protocol, i.e. 9/10 of the corpus):

- **training**: seconds per epoch of ``model.fit`` (the model compiled exactly as
  :func:`ser_tf.training.classifier.train_fold` compiles it), after ``warmup_epochs``
  untimed epochs that absorb graph tracing and XLA compilation (2 by default: XLA
  compiles once per input shape, and the last, smaller batch can trigger one more
  compilation in the second epoch); once with ``jit_compile=False`` and once with
  ``jit_compile=True`` (XLA), and which is faster by the median timed epoch. The warm-up
  epochs are reported too: with XLA they are the compilation a real run pays per fold;
- **feature extraction**: files per second with a cold and a warm cache
  (:func:`ser_tf.bench.features.benchmark_extraction`, on a throw-away cache);
- **TFLite**: size and batch-1 latency of every export variant
  (:func:`ser_tf.export.tflite.convert`, :func:`ser_tf.export.latency.measure_latency`),
  for the model trained above (latency does not depend on how well it is trained);
- **profile**: one epoch of the ``tf.data`` input pipeline alone (iterating the training
  dataset, no model) against one epoch of the train step alone (``train_on_batch`` on
  batches already in memory), to show whether the input pipeline limits training.

The record goes to ``<results-dir>/bench/lightsernet-<corpus>-<YYYY-MM-DD>.json`` with
the CPU count, the load average before and after, thread settings and package versions.
Timings on a shared machine measure the contention too: run it on an idle machine (the
load average in the record tells whether it was).

Data: ``--data-dir``, else ``$SER_TF_DATA/emodb``, else ``../shared/data/emodb`` beside
the repository when it exists.
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

from ser_tf.papers.lightsernet.experiment import DATASETS, PAPER, feature_recipe, load_config

REPO = Path(__file__).resolve().parents[2]
FORMAT = "ser_tf.bench.lightsernet/1"
MISSING_EXPORT = "not run: export module missing"


def default_data_dir(dataset: str = "EMODB") -> Path | None:
    """``None`` when ``$SER_TF_DATA`` is set (the loader resolves it), else the shared
    corpora folder beside the repository if it exists, else ``None``."""
    if os.environ.get("SER_TF_DATA"):
        return None
    shared = REPO.parent / "shared" / "data" / DATASETS[dataset].lower()
    return shared if shared.is_dir() else None


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _threads() -> dict:
    import tensorflow as tf

    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "note": "0 = TensorFlow's default (one per usable core)"}


class _EpochTimer:
    """A Keras callback recording the wall time of every epoch (created lazily: keras import)."""

    def __new__(cls):
        import keras

        class EpochTimer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds: list[float] = []
                self._start = 0.0

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return EpochTimer()


def _compiled_model(num_classes: int, shape, *, jit_compile, learning_rate: float, seed: int):
    """Light-SERNet compiled as ``train_fold`` does (:meth:`FitConfig.compile`: Adam,
    cross-entropy, accuracy + UA)."""
    from ser_tf.models.lightsernet import build_lightsernet
    from ser_tf.training.classifier import FitConfig
    from ser_tf.training.seeding import set_seed
    from ser_tf.training.tasks import ClassificationTask

    set_seed(seed)
    model = build_lightsernet(num_classes, tuple(shape))
    task = ClassificationTask(tuple(f"class_{i}" for i in range(num_classes)))
    return FitConfig(learning_rate=learning_rate, jit_compile=jit_compile).compile(model, task)


def _stats(seconds: list[float]) -> dict:
    return {"epoch_seconds": [round(s, 4) for s in seconds],
            "mean_seconds": round(float(np.mean(seconds)), 4),
            "median_seconds": round(float(np.median(seconds)), 4),
            "min_seconds": round(float(np.min(seconds)), 4),
            "std_seconds": round(float(np.std(seconds)), 4)}


def time_training(feature_set, train_ids, *, jit_compile: bool, epochs: int, warmup_epochs: int,
                  batch_size: int, learning_rate: float, seed: int = 42, compile_model=None):
    """Seconds per epoch of ``model.fit`` on ``train_ids``; returns ``(result, model)``.

    ``compile_model(jit_compile)`` returns the compiled model to time (default:
    Light-SERNet compiled as ``train_fold`` compiles it)."""
    from ser_tf.features.pipeline import dataset_for_split

    n_classes = len(feature_set.label_names)
    if compile_model is None:
        model = _compiled_model(n_classes, feature_set.features.shape[1:],
                                jit_compile=jit_compile, learning_rate=learning_rate, seed=seed)
    else:
        model = compile_model(jit_compile)
    ds = dataset_for_split(feature_set, train_ids, training=True, batch_size=batch_size,
                           seed=seed, one_hot=True, num_classes=n_classes)
    timer = _EpochTimer()
    model.fit(ds, epochs=warmup_epochs + epochs, verbose=0, shuffle=False, callbacks=[timer])
    timed = timer.seconds[warmup_epochs:]
    result = {"jit_compile": bool(jit_compile),
              "warmup_epoch_seconds": [round(s, 4) for s in timer.seconds[:warmup_epochs]],
              **_stats(timed),
              "steps_per_epoch": int(np.ceil(len(train_ids) / batch_size)),
              "examples_per_second": round(len(train_ids) / float(np.median(timed)), 2)}
    return result, model


def profile_step(feature_set, train_ids, *, jit_compile, passes: int, batch_size: int,
                 learning_rate: float, seed: int = 42) -> dict:
    """One epoch of the input pipeline alone vs. one epoch of the train step alone.

    ``input_seconds``: iterating the training ``tf.data`` dataset (shuffle, batch,
    one-hot, prefetch) with no model. ``step_seconds``: ``train_on_batch`` over the same
    batches already in memory (no input pipeline). Both after one untimed pass, best of
    ``passes``. With prefetching the two overlap in ``fit``, so the input pipeline is the
    bottleneck only when ``input_seconds`` approaches ``step_seconds``.
    """
    from ser_tf.features.pipeline import dataset_for_split

    n_classes = len(feature_set.label_names)
    ds = dataset_for_split(feature_set, train_ids, training=True, batch_size=batch_size,
                           seed=seed, one_hot=True, num_classes=n_classes)

    def one_input_pass():
        start = time.perf_counter()
        batches = [(x, y) for x, y in ds]
        return time.perf_counter() - start, batches

    _, batches = one_input_pass()  # warm-up: builds the iterator's functions
    input_runs = [one_input_pass()[0] for _ in range(passes)]

    model = _compiled_model(n_classes, feature_set.features.shape[1:], jit_compile=jit_compile,
                            learning_rate=learning_rate, seed=seed)

    def one_step_pass():
        start = time.perf_counter()
        for x, y in batches:
            model.train_on_batch(x, y)  # returns numpy logs: waits for the step to finish
        return time.perf_counter() - start

    one_step_pass()  # warm-up: traces (and compiles) for the full and the last batch size
    step_runs = [one_step_pass() for _ in range(passes)]
    input_s, step_s = min(input_runs), min(step_runs)
    ratio = input_s / step_s if step_s > 0 else float("inf")
    return {"jit_compile": jit_compile, "passes": passes, "batches_per_epoch": len(batches),
            "input_seconds": round(input_s, 4), "step_seconds": round(step_s, 4),
            "input_runs": [round(s, 4) for s in input_runs],
            "step_runs": [round(s, 4) for s in step_runs],
            "input_to_step_ratio": round(ratio, 4),
            "bottleneck": "input pipeline" if ratio >= 1.0 else "train step",
            "verdict": (f"input pipeline {100 * ratio:.1f}% of the train step's time: "
                        + ("input-bound" if ratio >= 1.0 else
                           "the train step dominates; faster input would not speed up training"
                           if ratio < 0.25 else "input noticeable, partly hidden by prefetch"))}


def time_tflite(model, representative, example, *, threads=(1, 2), warmup: int = 5,
                runs: int = 50, variants=None) -> dict:
    """Size and batch-1 latency of every TFLite variant of ``model``; guarded: without the
    export modules, ``{"status": "not run: export module missing"}``."""
    try:
        from ser_tf.export.latency import measure_latency
        from ser_tf.export.tflite import VARIANTS, convert
    except ImportError as error:
        return {"status": MISSING_EXPORT, "error": str(error)}
    out = {"status": "ok", "threads": list(threads), "warmup": warmup, "runs": runs,
           "variants": {}}
    with tempfile.TemporaryDirectory(prefix="ser-tf-bench-tflite-") as tmp:
        for variant in variants or VARIANTS:
            try:
                start = time.perf_counter()
                content = convert(model, variant, representative=representative)
                convert_s = time.perf_counter() - start
                path = Path(tmp) / f"lightsernet_{variant}.tflite"
                path.write_bytes(content)
                latency = measure_latency(path, example, threads=threads, warmup=warmup,
                                          runs=runs)
            except Exception as error:  # one failing variant must not lose the others
                out["variants"][variant] = {"error": f"{type(error).__name__}: {error}"}
                continue
            out["variants"][variant] = {
                "size_bytes": len(content), "convert_seconds": round(convert_s, 3),
                "latency_ms": {str(t): {k: round(v, 4) for k, v in stats.items()}
                               for t, stats in latency.items()}}
    return out


def benchmark(manifest, *, duration: float = 3.0, batch_size: int = 32, epochs: int = 3,
              warmup_epochs: int = 2, jit=(False, True), fold: int = 0, n_folds: int = 10,
              protocol: str = "paper", seed: int = 42, cache_dir=None,
              extraction: bool = True, tflite: bool = True, profile: bool = True,
              tflite_runs: int = 50, tflite_threads=(1, 2), quiet: bool = True) -> dict:
    """Run every measurement on ``manifest`` and return the JSON-able record."""
    from ser_tf.bench.features import (OtherLoad, _versions, benchmark_extraction,
                                       note_contention)
    from ser_tf.features.cache import extract_features
    from ser_tf.util.machine import cpu_info
    from ser_tf.papers.lightsernet.folds import SPLIT
    from ser_tf.training.protocols import make_folds

    if epochs < 1 or warmup_epochs < 0:
        raise ValueError(f"need epochs >= 1 and warmup_epochs >= 0, got {epochs}, {warmup_epochs}")
    jit = tuple(bool(j) for j in jit)
    if not jit:
        raise ValueError("jit must list at least one jit_compile setting")
    cfg = load_config()
    load_before = _load()
    other_load = OtherLoad()
    started = time.perf_counter()
    recipe = feature_recipe("mfcc", duration)
    folds = make_folds(manifest, protocol, n_folds=n_folds, paper_split=SPLIT)
    if not 0 <= fold < len(folds):
        raise ValueError(f"fold must be in [0, {len(folds)}), got {fold}")
    train_ids = list(folds[fold].train_ids)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))

    say(f"features: {len(manifest)} files")
    feature_set = extract_features(manifest, recipe, cache_dir, progress=not quiet)
    record = {
        "format": FORMAT, "kind": "lightsernet_benchmark",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": manifest.corpus, "files": len(manifest),
        "recipe": recipe.config(), "feature_shape": list(feature_set.features.shape[1:]),
        "split": {"protocol": protocol, "n_folds": len(folds), "fold": fold,
                  "train_examples": len(train_ids)},
        "settings": {"batch_size": batch_size, "epochs_timed": epochs,
                     "warmup_epochs": warmup_epochs, "learning_rate": cfg["learning_rate"],
                     "loss": "cross_entropy", "seed": seed,
                     "config_jit_compile": cfg["jit_compile"]},
        "cpu": {**cpu_info(), "load_average_before": load_before},
        "threads": _threads(),
        "versions": _versions(),
    }

    runs, trained = [], None
    for setting in jit:
        say(f"training: jit_compile={setting}, {warmup_epochs} + {epochs} epochs")
        try:
            result, model = time_training(feature_set, train_ids, jit_compile=setting,
                                          epochs=epochs, warmup_epochs=warmup_epochs,
                                          batch_size=batch_size,
                                          learning_rate=cfg["learning_rate"], seed=seed)
        except Exception as error:  # e.g. an op XLA cannot compile: keep the other result
            runs.append({"jit_compile": setting, "error": f"{type(error).__name__}: {error}"})
            continue
        runs.append(result)
        if trained is None:
            trained = model
    ok = [r for r in runs if "error" not in r]
    training = {"runs": runs}
    if ok:
        best = min(ok, key=lambda r: r["median_seconds"])
        training["faster"] = f"jit_compile={best['jit_compile']}"
        if len(ok) > 1:
            slow = max(ok, key=lambda r: r["median_seconds"])
            training["speedup"] = round(slow["median_seconds"] / best["median_seconds"], 3)
    record["training"] = training

    if extraction:
        say("feature extraction throughput")
        measured = benchmark_extraction(manifest, recipe)
        record["feature_extraction"] = {k: v for k, v in measured.items()
                                        if k not in ("cpu", "versions", "created", "recipe",
                                                     "corpus", "kind")}
    else:
        record["feature_extraction"] = {"status": "not run: disabled"}

    if not tflite:
        record["tflite"] = {"status": "not run: disabled"}
    elif trained is None:
        record["tflite"] = {"status": "not run: no trained model (training failed)"}
    else:
        say("TFLite variants")
        rows = feature_set.index_of(train_ids)
        representative = feature_set.features[rows[:100]]
        record["tflite"] = time_tflite(trained, representative, feature_set.features[rows[0]],
                                       threads=tflite_threads, runs=tflite_runs)
        # A features-in variant on the device first computes the MFCCs in NumPy (ser_tf.lite):
        # timed on one 3 s segment of noise (the time does not depend on the content).
        from ser_tf.export.latency import measure_frontend_latency
        from ser_tf.export.waveform import recipe_samples

        noise = np.random.default_rng(seed).uniform(-1, 1, recipe_samples(recipe))
        record["tflite"]["numpy_frontend_ms"] = {
            k: round(v, 4) for k, v in measure_frontend_latency(
                recipe.frontend, recipe.sample_rate, noise, runs=tflite_runs).items()}

    if profile:
        say("profile: input pipeline vs. train step")
        profile_jit = bool(cfg["jit_compile"]) if cfg["jit_compile"] != "auto" else False
        record["profile"] = profile_step(feature_set, train_ids, jit_compile=profile_jit,
                                         passes=epochs, batch_size=batch_size,
                                         learning_rate=cfg["learning_rate"], seed=seed)
    else:
        record["profile"] = {"status": "not run: disabled"}

    record["cpu"]["load_average_after"] = _load()
    record["total_seconds"] = round(time.perf_counter() - started, 2)
    return note_contention(record, other_load)


def default_out(results_dir, corpus: str) -> Path:
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return Path(results_dir) / "bench" / f"{PAPER}-{corpus.lower()}-{day}.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ser_tf.bench.lightsernet",
        description="Light-SERNet speed: s/epoch with and without XLA, feature throughput, "
                    "TFLite latency, input pipeline vs. train step.")
    parser.add_argument("--dataset", type=str.upper, default="EMODB", choices=sorted(DATASETS))
    parser.add_argument("--data-dir", help="corpus folder (default: $SER_TF_DATA/emodb, else "
                                           "../shared/data/emodb beside the repository)")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (default 3)")
    parser.add_argument("--warmup-epochs", type=int, default=2,
                        help="untimed epochs first (default 2: tracing, XLA compilation)")
    parser.add_argument("--jit", choices=("both", "off", "on"), default="both",
                        help="jit_compile settings to time (default both)")
    parser.add_argument("--protocol", choices=("paper", "clean", "speaker"), default="paper")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--fold", type=int, default=0, help="whose training split is timed")
    parser.add_argument("--limit", type=int, help="only the first N files (quick check)")
    parser.add_argument("--cache-dir", help="feature cache for the training features")
    parser.add_argument("--no-extraction", action="store_true")
    parser.add_argument("--no-tflite", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--tflite-runs", type=int, default=50)
    parser.add_argument("--results-dir", default="experiments/results",
                        help="record goes to RESULTS_DIR/bench/lightsernet-<corpus>-<date>.json")
    parser.add_argument("--out", help="write the record here instead")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv=None) -> int:
    from ser_tf.data import load_manifest
    from ser_tf.bench.features import write_record

    args = build_parser().parse_args(argv)
    corpus = DATASETS[args.dataset]
    data_dir = args.data_dir or default_data_dir(args.dataset)
    manifest = load_manifest(corpus, data_dir)
    if args.limit is not None:
        manifest = manifest.subset([u.utterance_id for u in manifest][:args.limit])
    jit = {"both": (False, True), "off": (False,), "on": (True,)}[args.jit]
    record = benchmark(manifest, duration=args.duration, batch_size=args.batch_size,
                       epochs=args.epochs, warmup_epochs=args.warmup_epochs, jit=jit,
                       fold=args.fold, n_folds=args.folds, protocol=args.protocol,
                       cache_dir=args.cache_dir, extraction=not args.no_extraction,
                       tflite=not args.no_tflite, profile=not args.no_profile,
                       tflite_runs=args.tflite_runs, quiet=args.quiet)
    out = write_record(record, args.out or default_out(args.results_dir, corpus))
    for run in record["training"]["runs"]:
        print(f"jit_compile={run['jit_compile']}: "
              + (run["error"] if "error" in run else
                 f"{run['median_seconds']:.2f} s/epoch (median of {len(run['epoch_seconds'])}), "
                 f"warm-up {sum(run['warmup_epoch_seconds']):.1f} s"))
    if "faster" in record["training"]:
        print(f"faster: {record['training']['faster']}")
    fe = record["feature_extraction"]
    if "cold" in fe:
        print(f"features: cold {fe['cold']['files_per_second']} files/s, "
              f"warm {fe['warm']['files_per_second']} files/s")
    tfl = record["tflite"]
    for variant, row in tfl.get("variants", {}).items():
        print(f"tflite {variant}: " + (row["error"] if "error" in row else
              ", ".join(f"{t} thr {v['median_ms']:.2f} ms" for t, v in row["latency_ms"].items())))
    if tfl.get("status") != "ok":
        print(f"tflite: {tfl['status']}")
    if "verdict" in record["profile"]:
        print(f"profile: {record['profile']['verdict']}")
    if "warning" in record:
        print(f"WARNING: {record['warning']}")
    print(f"record: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
