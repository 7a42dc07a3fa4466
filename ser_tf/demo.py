"""``make demo``: the README's main job.

Until the Light-SERNet issue ships a trained model in ``tflite_models/``, the demo says so
and shows what the suite can already do with the corpora it finds.
"""

from __future__ import annotations

import sys
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "tflite_models"


def main() -> int:
    models = sorted(MODELS.glob("*.tflite")) if MODELS.is_dir() else []
    if not models:
        print("ser-tf demo: not yet available - no trained model is shipped in tflite_models/ yet "
              "(it arrives with the Light-SERNet reproduction).\n"
              "Meanwhile: `ser-tf data check EMODB --data-dir PATH` validates a corpus copy, and "
              "`make test` runs the suite.")
        return 0
    print("ser-tf demo: models found but the predictor is not wired yet:", *map(str, models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
