"""How fast TIM-Net trains, with and without XLA: ``python -m ser_tf.bench.timnet``.

The TIM-Net issue asks to compile with XLA where it is faster, measured. This times
``model.fit`` epochs of TIM-Net compiled exactly as :func:`ser_tf.training.classifier.train_fold`
compiles it in the TIM-Net experiment (Adam 1e-3 with betas 0.93 / 0.98, label smoothing
0.1, batch 64), on the training split of fold 0 of the ``paper`` protocol (9/10 of the
corpus), once with ``jit_compile=False`` and once with ``True``. The first
``warmup_epochs`` epochs are reported apart: they hold graph tracing and XLA compilation,
which a real run pays once per fold.

The record (``<results-dir>/bench/timnet-<corpus>-<YYYY-MM-DD>.json``) holds the load
average before and after: timings on a busy machine measure the contention too.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ser_tf.bench.lightsernet import _load, _threads, time_training
from ser_tf.papers.timnet.experiment import DATASETS, PAPER, load_config

FORMAT = "ser_tf.bench.timnet/1"


def _compiler(feature_set, cfg: dict, n_blocks: int, seed: int):
    """``compile_model(jit_compile)`` for :func:`time_training`: TIM-Net as the experiment
    builds and compiles it."""

    def compile_model(jit_compile: bool):
        from ser_tf.models.timnet import build_timnet
        from ser_tf.training.classifier import FitConfig
        from ser_tf.training.seeding import set_seed
        from ser_tf.training.tasks import ClassificationTask

        set_seed(seed)
        k = len(feature_set.label_names)
        model = build_timnet(k, tuple(feature_set.features.shape[1:]), filters=cfg["filters"],
                             kernel_size=cfg["kernel_size"], n_blocks=n_blocks,
                             dropout=cfg["dropout"])
        fit = FitConfig(learning_rate=cfg["learning_rate"], beta_1=cfg["beta_1"],
                        beta_2=cfg["beta_2"], epsilon=cfg["epsilon"], loss=cfg["loss"],
                        label_smoothing=cfg["label_smoothing"], jit_compile=jit_compile)
        return fit.compile(model, ClassificationTask(tuple(feature_set.label_names)))

    return compile_model


def benchmark(manifest, *, epochs: int = 5, warmup_epochs: int = 2, jit=(False, True),
              batch_size: int | None = None, cache_dir=None, quiet: bool = True) -> dict:
    """Time TIM-Net training epochs on ``manifest`` for each ``jit`` setting; the record."""
    from ser_tf.bench.features import OtherLoad, _versions, note_contention
    from ser_tf.features.cache import extract_features
    from ser_tf.features.recipes import get_recipe
    from ser_tf.util.machine import cpu_info
    from ser_tf.papers.timnet.folds import PAPER_SEEDS, SPLIT
    from ser_tf.training.protocols import make_folds

    if epochs < 1 or warmup_epochs < 0:
        raise ValueError(f"need epochs >= 1 and warmup_epochs >= 0, got {epochs}, {warmup_epochs}")
    if not jit:
        raise ValueError("jit must list at least one jit_compile setting")
    cfg = load_config()
    corpus = manifest.corpus
    batch_size = int(batch_size or cfg["batch_size"])
    n_blocks = cfg["n_blocks_iemocap" if corpus == "IEMOCAP" else "n_blocks"]
    seed = PAPER_SEEDS[corpus]
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    load_before = _load()
    other_load = OtherLoad()
    started = time.perf_counter()
    recipe = get_recipe(f"timnet-{corpus}")
    folds = make_folds(manifest, "paper", n_folds=10, seed=seed, paper_split=SPLIT)
    train_ids = list(folds[0].train_ids)
    feature_set = extract_features(manifest, recipe, cache_dir, progress=not quiet)
    compile_model = _compiler(feature_set, cfg, n_blocks, seed)
    runs = []
    for setting in (bool(j) for j in jit):
        say(f"training: jit_compile={setting}, {warmup_epochs} + {epochs} epochs")
        try:
            result, _ = time_training(feature_set, train_ids, jit_compile=setting, epochs=epochs,
                                      warmup_epochs=warmup_epochs, batch_size=batch_size,
                                      learning_rate=cfg["learning_rate"], seed=seed,
                                      compile_model=compile_model)
        except Exception as error:  # an op XLA cannot compile must not lose the other run
            result = {"jit_compile": setting, "error": f"{type(error).__name__}: {error}"}
        runs.append(result)
        say(f"  {result}")
    ok = [r for r in runs if "error" not in r]
    training = {"runs": runs}
    if ok:
        best = min(ok, key=lambda r: r["median_seconds"])
        training["faster"] = f"jit_compile={best['jit_compile']}"
        # What a full run costs at that speed: 10 folds x the configured epochs.
        training["estimated_hours_per_run"] = round(
            10 * (cfg["epochs"] * best["median_seconds"] + sum(best["warmup_epoch_seconds"]))
            / 3600, 2)
        if len(ok) > 1:
            slow = max(ok, key=lambda r: r["median_seconds"])
            training["speedup"] = round(slow["median_seconds"] / best["median_seconds"], 3)
    record = {
        "format": FORMAT, "kind": "timnet_benchmark",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": corpus, "files": len(manifest), "recipe": recipe.config(),
        "feature_shape": list(feature_set.features.shape[1:]), "n_blocks": n_blocks,
        "split": {"protocol": "paper", "n_folds": len(folds), "fold": 0,
                  "train_examples": len(train_ids)},
        "settings": {"batch_size": batch_size, "epochs_timed": epochs,
                     "warmup_epochs": warmup_epochs, "seed": seed,
                     "config_jit_compile": cfg["jit_compile"]},
        "cpu": {**cpu_info(), "load_average_before": load_before, "load_average_after": _load()},
        "threads": _threads(), "versions": _versions(), "training": training,
        "total_seconds": round(time.perf_counter() - started, 2)}
    return note_contention(record, other_load)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ser_tf.bench.timnet",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=str.upper, default="EMODB", choices=DATASETS)
    parser.add_argument("--data-dir", help="corpus folder (default: $SER_TF_DATA/<corpus>)")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (default 5)")
    parser.add_argument("--warmup-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, help="default: the config's (64)")
    parser.add_argument("--jit", choices=("both", "off", "on"), default="both")
    parser.add_argument("--limit", type=int, help="only the first N files (quick check)")
    parser.add_argument("--cache-dir", help="feature cache")
    parser.add_argument("--results-dir", default="experiments/results")
    parser.add_argument("--out", help="write the record here instead")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv=None) -> int:
    from ser_tf.data import load_manifest
    from ser_tf.util.jsonio import write_json_atomic

    args = build_parser().parse_args(argv)
    options = {"merge_calm": False} if args.dataset == "RAVDESS" else {}
    manifest = load_manifest(args.dataset, args.data_dir, **options)
    if args.limit:
        manifest = manifest.subset([u.utterance_id for u in manifest][:args.limit])
    jit = {"both": (False, True), "off": (False,), "on": (True,)}[args.jit]
    record = benchmark(manifest, epochs=args.epochs, warmup_epochs=args.warmup_epochs, jit=jit,
                       batch_size=args.batch_size, cache_dir=args.cache_dir, quiet=args.quiet)
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    out = Path(args.out) if args.out else \
        Path(args.results_dir) / "bench" / f"{PAPER}-{args.dataset.lower()}-{day}.json"
    write_json_atomic(out, record)
    print(f"record: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
