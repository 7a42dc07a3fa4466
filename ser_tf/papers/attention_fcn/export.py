"""Attention-FCN as TFLite: every fold's model in float32, float16, dynamic-range int8 and
full int8, scored on that fold's test utterances, and the 1-D model with its front-end.

- 2-D, whole utterances (the default): the exported model takes two inputs, ``features``
  (:func:`export_frames` frames: the corpus's longest utterance, rounded up to whole
  seconds) and ``lengths`` (the frames that hold the utterance; the rest is zero padding
  at the end), and masks the padding exactly as the trained variable-length model does
  (:func:`ser_tf.models.attention_fcn.build_attention_fcn_2d` with ``lengths_input``).
  The shared :mod:`ser_tf.export.folds` converts and scores it on the whole test
  utterances (:class:`ser_tf.training.padded.FixedLengthInputs`): the same inputs the
  Keras scores are of. (Until 2026-12-05 this export took the first 3 s without lengths:
  the padding of short files then reached the convolutions and the attention, and the
  EMO-DB run's TFLite scores, of those crops, fell 30 UA points below its Keras ones.)
- 2-D, ``--crop``: the model takes the fixed-length crop it was trained on.
  The model returning α too is :func:`ser_tf.reporting.attention_maps.export_explain_tflite`.
- 1-D: the model takes the 128-value mean spectrum. Its sidecar input is of kind
  ``tensor`` with the recipe it comes from: the audio predictor cannot compute it from
  audio, so a deployable 1-D model is :func:`build_waveform_model_1d` (front-end and mean
  inside the graph), exported by :func:`export_waveform_1d` in float32 / float16.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

#: Window (seconds) of the deployable 1-D model: its mean spectrum is of that window.
WAVEFORM_SECONDS_1D = 3.0
#: Calibration examples for full int8, drawn from the fold's training ids only.
REPRESENTATIVE_SIZE = 200


def export_frames(longest: int) -> int:
    """Frames of the 2-D export's input for a whole-utterance run whose longest utterance
    has ``longest`` frames (as the batches give it, after ``--max-seconds``): rounded up to
    whole seconds (100 frames), so every test utterance fits whole and a deployed model's
    window is a round length (EMO-DB: 9 s)."""
    from ser_tf.models.attention_fcn import MIN_FRAMES

    return max(-(-int(longest) // 100) * 100, MIN_FRAMES)


def longest_frames(seconds: float, max_frames: int | None = None) -> int:
    """Frames of the paper's spectrogram of a ``seconds``-long recording (e.g. the run's
    data fingerprint's longest), at most ``max_frames``."""
    from ser_tf.papers.attention_fcn.recipes import SPECTROGRAM, UTTERANCE_RECIPE

    samples = int(round(float(seconds) * UTTERANCE_RECIPE.sample_rate))
    frames = 1 + max(samples - SPECTROGRAM["frame_length"], 0) // SPECTROGRAM["frame_step"]
    return frames if max_frames is None else min(frames, int(max_frames))


def export_fold(work_dir, fold, feature_set, build_model, recipe, *, variant: str,
                name: str, quiet: bool = False) -> dict:
    """The fold's ``tflite.json`` row (made now unless current); idempotent."""
    if variant == "2d":
        from ser_tf.export.folds import export_fold as export_2d

        return export_2d(work_dir, fold, feature_set, build_model, recipe, name=name,
                         quiet=quiet)
    from ser_tf.export.evaluate import current_fold_export
    from ser_tf.util.quiet import filtered_native_stderr
    from ser_tf.util.status import fold_label, step

    row = current_fold_export(work_dir, fold)
    if row is not None:
        return row
    with step(f"{fold_label(fold)}: TFLite export of the 1-D model and scoring", quiet=quiet), \
            filtered_native_stderr():
        return _export_fold_1d(work_dir, fold, feature_set, build_model, recipe, name=name)


def export_all_folds(work_dir, folds, feature_set, build_model, recipe, *, variant: str,
                     name: str, quiet: bool = False) -> dict:
    """Every fold's row, summarised (the run record's ``tflite`` section)."""
    from ser_tf.training.kfold import as_folds

    folds = as_folds(folds)
    if variant == "2d":
        from ser_tf.export.folds import export_all_folds as export_2d

        return export_2d(work_dir, folds, feature_set, build_model, recipe, name=name,
                         quiet=quiet)
    from ser_tf.export.evaluate import summarise_fold_exports

    rows = [export_fold(work_dir, fold, feature_set, build_model, recipe, variant=variant,
                        name=name, quiet=quiet) for fold in folds]
    summary = summarise_fold_exports(
        rows, rows[-1].get("latency") or {}, latency_fold=int(folds[-1].index),
        latency_host=rows[-1].get("latency_host"),
        representative_size=min(int(r["representative_size"]) for r in rows))
    summary.pop("files", None)
    float32, int8 = summary["variants"]["float32"], summary["variants"]["int8"]
    summary["int8_ua_drop_vs_float32"] = round(float32["mean"]["UA"] - int8["mean"]["UA"], 4)
    return summary


