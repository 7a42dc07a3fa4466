"""A deployable model: trained on every speaker, sized by speaker-independent
cross-validation, calibrated on held-out speakers, shipped with an honest card.

A model from one cross-validation fold has heard 8 of EMO-DB's 10 actors; a user wants one
trained on all of them. But a model trained on everything has no held-out data left to
say how good it is or when to stop. So the numbers come from the finished
speaker-independent cross-validation of the same configuration:

1. :func:`cv_summary`: how many epochs to train (the median of the epochs the folds'
   checkpoint policy chose on their validation speakers) and the expected accuracy on new
   speakers (the folds' test UA/WA/F1, mean ± std, never measured on a speaker the fold
   trained on);
2. :func:`validation_temperature`: the temperature that calibrates the folds' models on
   their validation speakers, and the expected calibration error it leaves on their test
   speakers (before/after);
3. :func:`train_final`: the final model, every utterance, that epoch count, no selection
   (resumable like a fold);
4. :func:`ship_final`: TFLite variants (full int8 only where the folds showed it within
   ``INT8_MAX_UA_DROP`` points of float32) with sidecars carrying the temperature and the
   expected accuracy, and model cards saying what the model has and has not heard.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ser_tf.export.model_card import recordings_line, window_lines
from ser_tf.export.ood import ood_card_text, ood_sidecar
from ser_tf.util.errors import UserError

#: Full int8 ships only if the folds' mean UA drops by at most this many points.
INT8_MAX_UA_DROP = 1.0
SCORE_KEYS = ("UA", "WA", "macro_F1")


class CrossValidationNotFinished(UserError, ValueError):
    """The speaker-independent run a deployable model depends on is not complete (a user
    error: the CLI prints the message, which names the missing folds, and exits 1)."""


def missing_folds(plan) -> list[int]:
    """Indices (0-based, as the ``fold_XX`` folders) of ``plan``'s folds without a result."""
    from ser_tf.training.rundir import RunDir

    run_dir = RunDir(plan.work_dir)
    return [int(f.index) for f in plan.folds if not run_dir.fold(f).finished]


def _fold_results(plan) -> list[dict]:
    from ser_tf.training.rundir import RunDir, fold_dir_name
    from ser_tf.util.jsonio import read_json

    missing = missing_folds(plan)
    if missing:
        done = len(plan.folds) - len(missing)
        names = ", ".join(fold_dir_name(i) for i in missing)
        raise CrossValidationNotFinished(
            f"the {plan.config['protocol']} cross-validation {plan.run_id} has {done} of "
            f"{len(plan.folds)} folds finished; missing: {names} (in {plan.work_dir}). "
            "Finish it first: the same command with --protocol speaker and without --ship")
    run_dir = RunDir(plan.work_dir)
    return [read_json(run_dir.fold(f).result) for f in plan.folds]


def cv_summary(plan) -> dict:
    """Epoch count and expected accuracy from a finished cross-validation ``plan``."""
    results = _fold_results(plan)
    chosen = [r.get("chosen_epoch") or r.get("epochs_run") for r in results]
    if any(c is None for c in chosen):
        raise ValueError(f"run {plan.run_id}: some folds record no chosen epoch")
    expected = {}
    for key in SCORE_KEYS:
        values = np.asarray([r["metrics"][key] for r in results], dtype=float)
        expected[key] = {"mean": float(values.mean()),
                         "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    return {"run_id": plan.run_id, "protocol": plan.config["protocol"],
            "folds": len(results), "chosen_epochs": [int(c) for c in chosen],
            "epochs": max(1, int(np.floor(np.median(chosen) + 0.5))), "expected": expected,
            "selection_on_test": any(r.get("selection_on_test") for r in results)}


