"""How much accuracy, size and speed each TFLite variant costs, measured per fold.

- :func:`evaluate_tflite`: the suite's metrics (:func:`ser_tf.training.metrics.classification_metrics`:
  UA, WA, F1, confusion matrix) on a ``.tflite`` file's predictions;
- :func:`measure_latency`: batch-1 wall time of :meth:`ser_tf.lite.LiteModel.predict`
  (quantisation of the input included, as an application pays it) per thread count;
- :func:`export_fold_models`: every trained fold of a k-fold run -> every variant, each
  calibrated on its own fold's training ids and scored on its own test ids, so the
  quantised scores are comparable with the float run record (same folds, same protocol).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ser_tf.export.tflite import ALL, export_variants
from ser_tf.lite import LiteModel, sidecar_path

SCORE_KEYS = ("UA", "WA", "macro_F1", "weighted_F1")
WEIGHTS_FILE = "final.weights.h5"  # written by ser_tf.training.classifier.train_fold


def _probabilities(path, features, batch_size: int = 64, num_threads: int = 1) -> np.ndarray:
    model = LiteModel(path, num_threads=num_threads)
    features = np.asarray(features, dtype=np.float32)
    if len(features) == 0:
        raise ValueError(f"{Path(path).name}: no examples to evaluate")
    # Fixed-size chunks: the interpreter is resized once (plus once for the last chunk).
    return np.concatenate([model.predict(features[i:i + batch_size])
                           for i in range(0, len(features), batch_size)])


def evaluate_tflite(path, features, labels, label_names, *, batch_size: int = 64,
                    num_threads: int = 1) -> dict:
    """``classification_metrics(labels, predictions, label_names)`` of the model at ``path``
    on ``features`` (float32, quantised by :class:`LiteModel` when the model is int8)."""
    from ser_tf.training.metrics import classification_metrics

    if len(features) != len(labels):
        raise ValueError(f"{len(features)} examples but {len(labels)} labels")
    probabilities = _probabilities(path, features, batch_size, num_threads)
    return classification_metrics(np.asarray(labels), probabilities, list(label_names))


def measure_latency(path, example, *, threads=(1, 2), warmup: int = 5,
                    runs: int = 50) -> dict[int, dict]:
    """Batch-1 latency of ``LiteModel(path, num_threads=t).predict`` for each ``t``.

    ``example``: one input, with or without a leading batch axis of 1. Returns
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
        x = np.asarray(example, dtype=np.float32)
        if x.shape == model.input_shape:
            x = x[None]
        if x.shape != (1, *model.input_shape):
            raise ValueError(f"{Path(path).name}: example must have shape {model.input_shape}, "
                             f"got {np.shape(example)}")
        for _ in range(int(warmup)):
            model.predict(x)
        times = np.empty(int(runs))
        for i in range(int(runs)):
            start = time.perf_counter()
            model.predict(x)
            times[i] = (time.perf_counter() - start) * 1000.0
        result[int(count)] = {"mean_ms": float(times.mean()),
                              "median_ms": float(np.median(times)),
                              "p95_ms": float(np.percentile(times, 95))}
    return result


def _scores(metrics: dict) -> dict:
    return {key: float(metrics[key]) for key in SCORE_KEYS}


def _summary(rows: list[dict]) -> tuple[dict, dict]:
    mean = {key: float(np.mean([r[key] for r in rows])) for key in SCORE_KEYS}
    std = {key: float(np.std([r[key] for r in rows])) for key in SCORE_KEYS}
    return mean, std


def _representative(feature_set, fold, size: int, seed: int) -> np.ndarray:
    """Up to ``size`` examples of THIS fold's training ids (never val or test ids: their
    ranges must not shape the quantisation the test scores then measure)."""
    rows = feature_set.index_of(fold.train_ids)
    if len(rows) == 0:
        raise ValueError(f"fold {fold.index} has no training ids for calibration")
    rng = np.random.default_rng([int(seed), int(fold.index)])
    chosen = np.sort(rng.choice(rows, size=min(size, len(rows)), replace=False))
    return np.asarray(feature_set.features[chosen], dtype=np.float32)


def _remove_fold_files(paths: dict) -> None:
    for path in paths.values():
        path.unlink(missing_ok=True)
        sidecar_path(path).unlink(missing_ok=True)
    folder = next(iter(paths.values())).parent
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()  # only if nothing else lives there


