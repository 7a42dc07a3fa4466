"""The end-of-epoch stall of a ``tf.data`` iterator, with tf.data's autotuner on and off.

::

    python -m ser_tf.bench.pipeline --out experiments/results/bench/pipeline-stall.json

Keras's ``fit`` makes a new iterator of the training set every epoch and destroys the old
one; with the autotuner on, the destruction can wait for the autotuner's background
thread while the CPU idles. This benchmark iterates the pipeline of
:func:`~ser_tf.features.pipeline.make_dataset` for ``epochs`` epochs, "training" on each
batch by sleeping ``step_seconds`` (a stand-in for the model that leaves the CPU to
tf.data, so the benchmark can run beside a training), and times each iterator's
destruction: once as the package builds the pipeline (autotuner off) and once with the
autotuner switched back on.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone

import numpy as np

from ser_tf.bench.features import _versions, write_record
from ser_tf.util.machine import cpu_info


def destruction_seconds(*, autotune: bool, epochs: int, n_examples: int, batch_size: int,
                        step_seconds: float, feature_shape=(300, 40), seed: int = 0) -> list[float]:
    """Seconds spent destroying each epoch's iterator (one entry per epoch)."""
    import tensorflow as tf

    from ser_tf.features.pipeline import make_dataset

    if epochs < 1 or n_examples < 1 or step_seconds < 0:
        raise ValueError(f"need epochs >= 1, n_examples >= 1 and step_seconds >= 0, got "
                         f"{epochs}, {n_examples}, {step_seconds}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_examples, *feature_shape), dtype=np.float32)
    y = rng.integers(0, 7, n_examples)
    ds = make_dataset(x, y, batch_size=batch_size, shuffle=True, seed=seed,
                      one_hot=True, num_classes=7)
    if autotune:
        options = tf.data.Options()
        options.autotune.enabled = True  # the later options win over the package's
        ds = ds.with_options(options)
    stalls = []
    for _ in range(epochs):
        iterator = iter(ds)
        for _batch in iterator:
            time.sleep(step_seconds)
        start = time.perf_counter()
        del iterator
        stalls.append(time.perf_counter() - start)
    return stalls


def _summary(stalls: list[float], threshold: float) -> dict:
    arr = np.asarray(stalls)
    return {"destruction_seconds": [round(float(s), 4) for s in arr],
            "mean_seconds": round(float(arr.mean()), 4), "max_seconds": round(float(arr.max()), 4),
            "epochs_stalled": int((arr > threshold).sum()), "stall_threshold_seconds": threshold}


def benchmark_stall(*, epochs: int = 8, n_examples: int = 480, batch_size: int = 32,
                    step_seconds: float = 0.45, threshold: float = 0.1) -> dict:
    """Both settings on the same simulated training; returns the record."""
    kw = dict(epochs=epochs, n_examples=n_examples, batch_size=batch_size,
              step_seconds=step_seconds)
    off = destruction_seconds(autotune=False, **kw)
    on = destruction_seconds(autotune=True, **kw)
    batches = -(-n_examples // batch_size)
    return {"benchmark": "tf.data iterator destruction at the end of an epoch",
            "setup": {**kw, "simulated_epoch_seconds": round(batches * step_seconds, 3)},
            "autotune_off": _summary(off, threshold), "autotune_on": _summary(on, threshold),
            "cpu": cpu_info(), "versions": _versions(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_tf.bench.pipeline",
                                     description="Time the destruction of each epoch's "
                                                 "tf.data iterator, autotuner off and on.")
    parser.add_argument("--out", default=None, help="write the JSON record here")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--examples", type=int, default=480)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--step-seconds", type=float, default=0.45,
                        help="simulated training time per batch")
    args = parser.parse_args(argv)
    try:
        record = benchmark_stall(epochs=args.epochs, n_examples=args.examples,
                                 batch_size=args.batch_size, step_seconds=args.step_seconds)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        write_record(record, args.out)
    for name in ("autotune_off", "autotune_on"):
        s = record[name]
        print(f"{name}: mean {s['mean_seconds']:.3f} s, max {s['max_seconds']:.3f} s, "
              f"{s['epochs_stalled']} of {args.epochs} epochs > {s['stall_threshold_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
