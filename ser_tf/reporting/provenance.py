"""What run records cannot say about themselves: the corpus copy a run read, and whether the
run is superseded.

Records written since December 2026 carry a data fingerprint (``config["data"]``,
:mod:`ser_tf.data.fingerprint`); older ones do not. ``<results>/provenance.yaml`` fills the
gap and marks records that stay on disk but no longer stand for the project's numbers::

    copies:                     # named corpus copies, described once
      emodb-2s:
        label: 2.00 s processed copy      # short: shown beside the corpus name everywhere
        description: "EMO-DB processed copy: 535 files, 22.05 kHz, all 2.00 s ..."
        digests: [0123abcd4567ef89]       # optional: fingerprint digests of this copy
    runs:                       # <paper>/<corpus>/<run-id>
      lightsernet/EMODB/paper-9d0a74b187:
        data: emodb-2s          # a key of `copies`
        superseded: "measured on the 2.00 s copy; rerun on the original release"
      lightsernet/EMODB/speaker-3c3fea4616:
        partial: "an ablation of two folds only (--train-folds 0,6); never resumed"
    records:                    # other records (benchmarks, feature timings), by path
      bench/timnet-emodb-2026-12-01.json:      # relative to the results folder
        data: emodb-2s
        note: "timings only; the corpus copy changes the input lengths"

The report names each record's corpus with its copy (``RAVDESS (2.39 s trimmed copy)``),
shows its data (the fingerprint, else the copy's description, else "not recorded") and
lists superseded records in a table of their own, with the reason. A ``partial`` run
folder (``<run-id>.work`` without a record, its missing folds left out on purpose) is
listed with its reason instead of among the runs in progress. A fingerprinted record
of a processed copy takes the label of the named copy whose ``digests`` hold its
fingerprint's digest, else its fingerprint's release check. ``records`` names the copy a
benchmark or feature-timing record read when the record cannot say (no ``data`` field):
those records time code rather than score models, but a timing depends on input lengths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROVENANCE_FILE = "provenance.yaml"
RUN_KEYS = ("data", "superseded", "partial")
RECORD_KEYS = ("data", "note")


@dataclass(frozen=True)
class Copy:
    """A corpus copy runs were measured on: a short label and what it is."""

    label: str
    description: str
    digests: tuple[str, ...] = ()


@dataclass(frozen=True)
class Provenance:
    """The parsed ``provenance.yaml``: run key -> corpus copy / superseded reason."""

    data: Mapping[str, Copy]
    superseded: Mapping[str, str]
    copies: tuple[Copy, ...] = ()
    #: run key -> why the run folder holds some folds only, on purpose.
    partial: Mapping[str, str] = field(default_factory=dict)
    #: other records (path relative to the results folder) -> the copy they read.
    records: Mapping[str, Copy] = field(default_factory=dict)

    def data_of(self, record: Mapping) -> str:
        """The record's data: its fingerprint, else the copy's description recorded here."""
        from ser_tf.data.fingerprint import describe

        fingerprint = (record.get("config") or {}).get("data")
        if fingerprint:
            return describe(fingerprint)
        copy = self.data.get(run_key(record))
        return copy.description if copy else "not recorded"

    def corpus_of(self, record: Mapping) -> str:
        """The corpus name, with the copy's label unless it is the original release:
        ``RAVDESS (2.39 s trimmed copy)``, ``EMODB (processed copy (...))``, ``EMODB``."""
        from ser_tf.data.fingerprint import ORIGINAL

        corpus = str(record.get("corpus", "?"))
        fingerprint = (record.get("config") or {}).get("data")
        if fingerprint:
            known = self.copy_with_digest(fingerprint.get("digest"))
            if known is not None:
                return f"{corpus} ({known.label})"
            release = fingerprint.get("release")
            if fingerprint.get("same_duration"):
                release = release or f"all files {fingerprint['duration_s']['min']:.2f} s"
            # "original release (339 of 535 files)": a class subset of the release.
            return corpus if not release or release.startswith(ORIGINAL) else (
                f"{corpus} ({release})")
        copy = self.data.get(run_key(record))
        return f"{corpus} ({copy.label})" if copy else corpus

    def copy_with_digest(self, digest) -> Copy | None:
        """The named copy whose ``digests`` include a fingerprint's ``digest``."""
        if not digest:
            return None
        return next((copy for copy in self.copies if str(digest) in copy.digests), None)

    def data_cell(self, record: Mapping) -> str:
        """Short: the fingerprint's line, else the copy's label, else ``not recorded``."""
        if (record.get("config") or {}).get("data"):
            return self.data_of(record)
        copy = self.data.get(run_key(record))
        return copy.label if copy else "not recorded"

    def copy_lines(self, records) -> list[str]:
        """``- label: description`` for each copy some of ``records`` were measured on."""
        used = {}
        for record in records:
            fingerprint = (record.get("config") or {}).get("data") or {}
            copy = (self.data.get(run_key(record))
                    or self.copy_with_digest(fingerprint.get("digest")))
            if copy is not None:
                used[copy.label] = copy.description
        return [f"- {label}: {description}" for label, description in sorted(used.items())]

    def superseded_reason(self, record: Mapping) -> str | None:
        return self.superseded.get(run_key(record))