def validation_temperature(plan, *, source, task, build_model, batch_size: int = 64) -> dict:
    """One temperature for the folds' models, fitted on their pooled validation speakers'
    predictions; its effect measured on their pooled test predictions (the stored ones).

    Folds whose weights are not on this machine are left out (counted in the result).
    """
    from ser_tf.lite.calibration import calibration_report, fit_temperature
    from ser_tf.training.rundir import RunDir

    results = {int(r["fold"]): r for r in _fold_results(plan)}
    val_p, val_y, test_p, test_y, used = [], [], [], [], []
    for fold in plan.folds:
        weights = RunDir(plan.work_dir).fold(fold).weights
        if not weights.is_file() or not fold.val_ids or fold.selection_on_test:
            continue
        model = build_model(task.num_outputs)
        model.load_weights(weights)
        order = source.evaluation_order(fold.val_ids)
        data = source.dataset(order, task=task, training=False, batch_size=batch_size)
        val_p.append(model.predict(data, verbose=0))
        val_y.append(source.targets(order))
        stored = results[int(fold.index)]
        test_p.append(np.asarray(stored["test_probabilities"], dtype=np.float64))
        test_y.append(source.targets(stored["test_ids"]))
        used.append(int(fold.index))
    if not used:
        raise ValueError(f"run {plan.run_id}: no fold with a validation split and its weights "
                         "on this machine; cannot fit a temperature")
    val_p, val_y = np.concatenate(val_p), np.concatenate(val_y)
    temperature = fit_temperature(val_p, val_y)
    return {"temperature": temperature, "folds_used": used, "validation_utterances": len(val_y),
            "validation": calibration_report(val_p, val_y, temperature),
            "test": calibration_report(np.concatenate(test_p), np.concatenate(test_y),
                                       temperature)}


def train_final(work_dir, *, source, task, build_model, fit, epochs: int,
                quiet: bool = False):
    """Train on every id of ``source`` for ``epochs`` epochs (no validation, no selection);
    resumable (the fold backup); returns the model with its final weights, which are also
    saved as ``work_dir/final.weights.h5``. Done before: the weights are loaded instead."""
    from ser_tf.training.classifier import FitConfig
    from ser_tf.training.kfold import fold_callbacks
    from ser_tf.training.progress import EpochLogger
    from ser_tf.training.rundir import WEIGHTS_FILE
    from ser_tf.training.seeding import set_seed

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    weights = work_dir / WEIGHTS_FILE
    final = FitConfig(**{**fit.to_dict(), "epochs": int(epochs), "checkpoint": "last",
                         "patience": None})
    set_seed(final.seed)
    model = build_model(task.num_outputs)
    if weights.is_file():
        # Into the uncompiled model: the file holds the optimizer's state too, and a fresh
        # optimizer would only warn that it skips it.
        model.load_weights(weights)
        return final.compile(model, task)
    model = final.compile(model, task)
    ids = source.ids
    data = source.dataset(ids, task=task, training=True, seed=final.seed,
                          batch_size=final.batch_size, repeat=final.full_batches)
    steps = len(ids) // final.batch_size if final.full_batches else None
    callbacks = fold_callbacks(work_dir, logger=EpochLogger(1, 1, quiet=quiet))
    if final.lr_schedule:
        callbacks.insert(1, final.schedule_callback())
    model.fit(data, epochs=final.epochs, steps_per_epoch=steps, callbacks=callbacks,
              verbose=0, shuffle=False)
    model.save_weights(weights)
    return model


def int8_within_reach(plan) -> dict:
    """Per-variant mean UA over the folds' TFLite scores (``tflite.json``) and whether full
    int8 stays within :data:`INT8_MAX_UA_DROP` points of float32."""
    from ser_tf.training.rundir import RunDir
    from ser_tf.util.jsonio import read_json

    rows = [read_json(RunDir(plan.work_dir).fold(f).tflite) for f in plan.folds
            if RunDir(plan.work_dir).fold(f).tflite.is_file()]
    if len(rows) < len(plan.folds):
        return {"folds": len(rows), "int8": False,
                "reason": f"only {len(rows)} of {len(plan.folds)} folds have TFLite scores"}
    means = {v: float(np.mean([r["variants"][v]["UA"] for r in rows]))
             for v in rows[0]["variants"]}
    drop = means.get("float32", np.nan) - means.get("int8", np.nan)
    return {"folds": len(rows), "mean_UA": means, "int8_drop": float(drop),
            "int8": bool(np.isfinite(drop) and drop <= INT8_MAX_UA_DROP)}


