"""Noise robustness: a trained fold's model scored on its test utterances clean and with
additive white Gaussian noise at fixed signal-to-noise ratios (default 20, 10 and 0 dB).

The noise is added to each test file's waveform (at the recipe's sample rate, the SNR
against the whole file's power, as the training AWGN copies do) *before* the features are
computed, then the recipe cuts and describes it as usual: the model sees what a noisy
recording would give it. The noise is seeded per (seed, utterance, SNR)
(:func:`noise_rng`), so every model of a run, and every run with the same seed, is scored
on the same noisy signals, whatever the order or subset of utterances.

- :func:`evaluate_under_noise`: UA / WA per condition (``clean``, ``20 dB``, ...) of one
  predictor on a list of utterances;
- :func:`fold_noise_evaluation`: the runner's hook for one finished fold: loads its chosen
  weights, scores its test utterances, writes ``fold_XX/noise.json`` and adds a ``noise``
  entry to its ``result.json`` (so the run record's ``per_fold`` carries it); idempotent;
- :func:`summarise_noise`: mean ± std over folds per condition, for the run record;
- :func:`noise_table`: a Markdown table of runs × conditions (``not run`` where missing).

The clean condition goes through the same code path as the noisy ones (read, cut,
describe), so its scores equal the fold's own test scores.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

DEFAULT_SNRS_DB = (20.0, 10.0, 0.0)
NOISE_FILE = "noise.json"
#: The key of a fold's ``result.json`` and of the run record's section.
RESULT_KEY = "noise"
RECORD_KEY = "noise_robustness"
CLEAN = "clean"
OFF = ("off", "none", "no")


def condition_name(snr_db: float | None) -> str:
    """``clean`` for no noise, else ``20 dB`` (``-5 dB``, ``2.5 dB``)."""
    return CLEAN if snr_db is None else f"{float(snr_db):g} dB"


def snr_list(text: str) -> list[float]:
    """argparse type of ``--noise-eval``: ``"20,10,0"`` -> ``[20.0, 10.0, 0.0]``;
    ``off`` (or ``none``) -> ``[]``. Each SNR finite, each once."""
    if text.strip().lower() in OFF:
        return []
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(
            f"expected distinct SNRs in dB like 20,10,0 (or 'off'), got {text!r}")
    return values


def noise_rng(seed: int, utterance_id: str, snr_db: float) -> np.random.Generator:
    """The generator of one utterance's noise at one SNR: from these three alone."""
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed}")
    token = f"noise-eval|{utterance_id}|{float(snr_db):g}".encode("utf-8")
    digest = int.from_bytes(hashlib.sha256(token).digest()[:8], "little")
    return np.random.default_rng([int(seed), digest])


def noisy_waveform(audio, snr_db: float, *, seed: int, utterance_id: str) -> np.ndarray:
    """``audio`` plus white noise at exactly ``snr_db`` dB (:func:`add_awgn`), seeded."""
    from ser_tf.features.augment import add_awgn

    try:
        return add_awgn(audio, float(snr_db), noise_rng(seed, utterance_id, snr_db))
    except ValueError as error:
        raise ValueError(f"{utterance_id}: {error}") from None


def features_under_noise(utterances: Sequence, recipe, snr_db: float | None, *, seed: int,
                         batch_size: int = 64) -> np.ndarray:
    """Features of ``utterances`` (objects with ``utterance_id`` and ``path``) with noise at
    ``snr_db`` added to each file before the recipe cuts and describes it (``None``: clean).
    Rows in ``utterances`` order."""
    from ser_tf.data.audio import read_audio

    rows, segments = [], []

    def flush():
        if segments:
            rows.extend(np.asarray(recipe.compute(np.stack(segments))))
            segments.clear()

    for utterance in utterances:
        audio, _ = read_audio(utterance.path, sr=recipe.sample_rate)
        if snr_db is not None:
            audio = noisy_waveform(audio, snr_db, seed=seed, utterance_id=utterance.utterance_id)
        segments.append(np.asarray(recipe.segment_audio(audio), dtype=np.float32))
        if len(segments) >= batch_size:
            flush()
    flush()
    return np.stack(rows) if rows else np.zeros((0,), np.float32)


def evaluate_under_noise(predict: Callable[[np.ndarray], np.ndarray], utterances: Sequence,
                         labels: Sequence[str], recipe, snrs_db: Sequence[float], *,
                         seed: int, batch_size: int = 64) -> dict:
    """UA and WA (%) of ``predict`` (features -> class probabilities) on ``utterances``
    clean and at each SNR: ``{"seed", "snr_db", "n_utterances", "conditions": {"clean":
    {"UA", "WA", "macro_F1", "confusion_matrix"}, "20 dB": {...}, ...}}``."""
    from ser_tf.training.metrics import classification_metrics

    labels = [str(label) for label in labels]
    if not utterances:
        raise ValueError("no utterances to score")
    unknown = sorted({u.label for u in utterances} - set(labels))
    if unknown:
        raise ValueError(f"utterance labels {unknown} are not among {labels}")
    truth = np.asarray([labels.index(u.label) for u in utterances])
    conditions = {}
    for snr in (None, *[float(s) for s in snrs_db]):
        features = features_under_noise(utterances, recipe, snr, seed=seed,
                                        batch_size=batch_size)
        predicted = np.argmax(np.asarray(predict(features)), axis=-1)
        metrics = classification_metrics(truth, predicted, labels)
        conditions[condition_name(snr)] = {k: metrics[k] for k in
                                           ("UA", "WA", "macro_F1", "confusion_matrix")}
    return {"seed": int(seed), "snr_db": [float(s) for s in snrs_db],
            "n_utterances": len(utterances), "conditions": conditions}


