"""Folds that collapse onto one class.

The student reproduction reported folds whose model predicted a single class for the
whole test fold: accuracy then equals that class's share of the fold while the mean
per-class recall (UA) drops to about 1/4. Each fold's result gets ``"collapsed"``: ``None``,
or ``{"class": ..., "share": ...}`` when more than ``threshold`` of its test predictions
are one class; the run record's ``collapse`` section lists those folds.

Done from the paper's fold hook, so no shared training code changes: the flag is added to
the result the runner holds (it goes into the run record) and to the fold's
``result.json`` (so a resumed run sees it too).
"""

from __future__ import annotations

import numpy as np


def prediction_shares(metrics: dict) -> np.ndarray:
    """Share of the test predictions in each class (the confusion matrix's column sums)."""
    predicted = np.asarray(metrics["confusion_matrix"], dtype=float).sum(axis=0)
    return predicted / max(predicted.sum(), 1.0)


def collapse(metrics: dict, labels, threshold: float = 0.9) -> dict | None:
    """``{"class", "share"}`` when one class takes more than ``threshold`` of the
    predictions, else ``None``."""
    shares = prediction_shares(metrics)
    top = int(np.argmax(shares))
    if shares[top] > threshold:
        return {"class": str(list(labels)[top]), "share": round(float(shares[top]), 4)}
    return None


def flag_fold(work_dir, fold, result: dict, labels, threshold: float = 0.9) -> dict | None:
    """Set ``result["collapsed"]`` and store it in the fold's ``result.json`` (idempotent)."""
    from ser_tf.training.rundir import RunDir
    from ser_tf.util.jsonio import read_json, write_json_atomic

    flag = collapse(result["metrics"], labels, threshold)
    result["collapsed"] = flag
    path = RunDir(work_dir).fold(fold).result
    if path.is_file():
        stored = read_json(path)
        if "collapsed" not in stored or stored["collapsed"] != flag:
            write_json_atomic(path, {**stored, "collapsed": flag})
    return flag


def collapse_summary(results, threshold: float = 0.9) -> dict:
    """The run record's ``collapse`` section: the threshold and the collapsed folds."""
    folds = [{"fold": int(r["fold"]), **r["collapsed"]} for r in results if r.get("collapsed")]
    return {"threshold": threshold, "n_collapsed": len(folds), "folds": folds}