def export_fold_models(work_dir, folds, feature_set, build_model: Callable, out_dir, *,
                       recipe, variants=ALL, representative_size: int = 200, seed: int = 0,
                       keep_fold: int | str | None = None, name: str | None = None,
                       latency_threads=(1, 2), latency_runs: int = 50,
                       batch_size: int = 64) -> dict:
    """Export and score every variant of every trained fold of a k-fold run.

    For each fold: ``build_model(num_classes)``, load ``work_dir/fold_XX/final.weights.h5``
    (the weights :func:`~ser_tf.training.classifier.train_fold` chose), convert each
    variant into ``out_dir/fold_XX/`` with the int8 representative set drawn (seeded, up
    to ``representative_size``) from that fold's ``train_ids`` only, and evaluate on that
    fold's ``test_ids``, next to the Keras model itself.

    Files: only ``keep_fold``'s files stay (default: the first fold; pass the index of the
    fold to ship, or ``"all"`` to keep every fold's folder); the others are deleted once
    scored. Latency is measured on the kept fold's files (the first fold's with ``"all"``).

    Returns ``{"variants": {variant: {...}}, "keras": {...}, "float32_max_prob_diff",
    "kept_fold", "files", "representative_size", "n_folds"}``; per variant:
    ``size_bytes`` (kept fold), ``size_bytes_max`` (over folds), ``folds`` (per fold: the
    scores, full ``metrics``, ``max_prob_diff_vs_keras``, ``argmax_agreement``), ``mean``
    and ``std`` of UA / WA / macro_F1 / weighted_F1 over folds, ``max_prob_diff_vs_keras``
    (max over folds) and ``latency`` (:func:`measure_latency`).
    """
    from ser_tf.export.waveform import input_spec
    from ser_tf.training.kfold import as_folds, fold_dir_name
    from ser_tf.training.metrics import classification_metrics

    folds = as_folds(folds)
    if not folds:
        raise ValueError("no folds to export")
    if feature_set.features is None:
        raise ValueError("feature_set has no features in memory (extract with load=True)")
    if int(representative_size) != representative_size or representative_size < 1:
        raise ValueError(f"representative_size must be a positive integer, got "
                         f"{representative_size}")
    indices = [int(f.index) for f in folds]
    keep = indices[0] if keep_fold is None else keep_fold
    if keep != "all" and keep not in indices:
        raise ValueError(f"keep_fold must be 'all' or one of {indices}, got {keep_fold!r}")
    latency_fold = indices[0] if keep == "all" else keep
    work_dir, out_dir = Path(work_dir), Path(out_dir)
    weights = {i: work_dir / fold_dir_name(f) / WEIGHTS_FILE for i, f in zip(indices, folds)}
    missing = [str(p) for p in weights.values() if not p.is_file()]
    if missing:  # before any conversion: a half-trained run fails fast
        raise FileNotFoundError(f"fold weights missing (fold not trained?): {missing}")
    label_names = list(feature_set.label_names)
    shape = tuple(feature_set.features.shape[1:])
    variants = tuple(variants)

    per_variant = {v: {"folds": [], "sizes": []} for v in variants}
    keras_rows, files, kept_paths = [], {}, None
    for fold, index in zip(folds, indices):
        model = build_model(len(label_names))
        model.load_weights(weights[index])
        test_rows = feature_set.index_of(fold.test_ids)
        x_test = np.asarray(feature_set.features[test_rows], dtype=np.float32)
        y_test = feature_set.labels[test_rows]
        reference = model.predict(x_test, batch_size=batch_size, verbose=0)
        keras_metrics = classification_metrics(y_test, reference, label_names)
        keras_rows.append({"fold": index, **_scores(keras_metrics), "metrics": keras_metrics})
        paths = export_variants(
            model, out_dir / fold_dir_name(fold), labels=label_names, variants=variants,
            representative=_representative(feature_set, fold, int(representative_size), seed)
            if "int8" in variants else None,
            input_spec=input_spec(recipe, "features", shape), name=name)
        for variant, path in paths.items():
            probabilities = _probabilities(path, x_test, batch_size)
            metrics = classification_metrics(y_test, probabilities, label_names)
            per_variant[variant]["sizes"].append(path.stat().st_size)
            per_variant[variant]["folds"].append({
                "fold": index, **_scores(metrics), "metrics": metrics,
                "max_prob_diff_vs_keras": float(np.abs(probabilities - reference).max()),
                "argmax_agreement": float(np.mean(probabilities.argmax(1) == reference.argmax(1)))})
        if keep == "all" or index == keep:
            files.update({f"fold_{index:02d}/{v}" if keep == "all" else v: str(p)
                          for v, p in paths.items()})
        else:
            _remove_fold_files(paths)
        if index == latency_fold:
            kept_paths = (paths, x_test[0])

    result = {"variants": {}, "kept_fold": keep, "files": files, "n_folds": len(folds),
              "representative_size": int(min(representative_size, min(
                  len(f.train_ids) for f in folds)))}
    keras_mean, keras_std = _summary(keras_rows)
    result["keras"] = {"folds": keras_rows, "mean": keras_mean, "std": keras_std}
    paths, example = kept_paths
    for variant, data in per_variant.items():
        mean, std = _summary(data["folds"])
        result["variants"][variant] = {
            "size_bytes": data["sizes"][indices.index(latency_fold)],
            "size_bytes_max": max(data["sizes"]),
            "folds": data["folds"], "mean": mean, "std": std,
            "max_prob_diff_vs_keras": max(r["max_prob_diff_vs_keras"] for r in data["folds"]),
            "argmax_agreement": float(np.mean([r["argmax_agreement"] for r in data["folds"]])),
            "latency": measure_latency(paths[variant], example, threads=latency_threads,
                                       runs=latency_runs),
        }
    if "float32" in result["variants"]:
        result["float32_max_prob_diff"] = result["variants"]["float32"]["max_prob_diff_vs_keras"]
    return result
