"""Do full batches remove Light-SERNet's epoch-to-epoch swings?
``python -m ser_tf.bench.swing --train-folds 0,6``.

With one pass per epoch and no ``drop_remainder``, every Light-SERNet epoch on EMO-DB ends
on a batch of ``n_train % 32`` utterances (1 or 2 on some speaker folds): BatchNorm in
training mode and an Adam step on one utterance just before each validation. The code of
the paper's time trained on an endless shuffled stream cut into full batches
(``FitConfig.full_batches``). This benchmark trains the same folds both ways with the
ordinary experiment runner (so the full-batch folds are folds of the real rerun, resumable,
and the partial-batch ones are the ``--partial-batches`` ablation) and measures, per fold,
how much validation accuracy moves between consecutive epochs:

- ``mean_abs_change``: mean |acc(e) - acc(e-1)| in points, over epochs ``from_epoch``..end;
- ``max_drop``: the largest fall between two consecutive epochs, in points;
- ``std``: standard deviation of validation accuracy over the same epochs, in points.

The record goes to ``<results-dir>/bench/swing-lightsernet-<corpus>-<protocol>-<loss>.json``
with the run ids, each fold's training size and last-batch size, and the series.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ser_tf.experiments.common import fold_list

FORMAT = "ser_tf.bench.swing/1"
SETTINGS = {"full_batches": [], "partial_batches": ["--partial-batches"]}


def swing(accuracy, *, from_epoch: int = 1) -> dict:
    """Epoch-to-epoch movement of a validation-accuracy series (fractions, one per epoch,
    epoch 1 first; ``None`` for epochs without validation are dropped with their epoch).

    Returns points (percent): ``mean_abs_change``, ``max_drop``, ``std``, and ``epochs``
    (how many were used). Needs at least two validated epochs from ``from_epoch`` on.
    """
    if from_epoch < 1:
        raise ValueError(f"from_epoch counts from 1, got {from_epoch}")
    values = [(e, float(v)) for e, v in enumerate(accuracy, start=1)
              if v is not None and e >= from_epoch]
    if len(values) < 2:
        raise ValueError(f"need at least two validated epochs from epoch {from_epoch}, "
                         f"got {len(values)}")
    epochs, acc = zip(*values)
    if any(b - a != 1 for a, b in zip(epochs, epochs[1:])):
        raise ValueError("validation was not run every epoch: consecutive changes are "
                         "undefined (train with check_every=1)")
    acc = 100.0 * np.asarray(acc)
    change = np.diff(acc)
    return {"epochs": len(acc), "mean_abs_change": round(float(np.mean(np.abs(change))), 3),
            "max_drop": round(float(max(0.0, -change.min())), 3),
            "std": round(float(acc.std()), 3)}


def _experiment_args(base: list[str], setting: str, folds: list[int]) -> argparse.Namespace:
    from ser_tf.papers.lightsernet import experiment as lightsernet

    argv = [*base, *SETTINGS[setting], "--train-folds", ",".join(map(str, folds))]
    return lightsernet.build_parser().parse_args(argv)


def fold_summary(result: dict, n_train: int, batch_size: int, *, from_epoch: int,
                 full_batches: bool = False) -> dict:
    """One finished fold's swing figures, training size, size of the batch that ends each
    epoch (always a full one with ``full_batches``) and chosen epoch."""
    acc = result["history"]["val_accuracy"]
    last = batch_size if full_batches else (n_train % batch_size or batch_size)
    return {"n_train": n_train, "last_batch": last,
            "chosen_epoch": result.get("chosen_epoch"),
            "test_accuracy": result["metrics"].get("WA"),
            "swing": swing(acc, from_epoch=from_epoch),
            "swing_all_epochs": swing(acc, from_epoch=2),
            "val_accuracy": [None if v is None else round(float(v), 4) for v in acc]}


def benchmark(base: list[str], folds: list[int], *, from_epoch: int, train: bool = True,
              ) -> dict:
    """Train (or resume) ``folds`` with full and with partial batches, fold by fold (both
    settings of the first fold first), then summarise every finished one."""
    from ser_tf.papers.lightsernet import experiment as lightsernet
    from ser_tf.training.rundir import RESULT_FILE, fold_dir_name
    from ser_tf.util.jsonio import read_json

    if train:
        for fold in folds:
            for setting in SETTINGS:
                lightsernet.run(_experiment_args(base, setting, [fold]))
    runs = {}
    for setting in SETTINGS:
        plan = lightsernet.plan(_experiment_args(base, setting, folds))
        batch = plan.fit.batch_size
        by_index = {int(f.index): f for f in plan.folds}
        summary = {}
        for index in folds:
            path = plan.work_dir / fold_dir_name(by_index[index]) / RESULT_FILE
            summary[str(index)] = (fold_summary(read_json(path), len(by_index[index].train_ids),
                                                batch, from_epoch=from_epoch,
                                                full_batches=plan.fit.full_batches)
                                   if path.is_file() else "not run")
        runs[setting] = {"run_id": plan.run_id, "full_batches": plan.fit.full_batches,
                         "batch_size": batch, "folds": summary}
    return runs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ser_tf.bench.swing",
        description="Light-SERNet: validation-accuracy swings with full vs partial batches.",
        epilog="Other arguments go to python -m ser_tf.experiments.lightsernet (e.g. "
               "--data-dir, --epochs, --results-dir).")
    parser.add_argument("--train-folds", type=fold_list, default=[0, 6], metavar="I,J,...",
                        help="folds to train both ways (default 0,6: speaker folds of EMO-DB "
                             "whose last batch is 1 and 2 utterances)")
    parser.add_argument("--protocol", default="speaker")
    parser.add_argument("--loss", default="cross_entropy")
    parser.add_argument("--from-epoch", type=int, default=61,
                        help="first epoch of the measured span (default 61: the learning-rate "
                             "schedule starts decaying at 60)")
    parser.add_argument("--no-train", action="store_true",
                        help="only summarise the folds already finished")
    parser.add_argument("--results-dir", default="experiments/results")
    return parser


def main(argv=None) -> int:
    from ser_tf.util.jsonio import write_json_atomic

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    base = ["--protocol", args.protocol, "--loss", args.loss, "--results-dir",
            args.results_dir, *rest]
    start = datetime.now(timezone.utc)
    runs = benchmark(base, args.train_folds, from_epoch=args.from_epoch, train=not args.no_train)
    plan = _plan_for_record(base)
    record = {"format": FORMAT, "paper": "lightsernet", "corpus": plan.config["corpus"],
              "protocol": args.protocol, "loss": args.loss, "folds": args.train_folds,
              "from_epoch": args.from_epoch, "epochs": plan.fit.epochs,
              "created": start.isoformat(timespec="seconds"),
              "data": plan.config.get("data"), "runs": runs}
    name = f"swing-lightsernet-{record['corpus'].lower()}-{args.protocol}-{args.loss}.json"
    out = write_json_atomic(Path(args.results_dir) / "bench" / name, record)
    for setting, run in runs.items():
        for index, fold in run["folds"].items():
            text = fold if isinstance(fold, str) else (
                f"last batch {fold['last_batch']:2d}: mean |change| "
                f"{fold['swing']['mean_abs_change']:.2f} points, std {fold['swing']['std']:.2f}, "
                f"largest drop {fold['swing']['max_drop']:.2f}")
            print(f"{setting:16s} fold {index}: {text}")
    print(f"record {out}")
    return 0


def _plan_for_record(base: list[str]):
    from ser_tf.papers.lightsernet import experiment as lightsernet

    return lightsernet.plan(lightsernet.build_parser().parse_args(base))


if __name__ == "__main__":
    sys.exit(main())