def vector_input_spec(recipe, bins: int) -> dict:
    """Sidecar input of the 1-D model: the mean over frames of ``recipe``'s features."""
    return {"kind": "tensor", "shape": [int(bins)], "sample_rate": int(recipe.sample_rate),
            "recipe": recipe.name, "segment": dict(recipe.segment),
            "frontend": dict(recipe.frontend), "reduction": "mean over frames",
            "normalise": None}


def _scores(metrics: dict) -> dict:
    from ser_tf.export.evaluate import SCORE_KEYS

    return {key: float(metrics[key]) for key in SCORE_KEYS}


def _export_fold_1d(work_dir, fold, feature_set, build_model, recipe, *, name: str) -> dict:
    """Convert, score and time one fold's 1-D model; writes ``fold_XX/tflite.json``."""
    from ser_tf.export.latency import measure_latency
    from ser_tf.export.tflite import export_variants
    from ser_tf.lite import LiteModel
    from ser_tf.training.metrics import classification_metrics
    from ser_tf.training.rundir import RunDir
    from ser_tf.util.jsonio import content_hash, read_json, write_json_atomic
    from ser_tf.util.machine import cpu_info

    fold_dir = RunDir(Path(work_dir)).fold(fold)
    labels = list(feature_set.label_names)
    model = build_model(len(labels))
    model.load_weights(fold_dir.weights)
    test = feature_set.index_of(fold.test_ids)
    x_test, y_test = feature_set.features[test].astype(np.float32), feature_set.labels[test]
    reference = model.predict(x_test, verbose=0)
    train = feature_set.index_of(fold.train_ids)
    rng = np.random.default_rng([0, int(fold.index)])
    chosen = np.sort(rng.choice(train, size=min(REPRESENTATIVE_SIZE, len(train)),
                                replace=False))
    keras_metrics = classification_metrics(y_test, reference, labels)
    row = {"fold": int(fold.index), "keras": {**_scores(keras_metrics), "metrics": keras_metrics},
           "variants": {}, "latency": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_variants(model, tmp, labels=labels, name=name,
                                representative=feature_set.features[chosen].astype(np.float32),
                                input_spec=vector_input_spec(recipe, x_test.shape[1]))
        for variant, path in paths.items():
            probabilities = LiteModel(path).predict(x_test)
            metrics = classification_metrics(y_test, probabilities, labels)
            row["variants"][variant] = {
                "size_bytes": path.stat().st_size, **_scores(metrics), "metrics": metrics,
                "max_prob_diff_vs_keras": float(np.abs(probabilities - reference).max()),
                "argmax_agreement": float(np.mean(probabilities.argmax(1) ==
                                                  reference.argmax(1)))}
            row["latency"][variant] = measure_latency(path, x_test[0], threads=(1,), runs=20)
    row.update(latency_host=cpu_info(), representative_size=int(len(chosen)),
               weights_sha256=content_hash(fold_dir.weights))
    write_json_atomic(fold_dir.tflite, row)
    return read_json(fold_dir.tflite)


def build_waveform_model_1d(model, recipe, *, seconds: float = WAVEFORM_SECONDS_1D):
    """``(batch, samples)`` audio at ``recipe.sample_rate`` -> the 1-D model's
    probabilities: the recipe's mel front-end, the mean over its frames, the model.

    On a recording of exactly ``samples`` samples it computes what training saw for that
    recording (the same front-end layer, the mean over all its frames); a runtime feeds
    fixed windows of ``seconds``.
    """
    import keras

    from ser_tf.features.frontends import build_frontend

    samples = int(round(float(seconds) * recipe.sample_rate))
    audio = keras.Input((samples,), name="waveform")
    spectrum = build_frontend(recipe.frontend, recipe.sample_rate)(audio)
    mean = keras.layers.GlobalAveragePooling1D(name="mean_over_frames")(spectrum)
    return keras.Model(audio, model(mean), name=f"{model.name}_waveform")


def export_waveform_1d(model, out_dir, recipe, labels, *, seconds: float = WAVEFORM_SECONDS_1D,
                       name: str = "attention_fcn-1d-waveform",
                       variants=("float32", "float16")) -> dict:
    """The 1-D model with its front-end (:func:`build_waveform_model_1d`) as TFLite: its
    sidecar says a runtime feeds ``seconds``-long windows from the file's start, as they are."""
    from ser_tf.export.tflite import export_variants

    waveform = build_waveform_model_1d(model, recipe, seconds=seconds)
    samples = int(waveform.input_shape[-1])
    spec = {"kind": "waveform", "sample_rate": int(recipe.sample_rate), "samples": samples,
            "recipe": recipe.name, "segment": {"kind": "window", "offset": 0.0,
                                               "duration": float(seconds)},
            "normalise": None,
            "preprocessing": "mel power spectrogram and its mean over frames inside the graph"}
    return export_variants(waveform, out_dir, labels=labels, input_spec=spec,
                           variants=variants, name=name)
