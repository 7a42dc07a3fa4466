"""The noise-robustness table of the CNN family's runs, in its README.

``python -m ser_tf.papers.cnn_family.noise_report --results experiments/results --readme
ser_tf/papers/cnn_family/README.md`` rewrites the block between
``<!-- noise:cnn_family:start -->`` and ``<!-- noise:cnn_family:end -->``: one row per
planned run (:data:`PLANNED`, the ``make reproduce-cnn-family`` set, per corpus), UA / WA
(mean over folds) clean and at each SNR from the run records'
``noise_robustness`` sections (:func:`ser_tf.training.robustness.noise_table`); a run
without a record says ``not run``. Records of other settings are added below the plan.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PAPER = "cnn_family"
START, END = "<!-- noise:cnn_family:start -->", "<!-- noise:cnn_family:end -->"
CORPORA = ("RAVDESS", "RAVDESS-SAVEE-TESS-CREMAD")
#: (protocol, model, features, awgn copies): the reproduce target's runs.
PLANNED = (("paper", "cnn", "mfcc", 0), ("paper", "parallel", "mfcc", 2),
           ("paper", "transformer", "mfcc", 0), ("paper", "transformer", "mfcc", 2),
           ("paper", "transformer", "mel", 0), ("paper", "transformer", "mel", 2),
           ("speaker", "transformer", "mfcc", 2), ("speaker", "transformer", "mfcc", 0))


def _key(record: dict) -> tuple:
    config = record.get("config", {})
    return (record.get("corpus"), record.get("protocol"), config.get("model"),
            config.get("features"), config.get("awgn_copies"))


def _setting(corpus, model, features, awgn) -> str:
    return f"{corpus}: model={model}, features={features}, awgn_copies={awgn}"


def load_records(results_dir) -> list[dict]:
    """The CNN family's run records under ``results_dir`` (BatchNorm over time, as
    published), oldest first."""
    from ser_tf.util.jsonio import read_json

    records = [read_json(p) for p in sorted(Path(results_dir).glob(f"{PAPER}/*/*/record.json"))]
    records = [r for r in records if r.get("config", {}).get("bn_axis", "time") == "time"]
    return sorted(records, key=lambda r: str(r.get("created") or ""))


def table_rows(records) -> list[dict]:
    """Rows for :func:`~ser_tf.training.robustness.noise_table`: the plan first (the newest
    record of each planned setting, or none), then records of other settings."""
    from ser_tf.training.robustness import RECORD_KEY

    newest = {_key(r): r for r in records}  # oldest first: the newest wins
    rows, used = [], set()
    for corpus in CORPORA:
        for protocol, model, features, awgn in PLANNED:
            key = (corpus, protocol, model, features, awgn)
            record = newest.get(key)
            used.add(key)
            rows.append({"setting": _setting(corpus, model, features, awgn),
                         "protocol": protocol,
                         "noise": (record or {}).get(RECORD_KEY),
                         "run_id": (record or {}).get("run_id")})
    for key, record in newest.items():
        if key not in used:
            rows.append({"setting": _setting(key[0], *key[2:]), "protocol": key[1],
                         "noise": record.get(RECORD_KEY), "run_id": record.get("run_id")})
    return rows


def render(results_dir) -> str:
    """The block's text (between the markers)."""
    from ser_tf.training.robustness import noise_table

    records = load_records(results_dir)
    return (f"{len(records)} run record(s) under {results_dir}. UA / WA (%, mean over folds) "
            "of each fold's chosen model on its test utterances, clean and with white noise "
            "added to the audio at each SNR (seeded per utterance).\n\n"
            + noise_table(table_rows(records)))


def rewrite_readme(readme, results_dir) -> bool:
    """Replace the marked block of ``readme``; True if the file changed."""
    path = Path(readme)
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{path}: no {START} ... {END} block to rewrite")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{render(results_dir)}\n{END}{tail}"
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m ser_tf.papers.{PAPER}.noise_report",
                                     description="the CNN family's noise-robustness table")
    parser.add_argument("--results", default="experiments/results", help="run records folder")
    parser.add_argument("--readme", help="rewrite this README's noise block (else print it)")
    args = parser.parse_args(argv)
    if args.readme:
        changed = rewrite_readme(args.readme, args.results)
        print(f"{args.readme}: {'updated' if changed else 'unchanged'}")
    else:
        print(render(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
