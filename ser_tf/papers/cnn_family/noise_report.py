"""The noise-robustness table of the CNN family's runs, in its README.

``python -m ser_tf.papers.cnn_family.noise_report --results experiments/results --readme
ser_tf/papers/cnn_family/README.md`` rewrites the block between
``<!-- noise:cnn_family:start -->`` and ``<!-- noise:cnn_family:end -->``: one row per
planned run (:func:`planned`, the ``make reproduce-cnn-family`` set, per corpus), UA / WA
(mean over folds) clean and at each SNR from the run records'
``noise_robustness`` sections (:func:`ser_tf.training.robustness.noise_table`); a run
without a record says ``not run``. Records of other settings (another model or input, or
a planned model trained with other values: :func:`departures`) are added below the plan,
each naming what it changed.
"""

from __future__ import annotations

import argparse
import sys

from ser_tf.papers.cnn_family.plan import (PAPER, PAPER_PLAN, departures,  # noqa: F401
                                           load_records, planned, record_key)
from ser_tf.reporting.readme_blocks import check_block, markers, rewrite_block

BLOCK = ("noise", PAPER)
START, END = markers(*BLOCK)  # <!-- noise:cnn_family:start --> ... :end -->
CORPORA = ("RAVDESS", "RAVDESS-SAVEE-TESS-CREMAD")


def _setting(corpus, model, features, awgn) -> str:
    return f"{corpus}: model={model}, features={features}, awgn_copies={awgn}"


def table_rows(records, provenance=None, results_dir=None) -> list[dict]:
    """Rows for :func:`~ser_tf.training.robustness.noise_table`: the plan first (the newest
    record of each planned setting run as planned, or none), then every other record,
    its setting naming how it departs from the plan (:func:`departures`). ``provenance``
    (:func:`~ser_tf.reporting.provenance.load_provenance`) names each record's corpus copy."""
    from ser_tf.training.robustness import RECORD_KEY

    from ser_tf.papers.cnn_family import SPEC
    from ser_tf.reporting.provenance import NONE

    cfg, provenance = SPEC.config(), provenance or NONE
    planned_runs = [r for r in records if not departures(r, cfg)]
    newest = {record_key(r): r for r in planned_runs}  # oldest first: the newest wins
    plan = {corpus: planned(results_dir or ".", corpus) for corpus in CORPORA}
    rows = []
    for corpus in CORPORA:
        for protocol, model, features, awgn in plan[corpus]:
            if model is None:
                rows.append({"setting": f"{corpus}: the two `paper` settings of lowest "
                                        "validation loss (chosen once the six have run)",
                             "protocol": protocol, "noise": None, "run_id": None})
                continue
            record = newest.get((corpus, protocol, model, features, awgn))
            shown = provenance.corpus_of(record) if record else corpus
            rows.append({"setting": _setting(shown, model, features, awgn),
                         "protocol": protocol,
                         "noise": (record or {}).get(RECORD_KEY),
                         "run_id": (record or {}).get("run_id")})
    shown_ids = {row["run_id"] for row in rows}
    planned_keys = {(corpus, *row) for corpus in CORPORA for row in plan[corpus]}
    for record in records:  # every other run, with what sets it apart
        other = departures(record, cfg)
        if record.get("run_id") in shown_ids or (
                not other and record_key(record) in planned_keys):
            continue  # shown, or an older run of a planned row
        setting = _setting(provenance.corpus_of(record), *record_key(record)[2:])
        setting += "".join(f", {k}={v}" for k, v in other.items())
        rows.append({"setting": setting, "protocol": record.get("protocol"),
                     "noise": record.get(RECORD_KEY), "run_id": record.get("run_id")})
    return rows


def render(results_dir) -> str:
    """The block's text (between the markers)."""
    from ser_tf.training.robustness import noise_table

    from ser_tf.reporting.provenance import load_provenance

    records = load_records(results_dir)
    return (f"{len(records)} run record(s) under {results_dir}. UA / WA (%, mean over folds) "
            "of each fold's chosen model on its test utterances, clean and with white noise "
            "added to the audio at each SNR (seeded per utterance).\n\n"
            + noise_table(table_rows(records, load_provenance(results_dir), results_dir)))


def rewrite_readme(readme, results_dir) -> bool:
    """Replace the marked block of ``readme``; True if the file changed."""
    return rewrite_block(readme, *BLOCK, render(results_dir))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m ser_tf.papers.{PAPER}.noise_report",
                                     description="the CNN family's noise-robustness table")
    parser.add_argument("--results", default="experiments/results", help="run records folder")
    parser.add_argument("--readme", help="rewrite this README's noise block (else print it)")
    parser.add_argument("--check", action="store_true",
                        help="with --readme: rewrite nothing; exit 1 and show the difference "
                             "if the block is not what the records say")
    args = parser.parse_args(argv)
    if args.check and not args.readme:
        parser.error("--check needs --readme")
    if args.check:
        return check_block(args.readme, *BLOCK, render(args.results), what="the noise table",
                           results=args.results)
    if args.readme:
        changed = rewrite_readme(args.readme, args.results)
        print(f"{args.readme}: {'updated' if changed else 'unchanged'}")
    else:
        print(render(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
