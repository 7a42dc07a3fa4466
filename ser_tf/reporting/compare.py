"""Two runs compared fold by fold on the same test sets: ``ser-tf compare A B``.

Two runs that tested on the same folds (equal ``folds.json`` digests: the same utterances in
every test set) can be compared per fold: each fold's change B − A is measured on one test
set, so the spread of the changes is far smaller than the spread of either run's scores.
That is how a loss, a data copy or a training fix is judged here, and what the paper
READMEs' "paired" figures are. A run is given as its record folder
(``<results>/<paper>/<corpus>/<run-id>``) or as its work folder (``<run-id>.work``, while it
trains: its finished folds); only the folds both runs finished are compared.

Reported: each run's corpus copy and the configs' other differences, each fold's score of both runs
and the change, the mean change ± its standard deviation over folds with a Student-t 95 %
interval, how many folds rose or fell, the scores pooled over the compared folds' test
predictions, and the share of test utterances given the same class by both.

Runs on different folds are refused (their per-fold changes would mix the draw of test sets
into the comparison): ``ser-tf report`` lists each run's own scores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_tf.reporting.provenance import NONE, Provenance, load_provenance
from ser_tf.reporting.records import RECORD_FILE
from ser_tf.reporting.tflite_table import mean_interval
from ser_tf.training.rundir import CONFIG_FILE, FOLDS_FILE, RESULT_FILE, WORK_SUFFIX
from ser_tf.training.scores import RATE_KEYS as METRICS
from ser_tf.training.scores import metrics_from_confusion
from ser_tf.util.errors import UserError
from ser_tf.util.jsonio import read_json

#: Config keys not listed as differences: the corpus copy is shown on its own line.
_NOT_DIFFERENCES = ("data",)


@dataclass(frozen=True)
class RunFolds:
    """A run's finished folds: fold index -> that fold's result (metrics, test ids and
    probabilities, last-epoch metrics)."""

    path: Path
    run_id: str
    config: Mapping
    folds_digest: str
    n_folds: int
    folds: Mapping[int, Mapping]
    complete: bool

    @property
    def key(self) -> str:
        return f"{self.config.get('paper')}/{self.config.get('corpus')}/{self.run_id}"

    def named(self, side: str) -> str:
        """``A (path)``: how messages name the run (a record and its own work folder share
        a key, not a path)."""
        return f"{side} ({self.path})"

    def as_record(self) -> dict:
        """What :class:`Provenance` reads of a record."""
        return {"paper": self.config.get("paper"), "corpus": self.config.get("corpus"),
                "run_id": self.run_id, "config": self.config}


def _read(path: Path, what: str) -> dict:
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise UserError(f"{path}: missing ({what})") from None
    except ValueError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object ({what})")
    return data


def load_run_folds(path: str | os.PathLike) -> RunFolds:
    """A run from its record folder, else its work folder (``X`` finds ``X.work`` too)."""
    folder = Path(path)
    if not folder.is_dir() and Path(f"{folder}{WORK_SUFFIX}").is_dir():
        folder = Path(f"{folder}{WORK_SUFFIX}")
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder (a record folder <run-id> or a work "
                        f"folder <run-id>{WORK_SUFFIX})")
    if (folder / RECORD_FILE).is_file():
        record = _read(folder / RECORD_FILE, "the run record")
        try:
            folds = {int(fold["fold"]): fold for fold in record["per_fold"]}
            return RunFolds(folder, str(record["run_id"]), record["config"],
                            str(record["folds"]["digest"]), int(record["folds"]["n_folds"]),
                            folds, complete=True)
        except (KeyError, TypeError, ValueError) as err:
            what = err.args[0] if isinstance(err, KeyError) and err.args else err
            raise UserError(f"{folder / RECORD_FILE}: not a run record ({what!r} missing or "
                            "malformed)") from None
    if not (folder / CONFIG_FILE).is_file():
        raise UserError(f"{folder}: not a run folder (neither {RECORD_FILE} nor {CONFIG_FILE})")
    config = _read(folder / CONFIG_FILE, "the run's config")
    saved_folds = _read(folder / FOLDS_FILE, "the run's folds")
    digest = saved_folds.get("digest")
    if not digest or not isinstance(saved_folds.get("folds"), list):
        raise UserError(f"{folder / FOLDS_FILE}: not a folds file (no digest or no folds)")
    folds = {}
    for result_file in sorted(folder.glob(f"fold_*/{RESULT_FILE}")):
        result = _read(result_file, "a finished fold")
        if "fold" not in result or "metrics" not in result:
            raise UserError(f"{result_file}: not a fold result ('fold' or 'metrics' missing)")
        folds[int(result["fold"])] = result
    run_id = folder.name[:-len(WORK_SUFFIX)] if folder.name.endswith(WORK_SUFFIX) else folder.name
    return RunFolds(folder, run_id, config, str(digest), len(saved_folds["folds"]), folds,
                    complete=False)


def _flat(config: Mapping, prefix: str = "") -> dict:
    items = {}
    for key, value in config.items():
        if not prefix and key in _NOT_DIFFERENCES:
            continue
        if isinstance(value, Mapping):
            items.update(_flat(value, f"{prefix}{key}."))
        else:
            items[f"{prefix}{key}"] = value
    return items


def config_differences(a: Mapping, b: Mapping) -> list[tuple[str, object, object]]:
    """``(dotted key, A's value, B's value)`` wherever the configs differ (absent: None)."""
    flat_a, flat_b = _flat(a), _flat(b)
    return [(key, flat_a.get(key), flat_b.get(key)) for key in sorted(set(flat_a) | set(flat_b))
            if flat_a.get(key) != flat_b.get(key)]


def _has_last_epoch(fold: Mapping) -> bool:
    return "metrics" in (fold.get("last_epoch") or {})


def _scores(fold: Mapping, last_epoch: bool, run: str) -> Mapping:
    """The fold's classification scores (chosen or last epoch: folds without last-epoch
    scores are left out before); ``run`` names it in errors."""
    scores = fold["last_epoch"]["metrics"] if last_epoch else fold["metrics"]
    missing = [key for key in (*METRICS, "labels", "confusion_matrix") if key not in scores]
    if missing:
        raise UserError(f"{run}, fold {fold.get('fold')}: no {', '.join(missing)} in its "
                        "scores: compare handles classification runs only")
    return scores


def _pooled(scores: Sequence[Mapping]) -> dict:
    """The scores of the folds' confusion matrices summed."""
    labels = scores[0]["labels"]
    matrix = sum(np.asarray(s["confusion_matrix"], dtype=np.int64) for s in scores)
    return metrics_from_confusion(matrix, labels)


