"""Which out-of-domain check tells a shipped model's new speakers from another corpus?

A warning is worth having only if it fires on audio unlike the training data and seldom on
new speakers of the training corpus. This benchmark runs a shipped model through the
device runtime (:func:`ser_tf.lite.predict.predict_file`, the same windows as ``predict``)
on every recording of its own corpus and of other corpora, keeps each window's feature
summary and each recording's calibrated probabilities, and compares detectors:

- feature statistics, ``per-dimension`` (RMS standardised distance) and ``mahalanobis``
  (whitened, Ledoit-Wolf shrinkage), each with the threshold at a quantile of the
  training windows' own distances or of held-out speakers' distances
  (:mod:`ser_tf.lite.ood`);
- the calibrated top probability (low = unsure), in-domain from the speaker-independent
  run's stored test predictions (each fold's model on speakers it never heard; with the
  shipped temperature), other corpora from the shipped model. Its threshold for each
  held-out speaker is set on the other speakers' predictions.

False alarms are leave-one-speaker-out: the reference (or probability threshold) never saw
the speaker it judges. Other corpora are scored against the reference of every training
speaker, so the two sides of an AUC come from references one speaker apart (a small
asymmetry; the reference a user gets is the full one). A recording is flagged on the
median over its windows, as ``predict`` does, while thresholds are quantiles of window
distances, so the measured false alarms can fall below ``1 - quantile``. One more row
scores the same windows with the reference the model ships (its sidecar's ``ood``, fitted
by ``--ship`` on every utterance's training features): its detection is what ``predict``
does on the other corpora; on the model's own corpus it has seen every speaker, so that
row's in-domain rate is not a false-alarm rate. AUC: the chance that a random other-corpus recording scores as more
unusual than a random held-out in-domain one (0.5 = no better than chance).

    python -m ser_tf.bench.ood --model tflite_models/timnet-emodb-mfcc-float32.tflite \\
        --corpus EMODB=../shared/data/emodb --other RAVDESS=../shared/data/ravdess \\
        --run-dir experiments/results/timnet/EMODB/speaker-1d28747f33.work \\
        --results-dir experiments/results --out bench/ood-detectors-timnet-emodb.json
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ser_tf.lite.ood import KINDS, distances, fit_reference, prepare_reference

QUANTILES = (0.95, 0.99)
THRESHOLDS = ("training", "held-out")


def _pair(text: str) -> tuple[str, str]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    return name.upper(), folder


def run_recordings(manifest, model, *, progress: bool = True) -> dict:
    """Every recording of ``manifest`` through the runtime: ``{"summaries": [(windows,
    dims)], "max_probability": (n,), "speakers": [...], "ids": [...]}``."""
    from ser_tf.lite.predict import predict_file

    summaries, top, speakers, ids = [], [], [], []
    for i, utt in enumerate(manifest):
        result = predict_file(utt.path, model, keep_summaries=True)
        summaries.append(result["ood_summaries"])
        top.append(max(result["probabilities"].values()))
        speakers.append(utt.speaker)
        ids.append(utt.utterance_id)
        if progress and (i + 1) % 200 == 0:
            print(f"  {manifest.corpus}: {i + 1}/{len(manifest)} recordings", flush=True)
    return {"summaries": summaries, "max_probability": np.asarray(top), "speakers": speakers,
            "ids": ids}


def _recording_scores(summaries: list, reference: dict) -> np.ndarray:
    return np.asarray([np.median(distances(s, reference)) for s in summaries])


def auc(in_domain, other) -> float:
    """P(other > in-domain) + P(tie) / 2 over all pairs (higher score = more unusual)."""
    a, b = np.asarray(in_domain, dtype=float), np.asarray(other, dtype=float)
    if not len(a) or not len(b):
        raise ValueError("auc needs scores on both sides")
    greater = (b[:, None] > a[None, :]).mean()
    ties = (b[:, None] == a[None, :]).mean()
    return float(greater + ties / 2)


def feature_detector(own: dict, others: dict, *, kind: str, threshold: str,
                     quantile: float) -> dict:
    """Leave-one-speaker-out false alarms on ``own``, detection on each of ``others``."""
    speakers = np.asarray(own["speakers"])
    window_speakers = np.concatenate([[s] * len(w) for s, w in zip(speakers,
                                                                   own["summaries"])])
    windows = np.concatenate(own["summaries"])

    def reference(keep_recordings):
        keep = np.isin(window_speakers, speakers[keep_recordings])
        groups = window_speakers[keep] if threshold == "held-out" else None
        return fit_reference(windows[keep], quantile, groups=groups, kind=kind)

    held_scores, flagged, per_speaker = np.empty(len(speakers)), np.zeros(len(speakers), bool), {}
    for speaker in np.unique(speakers):
        inside = speakers == speaker
        ref = reference(~inside)
        held_scores[inside] = _recording_scores(
            [s for s, k in zip(own["summaries"], inside) if k], ref)
        flagged[inside] = held_scores[inside] > ref["threshold"]
        per_speaker[str(speaker)] = float(100 * flagged[inside].mean())
    full = reference(np.ones(len(speakers), bool))
    detection, areas = {}, {}
    for name, other in others.items():
        scores = _recording_scores(other["summaries"], full)
        detection[name] = float(100 * np.mean(scores > full["threshold"]))
        areas[name] = auc(held_scores, scores)
    return {"detector": f"features, {kind}", "threshold_from": threshold,
            "quantile": quantile, "false_alarm_new_speakers": float(100 * flagged.mean()),
            "false_alarm_worst_speaker": max(per_speaker.values()),
            "detection": detection, "auc": areas}


def shipped_detector(own: dict, others: dict, reference: dict) -> dict:
    """The shipped reference as ``predict`` applies it: flagged rates on every corpus."""
    reference = prepare_reference(reference)

    def rate(run):
        return float(100 * np.mean(_recording_scores(run["summaries"], reference)
                                   > reference["threshold"]))

    return {"detector": f"shipped sidecar ({reference.get('kind', 'per-dimension')})",
            "threshold_from": str(reference.get("threshold_from", "training utterances")),
            "quantile": float(reference.get("quantile", float("nan"))),
            "flagged_own_corpus_seen_speakers": rate(own),
            "detection": {name: rate(other) for name, other in others.items()}}


def held_out_max_probability(run_dir: Path, ids: list, temperature: float | None) -> dict:
    """``{utterance id: calibrated top probability}`` from a finished run's folds' stored
    test predictions (each by a model that never heard that speaker)."""
    from ser_tf.lite.calibration import apply_temperature

    out = {}
    for result_path in sorted(Path(run_dir).glob("fold_*/result.json")):
        result = json.loads(result_path.read_text(encoding="utf-8"))
        if "test_probabilities" not in result or "test_ids" not in result:
            raise ValueError(f"{result_path}: no stored test_probabilities / test_ids (a "
                             "fold record from before they were kept?)")
        p = np.asarray(result["test_probabilities"], dtype=np.float64)
        if temperature is not None:
            p = apply_temperature(p, temperature)
        out.update(zip(result["test_ids"], p.max(axis=1).tolist()))
    missing = [i for i in ids if i not in out]
    if missing:
        raise ValueError(f"{run_dir}: no stored test prediction for {len(missing)} "
                         f"recordings (e.g. {missing[:3]}); is the run finished?")
    return out


def confidence_detector(own_top: np.ndarray, speakers, others: dict, *,
                        quantile: float) -> dict:
    """Flag a recording whose calibrated top probability is below the ``1 - quantile``
    quantile of held-out in-domain ones (set without the speaker it judges)."""
    speakers = np.asarray(speakers)
    flagged = np.zeros(len(own_top), bool)
    for speaker in np.unique(speakers):
        inside = speakers == speaker
        flagged[inside] = own_top[inside] < np.quantile(own_top[~inside], 1 - quantile)
    threshold = float(np.quantile(own_top, 1 - quantile))
    detection = {n: float(100 * np.mean(o["max_probability"] < threshold))
                 for n, o in others.items()}
    areas = {n: auc(-own_top, -o["max_probability"]) for n, o in others.items()}
    per_speaker = [100 * flagged[speakers == s].mean() for s in np.unique(speakers)]
    return {"detector": "calibrated top probability", "threshold_from": "held-out",
            "quantile": quantile, "false_alarm_new_speakers": float(100 * flagged.mean()),
            "false_alarm_worst_speaker": float(max(per_speaker)), "detection": detection,
            "auc": areas, "threshold": threshold}


def compare(own: dict, others: dict, own_top: np.ndarray | None = None) -> list[dict]:
    """Every detector of the module docstring on the same recordings."""
    rows = [feature_detector(own, others, kind=k, threshold=t, quantile=q)
            for k in KINDS for t in THRESHOLDS for q in QUANTILES]
    if own_top is not None:
        rows += [confidence_detector(own_top, own["speakers"], others, quantile=q)
                 for q in QUANTILES]
    return rows


def main(argv=None) -> int:
    from ser_tf.data import load_manifest
    from ser_tf.data.fingerprint import describe, fingerprint
    from ser_tf.lite.runtime import LiteModel
    from ser_tf.util.jsonio import write_json_atomic

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a shipped .tflite with its sidecar")
    parser.add_argument("--corpus", required=True, type=_pair, metavar="NAME=DIR",
                        help="the corpus the model was trained on")
    parser.add_argument("--other", required=True, type=_pair, action="append",
                        metavar="NAME=DIR", help="another corpus (repeatable)")
    parser.add_argument("--run-dir", help="the speaker-independent run (its .work folder) "
                                          "the model's expected accuracy comes from: adds "
                                          "the top-probability detector")
    parser.add_argument("--out", required=True,
                        help="the record (JSON); relative to --results-dir when that is given")
    parser.add_argument("--results-dir", help="where the project's records live (the make "
                                              "target passes experiments/results)")
    args = parser.parse_args(argv)
    if args.results_dir:
        args.out = str(Path(args.results_dir) / args.out)

    model = LiteModel(args.model)
    if model.metadata.get("ood") is None:
        parser.error(f"{args.model}: its sidecar has no out-of-domain reference (`ood`)")
    temperature = (model.metadata.get("calibration") or {}).get("temperature")
    manifests = {name: load_manifest(name, folder, on_bad_audio="skip")
                 for name, folder in [args.corpus, *args.other]}
    own_name = args.corpus[0]
    runs = {}
    for name, manifest in manifests.items():
        print(f"ood bench: {name}, {len(manifest)} recordings", flush=True)
        runs[name] = run_recordings(manifest, model)
    own = runs.pop(own_name)
    own_top = None
    if args.run_dir:
        tops = held_out_max_probability(Path(args.run_dir), own["ids"], temperature)
        own_top = np.asarray([tops[i] for i in own["ids"]])
    rows = compare(own, runs, own_top)
    rows.append(shipped_detector(own, runs, model.metadata["ood"]))
    record = {
        "benchmark": "ood-detectors", "date": datetime.now(timezone.utc).isoformat(
            timespec="seconds"), "model": Path(args.model).name, "temperature": temperature,
        "corpora": {name: {"recordings": len(m), "copy": describe(fingerprint(m))}
                    for name, m in manifests.items()},
        "windows": {"own": int(sum(len(s) for s in own["summaries"])),
                    **{n: int(sum(len(s) for s in r["summaries"])) for n, r in runs.items()}},
        "run_dir": args.run_dir, "detectors": rows,
        "notes": ["False alarms: leave one speaker of the model's corpus out (reference or "
                  "threshold fitted without that speaker). Detection: reference fitted on "
                  "every recording of the model's corpus.",
                  "Top probability: in-domain recordings are judged by the cross-validation "
                  "fold models (speakers they never heard: one centre window per recording, "
                  "as the run evaluates), other corpora by the shipped model (trained on every "
                  "speaker; windows averaged, as predict does): the comparison a user of the "
                  "shipped model faces, not one model on both sides."]}
    write_json_atomic(args.out, record)
    for row in rows:
        own_rate = (f"false alarms {row['false_alarm_new_speakers']:5.1f} %"
                    if "false_alarm_new_speakers" in row else
                    f"own corpus (seen) {row['flagged_own_corpus_seen_speakers']:5.1f} %")
        print(f"{row['detector']:<30} {row['threshold_from'][:9]:<9} q={row['quantile']:.2f}  "
              f"{own_rate}  detection "
              + ", ".join(f"{n} {v:5.1f} %" + (f" (AUC {row['auc'][n]:.2f})" if "auc" in row
                                               else "")
                          for n, v in row["detection"].items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
