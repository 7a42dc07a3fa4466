"""How much accuracy, size and speed each TFLite variant costs, measured per fold.

- :func:`evaluate_tflite`: the suite's metrics (:func:`ser_tf.training.metrics.classification_metrics`:
  UA, WA, F1, confusion matrix) on a ``.tflite`` file's predictions;
- :func:`export_fold_models`: every trained fold of a k-fold run -> every variant, each
  calibrated on its own fold's training ids and scored on its own test ids, so the
  quantised scores are comparable with the float run record (same folds, same protocol).

Latency is measured by :mod:`ser_tf.export.latency`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ser_tf.export.latency import measure_latency
from ser_tf.export.tflite import ALL, export_variants
from ser_tf.util.jsonio import content_hash
from ser_tf.lite import LiteModel, sidecar_path
from ser_tf.util.machine import cpu_info
from ser_tf.training.rundir import TFLITE_FILE, WEIGHTS_FILE, fold_dir_name

SCORE_KEYS = ("UA", "WA", "macro_F1", "weighted_F1")


def _as_inputs(features):
    """A batch of model inputs: one float32 array, or (a multi-input model, e.g. padded
    features with their lengths) a dict of arrays keyed by input name, each kept in its
    dtype."""
    if isinstance(features, dict):
        return {name: np.asarray(values) for name, values in features.items()}
    return np.asarray(features, dtype=np.float32)


def _num_examples(inputs) -> int:
    return len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)


def _rows(inputs, start: int, stop: int):
    if isinstance(inputs, dict):
        return {name: values[start:stop] for name, values in inputs.items()}
    return inputs[start:stop]


def _probabilities(path, features, batch_size: int = 64, num_threads: int = 1) -> np.ndarray:
    model = LiteModel(path, num_threads=num_threads)
    features = _as_inputs(features)
    count = _num_examples(features)
    if count == 0:
        raise ValueError(f"{Path(path).name}: no examples to evaluate")
    # Fixed-size chunks: the interpreter is resized once (plus once for the last chunk).
    return np.concatenate([model.predict(_rows(features, i, i + batch_size))
                           for i in range(0, count, batch_size)])


def evaluate_tflite(path, features, labels, label_names, *, batch_size: int = 64,
                    num_threads: int = 1) -> dict:
    """``classification_metrics(labels, predictions, label_names)`` of the model at ``path``
    on ``features`` (float32, quantised by :class:`LiteModel` when the model is int8)."""
    from ser_tf.training.metrics import classification_metrics

    count = _num_examples(_as_inputs(features))
    if count != len(labels):
        raise ValueError(f"{count} examples but {len(labels)} labels")
    probabilities = _probabilities(path, features, batch_size, num_threads)
    return classification_metrics(np.asarray(labels), probabilities, list(label_names))


def scores_of(metrics: dict) -> dict:
    """The headline scores (:data:`SCORE_KEYS`) of a metrics dict, as floats."""
    return {key: float(metrics[key]) for key in SCORE_KEYS}


def _summary(rows: list[dict]) -> dict:
    """Mean and std over folds (sample std, as the run record's summary) and the scores of
    the folds' pooled confusion matrix."""
    from ser_tf.training.metrics import summarize

    summary = summarize([r["metrics"] for r in rows])
    return {"mean": {key: summary[key]["mean"] for key in SCORE_KEYS},
            "std": {key: summary[key]["std"] for key in SCORE_KEYS}, "std_ddof": 1,
            "pooled": scores_of(summary["pooled"])}


def _first_example(feature_set, fold):
    """The fold's first test example (the one latency is timed on): an array without the
    batch axis, or a multi-input dict with a batch axis of 1."""
    inputs = feature_set.features[feature_set.index_of(fold.test_ids[:1])]
    return _as_inputs(inputs) if isinstance(inputs, dict) else inputs[0]


def _model_input_spec(feature_set, recipe) -> dict:
    """The sidecar input spec(s) of a model on ``feature_set``: the recipe's features, or,
    for a fixed-length set of padded features (``input_shapes``: features and lengths, see
    :class:`ser_tf.training.padded.FixedLengthInputs`), the features (a recording shorter
    than the window is zero-padded at its end) and how many frames of them are real."""
    from ser_tf.export.waveform import input_spec

    shapes = getattr(feature_set, "input_shapes", None)
    if shapes is None:
        return input_spec(recipe, "features", tuple(feature_set.features.shape[1:]))
    features, lengths = list(shapes)
    return {features: {**input_spec(recipe, "features", shapes[features]), "pad": "end"},
            lengths: {"kind": "lengths", "of": features, "unit": "frames",
                      "normalise": None}}


def _representative(feature_set, fold, size: int, seed: int) -> np.ndarray:
    """Up to ``size`` examples of THIS fold's training ids (never val or test ids: their
    ranges must not shape the quantisation the test scores then measure)."""
    rows = feature_set.index_of(fold.train_ids)
    if len(rows) == 0:
        raise ValueError(f"fold {fold.index} has no training ids for calibration")
    rng = np.random.default_rng([int(seed), int(fold.index)])
    chosen = np.sort(rng.choice(rows, size=min(size, len(rows)), replace=False))
    return _as_inputs(feature_set.features[chosen])


def _remove_fold_files(paths: dict) -> None:
    for path in paths.values():
        path.unlink(missing_ok=True)
        sidecar_path(path).unlink(missing_ok=True)
    folder = next(iter(paths.values())).parent
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()  # only if nothing else lives there


def export_fold(model, fold, feature_set, out_dir, *, recipe, variants=ALL,
                representative_size: int = 200, seed: int = 0, name: str | None = None,
                batch_size: int = 64) -> tuple[dict, dict]:
    """Convert one fold's trained ``model`` into every variant in ``out_dir`` and score each
    on that fold's ``test_ids``, next to the Keras model itself.

    The int8 representative set is drawn (seeded, up to ``representative_size``) from the
    fold's ``train_ids`` only. Returns ``(row, paths)``: ``row`` is ``{"fold", "keras":
    {scores, "metrics"}, "variants": {variant: {"size_bytes", scores, "metrics",
    "max_prob_diff_vs_keras", "argmax_agreement"}}}`` (JSON-ready); ``paths`` maps each
    variant to its ``.tflite`` file.
    """
    from ser_tf.training.metrics import classification_metrics

    if feature_set.features is None:
        raise ValueError("feature_set has no features in memory (extract with load=True)")
    label_names = list(feature_set.label_names)
    variants = tuple(variants)
    test_rows = feature_set.index_of(fold.test_ids)
    x_test = _as_inputs(feature_set.features[test_rows])
    y_test = feature_set.labels[test_rows]
    reference = model.predict(x_test, batch_size=batch_size, verbose=0)
    keras_metrics = classification_metrics(y_test, reference, label_names)
    paths = export_variants(
        model, Path(out_dir), labels=label_names, variants=variants,
        representative=_representative(feature_set, fold, int(representative_size), seed)
        if "int8" in variants else None,
        input_spec=_model_input_spec(feature_set, recipe), name=name)
    row = {"fold": int(fold.index), "keras": {**scores_of(keras_metrics), "metrics": keras_metrics},
           "variants": {}}
    if getattr(feature_set, "input_shapes", None) is not None:  # padded, with lengths
        row["input_shapes"] = {name: list(shape) for name, shape in
                               feature_set.input_shapes.items()}
    for variant, path in paths.items():
        probabilities = _probabilities(path, x_test, batch_size)
        metrics = classification_metrics(y_test, probabilities, label_names)
        row["variants"][variant] = {
            "size_bytes": path.stat().st_size, **scores_of(metrics), "metrics": metrics,
            "max_prob_diff_vs_keras": float(np.abs(probabilities - reference).max()),
            "argmax_agreement": float(np.mean(probabilities.argmax(1) == reference.argmax(1)))}
    return row, paths


def summarise_fold_exports(rows: list[dict], latency: dict, *, kept_fold=None,
                           files: dict | None = None, representative_size: int | None = None,
                           latency_fold: int | None = None, latency_host: dict | None = None
                           ) -> dict:
    """Fold rows of :func:`export_fold` -> the k-fold summary a run record stores.

    ``latency``: ``{variant: measure_latency(...)}`` of one fold's files, ``latency_fold``
    (default: the first fold, or ``kept_fold``), ``latency_host`` the
    :func:`~ser_tf.util.machine.cpu_info` they were timed on. Per variant:
    ``size_bytes`` (that fold), ``size_bytes_max`` (over folds), ``folds``, ``mean`` and
    ``std`` (ddof 1) of the scores over folds, ``pooled``
    (the scores of the summed confusion matrix: every test utterance once),
    ``max_prob_diff_vs_keras`` (max over folds), ``argmax_agreement`` (mean) and ``latency``.
    """
    if not rows:
        raise ValueError("no fold rows to summarise")
    rows = sorted(rows, key=lambda r: int(r["fold"]))
    indices = [int(r["fold"]) for r in rows]
    size_fold = indices[0] if kept_fold in (None, "all") else int(kept_fold)
    keras_rows = [{"fold": r["fold"], **r["keras"]} for r in rows]
    result = {"variants": {}, "kept_fold": indices[0] if kept_fold is None else kept_fold,
              "files": dict(files or {}), "n_folds": len(rows),
              "representative_size": representative_size,
              "latency_fold": latency_fold if latency_fold is not None else (
                  indices[0] if kept_fold in (None, "all") else int(kept_fold)),
              "latency_host": latency_host,
              "keras": {"folds": keras_rows, **_summary(keras_rows)}}
    for variant in rows[0]["variants"]:
        folds = [{"fold": r["fold"], **{k: v for k, v in r["variants"][variant].items()
                                         if k != "size_bytes"}} for r in rows]
        sizes = [r["variants"][variant]["size_bytes"] for r in rows]
        result["variants"][variant] = {
            "size_bytes": sizes[indices.index(size_fold)], "size_bytes_max": max(sizes),
            "folds": folds, **_summary(folds),
            "max_prob_diff_vs_keras": max(r["max_prob_diff_vs_keras"] for r in folds),
            "argmax_agreement": float(np.mean([r["argmax_agreement"] for r in folds])),
            "latency": latency.get(variant)}
    if "float32" in result["variants"]:
        result["float32_max_prob_diff"] = result["variants"]["float32"]["max_prob_diff_vs_keras"]
    return result


def _fold_weights(work_dir, folds) -> dict:

    weights = {int(f.index): Path(work_dir) / fold_dir_name(f) / WEIGHTS_FILE for f in folds}
    missing = [str(p) for p in weights.values() if not p.is_file()]
    if missing:  # before any conversion: a half-trained run fails fast
        raise FileNotFoundError(f"fold weights missing (fold not trained?): {missing}")
    return weights


def export_fold_models(work_dir, folds, feature_set, build_model: Callable, out_dir, *,
                       recipe, variants=ALL, representative_size: int = 200, seed: int = 0,
                       keep_fold: int | str | None = None, name: str | None = None,
                       latency_threads=(1, 2), latency_runs: int = 50,
                       batch_size: int = 64) -> dict:
    """Export and score every variant of every trained fold of a k-fold run.

    For each fold: ``build_model(num_classes)``, load ``work_dir/fold_XX/final.weights.h5``
    (the weights :func:`~ser_tf.training.classifier.train_fold` chose) and
    :func:`export_fold` into ``out_dir/fold_XX/``.

    Files: only ``keep_fold``'s files stay (default: the first fold; pass the index of the
    fold to ship, or ``"all"`` to keep every fold's folder); the others are deleted once
    scored. Latency is measured on the kept fold's files (the first fold's with ``"all"``).
    Returns :func:`summarise_fold_exports` of the folds, with ``files`` the kept ones.
    """
    from ser_tf.training.kfold import as_folds

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
    weights = _fold_weights(work_dir, folds)
    rows, files, latency, host = [], {}, {}, None
    for fold, index in zip(folds, indices):
        model = build_model(len(feature_set.label_names))
        model.load_weights(weights[index])
        row, paths = export_fold(model, fold, feature_set, Path(out_dir) / fold_dir_name(fold),
                                 recipe=recipe, variants=variants, seed=seed, name=name,
                                 representative_size=representative_size, batch_size=batch_size)
        rows.append(row)
        if index == latency_fold:
            example = _first_example(feature_set, fold)
            latency = {v: measure_latency(p, example, threads=latency_threads, runs=latency_runs)
                       for v, p in paths.items()}
            host = cpu_info()
        if keep == "all" or index == keep:
            files.update({f"fold_{index:02d}/{v}" if keep == "all" else v: str(p)
                          for v, p in paths.items()})
        else:
            _remove_fold_files(paths)
    size = int(min(representative_size, min(len(f.train_ids) for f in folds)))
    return summarise_fold_exports(rows, latency, kept_fold=keep, files=files,
                                  representative_size=size, latency_fold=latency_fold,
                                  latency_host=host)




def export_fold_scores(work_dir, fold, feature_set, build_model: Callable, *, recipe,
                       name: str | None = None, variants=ALL, representative_size: int = 200,
                       seed: int = 0, latency_threads=(1, 2), latency_runs: int = 50) -> dict:
    """Score one finished fold's TFLite variants and keep only the numbers.

    Loads ``work_dir/fold_XX/final.weights.h5``, runs :func:`export_fold` in a temporary
    folder, measures batch-1 latency of each variant and writes the row (plus ``latency``,
    ``latency_host`` (:func:`~ser_tf.util.machine.cpu_info`),
    ``representative_size`` and the weights' sha256) to ``work_dir/fold_XX/tflite.json``.
    Called when a fold finishes, this makes the run's TFLite scores independent of the
    weights files: they need not outlive the session that trained the fold.
    """
    import tempfile


    from ser_tf.util.jsonio import read_json, write_json_atomic

    weights = _fold_weights(work_dir, [fold])[int(fold.index)]
    model = build_model(len(feature_set.label_names))
    model.load_weights(weights)
    with tempfile.TemporaryDirectory() as tmp:
        row, paths = export_fold(model, fold, feature_set, tmp, recipe=recipe, variants=variants,
                                 representative_size=representative_size, seed=seed, name=name)
        example = _first_example(feature_set, fold)
        row["latency"] = {v: measure_latency(p, example, threads=latency_threads,
                                             runs=latency_runs) for v, p in paths.items()}
        row["latency_host"] = cpu_info()
    row["representative_size"] = int(min(representative_size, len(fold.train_ids)))
    row["weights_sha256"] = content_hash(weights)
    path = Path(work_dir) / fold_dir_name(fold) / TFLITE_FILE
    write_json_atomic(path, row)
    return read_json(path)


def current_fold_export(work_dir, fold) -> dict | None:
    """The fold's stored ``tflite.json`` row if it describes the weights on disk (or no
    weights are left to compare with), else ``None`` (missing, or the fold was retrained)."""
    from ser_tf.util.jsonio import read_json

    path = Path(work_dir) / fold_dir_name(fold) / TFLITE_FILE
    if not path.is_file():
        return None
    row = read_json(path)
    weights = path.with_name(WEIGHTS_FILE)
    if weights.is_file() and row.get("weights_sha256") != content_hash(weights):
        return None
    return row


def ensure_fold_export(work_dir, fold, feature_set, build_model: Callable, *, recipe,
                       name: str | None = None, **options) -> dict:
    """The fold's current ``tflite.json`` row, exported from its weights first if needed
    (:func:`export_fold_scores`); idempotent, so it is safe to call on every resume."""
    row = current_fold_export(work_dir, fold)
    if row is None:
        row = export_fold_scores(work_dir, fold, feature_set, build_model, recipe=recipe,
                                 name=name, **options)
    return row


def collect_fold_exports(work_dir, folds, feature_set, build_model: Callable, *, recipe,
                         name: str | None = None, **options) -> dict:
    """:func:`summarise_fold_exports` of every fold's ``tflite.json``.

    A fold without one (finished before per-fold export existed, or killed between its
    result and its export) is exported now from its weights; a ``tflite.json`` whose
    weights hash no longer matches the weights file on disk (the fold was retrained) is
    redone (:func:`ensure_fold_export`). Latency in the summary is the last fold's: the one
    measured most recently, on the machine that finishes the run.
    ``options`` go to :func:`export_fold_scores`.
    """
    from ser_tf.training.kfold import as_folds

    folds = as_folds(folds)
    if not folds:
        raise ValueError("no folds to export")
    rows = [ensure_fold_export(work_dir, fold, feature_set, build_model, recipe=recipe,
                               name=name, **options) for fold in folds]
    return summarise_fold_exports(
        rows, rows[-1].get("latency") or {}, latency_fold=int(folds[-1].index),
        latency_host=rows[-1].get("latency_host"),
        representative_size=min(int(r["representative_size"]) for r in rows))


def compare_with_run(tflite: dict, fold_metrics: dict) -> dict | None:
    """Whether a run's TFLite rows were scored on the run's own test inputs: the Keras
    model each row compares its variants with is the run's fold model, so on the same
    inputs its UA equals the run's fold UA (to rounding). ``fold_metrics``: ``{fold: UA}``
    of the run. Returns ``{"keras_matches_run", "max_keras_UA_difference",
    "folds_compared"}``, or ``None`` when no fold can be compared. A mismatch means the
    exported models saw other inputs (a crop, other features) than the Keras scores did,
    and their numbers are not the run's (an Attention-FCN export once took a 3 s crop
    without its lengths: 40 points apart)."""
    rows = ((tflite or {}).get("keras") or {}).get("folds") or []
    differences = [abs(float(row["UA"]) - float(fold_metrics[int(row["fold"])]))
                   for row in rows if row.get("UA") is not None
                   and fold_metrics.get(int(row["fold"])) is not None]
    if not differences:
        return None
    worst = max(differences)
    return {"keras_matches_run": bool(worst < KERAS_MATCH_TOLERANCE),
            "max_keras_UA_difference": round(worst, 4), "folds_compared": len(differences)}


#: UA points the TFLite rows' Keras scores may differ from the run's on the same fold
#: (float noise between two predict calls flips no answer in practice: measured 0.0 on
#: every committed record with matching inputs).
KERAS_MATCH_TOLERANCE = 0.01

