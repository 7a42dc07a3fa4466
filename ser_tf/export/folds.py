"""Every fold's model as TFLite, scored on that fold's test utterances.

:func:`export_fold` (when a fold finishes) and :func:`export_all_folds` (when the run
finishes): every fold's chosen weights are converted to float32, float16, dynamic-range
int8 and full-integer int8 (calibrated on that fold's training split only) and scored on
that fold's test utterances, so the numbers in the run record's ``tflite`` section describe
exactly the models the Keras scores describe.
"""

from __future__ import annotations


#: What the progress line says a fold's export is.
STEP = "TFLite export (float32, float16, dynamic int8, int8) and scoring"


def export_fold(work_dir, fold, feature_set, build_model, recipe, *,
                name: str, quiet: bool = False) -> dict:
    """Right after a fold finishes (or on resume, for a finished fold whose weights are
    here but whose scores are not): convert and score its four TFLite variants into
    ``fold_XX/tflite.json`` (:func:`ser_tf.export.evaluate.ensure_fold_export`).

    The conversions take about a minute and print nothing of their own: unless ``quiet``, a
    line says what runs (:func:`ser_tf.util.status.step`); a fold already exported is read
    back silently. The converter's own stderr lines are dropped when the command line is
    quiet (:func:`ser_tf.util.quiet.filtered_native_stderr`).
    """
    from ser_tf.export.evaluate import current_fold_export, ensure_fold_export
    from ser_tf.util.quiet import filtered_native_stderr
    from ser_tf.util.status import fold_label, step

    row = current_fold_export(work_dir, fold)
    if row is not None:
        return row
    with step(f"{fold_label(fold)}: {STEP}", quiet=quiet), filtered_native_stderr():
        return ensure_fold_export(work_dir, fold, feature_set, build_model, recipe=recipe,
                                  name=name)


def export_all_folds(work_dir, folds, feature_set, build_model, recipe, *,
                     name: str, quiet: bool = False) -> dict:
    """The four TFLite variants of every fold, scored on that fold's test utterances: each
    fold's ``tflite.json`` (exported from its weights where missing, with a progress line
    unless ``quiet``), summarised. Any feature-in model works; ``name`` is the model name
    written into the files' sidecars."""
    from ser_tf.export.evaluate import collect_fold_exports
    from ser_tf.training.kfold import as_folds

    for fold in as_folds(folds):  # the missing ones now, each with its line
        export_fold(work_dir, fold, feature_set, build_model, recipe, name=name, quiet=quiet)
    result = collect_fold_exports(work_dir, folds, feature_set, build_model, recipe=recipe,
                                  name=name)
    result.pop("files", None)  # nothing is kept: the files lived in temporary folders
    # The bound (int8 within 1.0 UA of float32), both ways: the mean of the per-fold
    # drops, and the drop of the pooled scores. On EMO-DB a fold has 53-54 test utterances
    # and some classes only 3 of them, so one changed answer moves that fold's UA by up to
    # 100 / (7 x 3) = 4.8 points.
    float32, int8 = result["variants"]["float32"], result["variants"]["int8"]
    result["int8_ua_drop_vs_float32"] = round(float32["mean"]["UA"] - int8["mean"]["UA"], 4)
    result["int8_ua_drop_vs_float32_pooled"] = round(
        float32["pooled"]["UA"] - int8["pooled"]["UA"], 4)
    return result
