"""Run records: one folder per cross-validation run, enough to trust, compare and re-plot it.

``write_run_record(results_dir, ...)`` writes ``results_dir/<paper>/<corpus>/<run-id>/``
(``results_dir`` is normally ``experiments/results``; ``paper`` and ``corpus`` come from
the config)::

    record.json            resolved config, git commit (+ dirty flag), package versions,
                           CPU count, protocol (+ the optimistic-protocol warning), fold
                           sizes, per-fold results, mean ± std and pooled metrics, wall time
    folds.json             the utterance ids of every fold (``protocols.save_folds`` format;
                           ``record.json`` points to it and stores its digest)
    histories.json         per-fold, per-epoch training logs (to re-plot without training)
    confusion_matrix.png   pooled over folds, labelled
    training_curves.png    loss and accuracy, train and validation, mean ± std over folds
    ...                    ``extra_files`` (model cards, TFLite files, t-SNE plots)

Atomic: the folder is built in a hidden temporary folder beside its destination
(``.<run-id>.tmp-XXXX``) and renamed into place only when complete, so a crash leaves no
half record (the temporary folder is removed on any error). An existing record with the
same run id (= same resolved config) is **refused** (``FileExistsError``) unless
``overwrite=True``, which swaps by renames: old record → ``.<run-id>.old-XXXX``, new → place,
old deleted. A crash between those two renames leaves the old record in the hidden
``.old-`` folder (nothing is lost; rename it back); readers skip hidden folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from ser_tf.util.machine import cpu_info
from ser_tf.reporting.plots import plot_confusion_matrix, plot_training_curves
from ser_tf.util.jsonio import json_default, read_json, write_json_atomic

RECORD_FORMAT = "ser_tf.run_record/1"
RECORD_FILE = "record.json"
#: Distributions whose versions every record stores (import names differ: scikit-learn).
VERSIONED_PACKAGES = ("tensorflow", "keras", "numpy", "librosa", "scikit-learn")
_OWN_FILES = {RECORD_FILE, "folds.json", "histories.json", "confusion_matrix.png",
              "training_curves.png"}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _component(value: Any, what: str) -> str:
    """A config value used as a folder name: non-empty, no separators, not hidden."""
    text = _SAFE.sub("-", str(value)).strip("-.")
    if not text:
        raise ValueError(f"{what} {value!r} cannot be used as a folder name")
    return text


def config_digest(config: Mapping) -> str:
    """SHA-256 of the config's canonical JSON (sorted keys, compact)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_id(config: Mapping) -> str:
    """``<protocol>-<first 10 hex digits of the config digest>``, e.g. ``paper-3f09c2a1b7``.

    Deterministic: the same resolved config always gives the same id (so a rerun of an
    identical experiment lands on the same record). Keep machine-specific values (data
    paths, worker counts) out of the config, or the id changes between machines.
    """
    protocol = _component(config.get("protocol", "run"), "protocol")
    return f"{protocol}-{config_digest(config)[:10]}"