NONE = Provenance({}, {})


def run_key(record: Mapping) -> str:
    """``<paper>/<corpus>/<run-id>``: how ``provenance.yaml`` names a record (a view of a
    record, such as its last-epoch scores, is named as the record: ``view_of``)."""
    return (f"{record.get('paper')}/{record.get('corpus')}/"
            f"{record.get('view_of') or record.get('run_id')}")


def load_provenance(results_dir: str | os.PathLike) -> Provenance:
    """Read ``<results_dir>/provenance.yaml`` (absent: nothing known beyond the records)."""
    path = Path(results_dir) / PROVENANCE_FILE
    if not path.is_file():
        return NONE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(raw, Mapping) or set(raw) - {"copies", "runs", "records"}:
        raise ValueError(f"{path}: expected the keys 'copies', 'runs' and 'records' only")
    copies = raw.get("copies") or {}
    runs = raw.get("runs") or {}
    others = raw.get("records") or {}
    if not all(isinstance(part, Mapping) for part in (copies, runs, others)):
        raise ValueError(f"{path}: 'copies', 'runs' and 'records' must be mappings")
    named = {}
    for name, copy in copies.items():
        if not isinstance(copy, Mapping) or not copy.get("label") or not copy.get("description"):
            raise ValueError(f"{path}: copy {name!r} needs a 'label' and a 'description'")
        digests = copy.get("digests") or []
        if not isinstance(digests, list) or not all(isinstance(d, str) and d for d in digests):
            raise ValueError(f"{path}: copy {name!r}: 'digests' must be a list of fingerprint "
                             "digests (strings)")
        named[str(name)] = Copy(str(copy["label"]), str(copy["description"]), tuple(digests))
    data, superseded, partial = {}, {}, {}
    for key, entry in runs.items():
        if str(key).count("/") != 2:
            raise ValueError(f"{path}: run {key!r} must be <paper>/<corpus>/<run-id>")
        if not isinstance(entry, Mapping) or not entry or set(entry) - set(RUN_KEYS):
            raise ValueError(f"{path}: run {key}: its keys must be among "
                             f"{', '.join(RUN_KEYS)} (at least one)")
        if entry.get("data") is not None:
            if entry["data"] not in named:
                raise ValueError(f"{path}: run {key}: data {entry['data']!r} is not one of the "
                                 f"copies ({', '.join(named) or 'none'})")
            data[str(key)] = named[entry["data"]]
        if entry.get("superseded") is not None:
            if not str(entry["superseded"]).strip():
                raise ValueError(f"{path}: run {key}: 'superseded' needs a reason")
            superseded[str(key)] = str(entry["superseded"])
        if entry.get("partial") is not None:
            if not str(entry["partial"]).strip():
                raise ValueError(f"{path}: run {key}: 'partial' needs a reason")
            partial[str(key)] = str(entry["partial"])
    records = {}
    for key, entry in others.items():
        if not isinstance(entry, Mapping) or set(entry) - set(RECORD_KEYS) or \
                entry.get("data") not in named:
            raise ValueError(f"{path}: record {key}: needs 'data', one of the copies "
                             f"({', '.join(named) or 'none'}), and at most a 'note'")
        records[str(key)] = named[entry["data"]]
    return Provenance(data, superseded, tuple(named.values()), partial, records)
