"""``ser-tf report``: the measured runs in a markdown table, beside the published numbers.

Measured runs are the run records under ``experiments/results/<paper>/<corpus>/<run-id>/``
(:mod:`ser_tf.reporting.records`). Published numbers live in each paper's package,
``ser_tf/papers/<paper>/reference.yaml`` (read as files: the report imports no paper)::

    paper: lightsernet          # = the results folder name, experiments/results/<paper>/
    title: Light-SERNet
    citation: "A. Aftab, ... ICASSP 2022, pp. 6912-6916."
    describe: [lam, input]      # optional: run settings shown in every row's setting cell
    absent: {full_batches: false}  # optional: a setting's value in runs whose config lacks
                                   # it (recorded before the setting existed)
    entries:
      - corpus: EMODB           # ser_tf corpus name (compared case-insensitively)
        setting:                # what a run's resolved config must match to sit beside it
          loss: cross-entropy
          duration: 3
        metrics: {UA: 94.15, WA: 94.21, F1: 94.16}   # percent, as printed; omit unknown ones
        source: {paper: "Aftab et al., ICASSP 2022", table: "…", note: "…"}

Matching: each ``setting`` key is looked up in the run's resolved config (dotted keys such
as ``loss.gamma`` reach nested values; ``protocol`` is always available). Values compare
case-insensitively with ``-``/``_``/spaces ignored (``cross_entropy`` = ``Cross-Entropy``),
numbers numerically. A run sits beside the matching entries with the *most* setting keys
(so a last-epoch run goes beside the ``checkpoint: last`` entry, not also beside the
general one); a run that chose its epoch and also scored its last one appears twice, the
second time as a last-epoch run (:func:`with_last_epoch_views`); runs matching no entry get their own row with ``—`` as published value, and
entries without a matching run print ``not run``.

Measured columns are mean ± std over folds (sample std, ``ser_tf.training.metrics``) of
UA, WA and macro-F1, in percent, and UA / WA / weighted F1 of the folds' pooled confusion
matrix (how the Light-SERNet code reports its numbers). ``data`` is the corpus copy the run
read (its fingerprint, :mod:`ser_tf.data.fingerprint`, or what
``<results>/provenance.yaml`` says of records older than fingerprints); records that file
marks superseded get a table of their own, never a place beside the published numbers
(:mod:`ser_tf.reporting.provenance`).

Regression runs (a task of :mod:`ser_tf.training.tasks` other than classification: CCC of
every output per fold, mean ± std in the summary) get a table of their own
(:mod:`ser_tf.reporting.regression_table`), beside regression entries, whose metrics are
``ccc_<output>`` (and optionally ``mean_ccc``), ``null`` where no value has been checked::

      - corpus: SEWA
        setting: {model.variant: fusion, protocol: paper}
        metrics: {ccc_arousal: 0.52, ccc_valence: null, ccc_liking: null}

Reading, checking and matching: :mod:`ser_tf.reporting.references`; runs in progress:
:mod:`ser_tf.reporting.progress`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ser_tf.reporting.progress import in_progress_lines, split_partial, work_lines
from ser_tf.reporting.references import (MEASURED, PAPERS_DIR, REFERENCE_FILE, config_value,
                                         entry_kind, epochs_text, load_reference, loss_text,
                                         protocol_text, record_kind, setting_text, table_rows,
                                         value_text)

__all__ = ["COLUMNS", "MEASURED", "PAPERS_DIR", "REFERENCE_FILE", "in_progress_lines",
           "load_reference", "markdown_table", "render_report",
           "report_rows", "with_last_epoch_views"]

COLUMNS = ("paper", "corpus", "setting", "published UA / WA / F1", "source", "protocol", "loss",
           "epochs", "folds", "UA", "WA", "F1", "pooled UA / WA / wF1", "data", "date",
           "run id")
#: What the report says of the classification table's measured columns.
MEASURED_TEXT = ("Measured: mean ± std over folds (%, F1 = macro-F1); pooled: of the summed "
                 "confusion matrix (wF1 = weighted F1, as `classification_report` prints it).")
LAST_EPOCH_TEXT = ("A run that chose its epoch also reports its last epoch (protocol "
                   "`… (last)`, run id `…, last epoch`). Data: the corpus copy the run read.")


def _published(entry: Mapping | None) -> str:
    if entry is None:
        return "—"
    metrics = entry["metrics"]
    return " / ".join(f"{metrics[k]:.2f}" if k in metrics else "–" for k in MEASURED)


def _mean_std(record: Mapping, key: str) -> str:
    stats = record.get("summary", {}).get(key)
    if not isinstance(stats, Mapping) or stats.get("mean") is None:
        return "—"
    return f"{stats['mean']:.2f} ± {stats.get('std') or 0:.2f}"


def _pooled(record: Mapping) -> str:
    pooled = record.get("summary", {}).get("pooled") or {}
    if pooled.get("UA") is None or pooled.get("WA") is None:
        return "—"
    f1 = pooled.get("weighted_F1")
    return f"{pooled['UA']:.2f} / {pooled['WA']:.2f} / " + ("–" if f1 is None else f"{f1:.2f}")


def _run_cells(record: Mapping | None, provenance=None) -> list[str]:
    from ser_tf.reporting.provenance import NONE

    if record is None:
        return ["not run", "", "", "", "", "", "", "", "", "", ""]
    return [protocol_text(record), loss_text(record.get("config", {})), epochs_text(record),
            value_text(record.get("folds", {}).get("n_folds")),
            *(_mean_std(record, MEASURED[k]) for k in MEASURED), _pooled(record),
            (provenance or NONE).data_cell(record),
            str(record.get("created", ""))[:10] or "—", f"`{record.get('run_id', '?')}`"]


def with_last_epoch_views(records: Sequence[Mapping]) -> list[Mapping]:
    """``records`` plus, for each run that chose a checkpoint but also scored every fold's
    last epoch (``summary_last_epoch``), a view of that run as ``checkpoint: last``: it is
    placed like a last-epoch run (e.g. beside TIM-Net's corrected figures)."""
    out = []
    for record in records:
        out.append(record)
        config = record.get("config", {})
        checkpoint = config_value(config, "checkpoint")
        if record.get("summary_last_epoch") and checkpoint != "last":
            out.append({**record, "config": {**config, "checkpoint": "last"},
                        "summary": record["summary_last_epoch"],
                        "run_id": f"{record.get('run_id', '?')}, last epoch",
                        "view_of": record.get("run_id")})
    return out


def report_rows(references: Sequence[Mapping], records: Sequence[Mapping],
                provenance=None) -> list[list[str]]:
    """Classification table rows: each classification reference entry with the runs
    placed beside it (or ``not run``), then the runs that match no entry, grouped by paper
    and corpus. Regression entries and records are left out (their table:
    :func:`~ser_tf.reporting.regression_table.regression_rows`). ``provenance``
    (:class:`~ser_tf.reporting.provenance.Provenance`) fills the data column of records
    without a fingerprint and labels processed copies."""
    from ser_tf.reporting.provenance import NONE

    provenance = provenance or NONE
    entries = [(ref, entry) for ref in references for entry in ref["entries"]
               if entry_kind(entry) == "classification"]
    records = [r for r in records if record_kind(r) == "classification"]
    return table_rows(references, entries, records, provenance, published=_published,
                      run_cells=lambda record: _run_cells(record, provenance))


def markdown_table(rows: Sequence[Sequence[str]], columns: Sequence[str] = COLUMNS) -> str:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(columns), line(["---"] * len(columns)), *(line(r) for r in rows)])


