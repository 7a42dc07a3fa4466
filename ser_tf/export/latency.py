"""Batch-1 latency of exported models and of the NumPy front-end before them.

- :func:`measure_latency`: wall time of :meth:`ser_tf.lite.LiteModel.predict` (quantisation
  of the input included, as an application pays it) per thread count;
- :func:`measure_frontend_latency`: the NumPy front-end a features-in model needs;
- :func:`latency_text`: one timing as a model card shows it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ser_tf.lite import LiteModel


def measure_latency(path, example, *, threads=(1, 2), warmup: int = 5,
                    runs: int = 50) -> dict[int, dict]:
    """Batch-1 latency of ``LiteModel(path, num_threads=t).predict`` for each ``t``.

    ``example``: one input, with or without a leading batch axis of 1 (a multi-input
    model: a dict keyed by input name, each with the batch axis of 1). Returns
    ``{t: {"mean_ms", "median_ms", "p95_ms"}}``. ``warmup`` calls are discarded (the
    first ones allocate buffers and warm caches). With more threads than free cores the
    numbers measure contention, not the model; the machine's load is not controlled.
    """
    threads = tuple(threads)
    if not threads or any(isinstance(t, bool) or int(t) != t or t < 1 for t in threads):
        raise ValueError(f"threads must be positive integers, got {threads}")
    if int(warmup) != warmup or warmup < 0 or int(runs) != runs or runs < 1:
        raise ValueError(f"need warmup >= 0 and runs >= 1, got {warmup}, {runs}")
    result = {}
    for count in threads:
        model = LiteModel(path, num_threads=int(count))
        if isinstance(example, dict):
            x = {name: np.asarray(values) for name, values in example.items()}
            shapes = dict(zip(model.input_names, model.input_shapes))
            if set(x) != set(shapes) or any(x[k].shape != (1, *shapes[k]) for k in shapes):
                raise ValueError(f"{Path(path).name}: example must have inputs "
                                 f"{ {k: (1, *v) for k, v in shapes.items()} }, got "
                                 f"{ {k: v.shape for k, v in x.items()} }")
            result[int(count)] = time_calls(lambda: model.predict(x), warmup, runs)
            continue
        x = np.asarray(example, dtype=np.float32)
        if x.shape == model.input_shape:
            x = x[None]
        if x.shape != (1, *model.input_shape):
            raise ValueError(f"{Path(path).name}: example must have shape {model.input_shape}, "
                             f"got {np.shape(example)}")
        result[int(count)] = time_calls(lambda: model.predict(x), warmup, runs)
    return result


def measure_frontend_latency(frontend: dict, sample_rate: int, segment, *, warmup: int = 5,
                             runs: int = 50) -> dict:
    """Time of the NumPy front-end :mod:`ser_tf.lite` runs before a features-in model, on
    one segment (``(samples,)``): ``{"mean_ms", "median_ms", "p95_ms"}``. Add it to the
    model's latency for the time per utterance from audio."""
    from ser_tf.features.spectral import numpy_features

    batch = np.asarray(segment, dtype=np.float32).reshape(1, -1)
    if int(warmup) != warmup or warmup < 0 or int(runs) != runs or runs < 1:
        raise ValueError(f"need warmup >= 0 and runs >= 1, got {warmup}, {runs}")
    return time_calls(lambda: numpy_features(batch, sample_rate, frontend), warmup, runs)


def time_calls(call, warmup: int, runs: int) -> dict:
    """Wall time of ``call()`` in ms over ``runs`` calls after ``warmup`` discarded ones:
    ``{"mean_ms", "median_ms", "p95_ms"}``."""
    for _ in range(int(warmup)):  # the first calls allocate buffers and warm caches
        call()
    times = np.empty(int(runs))
    for i in range(int(runs)):
        start = time.perf_counter()
        call()
        times[i] = (time.perf_counter() - start) * 1000.0
    return {"mean_ms": float(times.mean()), "median_ms": float(np.median(times)),
            "p95_ms": float(np.percentile(times, 95))}


def latency_text(stats: dict) -> str:
    """``{"mean_ms", "p95_ms", ...}`` as a model card's row: ``"mean 1.23, p95 2.34"``."""
    return f"mean {stats['mean_ms']:.2f}, p95 {stats['p95_ms']:.2f}"