def _same_answers(a: Sequence[Mapping], b: Sequence[Mapping]) -> float | None:
    """Share of the compared test predictions in which A and B choose the same class
    (``None`` when a fold lacks its probabilities or their counts differ)."""
    same = total = 0
    for fold_a, fold_b in zip(a, b):
        pa, pb = fold_a.get("test_probabilities"), fold_b.get("test_probabilities")
        if pa is None or pb is None or np.shape(pa) != np.shape(pb) or np.ndim(pa) != 2:
            return None
        same += int((np.argmax(pa, axis=1) == np.argmax(pb, axis=1)).sum())
        total += len(pa)
    return 100.0 * same / total if total else None


def compare_runs(a: RunFolds, b: RunFolds, *, metric: str = "UA",
                 last_epoch: bool = False) -> dict:
    """The comparison B − A over the folds both finished (module docstring)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    name_a, name_b = a.named("A"), b.named("B")
    if a.folds_digest != b.folds_digest:
        raise UserError(
            f"{name_a} and {name_b} tested on different folds (folds digests "
            f"{a.folds_digest[:12]} and {b.folds_digest[:12]}): a fold-by-fold comparison "
            "needs the same test sets; `ser-tf report` lists each run's own scores")
    common = sorted(set(a.folds) & set(b.folds))
    if not common:
        raise UserError(f"{name_a} and {name_b} have no finished fold in common "
                        f"(A: {sorted(a.folds) or 'none'}, B: {sorted(b.folds) or 'none'})")
    left_out = {}
    if last_epoch:
        # Folds trained before last-epoch scores were recorded: compared on the others.
        for side, run in (("A", a), ("B", b)):
            for index in common:
                if not _has_last_epoch(run.folds[index]):
                    left_out.setdefault(index, f"{side} has no last-epoch scores")
        common = [index for index in common if index not in left_out]
        if not common:
            raise UserError(f"{name_a} and {name_b}: no fold with last-epoch scores in both "
                            "(the runs tested their chosen epoch only)")
    folds_a, folds_b = [a.folds[i] for i in common], [b.folds[i] for i in common]
    for index, fold_a, fold_b in zip(common, folds_a, folds_b):
        ids_a, ids_b = fold_a.get("test_ids"), fold_b.get("test_ids")
        # Older fold results may lack test_ids: then the equal digests vouch for the folds.
        if ids_a is not None and ids_b is not None and list(ids_a) != list(ids_b):
            raise UserError(f"fold {index}: {name_a} and {name_b} name other test utterances "
                            "although their folds digests are equal")
    scores_a = [_scores(fold, last_epoch, name_a) for fold in folds_a]
    scores_b = [_scores(fold, last_epoch, name_b) for fold in folds_b]
    if scores_a[0]["labels"] != scores_b[0]["labels"]:
        raise UserError(f"{name_a} and {name_b} have other classes: {scores_a[0]['labels']} "
                        f"and {scores_b[0]['labels']}")
    per_fold = [{"fold": i, "A": float(sa[metric]), "B": float(sb[metric])}
                for i, sa, sb in zip(common, scores_a, scores_b)]
    changes = [row["B"] - row["A"] for row in per_fold]
    interval = mean_interval(changes)
    pooled_a, pooled_b = _pooled(scores_a), _pooled(scores_b)
    return {
        "metric": metric, "view": "last epoch" if last_epoch else "chosen epoch",
        "folds": common, "left_out": left_out, "per_fold": per_fold,
        "change": {"mean": float(np.mean(changes)),
                   "std": float(np.std(changes, ddof=1)) if len(changes) > 1 else None,
                   "interval95": list(interval) if interval else None,
                   "higher": sum(c > 0 for c in changes), "lower": sum(c < 0 for c in changes),
                   "equal": sum(c == 0 for c in changes)},
        "pooled": {name: {key: pooled[key] for key in METRICS}
                   | {"right": int(np.trace(np.asarray(pooled["confusion_matrix"]))),
                      "n": pooled["n_samples"]}
                   for name, pooled in (("A", pooled_a), ("B", pooled_b))},
        "same_answers": None if last_epoch else _same_answers(folds_a, folds_b),
        "config_differences": config_differences(a.config, b.config),
    }


def _run_line(name: str, run: RunFolds, provenance: Provenance) -> list[str]:
    state = (f"record, {len(run.folds)} of {run.n_folds} folds" if run.complete
             else f"training, {len(run.folds)} of {run.n_folds} folds finished")
    lines = [f"{name}: {run.key} ({state})", f"   data: {provenance.data_of(run.as_record())}"]
    reason = provenance.superseded_reason(run.as_record())
    if reason:
        lines.append(f"   superseded: {reason}")
    return lines


def _value(value) -> str:
    return "(not set)" if value is None else str(value)


def render_comparison(a: RunFolds, b: RunFolds, result: Mapping,
                      provenances: tuple[Provenance, Provenance] = (NONE, NONE)) -> str:
    """The comparison as text (markdown table in the middle); ``provenances``: what each
    run's results folder knows of its corpus copy (``provenance.yaml``)."""
    metric, change = result["metric"], result["change"]
    lines = _run_line("A", a, provenances[0]) + _run_line("B", b, provenances[1])
    differences = result["config_differences"]
    lines.append("config, A -> B: " + ("; ".join(f"{key}: {_value(va)} -> {_value(vb)}"
                                                 for key, va, vb in differences)
                                      if differences else "the same"))
    lines += [f"folds: the same test sets (digest {a.folds_digest[:12]}); compared: "
              f"{len(result['folds'])} fold(s) both finished ({result['view']}; folds count from 0, "
              "as their fold_XX folders)"]
    lines += [f"left out: fold {index} ({why})" for index, why in result["left_out"].items()]
    lines += ["", f"| fold | A {metric} | B {metric} | B − A |", "|---|---|---|---|"]
    lines += [f"| {row['fold']} | {row['A']:.2f} | {row['B']:.2f} | {row['B'] - row['A']:+.2f} |"
              for row in result["per_fold"]]
    lines.append("")
    spread = "" if change["std"] is None else f" ± {change['std']:.2f} (std over folds)"
    interval = change["interval95"]
    lines.append(f"{metric}, B − A: mean {change['mean']:+.2f}{spread}"
                 + ("" if interval is None else
                    f", 95 % interval {interval[0]:+.2f} … {interval[1]:+.2f} (Student t)")
                 + f"; B higher in {change['higher']}, lower in {change['lower']}, "
                   f"equal in {change['equal']} of {len(result['folds'])} folds")
    pooled = result["pooled"]
    lines.append(f"pooled over the compared folds' {pooled['A']['n']} test predictions: "
                 + "; ".join(f"{key} {pooled['A'][key]:.2f} -> {pooled['B'][key]:.2f} "
                             f"({pooled['B'][key] - pooled['A'][key]:+.2f})"
                             for key in ("UA", "WA", "weighted_F1"))
                 + f"; right: {pooled['A']['right']} -> {pooled['B']['right']}")
    if result["same_answers"] is not None:
        lines.append(f"same class from both: {result['same_answers']:.1f} % of the test "
                     "predictions")
    elif result["view"] == "last epoch":
        lines.append("same class from both: not known at the last epoch (runs store the "
                     "chosen epoch's probabilities only)")
    else:
        lines.append("same class from both: not known (a fold lacks its test probabilities)")
    return "\n".join(lines) + "\n"