def _tables(references, records, provenance) -> list[str]:
    """The classification table and, when there are regression entries or runs, the
    regression table with its paragraph. Only regression: no classification table."""
    from ser_tf.reporting.regression_table import INTRO, regression_rows

    views = with_last_epoch_views(records)
    rows = report_rows(references, views, provenance)
    columns, regression = regression_rows(references, views, provenance)
    out = [markdown_table(rows)] if rows or not regression else []
    if regression:
        out += ([""] if out else []) + [INTRO, "", markdown_table(regression, columns)]
    return out


def _has_classification(references, records) -> bool:
    return (any(record_kind(r) == "classification" for r in records)
            or any(entry_kind(e) == "classification" for ref in references
                   for e in ref["entries"])
            or not (records or any(ref["entries"] for ref in references)))


def render_report(results_dir: str | os.PathLike = "experiments/results",
                  experiments_dir: str | os.PathLike | None = None,
                  paper: str | None = None) -> str:
    """The markdown report: the table(s), then the references' sources and the protocol
    note."""
    from ser_tf.reporting.records import iter_run_records  # lazy: keeps `ser-tf --help` light
    from ser_tf.reporting.tflite_table import COLUMNS as TFLITE_COLUMNS
    from ser_tf.reporting.selection import selection_lines
    from ser_tf.reporting.tflite_table import (input_mismatch_lines, latency_host_lines,
                                               tflite_rows)

    results_dir = Path(results_dir)
    experiments_dir = Path(experiments_dir) if experiments_dir else PAPERS_DIR
    shown_dir = "ser_tf/papers" if experiments_dir == PAPERS_DIR else str(experiments_dir)
    paths = ([experiments_dir / paper / REFERENCE_FILE] if paper
             else sorted(experiments_dir.glob(f"*/{REFERENCE_FILE}")))
    references = [load_reference(p) for p in paths if p.is_file()]
    from ser_tf.reporting.provenance import load_provenance

    provenance = load_provenance(results_dir)
    everything = list(iter_run_records(results_dir, paper)) if results_dir.is_dir() else []
    superseded = [r for r in everything if provenance.superseded_reason(r)]
    records = [r for r in everything if not provenance.superseded_reason(r)]
    # Display copies: the corpus named with its copy wherever a run appears.
    shown = [{**r, "corpus": provenance.corpus_of(r)} for r in records]
    if paper and not references and not everything:
        known = sorted({p.parent.name for p in experiments_dir.glob(f"*/{REFERENCE_FILE}")})
        raise ValueError(f"no reference numbers and no runs for paper {paper!r} "
                         f"(papers with references: {', '.join(known) or 'none'})")
    measured = (f" {MEASURED_TEXT}" if _has_classification(references, everything)
                else " Measured: mean ± std over folds (regression table below).")
    lines = [f"# ser-tf results{f': {paper}' if paper else ''}", "",
             f"{len(records)} run record(s) under {results_dir}"
             + (f" (and {len(superseded)} superseded, listed apart below)" if superseded else "")
             + f"; published numbers from {shown_dir}/<paper>/{REFERENCE_FILE}."
             + f"{measured} {LAST_EPOCH_TEXT}", "",
             *_tables(references, records, provenance)]
    tflite = tflite_rows(shown)
    if tflite:
        lines += ["", "TFLite exports: every fold's model converted and scored on that fold's "
                  "test utterances; UA ± std over folds, pooled over all test utterances; "
                  "same answer as Keras: mean over folds. Size and latency (batch 1, LiteRT, "
                  "per utterance) are those of one fold's files (`tflite.latency_fold` in the "
                  "record), timed when that fold was exported, on whatever host and load "
                  "there was; `make bench-lightsernet` times an idle machine.", "",
                  markdown_table(tflite, TFLITE_COLUMNS), "", *input_mismatch_lines(shown),
                  *latency_host_lines(records)]
    selection = selection_lines(shown)
    if selection:
        lines += ["", "Checkpoint selection (`ser_tf.reporting.selection`): how far each run's "
                  "chosen epochs stand above their neighbouring epochs on the series they were "
                  "chosen from. Where that series is the test UA (`paper` protocols without a "
                  "validation split of their own), a large gap is optimism in the reported "
                  "number, and a perturbed copy of the "
                  "chosen weights (another epoch, int8 rounding) should be expected to score "
                  "lower on that test set.", "",
                  *selection]
    notes = [f"- {ref.get('title') or ref['paper']}: {ref['citation']}"
             for ref in references if ref.get("citation")]
    notes += [f"- {entry['corpus']} ({setting_text(entry.get('setting'))}): "
              f"{entry['source']['note']}" for ref in references for entry in ref["entries"]
              if isinstance(entry.get("source"), Mapping) and entry["source"].get("note")]
    if notes:
        lines += ["", "Sources:", "", *notes]
    copies = provenance.copy_lines(everything)
    if copies:
        lines += ["", "Corpus copies of runs recorded before runs stored a data fingerprint "
                  f"({results_dir}/provenance.yaml):", "", *copies]
    if superseded:
        lines += ["", "Superseded runs: kept for the history, not comparable with the runs "
                  "above or the published numbers (their TFLite and selection figures are in "
                  "their records).", "",
                  *_tables([], superseded, provenance),
                  "", *(f"- `{r['run_id']}`: {provenance.superseded_reason(r)}"
                        for r in superseded)]
    # In-progress lines name each paper's `describe` settings too ({} = no value if absent).
    settings = {str(ref["paper"]): {**dict.fromkeys(ref.get("describe") or ()),
                                    **(ref.get("absent") or {})} for ref in references}
    progress, partial = split_partial(list(work_lines(results_dir, paper, settings=settings)),
                                      provenance.partial)
    if progress:
        lines += ["", "Runs in progress (no record yet; the same command resumes them):", "",
                  *progress]
    if partial:
        lines += ["", "Partial runs (some folds only, on purpose; no record):", "", *partial]
    from ser_tf.training.protocols import TEST_SELECTING, paper_protocol_warning

    # Each record's own warning: it says whether that run chose anything on the test fold
    # (a `paper` run keeping its last epoch did not).
    notes = []
    for record in records:
        if record.get("protocol") in TEST_SELECTING:
            note = record.get("protocol_warning") or paper_protocol_warning(record["protocol"])
            if note not in notes:
                notes.append(note)
    lines += [line for note in notes for line in ("", f"Note: {note}")]
    return "\n".join(lines) + "\n"


