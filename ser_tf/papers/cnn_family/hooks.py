"""What the CNN family's runs do around training: the runner's hooks.

When a fold finishes (:func:`make_on_fold_done`): its TFLite export (four variants, scored
on its test utterances, :mod:`ser_tf.export.folds`) and its noise-robustness scores
(clean and AWGN at ``--noise-eval`` SNRs, :mod:`ser_tf.training.robustness`). When every
fold has (:func:`make_after_folds`): the record's sections ``corpus_counts`` (utterances
per corpus and label: a pooled run says what each corpus gave), ``tflite`` (summary over
folds), ``noise_robustness`` (mean ± std per condition) and ``hparams`` (the values a
``--hparams`` file gave and where they came from). None of these enter the run's config: adding or
skipping them never renames a run.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _features(features_or_source):
    """The cached features of the originals, from the source the hooks get (or itself)."""
    return getattr(features_or_source, "feature_set", features_or_source)


def make_on_fold_done(*, build, recipe, manifest, export_name: str | None, snrs_db, seed: int,
                      quiet: bool):
    """``on_fold_done(work_dir, fold, features, result)``: export (unless
    ``export_name`` is None), then noise scores (unless ``snrs_db`` is empty). Idempotent:
    the runner calls it again for finished folds when a run resumes."""
    if export_name is None and not snrs_db:
        return None

    def on_fold_done(work_dir, fold, features, result):
        if export_name is not None:
            from ser_tf.export.folds import export_fold

            export_fold(work_dir, fold, _features(features), build, recipe, name=export_name,
                        quiet=quiet)
        if snrs_db:
            row = _noise_row(work_dir, fold, manifest, recipe, build, snrs_db, seed, quiet)
            if row is not None and isinstance(result, dict):
                from ser_tf.training.robustness import RESULT_KEY

                result[RESULT_KEY] = row  # the record's per_fold entry is this dict

    return on_fold_done


def _noise_row(work_dir, fold, manifest, recipe, build, snrs_db, seed, quiet):
    from ser_tf.training.robustness import NOISE_FILE, condition_name, fold_noise_evaluation
    from ser_tf.training.rundir import RunDir
    from ser_tf.util.status import fold_label, step

    # Scored when the fold ended: reading the stored row back says nothing new.
    stored = (RunDir(Path(work_dir)).fold(fold).path / NOISE_FILE).is_file()
    conditions = ", ".join(condition_name(s) for s in (None, *snrs_db))
    with step(f"{fold_label(fold)}: test utterances under noise ({conditions})",
              quiet=quiet or stored):
        return fold_noise_evaluation(work_dir, fold, manifest, recipe, build, snrs_db=snrs_db,
                                     seed=seed)


def make_after_folds(*, build, recipe, manifest, export_name: str | None, snrs_db, seed: int,
                     hparams_provenance: dict | None, quiet: bool):
    """``after_folds(work_dir, folds, features, results) -> (details, None)``: the record's
    ``corpus_counts`` section, and its ``tflite``, ``noise_robustness`` and ``hparams``
    sections where they apply."""
    def after_folds(work_dir, folds, features, results):
        from ser_tf.data.pooled import counts_by_corpus

        details = {"corpus_counts": counts_by_corpus(manifest)}
        if export_name is not None:
            from ser_tf.export.folds import export_all_folds

            details["tflite"] = export_all_folds(work_dir, folds, _features(features), build,
                                                 recipe, name=export_name, quiet=quiet)
        if snrs_db:
            from ser_tf.training.robustness import (NOISE_FILE, RECORD_KEY, RESULT_KEY,
                                                    summarise_noise)

            rows = [_noise_row(work_dir, fold, manifest, recipe, build, snrs_db, seed, quiet)
                    for fold in folds]
            for result, row in zip(results, rows):
                if row is not None:
                    result[RESULT_KEY] = row
            if any(rows):
                summary = summarise_noise(rows)
                missing = summary.get("folds_without_scores", [])
                if missing:  # neither weights nor a stored row on this machine
                    print(f"noise scores: fold(s) {', '.join(str(i + 1) for i in missing)} "
                          f"have no weights here and no {NOISE_FILE} for this seed and these "
                          f"SNRs; the record's noise "
                          f"summary covers {len(rows) - len(missing)} of {len(rows)} folds",
                          file=sys.stderr)
                details[RECORD_KEY] = summary
        if hparams_provenance is not None:
            details["hparams"] = hparams_provenance
        return details, None

    return after_folds
