"""Which shipped model to use when none is named: the best one ``--ship`` made.

A model shipped by ``--ship`` carries in its sidecar the accuracy its speaker-independent
cross-validation measured (``expected_accuracy``: protocol, run id, folds, UA/WA mean and
std): the accuracy to expect on new speakers. :func:`best_shipped_model` picks, among the
float32 models of ``tflite_models/`` whose sidecar states it under the ``speaker``
protocol, the one with the highest expected UA (a waveform-in model before a features-in
one of the same run: it needs no front-end in NumPy). Models without that statement
(a single fold's export) are never ranked: their numbers are of one fold, not of new
speakers.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Variants ranked: full precision only (the others are the same model, smaller).
RANKED_VARIANTS = ("waveform-float32", "float32")


def expected_ua(sidecar: dict) -> float | None:
    """The cross-validated speaker-independent UA a sidecar states, else None."""
    expected = sidecar.get("expected_accuracy")
    if not isinstance(expected, dict) or expected.get("protocol") != "speaker":
        return None
    ua = expected.get("UA")
    value = ua.get("mean") if isinstance(ua, dict) else ua
    return float(value) if isinstance(value, (int, float)) else None


def shipped_models(models_dir) -> list[dict]:
    """Every ``.tflite`` in ``models_dir`` with a readable sidecar stating an expected UA:
    ``{"path", "expected_ua", "variant", "run_id"}``, best first. Unreadable sidecars are
    skipped (the model is still usable by name)."""
    rows = []
    for path in sorted(Path(models_dir).glob("*.tflite")):
        try:
            sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        variant = sidecar.get("variant")
        if path.stem.endswith("-waveform-float32") or (
                variant == "float32" and sidecar.get("input", {}).get("kind") == "waveform"):
            variant = "waveform-float32"
        ua = expected_ua(sidecar)
        if ua is None or variant not in RANKED_VARIANTS:
            continue
        rows.append({"path": path, "expected_ua": ua, "variant": variant,
                     "run_id": sidecar["expected_accuracy"].get("run_id")})
    rows.sort(key=lambda r: (-r["expected_ua"], RANKED_VARIANTS.index(r["variant"]),
                             r["path"].name))
    return rows


def best_shipped_model(models_dir) -> Path | None:
    """The shipped model with the highest expected UA on new speakers, or None."""
    rows = shipped_models(models_dir)
    return rows[0]["path"] if rows else None
