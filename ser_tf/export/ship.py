"""Shipping a model: one fold's models, ready for a device.

:func:`ship_fold` copies one finished fold's models (the four feature-in variants and the
waveform-in float32 model, front-end inside the graph) to ``tflite_models/`` with model
cards, and writes a JSON record of their measured size, scores, parity and latency. Files
are named ``<prefix>-mfcc-<variant>.tflite`` and ``<prefix>-waveform-float32.tflite``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np


def waveform_parity(feature_model, waveform_path, recipe, audio_paths) -> dict:
    """Max probability difference between the waveform-in TFLite model and the Keras
    pipeline (segment -> front-end -> model) on real recordings."""
    from ser_tf.data.audio import read_audio
    from ser_tf.lite import LiteModel

    lite = LiteModel(waveform_path)
    diffs = []
    for path in audio_paths:
        audio, _ = read_audio(path, sr=recipe.sample_rate)
        segment = recipe.segment_audio(audio)[None]
        keras_probs = feature_model.predict(recipe.compute(segment), verbose=0)
        diffs.append(float(np.abs(lite.predict(segment) - keras_probs).max()))
    return {"files": len(diffs), "max_prob_diff": max(diffs), "mean_prob_diff": float(np.mean(diffs))}


def ship_fold(plan, fold_index: int, manifest, feature_set, build_model, recipe, *,
              prefix: str, dest="tflite_models", record_path=None,
              title: str | None = None) -> dict:
    """Export one fold's models into ``dest`` with model cards; returns the measurements.

    ``title``: what the model cards' titles say before the variant (default ``prefix``);
    the caller, which knows the model and the corpus, names them."""
    from ser_tf.export.evaluate import evaluate_tflite, export_fold_models, scores_of
    from ser_tf.export.latency import measure_frontend_latency, measure_latency
    from ser_tf.export.model_card import write_model_card
    from ser_tf.export.tflite import export_variants
    from ser_tf.export.waveform import build_waveform_model, input_spec
    from ser_tf.util.machine import cpu_info, describe_cpu
    from ser_tf.training.protocols import paper_protocol_warning
    from ser_tf.training.rundir import RunDir

    fold = next(f for f in plan.folds if int(f.index) == int(fold_index))
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    by_id = {u.utterance_id: u for u in manifest}
    test_paths = [by_id[i].path for i in fold.test_ids]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        features = export_fold_models(plan.work_dir, [fold], feature_set, build_model, tmp,
                                      recipe=recipe, keep_fold=int(fold.index),
                                      name=prefix + "-mfcc")
        model = build_model(len(manifest.labels))
        model.load_weights(RunDir(plan.work_dir).fold(fold).weights)
        waveform = build_waveform_model(model, recipe)
        samples = int(waveform.input_shape[1])
        wave_paths = export_variants(waveform, tmp / "waveform", labels=list(manifest.labels),
                                     variants=("float32",), name=prefix + "-waveform",
                                     input_spec=input_spec(recipe, "waveform", (samples,)))
        wave_path = wave_paths["float32"]
        segments = np.stack([recipe.segment_audio(_read(p, recipe)) for p in test_paths])
        y_test = feature_set.labels[feature_set.index_of(fold.test_ids)]
        wave_metrics = evaluate_tflite(wave_path, segments, y_test, list(manifest.labels))
        measured = {
            "run_id": plan.run_id, "fold": int(fold.index), "protocol": plan.config["protocol"],
            "test_utterances": len(test_paths), "feature_models": features,
            "waveform": {"size_bytes": wave_path.stat().st_size,
                         "metrics": scores_of(wave_metrics),
                         "parity": waveform_parity(model, wave_path, recipe, test_paths),
                         "latency": measure_latency(wave_path, segments[0])},
            # What a features-in model needs first on the device: ser_tf.lite's NumPy MFCC.
            "numpy_frontend_latency": measure_frontend_latency(
                recipe.frontend, recipe.sample_rate, segments[0]),
            "latency_host": cpu_info()}
        files = {v: Path(p) for v, p in features["files"].items()}
        files["waveform-float32"] = wave_path
        shipped = {}
        for variant, path in files.items():
            for source in (path, path.with_suffix(".json")):
                shutil.copy2(source, dest / source.name)
            shipped[variant] = str(dest / path.name)
    warning = paper_protocol_warning(plan.config["protocol"])
    protocol_text = (f"{plan.config['protocol']} protocol, fold {int(fold.index) + 1} of "
                     f"{len(plan.folds)} (run {plan.run_id})" + (f"; {warning}" if warning else ""))
    training = (f"{manifest.corpus} ({len(fold.train_ids)} training utterances of this fold; "
                f"{len(fold.test_ids)} held-out test utterances scored below)")
    for variant, path in shipped.items():
        info = (measured["waveform"] if variant == "waveform-float32"
                else features["variants"][variant] | {"metrics": features["variants"][variant]["mean"]})
        write_model_card(path, title=f"{title or prefix} ({variant})",
                         training_data=training, protocol=protocol_text,
                         metrics=info["metrics"], labels=list(manifest.labels),
                         input_spec=json.loads(Path(path).with_suffix(".json").read_text())["input"],
                         size_bytes=info["size_bytes"],
                         latency=_card_latency(info["latency"], None if variant ==
                                               "waveform-float32" else
                                               measured["numpy_frontend_latency"]),
                         notes="Measured by ser_tf.export.ship.ship_fold (--ship-fold); "
                               f"latency on {describe_cpu(measured['latency_host'])}.")
    measured["shipped"] = shipped
    if record_path is not None:
        from ser_tf.util.jsonio import write_json_atomic

        write_json_atomic(record_path, measured)
    return measured


def _card_latency(latency: dict, frontend: dict | None = None) -> dict:
    """measure_latency's ``{threads: {"mean_ms", "p95_ms", ...}}`` as model-card rows, plus
    the NumPy MFCC front-end's time (``frontend``) for a features-in model."""
    from ser_tf.export.latency import latency_text

    rows = {}
    for threads, stats in sorted(latency.items(), key=lambda kv: int(kv[0])):
        text = latency_text(stats)
        key = "host_ms" if int(threads) == 1 else f"Development machine CPU, {threads} threads"
        rows[key] = text
    if frontend is not None:
        rows["Development machine CPU, MFCC in NumPy before the model (ser_tf.lite), one "
             "window"] = latency_text(frontend)
    return rows


def _read(path, recipe):
    from ser_tf.data.audio import read_audio

    return read_audio(path, sr=recipe.sample_rate)[0]
