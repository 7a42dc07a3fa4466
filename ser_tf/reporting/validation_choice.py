"""Choose between finished runs on their validation scores, never on their test folds.

An ablation (a hyperparameter, an input scaling) is decided by training one run per
setting under a protocol that keeps a validation split apart from each test fold
(``clean``, ``speaker``), then comparing the runs on the validation score each fold had at
the epoch it kept. The test scores are reported beside the choice but play no part in it.

``python -m ser_tf.reporting.validation_choice RUN_DIR RUN_DIR ... --out choice.json``
prints the table and writes the choice as a record (``RUN_DIR``: a run's ``.work`` folder
or its record folder; the ``.work`` folder beside it is found).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

#: The validation score compared by default: unweighted accuracy on the validation split.
DEFAULT_METRIC = "val_UA"


def _work_dir(run_dir) -> Path:
    run_dir = Path(run_dir)
    if run_dir.name.endswith(".work"):
        return run_dir
    sibling = run_dir.with_name(run_dir.name + ".work")
    if sibling.is_dir():
        return sibling
    raise FileNotFoundError(f"{run_dir}: not a run's work folder (no fold_XX/ results and "
                            f"no {sibling.name} beside it)")


def fold_validation_scores(run_dir, metric: str = DEFAULT_METRIC) -> list[dict]:
    """Per finished fold: ``{"fold", "epoch", "validation", "test_UA", "test_WA"}`` where
    ``validation`` is ``metric`` at the epoch the fold kept (its ``chosen_epoch``).

    Raises ValueError naming the fold when a fold chose its epoch on the test fold (the
    ``paper`` protocols) or its history has no ``metric``: such runs cannot be compared on
    validation scores."""
    work = _work_dir(run_dir)
    rows = []
    for result_path in sorted(work.glob("fold_*/result.json")):
        result = json.loads(result_path.read_text())
        if result.get("selection_on_test"):
            raise ValueError(f"{result_path}: this fold chose its epoch on the test fold; "
                             "compare runs of a protocol with a validation split")
        history = json.loads((result_path.parent / "history.json").read_text())
        if metric not in history:
            raise ValueError(f"{result_path.parent / 'history.json'}: no {metric!r} "
                             f"(has {sorted(history)}); the run kept no validation split")
        epoch = int(result.get("chosen_epoch") or result.get("epochs_run") or
                    len(history[metric]))
        metrics = result["metrics"]
        rows.append({"fold": int(result["fold"]), "epoch": epoch,
                     "validation": float(history[metric][epoch - 1]),
                     "test_UA": float(metrics["UA"]), "test_WA": float(metrics["WA"])})
    if not rows:
        raise ValueError(f"{work}: no finished fold")
    return rows


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _std(values: Sequence[float]) -> float:
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def lower_is_better(metric: str) -> bool:
    """A loss (``val_loss``) is best low; accuracies and other scores are best high."""
    return metric.endswith("loss")


def choose_on_validation(runs: Mapping[str, object], metric: str = DEFAULT_METRIC) -> dict:
    """Compare runs (``{setting name: run dir}``) on ``metric`` and pick the best mean (the
    highest, or the lowest for a loss: :func:`lower_is_better`).

    Every run must have the same finished folds (the comparison is over the same test
    folds' validation splits). Returns a record: the chosen setting, the settings best
    first (``ranking``), each setting's mean and std over folds of the validation score,
    and the test UA/WA reported beside it."""
    if len(runs) < 2:
        raise ValueError("choose between at least two runs")
    per_run = {name: fold_validation_scores(path, metric) for name, path in runs.items()}
    folds = {name: [row["fold"] for row in rows] for name, rows in per_run.items()}
    first = next(iter(folds.values()))
    uneven = {name: f for name, f in folds.items() if f != first}
    if uneven:
        raise ValueError(f"runs have different finished folds: {folds}; wait until they "
                         "have the same")
    settings = {}
    for name, rows in per_run.items():
        validation = [row["validation"] for row in rows]
        settings[name] = {
            "run_dir": str(runs[name]), "validation_mean": round(_mean(validation), 4),
            "validation_std": round(_std(validation), 4),
            "test_UA_mean": round(_mean([r["test_UA"] for r in rows]), 4),
            "test_WA_mean": round(_mean([r["test_WA"] for r in rows]), 4), "folds": rows}
    sign = 1 if lower_is_better(metric) else -1
    ranking = sorted(settings, key=lambda name: sign * settings[name]["validation_mean"])
    best = "lowest" if sign == 1 else "highest"
    return {"metric": metric, "folds": first, "chosen": ranking[0], "ranking": ranking,
            "settings": settings,
            "note": f"chosen on the {best} mean {metric} at each fold's kept epoch; test "
                    "scores are reported, not used"}


def choice_table(choice: Mapping, chosen: Sequence[str] | None = None) -> str:
    """A Markdown table of :func:`choose_on_validation`'s record; ``chosen``: the settings
    marked as chosen (default: the record's one)."""
    marked = set(chosen) if chosen is not None else {choice["chosen"]}
    lines = [f"| setting | {choice['metric']} (kept epoch) | test UA | test WA | chosen |",
             "| --- | --- | --- | --- | --- |"]
    for name, row in choice["settings"].items():
        lines.append(f"| {name} | {row['validation_mean']:.2f} ± {row['validation_std']:.2f} "
                     f"| {row['test_UA_mean']:.2f} | {row['test_WA_mean']:.2f} | "
                     f"{'yes' if name in marked else ''} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ser_tf.reporting.validation_choice",
        description="Choose between finished runs on their validation scores.")
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR",
                        help="a setting's name and its run folder")
    parser.add_argument("--metric", default=DEFAULT_METRIC)
    parser.add_argument("--out", metavar="FILE", help="write the choice as JSON")
    args = parser.parse_args(argv)
    runs = {}
    for item in args.runs:
        name, sep, path = item.rpartition("=")  # names may hold "=" (lam=0.3)
        if not sep or not name or not path:
            parser.error(f"{item!r}: expected NAME=RUN_DIR")
        runs[name] = path
    try:
        choice = choose_on_validation(runs, args.metric)
    except (OSError, ValueError) as err:
        print(f"error: {err}")
        return 2
    print(choice_table(choice))
    if args.out:
        from ser_tf.util.jsonio import write_json_atomic

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(args.out), choice)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
