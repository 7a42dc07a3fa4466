"""The report's table of regression runs: CCC per output beside the published CCC.

A regression record (:func:`~ser_tf.reporting.references.record_kind`) has, per fold, the
CCC of every output (:func:`~ser_tf.training.tasks.regression_metrics`) and in its summary
``ccc_<output>`` and ``mean_ccc`` as mean ± sample std over folds
(:func:`~ser_tf.training.tasks.summarize_regression`). The table has one measured column per
output present in the rows (``arousal``, ``valence``, ``liking`` first, as their usual
order, then any other in order of appearance) and the mean over outputs; the published
column lists the reference entry's CCC of the same outputs: ``–`` where it gives none,
``not verified`` where it gives no value at all (every value ``null``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ser_tf.reporting.references import (entry_kind, epochs_text, loss_text, protocol_text,
                                         record_kind, table_rows, value_text)

#: Outputs in their usual order (the others follow in order of appearance).
ORDER = ("arousal", "valence", "liking", "dominance")
NOT_VERIFIED = "not verified"
INTRO = ("Regression runs: CCC (concordance correlation coefficient, Lin 1989) of each output "
         "on each fold's test set (every real test frame of a per-frame task), mean ± std "
         "over folds (sample std); mean: the mean CCC over the outputs. Published: the "
         "paper's CCC of the same outputs, – where it gives none, not verified where "
         "reference.yaml has no checked value.")


def record_outputs(record: Mapping) -> list[str]:
    """The outputs a regression record scored: its task's, else its summary's keys."""
    task = (record.get("config") or {}).get("task")
    if isinstance(task, Mapping) and task.get("outputs"):
        return [str(o) for o in task["outputs"]]
    return [k[len("ccc_"):] for k in (record.get("summary") or {}) if k.startswith("ccc_")]


def entry_outputs(entry: Mapping) -> list[str]:
    return [k[len("ccc_"):] for k in entry["metrics"] if k.startswith("ccc_")]


def ordered_outputs(names: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(str(n) for n in names))
    return [o for o in ORDER if o in seen] + [o for o in seen if o not in ORDER]


def columns(outputs: Sequence[str]) -> tuple[str, ...]:
    return ("paper", "corpus", "setting", f"published CCC {' / '.join(outputs)}", "source",
            "protocol", "loss", "epochs", "folds", *(f"CCC {o}" for o in outputs), "mean CCC",
            "data", "date", "run id")


def _ccc(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def published(entry: Mapping | None, outputs: Sequence[str]) -> str:
    if entry is None:
        return "—"
    metrics = entry["metrics"]
    if all(v is None for v in metrics.values()):
        return NOT_VERIFIED
    return " / ".join(_ccc(metrics.get(f"ccc_{o}")) for o in outputs)


def _mean_std(summary: Mapping, key: str) -> str:
    stats = summary.get(key)
    if not isinstance(stats, Mapping) or stats.get("mean") is None:
        return "—"
    return f"{stats['mean']:.3f} ± {stats.get('std') or 0:.3f}"


def run_cells(record: Mapping | None, outputs: Sequence[str], provenance=None) -> list[str]:
    from ser_tf.reporting.provenance import NONE

    if record is None:
        return ["not run"] + [""] * (len(outputs) + 7)
    summary = record.get("summary") or {}
    return [protocol_text(record), loss_text(record.get("config", {})), epochs_text(record),
            value_text(record.get("folds", {}).get("n_folds")),
            *(_mean_std(summary, f"ccc_{o}") for o in outputs), _mean_std(summary, "mean_ccc"),
            (provenance or NONE).data_cell(record),
            str(record.get("created", ""))[:10] or "—", f"`{record.get('run_id', '?')}`"]


def regression_rows(references: Sequence[Mapping], records: Sequence[Mapping],
                    provenance=None) -> tuple[tuple[str, ...], list[list[str]]]:
    """``(columns, rows)`` of the regression entries and records (the others are left
    out): each entry with the runs beside it (or ``not run``), then the unmatched runs.
    No regression entry and no regression record: no rows."""
    from ser_tf.reporting.provenance import NONE

    provenance = provenance or NONE
    entries = [(ref, entry) for ref in references for entry in ref["entries"]
               if entry_kind(entry) == "regression"]
    records = [r for r in records if record_kind(r) == "regression"]
    outputs = ordered_outputs([o for _, e in entries for o in entry_outputs(e)]
                              + [o for r in records for o in record_outputs(r)])
    rows = table_rows(references, entries, records, provenance,
                      published=lambda entry: published(entry, outputs),
                      run_cells=lambda record: run_cells(record, outputs, provenance))
    return columns(outputs), rows