def git_info(repo: str | os.PathLike | None = None) -> dict:
    """``{"commit": <HEAD sha>, "dirty": bool}`` of the repository holding this package;
    ``{"commit": "unknown", "dirty": None}`` outside git (an installed wheel, no git binary)."""
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True, timeout=20).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # Tracked files only: untracked scratch files do not change what the code does.
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict:
    """Installed versions (from package metadata, so TensorFlow is not imported)."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _fold_sizes(folds) -> list[dict]:
    return [{"index": f.index, "train": len(f.train_ids), "val": len(f.val_ids),
             "test": len(f.test_ids), "selection_on_test": f.selection_on_test,
             "test_groups": list(f.test_groups)} for f in folds]


def _extra_file_map(extra_files) -> dict[str, Path]:
    if not extra_files:
        return {}
    pairs = (extra_files.items() if isinstance(extra_files, Mapping)
             else ((Path(p).name, p) for p in extra_files))
    mapping = {}
    for name, source in pairs:
        name = str(name)
        if Path(name).is_absolute() or ".." in Path(name).parts or name in _OWN_FILES:
            raise ValueError(f"extra file name {name!r} must be a new relative path in the record")
        if not Path(source).exists():
            raise FileNotFoundError(f"extra file {source} does not exist")
        mapping[name] = Path(source)
    return mapping


def _build(folder: Path, *, record: dict, folds, fold_results, labels, extras) -> None:
    """Write every file of the record into ``folder`` (the temporary folder)."""
    from ser_tf.training.protocols import save_folds

    save_folds(folds, folder / "folds.json", metadata={"run_id": record["run_id"]})
    histories = [r.get("history") or {} for r in fold_results]
    write_json_atomic(folder / "histories.json", histories, indent=None)
    files = ["folds.json", "histories.json"]
    title = f"{record['paper']} {record['corpus']} ({record['protocol']}, {len(folds)} folds)"
    if "confusion_matrix" in record["summary"]:  # classification tasks
        plot_confusion_matrix(record["summary"]["confusion_matrix"], labels,
                              folder / "confusion_matrix.png",
                              title=f"{title}: pooled over folds")
        files.append("confusion_matrix.png")
    if any(h.get("loss") for h in histories):
        val_label = "test fold (selection)" if record["folds"]["selection_on_test"] else "validation"
        plot_training_curves(histories, folder / "training_curves.png", title=title,
                             val_label=val_label)
        files.append("training_curves.png")
    for name, source in extras.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        files.append(name)
    record["files"] = [RECORD_FILE, *files]
    write_json_atomic(folder / RECORD_FILE, record)  # last: a record.json means complete


def _move_into_place(tmp: Path, final: Path, overwrite: bool) -> None:
    if not final.exists():
        os.rename(tmp, final)  # fails (ENOTEMPTY) if a record appeared meanwhile
        return
    if not overwrite:
        raise FileExistsError(f"run record {final} already exists (same config); pass "
                              "overwrite=True to replace it")
    old = final.parent / f".{final.name}.old-{secrets.token_hex(4)}"
    os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _last_epoch_summary(fold_results: Sequence[Mapping], summarize) -> dict:
    """``{"summary_last_epoch": ...}`` when every fold also scored its last epoch's weights
    (``train_fold``'s ``last_epoch``), else nothing: a mean over some folds would mislead."""
    if not all(isinstance(r.get("last_epoch"), Mapping) for r in fold_results):
        return {}
    return {"summary_last_epoch": summarize([r["last_epoch"]["metrics"] for r in fold_results])}


def write_run_record(dest_dir: str | os.PathLike, *, config: Mapping, protocol: str, folds,
                     fold_results: Sequence[Mapping], wall_time: float, labels: Sequence[str],
                     extra_files=None, details: Mapping | None = None,
                     overwrite: bool = False, git: Mapping | None = None,
                     created: str | None = None, machine: Mapping | None = None,
                     versions: Mapping | None = None, summarize=None) -> Path:
    """Write the run record atomically and return its folder (see the module docstring).

    Args:
        dest_dir: the results root (``experiments/results``).
        config: the resolved experiment config; needs ``paper`` (results folder name, e.g.
            ``lightsernet``) and ``corpus``. ``protocol`` is added to it (a different value
            already in it is an error), and the run id is derived from it.
        protocol: ``paper``, ``clean`` or ``speaker`` (see ``ser_tf.training.protocols``).
        folds: the ``protocols.Fold`` list (or their dicts) the run used.
        fold_results: per-fold result dicts as :func:`ser_tf.training.kfold.run_kfold`
            returns them: ``metrics`` (``classification_metrics``) required, ``history``
            (per-epoch lists) used for the curves, everything else stored as is.
        wall_time: seconds the whole run took.
        labels: class names in index order.
        extra_files: ``{name_in_record: source_path}`` or a list of paths (kept by name).
        details: more top-level sections of ``record.json`` (e.g. ``{"tflite": {...}}``);
            they may not replace the standard keys.
        overwrite: replace an existing record with the same run id (rename-swap).
        git: the checkout the code ran from (``git_info()`` taken when the process started:
            a long run may see commits land before it writes its record); default: now.
        created: the record's ``created`` time (ISO 8601); default: now.
        machine, versions: where and with which packages the folds ran; default: this
            process's (a record rebuilt from finished folds passes the old record's).
        summarize: fold metrics -> the run summary (the task's ``summarize``); default:
            :func:`ser_tf.training.metrics.summarize` (classification).
    """
    from ser_tf.training.kfold import as_folds
    from ser_tf.training.metrics import summarize as summarize_classification
    from ser_tf.training.protocols import folds_digest, paper_protocol_warning

    for key in ("paper", "corpus"):
        if not config.get(key):
            raise ValueError(f"the config needs {key!r} to place the run record")
    if config.get("protocol", protocol) != protocol:
        raise ValueError(f"config says protocol {config['protocol']!r}, the run says {protocol!r}")
    folds = as_folds(folds)
    if not fold_results or len(fold_results) != len(folds):
        raise ValueError(f"{len(fold_results)} fold results for {len(folds)} folds")
    fit = config.get("fit") or {}
    warning = paper_protocol_warning(protocol, config.get("checkpoint") or fit.get("checkpoint"),
                                     config.get("patience", fit.get("patience")),
                                     selection_on_test=any(f.selection_on_test for f in folds))
    resolved = {**config, "protocol": protocol}
    rid = run_id(resolved)
    final = (Path(dest_dir) / _component(config["paper"], "paper")
             / _component(config["corpus"], "corpus") / rid)
    if final.exists() and not overwrite:
        raise FileExistsError(f"run record {final} already exists (same config); pass "
                              "overwrite=True to replace it")
    extras = _extra_file_map(extra_files)
    summarize = summarize or summarize_classification
    summary = summarize([r["metrics"] for r in fold_results])
    record = {
        "format": RECORD_FORMAT, "run_id": rid, "paper": str(config["paper"]),
        "corpus": str(config["corpus"]), "protocol": protocol, "protocol_warning": warning,
        "created": created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": resolved, "labels": [str(label) for label in labels],
        "git": dict(git) if git is not None else git_info(),
        "versions": dict(versions) if versions is not None else package_versions(),
        "machine": (dict(machine) if machine is not None
                    else {**cpu_info(), "platform": platform.platform()}),
        "wall_time_seconds": round(float(wall_time), 3),
        "folds": {"file": "folds.json", "digest": folds_digest(folds), "n_folds": len(folds),
                  "selection_on_test": any(f.selection_on_test for f in folds),
                  "sizes": _fold_sizes(folds)},
        "summary": summary,
        **_last_epoch_summary(fold_results, summarize),
        "per_fold": [{"fold": f.index, **{k: v for k, v in r.items() if k != "history"}}
                     for f, r in zip(folds, fold_results)],
    }
    clash = set(details or {}) & set(record)
    if clash:
        raise ValueError(f"details may not replace record keys {sorted(clash)}")
    record.update(details or {})
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{rid}.tmp-", dir=final.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; records are meant to be shared
        _build(tmp, record=record, folds=folds, fold_results=fold_results, labels=labels,
               extras=extras)
        _move_into_place(tmp, final, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_run_record(folder: str | os.PathLike) -> dict:
    """``record.json`` of one run folder, with ``path`` (the folder) added."""
    record = read_json(Path(folder) / RECORD_FILE)
    if record.get("format") != RECORD_FORMAT:
        raise ValueError(f"{folder}: not a run record (format {record.get('format')!r})")
    return {**record, "path": str(folder)}


def iter_run_records(results_dir: str | os.PathLike, paper: str | None = None) -> Iterator[dict]:
    """Every complete record under ``results_dir/<paper>/<corpus>/<run-id>/``, sorted by
    path; hidden (temporary or swapped-out) folders are skipped, and so are the records of
    other formats stored the same way (benchmarks, e.g. ``ser_tf.bench.alignment/1``: not
    runs). A ``record.json`` without a format is an error."""
    root = Path(results_dir)
    pattern = f"{paper}/*/*/{RECORD_FILE}" if paper else f"*/*/*/{RECORD_FILE}"
    for path in sorted(root.glob(pattern)):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        kind = read_json(path).get("format")
        if isinstance(kind, str) and kind != RECORD_FORMAT and \
                not kind.startswith(RECORD_FORMAT.split("/")[0]):
            continue  # another kind of record
        yield load_run_record(path.parent)