def scope_lines(corpus, manifest, data: dict | None = None) -> list[str]:
    """What the model has heard, and what it has not, from the corpus loader's facts and
    the run's data fingerprint ``data`` (rates, lengths, copy)."""
    speakers = sorted({u.speaker for u in manifest})
    heard = [f"{len(manifest)} utterances of {corpus.name}: {len(speakers)} speakers "
             f"({', '.join(speakers[:12])}{' ...' if len(speakers) > 12 else ''})",
             f"language: {getattr(corpus, 'language', '') or 'not recorded'}; speech: "
             f"{getattr(corpus, 'speech', '') or 'not recorded'}",
             *([recordings_line(data)] if recordings_line(data) else []),
             f"classes: {', '.join(manifest.labels)}"]
    not_heard = ["other languages, other speakers' voices, spontaneous speech, noise, "
                 "far-field or telephone audio, children: expect lower accuracy there, "
                 "and confident mistakes (see the calibration and expected accuracy above)",
                 "emotions outside the classes above: they are mapped to the nearest class"]
    return ["Has heard:", *[f"- {line}" for line in heard], "", "Has not heard:",
            *[f"- {line}" for line in not_heard]]


def ship_final(model, *, out_dir, prefix: str, title: str, recipe, feature_set, labels,
               cv: dict, calibration: dict, int8: dict, scope: list[str],
               ood: dict | None = None, data: dict | None = None, notes=(),
               features_name: str = "mfcc", representative_size: int = 200,
               seed: int = 0, latency_runs: int = 20) -> dict:
    """Export the final model to ``out_dir``: the features-in variants
    (``<prefix>-<features_name>-<variant>``) and, when the recipe's front-end can be a graph
    layer, the waveform-in float32 model (``<prefix>-waveform-float32``); sidecars carry the
    temperature, expected accuracy and out-of-domain reference; cards say what the model
    has heard (``scope``, ``data``: the run's data fingerprint), its window, and ``notes``
    (the caller's own lines, e.g. why the window has its length).

    A front-end without a graph layer (e.g. ``librosa_mfcc``) ships features-in only: the
    device computes it with :func:`ser_tf.features.spectral.numpy_features`, the training
    front-end's numbers in NumPy, so the model gets the input it was trained on."""
    from ser_tf.export.latency import latency_text, measure_frontend_latency, measure_latency
    from ser_tf.export.model_card import write_model_card
    from ser_tf.export.tflite import export_variants
    from ser_tf.export.waveform import build_waveform_model, input_spec
    from ser_tf.features.spectral import TF_KINDS

    variants = ("float32", "float16", "dynamic_int8") + (("int8",) if int8["int8"] else ())
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(feature_set.ids), size=min(representative_size,
                                                               len(feature_set.ids)),
                              replace=False))
    representative = np.asarray(feature_set.features[rows], dtype=np.float32)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {"calibration": {"temperature": calibration["temperature"],
                             "fitted_on": "validation speakers of the cross-validation folds",
                             "ece_test_before": calibration["test"]["ece_before"],
                             "ece_test_after": calibration["test"]["ece_after"]},
             "expected_accuracy": {"protocol": cv["protocol"], "run_id": cv["run_id"],
                                   "folds": cv["folds"], **cv["expected"]}}
    if ood is not None:
        extra["ood"] = ood_sidecar(ood, recipe)
    waveform_in = recipe.frontend.get("kind") in TF_KINDS
    shipped = {}
    with tempfile.TemporaryDirectory() as tmp:
        shape = tuple(int(d) for d in feature_set.features.shape[1:])
        paths = export_variants(model, Path(tmp), labels=list(labels), variants=variants,
                                representative=representative if "int8" in variants else None,
                                input_spec=input_spec(recipe, "features", shape),
                                name=f"{prefix}-{features_name}")
        if waveform_in:
            waveform = build_waveform_model(model, recipe)
            paths["waveform-float32"] = export_variants(
                waveform, Path(tmp), labels=list(labels), variants=("float32",),
                input_spec=input_spec(recipe, "waveform", (int(waveform.input_shape[1]),)),
                name=f"{prefix}-waveform")["float32"]
        for variant, path in paths.items():
            sidecar = path.with_suffix(".json")
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            sidecar.write_text(json.dumps({**meta, **extra}, indent=2) + "\n", encoding="utf-8")
            for source in (path, sidecar):
                shutil.copy2(source, out_dir / source.name)
            shipped[variant] = out_dir / path.name
    segment = np.zeros(recipe.num_samples(), np.float32)
    segment[: len(segment) // 2] = rng.standard_normal(len(segment) // 2) * 0.1
    frontend_ms = measure_frontend_latency(recipe.frontend, recipe.sample_rate, segment,
                                           runs=latency_runs)
    latency = {}
    for variant, path in shipped.items():
        example = segment if variant == "waveform-float32" else representative[0]
        latency[variant] = measure_latency(path, example, threads=(1,), runs=latency_runs)[1]
    card_notes = _final_notes(cv, calibration, int8, ood, scope, notes, window_lines(
        json.loads(shipped["float32"].with_suffix(".json").read_text())["input"], data),
        waveform_in, recipe)
    metrics = {key: cv["expected"][key] for key in SCORE_KEYS}
    for variant, path in shipped.items():
        spec = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["input"]
        rows_ms = {"host_ms": latency_text(latency[variant])}
        if variant != "waveform-float32":
            rows_ms["Development machine CPU, the NumPy front-end before the model "
                    "(ser_tf.lite), one window"] = latency_text(frontend_ms)
        write_model_card(path, title=f"{title} ({variant})",
                         training_data=f"all {len(feature_set.ids)} utterances of the "
                                       "corpus, every speaker (what they are: 'Has heard' "
                                       "under Notes)",
                         protocol=_protocol_text(cv), metrics=metrics, labels=list(labels),
                         input_spec=spec, latency=rows_ms, notes=card_notes)
    return {"shipped": {k: str(v) for k, v in shipped.items()}, "variants": list(shipped),
            "latency_ms": {"models": latency, "numpy_frontend": frontend_ms}}


def _protocol_text(cv: dict) -> str:
    return (f"Trained on every utterance for {cv['epochs']} epochs: the median of the epochs "
            f"chosen on validation speakers by the {cv['folds']} folds of the "
            f"{cv['protocol']} cross-validation {cv['run_id']} (chosen: "
            f"{', '.join(map(str, cv['chosen_epochs']))}). The metrics below are that "
            "cross-validation's test folds (speakers the fold's model never heard): the "
            "accuracy to expect on new speakers of the same corpus. This model has no "
            "held-out data of its own.")


def calibration_scope(calibration: dict, n_folds: int) -> str:
    """Whose validation speakers the temperature was fitted on: every fold's, or which
    folds' when some had no weights on the machine that shipped the model
    (:func:`validation_temperature` leaves them out)."""
    used = sorted(int(f) for f in calibration.get("folds_used") or ())
    if not used or len(used) >= n_folds:
        return "the folds' validation speakers"
    return (f"the validation speakers of {len(used)} of the {n_folds} folds (folds "
            f"{', '.join(str(f + 1) for f in used)}; the other folds' weights were not on the "
            "machine that shipped it)")


def _final_notes(cv, calibration, int8, ood, scope, notes, window, waveform_in,
                 recipe) -> str:
    """The card's notes: calibration, full int8, out-of-domain check, window, input, scope."""
    cal = calibration["test"]
    if int8["int8"]:
        int8_text = (f"shipped (folds' mean UA, float32 minus int8: {int8['int8_drop']:+.2f} "
                     f"points; the limit is {INT8_MAX_UA_DROP:g} point)")
    else:
        reason = int8.get("reason") or f"folds lose {int8['int8_drop']:.2f} points UA"
        int8_text = f"not shipped ({reason}; the limit is {INT8_MAX_UA_DROP:g} point)"
    lines = [
        f"Calibration: probabilities are divided in log space by a temperature T = "
        f"{calibration['temperature']:.3f} (sidecar `calibration`), fitted on "
        f"{calibration_scope(calibration, len(cv['chosen_epochs']))} "
        f"({calibration['validation_utterances']} utterances); on their "
        f"test speakers it moves the expected calibration error from {cal['ece_before']:.1f} % "
        f"to {cal['ece_after']:.1f} % ({cal['bins']} bins).",
        "Full int8: " + int8_text + "."]
    if ood is not None:
        lines.append(ood_card_text(ood))
    lines += window
    if not waveform_in:
        lines.append(f"Input: features only. The front-end ({recipe.frontend.get('kind')}, "
                     "the sidecar's `input.frontend`) is computed on the device by "
                     "`ser_tf.lite` in NumPy, the same numbers as in training; there is no "
                     "waveform-in model because that front-end has no graph layer.")
    # One paragraph per statement (Markdown joins lines that no blank line separates).
    return "\n\n".join([*lines, *notes, "\n".join(scope)])