def _covers(row: dict | None, snrs_db, seed: int, weights_sha: str | None) -> bool:
    """A stored row already answers this request (same weights, seed, every SNR)."""
    if not row or row.get("seed") != int(seed) or row.get("weights_sha256") != weights_sha:
        return False
    return {condition_name(s) for s in (None, *snrs_db)} <= set(row.get("conditions", {}))


def fold_noise_evaluation(work_dir, fold, manifest, recipe, build_model: Callable, *,
                          snrs_db: Sequence[float] = DEFAULT_SNRS_DB, seed: int = 0,
                          batch_size: int = 64) -> dict | None:
    """Score a finished fold's chosen weights on its test utterances, clean and noisy.

    Writes ``fold_XX/noise.json`` and adds it under ``"noise"`` to ``fold_XX/result.json``;
    returns the row. Idempotent: a stored row for the same weights, seed and SNRs is
    returned as is. A fold whose weights are not on this machine (weights are
    machine-local: a fold trained in an earlier session or elsewhere) keeps the row it
    stored when it was scored, if that row answers the seed and SNRs; without one there
    is nothing to score and the answer is ``None``."""
    from ser_tf.training.rundir import RunDir
    from ser_tf.util.jsonio import content_hash, read_json, write_json_atomic

    fold_dir = RunDir(Path(work_dir)).fold(fold)
    path = fold_dir.path / NOISE_FILE
    row = read_json(path) if path.is_file() else None
    has_weights = fold_dir.weights.is_file()
    # Without the weights there is no hash to check: the row names the weights it scored.
    weights_sha = (content_hash(fold_dir.weights) if has_weights
                   else (row or {}).get("weights_sha256"))
    if not _covers(row, snrs_db, seed, weights_sha):
        if not has_weights:
            return None
        model = build_model(len(manifest.labels))
        model.load_weights(fold_dir.weights)
        utterances = manifest.subset(list(fold.test_ids)).utterances
        row = evaluate_under_noise(lambda x: model.predict(x, batch_size=batch_size, verbose=0),
                                   utterances, manifest.labels, recipe, snrs_db, seed=seed,
                                   batch_size=batch_size)
        row = {"fold": int(fold.index), "recipe": recipe.config().get("name"),
               "weights_sha256": weights_sha, **row}
        write_json_atomic(path, row)
    if fold_dir.result.is_file():
        result = read_json(fold_dir.result)
        if result.get(RESULT_KEY) != row:
            write_json_atomic(fold_dir.result, {**result, RESULT_KEY: row})
    return row


def summarise_noise(rows: Sequence[dict | None]) -> dict:
    """Mean and sample std over folds of UA and WA per condition, and each noisy
    condition's drop from clean (mean UA / WA, points): the run record's section.

    ``rows``: one per fold of the run, ``None`` for a fold without scores; such folds are
    listed (0-based positions) under ``folds_without_scores``, so a summary of fewer folds
    than the run says so."""
    missing = [i for i, r in enumerate(rows) if not r]
    rows = [r for r in rows if r]
    if not rows:
        raise ValueError("no fold has noise scores")
    names = [n for n in rows[0]["conditions"] if all(n in r["conditions"] for r in rows)]
    conditions = {}
    for name in names:
        entry = {}
        for metric in ("UA", "WA"):
            values = np.asarray([r["conditions"][name][metric] for r in rows], dtype=float)
            # As the run summary: sample std, 0.0 for a single fold.
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            entry[metric] = {"mean": float(values.mean()), "std": std,
                             "per_fold": values.tolist()}
        conditions[name] = entry
    for name, entry in conditions.items():
        if name != CLEAN and CLEAN in conditions:
            entry["drop_vs_clean"] = {m: conditions[CLEAN][m]["mean"] - entry[m]["mean"]
                                      for m in ("UA", "WA")}
    summary = {"n_folds": len(rows), "seed": rows[0].get("seed"),
               "snr_db": rows[0].get("snr_db"), "folds": [r.get("fold") for r in rows],
               "conditions": conditions}
    if missing:
        summary["folds_without_scores"] = missing
    return summary


def noise_table(runs: Sequence[dict], snrs_db: Sequence[float] = DEFAULT_SNRS_DB) -> str:
    """A Markdown table: one row per run, UA / WA (mean over folds, %) per condition.

    ``runs``: ``[{"setting": "model=cnn, features=mfcc", "protocol": "paper", "noise":
    summary or None, "run_id": ... or None}]``; a run without ``noise`` gets ``not run``
    cells, so a table of planned runs can be written before any has finished."""
    names = [condition_name(None), *[condition_name(s) for s in snrs_db]]
    head = ["setting", "protocol", *[f"{n} UA / WA" for n in names], "run id"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for run in runs:
        summary = run.get("noise")
        setting = str(run.get("setting", ""))
        missing = (summary or {}).get("folds_without_scores") or []
        if missing:
            scored = summary["n_folds"]
            setting += f" ({scored} of {scored + len(missing)} folds)"
        cells = []
        for name in names:
            entry = (summary or {}).get("conditions", {}).get(name)
            cells.append("not run" if entry is None else
                         f"{entry['UA']['mean']:.2f} / {entry['WA']['mean']:.2f}")
        lines.append("| " + " | ".join([setting,
                                        str(run.get("protocol", "")), *cells,
                                        str(run.get("run_id") or "")]) + " |")
    return "\n".join(lines)
