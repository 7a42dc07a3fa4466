"""Which CNN-family settings get the speaker-independent runs: the best on validation.

The report's six configurations are trained under ``paper`` (a random 80/10/10 split with
a validation tenth of its own). The two with the lowest validation loss at the epoch each
kept (the loss early stopping monitored) are then trained under ``speaker``; their test
accuracy plays no part (:func:`ser_tf.reporting.validation_choice.choose_on_validation`).

``python -m ser_tf.papers.cnn_family.speaker_choice --results DIR [--corpus RAVDESS]
[--top 2] [--out FILE]`` prints the chosen settings one per line as the experiment spells
them (``model:input:awgn``, e.g. ``cnn:mfcc:0``; ``make reproduce-cnn-family`` reads them)
and writes the comparison as a record. It refuses while any of the six has no finished
record, naming the missing ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ser_tf.papers.cnn_family.plan import (CHOICE_FILE, CLI_MODEL, REPORTED,  # noqa: F401
                                           parse_setting, setting_name)

#: The monitored quantity of the runs' early stopping and checkpoint.
METRIC = "val_loss"


def reported_runs(results_dir, corpus: str = "RAVDESS") -> dict[str, Path]:
    """``{setting name: run record folder}`` of the six reported configurations run as
    planned under ``paper`` on ``corpus`` (the newest of each). Raises ValueError naming
    the settings without a finished record."""
    from ser_tf.papers.cnn_family import SPEC
    from ser_tf.papers.cnn_family.plan import departures, load_records, record_key

    cfg = SPEC.config()
    newest = {record_key(r): r for r in load_records(results_dir) if not departures(r, cfg)}
    runs, missing = {}, []
    for model, features, awgn in REPORTED:
        record = newest.get((corpus, "paper", model, features, awgn))
        name = setting_name(model, features, awgn)
        if record is None:
            missing.append(name)
            continue
        runs[name] = Path(results_dir) / "cnn_family" / corpus / record["run_id"]
    if missing:
        raise ValueError(f"{corpus}: no finished 'paper' run of {', '.join(missing)} under "
                         f"{results_dir}; the choice compares all six reported settings")
    return runs


def choose_speaker_runs(results_dir, corpus: str = "RAVDESS", top: int = 2) -> dict:
    """The validation comparison of the six (:func:`reported_runs`), with ``speaker_runs``:
    the ``top`` settings of lowest validation loss, best first."""
    from ser_tf.reporting.validation_choice import choose_on_validation

    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    choice = choose_on_validation(reported_runs(results_dir, corpus), metric=METRIC)
    return {**choice, "corpus": corpus, "protocol": "paper",
            "speaker_runs": choice["ranking"][:top]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ser_tf.papers.cnn_family.speaker_choice",
        description="the CNN-family settings to train speaker-independently, chosen on the "
                    "validation loss of their 'paper' runs")
    parser.add_argument("--results", default="experiments/results", help="run records folder")
    parser.add_argument("--corpus", default="RAVDESS",
                        help="the runs' corpus as records name it (default RAVDESS; the union: "
                             "RAVDESS-SAVEE-TESS-CREMAD)")
    parser.add_argument("--top", type=int, default=2, help="how many settings (default 2)")
    parser.add_argument("--out", metavar="FILE", help="write the comparison as JSON")
    args = parser.parse_args(argv)
    try:
        choice = choose_speaker_runs(args.results, args.corpus, args.top)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from ser_tf.reporting.validation_choice import choice_table

    print(choice_table(choice, chosen=choice["speaker_runs"]), file=sys.stderr)
    if args.out:
        from ser_tf.util.jsonio import write_json_atomic

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(args.out), choice)
    print("\n".join(choice["speaker_runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