def _results_root(run: RunFolds) -> Path:
    """``<results>`` of ``<results>/<paper>/<corpus>/<run>``, where provenance.yaml is."""
    return run.path.resolve().parent.parent.parent


def add_cli(subparsers) -> None:
    """Register ``compare`` on the top-level subcommands."""
    parser = subparsers.add_parser(
        "compare", help="two runs fold by fold on the same test sets (B − A)",
        description="ser-tf compare A B: each fold's score of run A and run B (record folders, "
                    "or <run-id>.work folders while training: their finished folds), the "
                    "mean change with a 95 %% interval, pooled scores and config differences. "
                    "The runs must have tested on the same folds.")
    parser.add_argument("a", metavar="A", help="run folder (the reference)")
    parser.add_argument("b", metavar="B", help="run folder (compared with A)")
    parser.add_argument("--metric", choices=METRICS, default="UA", help="per-fold score "
                                                                        "(default UA)")
    parser.add_argument("--last-epoch", action="store_true",
                        help="the last epoch's scores instead of the chosen epoch's")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    import json

    a, b = load_run_folds(args.a), load_run_folds(args.b)
    result = compare_runs(a, b, metric=args.metric, last_epoch=args.last_epoch)
    if args.json:
        print(json.dumps({"A": a.key, "B": b.key, **result}, indent=1))
        return 0
    provenances = (load_provenance(_results_root(a)), load_provenance(_results_root(b)))
    print(render_comparison(a, b, result, provenances), end="")
    return 0
