"""Published numbers (``ser_tf/papers/<paper>/reference.yaml``) and where runs sit beside
them: reading and checking the file, matching a run record to its entries, and the text of
the cells both report tables share. The format is in :mod:`ser_tf.reporting.report`.

An entry is a *classification* entry (metrics among ``UA``, ``WA``, ``F1``, percent) or a
*regression* entry (metrics ``ccc_<output>``, e.g. ``ccc_arousal``, and optionally
``mean_ccc``: the keys of :func:`~ser_tf.training.tasks.summarize_regression`; ``null``
for a value nobody has checked). A record is a regression record when its task is (its
config's ``task.kind``, or a summary holding ``mean_ccc``); each kind of record sits only
beside entries of its kind.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REFERENCE_FILE = "reference.yaml"
#: Where the papers' packages (and their reference.yaml files) are.
PAPERS_DIR = Path(__file__).resolve().parents[1] / "papers"
#: Column name -> summary key of the classification metrics.
MEASURED = {"UA": "UA", "WA": "WA", "F1": "macro_F1"}
#: Task kinds whose records are regression records (:mod:`ser_tf.training.tasks`).
REGRESSION_KINDS = ("regression", "frame_regression")
_CCC_KEY = re.compile(r"^ccc_[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*$")


def is_regression_metric(key: str) -> bool:
    """``ccc_<output>`` or ``mean_ccc``."""
    return key == "mean_ccc" or bool(_CCC_KEY.match(str(key)))


def entry_kind(entry: Mapping) -> str:
    """``"regression"`` for an entry of CCC metrics, else ``"classification"``."""
    metrics = entry.get("metrics") or {}
    return "regression" if metrics and all(is_regression_metric(k) for k in metrics) \
        else "classification"


def record_kind(record: Mapping) -> str:
    """``"regression"`` for a run of a regression task, else ``"classification"``."""
    task = (record.get("config") or {}).get("task")
    if isinstance(task, Mapping) and task.get("kind") in REGRESSION_KINDS:
        return "regression"
    return "regression" if "mean_ccc" in (record.get("summary") or {}) else "classification"


def _check_metrics(path: Path, i: int, entry: Mapping) -> None:
    metrics = entry["metrics"]
    if all(is_regression_metric(k) for k in metrics):
        bad = [k for k, v in metrics.items()
               if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))]
        if bad:
            raise ValueError(f"{path}: entry {i} ({entry['corpus']}): {bad} must be numbers "
                             "(CCC) or null (not verified)")
        return
    unknown = set(metrics) - set(MEASURED)
    if unknown:
        raise ValueError(f"{path}: entry {i} has unknown metrics {sorted(unknown)}; use "
                         f"{sorted(MEASURED)} (classification) or ccc_<output> / mean_ccc "
                         "(regression), not both")


def load_reference(path: str | os.PathLike) -> dict:
    """Read and check one ``reference.yaml`` (format in :mod:`ser_tf.reporting.report`)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise ValueError(f"{path}: needs a list 'entries'")
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not entry.get("corpus"):
            raise ValueError(f"{path}: entry {i} needs a 'corpus'")
        if not isinstance(entry.get("metrics"), Mapping) or not entry["metrics"]:
            raise ValueError(f"{path}: entry {i} ({entry['corpus']}) needs 'metrics'")
        _check_metrics(path, i, entry)
        if not isinstance(entry.get("setting", {}) or {}, Mapping):
            raise ValueError(f"{path}: entry {i} 'setting' must be a mapping")
    if not isinstance(data.get("absent") or {}, Mapping):
        raise ValueError(f"{path}: 'absent' must be a mapping (setting: its value in runs "
                         "recorded before the setting existed)")
    return {**data, "paper": data.get("paper") or path.parent.name, "path": str(path)}


