"""How far a run's chosen epochs stand above their neighbours: the optimism of choosing.

A fold's checkpoint is the epoch with the best monitored score. When that score is noisy
from epoch to epoch, the best of 300 epochs is partly luck, and any perturbation of the
chosen weights (another epoch, int8 rounding) falls back towards the typical level. Under
the ``paper`` protocol the monitored data are the test utterances, so this luck is in the
reported number. The *selection gap* of a fold is

    score at the chosen epoch - mean score of the ``window`` epochs on either side of it

on the per-epoch validation series (``val_UA``; when a run's folds validate on their test
ids, as under most papers' ``paper`` protocol, that is the test UA). A
gap near 0 says the chosen epoch sits on a plateau; a large gap says the reported score is
a peak the neighbouring weights do not reach. It is computed from the record's
``histories.json`` and each fold's ``chosen_epoch`` (1-based), nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ser_tf.training.protocols import TEST_SELECTING

KEY = "val_UA"
WINDOW = 3


def selection_gap(series: Sequence[float], chosen_epoch: int, window: int = WINDOW) -> float | None:
    """``series[chosen - 1]`` minus the mean of up to ``window`` epochs either side of it
    (epochs are 1-based, as in ``result.json``); ``None`` when it has no neighbours."""
    if int(window) < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 1 <= int(chosen_epoch) <= len(series):
        raise ValueError(f"chosen epoch {chosen_epoch} is outside the {len(series)} epochs "
                         "of the history")
    at = int(chosen_epoch) - 1
    around = [series[i] for i in range(at - window, at + window + 1)
              if i != at and 0 <= i < len(series)]
    if not around:
        return None
    return float(series[at]) - float(np.mean(around))


def run_selection_gaps(histories: Sequence[Mapping], chosen_epochs: Sequence[int | None], *,
                       key: str = KEY, window: int = WINDOW) -> dict | None:
    """Per-fold selection gaps of one run, their mean and sample std; ``None`` when no fold
    has both a ``key`` series and a chosen epoch (e.g. a last-epoch run)."""
    if len(histories) != len(chosen_epochs):
        raise ValueError(f"{len(histories)} histories for {len(chosen_epochs)} folds")
    gaps = []
    for history, chosen in zip(histories, chosen_epochs):
        series = history.get(key) if chosen is not None else None
        gaps.append(selection_gap(series, chosen, window) if series else None)
    known = [g for g in gaps if g is not None]
    if not known:
        return None
    return {"key": key, "window": int(window), "per_fold": gaps,
            "mean": float(np.mean(known)),
            "std": float(np.std(known, ddof=1)) if len(known) > 1 else None}


def record_selection_gaps(record: Mapping, *, key: str = KEY,
                          window: int = WINDOW) -> dict | None:
    """:func:`run_selection_gaps` of a loaded run record (``path`` set by
    ``load_run_record``); ``None`` when the record has no histories."""
    from ser_tf.util.jsonio import read_json

    path = Path(record["path"]) / "histories.json" if record.get("path") else None
    if path is None or not path.is_file():
        return None
    histories = read_json(path)
    chosen = [fold.get("chosen_epoch") for fold in record.get("per_fold", [])]
    if not isinstance(histories, list) or len(histories) != len(chosen):
        raise ValueError(f"{path}: {len(histories)} histories for the record's "
                         f"{len(chosen)} folds")
    return run_selection_gaps(histories, chosen, key=key, window=window)


def chose_on_test(record: Mapping) -> bool:
    """Whether the run chose its epochs on the test utterances: its folds say so (a paper
    split with a validation part of its own did not); records older than that flag, by
    their protocol."""
    folds = record.get("folds")
    if isinstance(folds, Mapping) and "selection_on_test" in folds:
        return bool(folds["selection_on_test"])
    return record.get("protocol") in TEST_SELECTING


def selection_lines(records: Sequence[Mapping]) -> list[str]:
    """One markdown bullet per record that chose its epochs: the mean gap and the folds'."""
    lines = []
    for record in records:
        gaps = record_selection_gaps(record)
        if gaps is None:
            continue
        spread = f" ± {gaps['std']:.2f}" if gaps["std"] is not None else ""
        where = "test" if chose_on_test(record) else "validation"
        per_fold = ", ".join("—" if g is None else f"{g:+.1f}" for g in gaps["per_fold"])
        lines.append(f"- `{record['run_id']}` ({record.get('protocol')}): the chosen epoch's "
                     f"{where} UA is {gaps['mean']:+.2f}{spread} points above the mean of the "
                     f"{gaps['window']} epochs either side (per fold: {per_fold})")
    return lines