def add_cli(subparsers) -> None:
    """Register ``report`` on the top-level subcommands."""
    parser = subparsers.add_parser(
        "report", help="table of measured runs beside the published numbers",
        description="Render a markdown table of the run records under --results beside the "
                    "published numbers in ser_tf/papers/<paper>/reference.yaml.")
    parser.add_argument("--results", default="experiments/results", metavar="DIR",
                        help="run records root (default: experiments/results)")
    parser.add_argument("--experiments", metavar="DIR",
                        help="folder holding <paper>/reference.yaml (default: the papers' "
                             "packages, ser_tf/papers)")
    parser.add_argument("--paper", metavar="NAME", help="only this paper (e.g. lightsernet, timnet)")
    parser.add_argument("--output", metavar="FILE", help="also write the markdown to FILE")
    parser.add_argument("--readme", metavar="FILE",
                        help="also put the table into FILE between <!-- report:PAPER:start --> "
                             "and <!-- report:PAPER:end --> (needs --paper)")
    parser.add_argument("--check", action="store_true",
                        help="with --readme: rewrite nothing; exit 1 and show the difference "
                             "if FILE's table is not what the records say")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    if args.check and not args.readme:
        raise ValueError("--check needs --readme (the README whose table is checked)")
    if args.readme and not args.paper:
        raise ValueError("--readme needs --paper (one table per README section)")
    text = render_report(args.results, args.experiments, args.paper)
    body = text.split("\n", 2)[2]  # the README's section drops the report's own heading
    if args.check:
        from ser_tf.reporting.readme_blocks import check_block

        return check_block(args.readme, "report", args.paper, body,
                           what=f"the {args.paper} table", results=args.results)
    print(text, end="")
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    if args.readme:
        from ser_tf.reporting.readme_blocks import rewrite_block

        changed = rewrite_block(args.readme, "report", args.paper, body)
        print(f"{args.readme}: table {'rewritten' if changed else 'unchanged'}",
              file=sys.stderr)
    return 0