def _normal(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().lower()
    try:
        return float(text)
    except ValueError:
        return re.sub(r"[-_\s]+", "", text)


def _lookup(record: Mapping, key: str, absent: Mapping | None = None) -> Any:
    """A setting of a run; ``absent`` (a reference's ``absent`` mapping) gives the value of
    settings added after some runs were recorded, for runs whose config lacks them."""
    if "." not in key:
        # A plain key is a run setting: top-level in the config, else in its fit section
        # (config_value), else a field of the record itself (``protocol``).
        value = config_value(record.get("config", {}), key)
        value = value if value is not None else record.get(key)
    else:
        value = record.get("config", {})
        for part in key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                value = None
                break
            value = value[part]
    return (absent or {}).get(key) if value is None else value


def matches(entry: Mapping, record: Mapping, absent: Mapping | None = None) -> bool:
    """Same corpus, every setting of the entry in the record's config (or, where the config
    lacks it, in ``absent``), same kind of task."""
    if str(entry["corpus"]).lower() != str(record.get("corpus", "")).lower():
        return False
    if entry_kind(entry) != record_kind(record):
        return False
    setting = entry.get("setting") or {}
    return all(_normal(_lookup(record, k, absent)) == _normal(v) for k, v in setting.items())


def place(entries: Sequence[tuple[Mapping, Mapping]], records: Sequence[Mapping]
          ) -> tuple[dict[int, list[int]], list[int]]:
    """Which records sit beside which ``(reference, entry)``: ``({entry position: [record
    positions]}, [positions of records matching no entry])``. A record goes beside the
    matching entries of its paper with the most setting keys."""
    placed: dict[int, list[int]] = {}
    unmatched = []
    for r, record in enumerate(records):
        candidates = [e for e, (ref, entry) in enumerate(entries)
                      if ref["paper"] == record.get("paper")
                      and matches(entry, record, ref.get("absent"))]
        if not candidates:
            unmatched.append(r)
            continue
        most = max(len(entries[e][1].get("setting") or {}) for e in candidates)
        for e in candidates:
            if len(entries[e][1].get("setting") or {}) == most:
                placed.setdefault(e, []).append(r)
    return placed, unmatched


def by_paper_corpus_date(records: Sequence[Mapping], positions: Sequence[int]) -> list[int]:
    """``positions`` ordered as the rows of unmatched runs are."""
    return sorted(positions, key=lambda i: (records[i].get("paper", ""),
                                            records[i].get("corpus", ""),
                                            records[i].get("created", "")))


def value_text(value: Any) -> str:
    return "—" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


def setting_text(setting: Mapping | None) -> str:
    return ", ".join(f"{k}={value_text(v)}" for k, v in (setting or {}).items()) or "—"


def run_setting_text(record: Mapping | None, entry_setting: Mapping | None,
                     describe: Sequence[str] = (), absent: Mapping | None = None) -> str:
    """The setting cell of one row: the entry's setting, then the run's values of the
    reference's ``describe`` keys (settings that tell runs of one entry apart, e.g. an
    input scaling or λ) that the entry does not fix."""
    parts = dict(entry_setting or {})
    if record is not None:
        for key in describe:
            if key not in parts:
                parts[key] = _lookup(record, key, absent)
    return setting_text(parts)


def table_rows(references: Sequence[Mapping], entries: Sequence[tuple[Mapping, Mapping]],
               records: Sequence[Mapping], provenance, *, published, run_cells
               ) -> list[list[str]]:
    """Rows of one results table: each ``(reference, entry)`` with the runs placed beside it
    (or a ``not run`` row), then the runs that match no entry, by paper, corpus and date.
    The first five cells (paper, corpus, setting, published, source) are built here;
    ``published(entry)`` and ``run_cells(record or None)`` give the table's own cells."""
    # A reference's optional `describe` keys name what tells its runs apart in the table.
    describe = {str(ref["paper"]): tuple(ref.get("describe") or ()) for ref in references}
    absent = {str(ref["paper"]): ref.get("absent") or {} for ref in references}
    placed, unmatched = place(entries, records)
    rows = []
    for e, (ref, entry) in enumerate(entries):
        for r in placed.get(e, [None]):
            record = None if r is None else records[r]
            # A run's row names its copy ("RAVDESS (2.39 s trimmed copy)") even beside
            # the published figure: the reader must see what was compared with what.
            corpus = (str(entry["corpus"]) if record is None
                      else provenance.corpus_of(record))
            rows.append([str(ref["paper"]), corpus,
                         run_setting_text(record, entry.get("setting"),
                                          describe[str(ref["paper"])],
                                          absent[str(ref["paper"])]),
                         published(entry), source_text(entry.get("source"))]
                        + run_cells(record))
    for r in by_paper_corpus_date(records, unmatched):
        record = records[r]
        paper = str(record.get("paper"))
        setting = run_setting_text(record, None, describe.get(paper, ()), absent.get(paper))
        rows.append([str(record.get("paper", "?")), provenance.corpus_of(record), setting,
                     "—", "—"] + run_cells(record))
    return rows


def source_text(source: Any) -> str:
    if isinstance(source, Mapping):
        parts = [str(source.get("paper") or "")]
        if source.get("table"):
            parts.append(f"Table {source['table']}")
        if source.get("kind"):
            parts.append(str(source["kind"]))
        return ", ".join(p for p in parts if p) or "—"
    return str(source) if source else "—"


def config_value(config: Mapping, key: str) -> Any:
    """A run setting: top-level in the config (an experiment's ``config_extra``), else in
    its ``fit`` section, where the training settings live."""
    value = config.get(key)
    return value if value is not None else (config.get("fit") or {}).get(key)


def loss_text(config: Mapping) -> str:
    loss = config_value(config, "loss")
    if isinstance(loss, Mapping):
        loss = loss.get("name")
    return value_text(loss)


def epochs_text(record: Mapping) -> str:
    epochs = config_value(record.get("config", {}), "epochs")
    if epochs is None:
        runs = [r.get("epochs_run") for r in record.get("per_fold", []) if r.get("epochs_run")]
        epochs = max(runs) if runs else None
    return value_text(epochs)


def protocol_text(record: Mapping) -> str:
    """The protocol, with the checkpoint policy in brackets (``paper (last)``)."""
    protocol = str(record.get("protocol", "—"))
    checkpoint = config_value(record.get("config", {}), "checkpoint")
    return protocol + (f" ({checkpoint})" if checkpoint else "")
