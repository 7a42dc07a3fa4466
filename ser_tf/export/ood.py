"""The out-of-domain check of a deployable model: measured from the cross-validation's
folds (:func:`ood_check`), written into the shipped sidecars (:func:`ood_sidecar`) and
cards (:func:`ood_card_text`), and measured again into already shipped models without
retraining (:func:`refresh_shipped_ood`, ``--ship --refresh-ood``). The check itself runs
on the device: :mod:`ser_tf.lite.ood`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ser_tf.util.errors import UserError


def ood_check(plan, feature_set, others: dict | None = None, speakers: dict | None = None
              ) -> dict:
    """The out-of-domain reference of the final model (:mod:`ser_tf.lite.ood`, from every
    utterance's features) and its measured rates: false alarms on each fold's test speakers
    with a reference fitted on that fold's training speakers only, and detection on the
    features of ``others`` (``{corpus name: (n, frames, coefficients) array}``).
    ``speakers`` (``{utterance id: speaker}``, or the group a speaker fold holds out, e.g.
    IEMOCAP's session, whose two speakers talk to each other): the threshold is then the
    quantile of leave-one-group-out distances, i.e. set for new speakers."""
    from ser_tf.lite.ood import feature_summary, fit_reference, rates

    summaries = feature_summary(feature_set.features)

    def groups(ids):
        return None if speakers is None else [speakers[i] for i in ids]

    false_alarms, sizes = [], []
    for number, fold in enumerate(plan.folds, start=1):
        try:
            reference = fit_reference(summaries[feature_set.index_of(fold.train_ids)],
                                      groups=groups(fold.train_ids))
        except ValueError as error:  # e.g. a fold trained on one speaker: no held-out speaker
            raise ValueError(f"out-of-domain check, fold {number} of {len(plan.folds)} "
                             f"(reference from its training speakers): {error}") from None
        measured = rates(summaries[feature_set.index_of(fold.test_ids)], None, reference)
        false_alarms.append(measured["false_alarm"])
        sizes.append(measured["n_in_domain"])
    reference = fit_reference(summaries, groups=groups(feature_set.ids))
    detection = {name: rates(None, feature_summary(features), reference)["detection"]
                 for name, features in (others or {}).items()}
    # The mean over folds weighs every fold alike; "pooled" is the share of all test
    # recordings (folds differ in size, so the two differ).
    pooled = float(np.dot(false_alarms, sizes) / max(sum(sizes), 1))
    return {"reference": reference, "false_alarm_test_speakers": {
                "mean": float(np.mean(false_alarms)), "per_fold": false_alarms,
                "pooled": pooled, "recordings": int(sum(sizes))},
            "detection": detection}


def ood_sidecar(ood: dict, recipe) -> dict:
    """The sidecar's ``ood`` entry: the reference, the front-end it was computed with (a
    waveform-in model's runtime computes it in NumPy for the check alone) and the rates."""
    return {**ood["reference"], "frontend": dict(recipe.frontend),
            "sample_rate": int(recipe.sample_rate),
            "false_alarm_test_speakers": ood["false_alarm_test_speakers"]["mean"],
            "detection": ood["detection"]}


#: How the card's out-of-domain paragraph begins (:func:`refresh_shipped_ood` finds it so).
OOD_CARD_PREFIX = "Out-of-domain warning:"


def ood_card_text(ood: dict) -> str:
    """The card's out-of-domain paragraph: what is compared, the threshold, the rates."""
    detection = (", ".join(f"{k}: {v:.1f} %" for k, v in ood["detection"].items())
                 or "other corpora: not measured")
    return (f"{OOD_CARD_PREFIX} `predict` warns when a recording's feature statistics lie "
            f"farther from the training utterances' than {_ood_threshold_text(ood['reference'])}"
            f" (sidecar `ood`). Measured false alarms on held-out speakers of the "
            f"training corpus: {ood['false_alarm_test_speakers']['mean']:.1f} %"
            f"{_spread_text(ood['false_alarm_test_speakers'])}; "
            f"detection on {detection}." + _missed_text(ood["detection"]))


def _spread_text(false_alarms: dict) -> str:
    """``" on average over folds (4.5 % of all 535 test recordings), 0.0 to 18.3 % by
    fold"``: how unevenly the false alarms fall on speakers (nothing for fewer than two
    folds; the pooled share only where it was measured)."""
    rates = [float(r) for r in false_alarms.get("per_fold") or () if r is not None]
    if len(rates) < 2:
        return ""
    pooled = false_alarms.get("pooled")
    share = (f" ({pooled:.1f} % of all {false_alarms['recordings']} test recordings)"
             if pooled is not None and false_alarms.get("recordings") else "")
    return f" on average over folds{share}, {min(rates):.1f} to {max(rates):.1f} % by fold"


def check_refresh(record_path, dest, other_corpora=(), *, utterances: int | None = None
                  ) -> dict:
    """Everything :func:`refresh_shipped_ood` needs, checked before anything is measured or
    written: the deploy record (its ``variants``, ``shipped`` and, with ``utterances``, the
    same utterance count as the data now), each model's ``.tflite``, sidecar and card with
    exactly one out-of-domain paragraph, and every corpus the shipped check was measured on
    named again in ``other_corpora`` (a refresh must not drop a measured rate). Returns
    ``{"record": ..., "models": [(path, sidecar, card blocks, paragraph index)]}``; raises
    UserError naming the file and the reason."""
    from ser_tf.util.jsonio import read_json

    record_path = Path(record_path)
    if not record_path.is_file():
        raise UserError(f"{record_path}: no deploy record; ship the model first (--ship "
                        "without --refresh-ood)")
    record = read_json(record_path)
    if not isinstance(record.get("variants"), list) or not isinstance(record.get("shipped"),
                                                                       dict):
        raise UserError(f"{record_path}: not a deploy record (no 'variants' / 'shipped')")
    if utterances is not None and record.get("utterances") not in (None, utterances):
        raise UserError(f"{record_path}: the shipped models were trained on "
                        f"{record['utterances']} utterances, the corpus now has {utterances}: "
                        "ship again (--ship without --refresh-ood)")
    from ser_tf.data import corpus_key

    measured = set((record.get("ood") or {}).get("detection") or {})
    given = {corpus_key(name) for name in other_corpora}
    dropped = sorted(name for name in measured if corpus_key(name) not in given)
    if dropped:
        raise UserError(f"{record_path}: the shipped check was measured on "
                        f"{', '.join(dropped)}; pass --ood-corpus {dropped[0]}=DIR again "
                        "(a refresh replaces every rate)")
    models = []
    for variant in record["variants"]:
        path = Path(dest) / Path(str(record["shipped"].get(variant, ""))).name
        for part in (path, path.with_suffix(".json"), path.with_suffix(".md")):
            if not part.is_file():
                raise UserError(f"{part}: missing (shipped model {variant} of {record_path}, "
                                f"looked up in {dest})")
        sidecar = read_json(path.with_suffix(".json"))
        blocks = path.with_suffix(".md").read_text(encoding="utf-8").split("\n\n")
        where = [i for i, b in enumerate(blocks) if b.startswith(OOD_CARD_PREFIX)]
        if len(where) != 1:
            raise UserError(f"{path.with_suffix('.md')}: expected one paragraph starting "
                            f"{OOD_CARD_PREFIX!r}, found {len(where)}")
        models.append((path, sidecar, blocks, where[0]))
    return {"record": record, "models": models}


def refresh_shipped_ood(record_path, ood: dict, recipe, dest, *,
                        utterances: int | None = None) -> list[Path]:
    """Put a newly measured out-of-domain reference ``ood`` into already shipped models:
    the sidecar's ``ood``, the card's out-of-domain paragraph and the deploy record's
    ``ood`` (nothing else changes: no training, no export). The models are the record's
    ``variants``, looked up by file name in ``dest``; everything is checked
    (:func:`check_refresh`) before anything is written. Returns the files rewritten."""
    from ser_tf.util.jsonio import write_json_atomic

    checked = check_refresh(record_path, dest, ood["detection"], utterances=utterances)
    paragraph = ood_card_text(ood)
    written = []
    for path, sidecar, blocks, where in checked["models"]:
        blocks = [*blocks[:where], paragraph, *blocks[where + 1:]]
        write_json_atomic(path.with_suffix(".json"), {**sidecar, "ood": ood_sidecar(ood, recipe)})
        path.with_suffix(".md").write_text("\n\n".join(blocks), encoding="utf-8")
        written += [path.with_suffix(".json"), path.with_suffix(".md")]
    write_json_atomic(record_path, {**checked["record"], "ood": ood})
    return written + [Path(record_path)]


def _missed_text(detection: dict) -> str:
    """A warning for the card when the OOD check missed most of another corpus."""
    missed = [name for name, rate in detection.items() if rate < 50.0]
    if not missed:
        return ""
    return (f" It let most of {', '.join(missed)} through: it compares feature statistics "
            "(level, spectrum and how they move together), so it catches other microphones, "
            "noise or sample rates more surely than another language or other speakers "
            "recorded alike. No warning does not mean a recording is like the training data.")


def _ood_threshold_text(reference: dict) -> str:
    percentile = f"{100 * reference['quantile']:.0f}th percentile"
    where = ("of held-out speakers' distances (each speaker measured against the others)"
             if str(reference.get("threshold_from", "")).startswith("held-out")
             else "of their own distances")
    if reference.get("precision") is None:
        return f"the {percentile} {where}; per-dimension distance"
    return f"the {percentile} {where}; Mahalanobis distance, Ledoit-Wolf shrinkage"
