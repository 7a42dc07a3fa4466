"""Runs in progress in the report: ``<run-id>.work`` folders without a record, with the
folds finished so far and their scores (UA, or the mean CCC of a regression run)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ser_tf.reporting.references import config_value


def _scores(metrics: Sequence[Mapping]) -> tuple[str, list[float]] | None:
    """``(what, values)`` of the finished folds: UA, or mean CCC (regression)."""
    if all("UA" in m for m in metrics):
        return "UA", [m["UA"] for m in metrics]
    if all("mean_ccc" in m for m in metrics):
        return "mean CCC", [m["mean_ccc"] for m in metrics]
    return None


def _values(values: Sequence[float], what: str) -> str:
    return ", ".join(f"{v:.3f}" if what == "mean CCC" else f"{v:.2f}" for v in values)


#: Settings every in-progress line names when the run's config (or its reference's
#: ``absent``) has them.
SHOWN_SETTINGS = ("protocol", "loss", "duration", "checkpoint", "epochs", "full_batches")


def in_progress_lines(results_dir, paper: str | None = None, *,
                      partial: Mapping[str, str] | None = None,
                      settings: Mapping[str, Mapping] | None = None) -> list[str]:
    """One line per unfinished run (``<run-id>.work`` without a record): folds done so far.
    Runs named in ``partial`` (run key -> reason: folders left with some folds on purpose,
    ``provenance.yaml``) are left out: :func:`split_partial` lists them. ``settings``: as
    for :func:`work_lines`."""
    return split_partial(list(work_lines(results_dir, paper, settings=settings)),
                         partial or {})[0]


def split_partial(lines, partial: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """``(in progress, partial)`` lines of :func:`work_lines`' ``(key, line)`` pairs; a
    partial run's line ends with its reason."""
    running = [line for key, line in lines if key not in partial]
    kept = [f"{line} — {partial[key]}" for key, line in lines if key in partial]
    return running, kept


def work_lines(results_dir, paper: str | None = None, *,
               settings: Mapping[str, Mapping] | None = None):
    """``(run key, line)`` of each run folder without a record; a line names the run's
    :data:`SHOWN_SETTINGS` and its paper's further ``settings`` (paper -> {setting: its
    value where the config lacks it, or None}: its reference's ``describe`` keys, e.g. an
    ablation's flag, and ``absent`` values), so that two runs of one protocol can be told
    apart."""
    from ser_tf.training.rundir import RunDir
    from ser_tf.util.jsonio import read_json

    pattern = f"{paper}/*/*.work" if paper else "*/*/*.work"
    for work in sorted(Path(results_dir).glob(pattern)):
        if (work.parent / work.name[: -len(".work")] / "record.json").exists():
            continue
        run = RunDir(work)
        if not run.config.exists() and not run.folds.exists():
            continue  # not a k-fold run's folder (e.g. a --ship run's final training)
        done = sorted(work.glob("fold_*/result.json"))
        total = len(read_json(run.folds).get("folds", [])) if run.folds.exists() else "?"
        config = read_json(run.config) if run.config.exists() else {}
        absent = {**dict.fromkeys(SHOWN_SETTINGS),
                  **(settings or {}).get(work.parent.parent.name, {})}
        values = {k: config_value(config, k) for k in absent}
        values = {k: absent[k] if v is None else v for k, v in values.items()}
        setting = ", ".join(f"{k} {v}" for k, v in values.items() if v is not None)
        if config.get("data"):
            from ser_tf.data.fingerprint import describe

            setting += f"{', ' if setting else ''}data: {describe(config['data'])}"
        finished = [read_json(p) for p in done]
        scores = _scores([r.get("metrics") or {} for r in finished]) if finished else None
        so_far = ""
        if scores:
            what, values = scores
            so_far = f"; {what} of the finished folds {_values(values, what)}"
            lasts = [r["last_epoch"]["metrics"] for r in finished if r.get("last_epoch")]
            last_scores = _scores(lasts) if lasts else None
            if last_scores and last_scores[0] == what:
                so_far += f" (last epoch: {_values(last_scores[1], what)})"
        drops = _int8_drops(done)
        if drops:
            so_far += f"; full-int8 minus float32 UA (work folder: points) {', '.join(drops)}"
        key = f"{work.parent.parent.name}/{work.parent.name}/{work.name[:-len('.work')]}"
        yield key, (f"- {work.parent.parent.name} {work.parent.name} `{work.name[:-5]}`"
                    f"{f' ({setting})' if setting else ''}: {len(done)}/{total} folds done"
                    f"{so_far}")


def _int8_drops(done: Sequence[Path]) -> list[str]:
    """``"fold_XX: int8 minus float32 UA"`` of each finished fold (its ``result.json`` in
    ``done``) whose TFLite scores are there (``tflite.json`` beside it)."""
    from ser_tf.training.rundir import TFLITE_FILE
    from ser_tf.util.jsonio import read_json

    drops = []
    for result in done:
        path = result.parent / TFLITE_FILE
        variants = read_json(path).get("variants", {}) if path.exists() else {}
        if "int8" in variants and "float32" in variants:
            # The folder name, not a number: fold_00 is "fold 1" elsewhere in the README.
            drops.append(f"{result.parent.name}: "
                         f"{variants['int8']['UA'] - variants['float32']['UA']:+.2f}")
    return drops
