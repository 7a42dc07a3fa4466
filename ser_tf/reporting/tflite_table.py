"""The TFLite table of ``ser-tf report``: each finished run's exported variants.

A run record's ``tflite`` section (:func:`ser_tf.export.evaluate.summarise_fold_exports`)
holds, per variant, every fold's model scored on that fold's test utterances. One row per
run and variant: size, UA (mean ± std over folds and pooled), the change against float32
both ways (the Light-SERNet issue bounds the full-integer int8 drop at 1.0 point UA), a
95 % confidence interval of the mean per-fold change (Student t over the folds: a fold's
test set is the same for both variants, so the changes are paired), the share of test
utterances on which the variant answers as the Keras model does (mean over folds), and
batch-1 latency with 1 and 2 threads.
"""

from __future__ import annotations

from typing import Mapping, Sequence

COLUMNS = ("run id", "corpus", "protocol", "variant", "size (bytes)", "UA", "pooled UA",
           "Δ UA vs float32 (mean / pooled)", "Δ UA, 95 % CI", "same answer as Keras",
           "ms, 1 thread (mean / p95)", "ms, 2 threads (mean / p95)")


def _ua(scores: Mapping | None) -> float | None:
    return None if not scores or scores.get("UA") is None else float(scores["UA"])


def _latency(latency: Mapping | None, threads: str) -> str:
    timing = (latency or {}).get(threads)
    if not timing:
        return "not run"
    return f"{timing['mean_ms']:.2f} / {timing['p95_ms']:.2f}"


def _delta(value: float | None, reference: float | None) -> str:
    return "–" if value is None or reference is None else f"{value - reference:+.2f}"


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """Student-t confidence interval of the mean of ``values``; ``None`` for fewer than 2."""
    from scipy import stats

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    data = [float(v) for v in values]
    if len(data) < 2:
        return None
    # By hand rather than stats.t.interval, which gives NaN for identical values (float16).
    mean = sum(data) / len(data)
    se = (sum((v - mean) ** 2 for v in data) / (len(data) - 1) / len(data)) ** 0.5
    half = float(stats.t.ppf(0.5 + level / 2, len(data) - 1)) * se
    return mean - half, mean + half


def _fold_delta_interval(variant: Mapping, reference: Mapping) -> str:
    """The CI cell: per-fold UA changes of ``variant`` against ``reference``, paired by fold."""
    base = {row.get("fold"): _ua(row) for row in reference.get("folds") or []}
    deltas = [_ua(row) - base[row.get("fold")] for row in variant.get("folds") or []
              if _ua(row) is not None and base.get(row.get("fold")) is not None]
    interval = mean_interval(deltas)
    return "–" if interval is None else f"{interval[0]:+.2f} … {interval[1]:+.2f}"


def tflite_rows(records: Sequence[Mapping]) -> list[list[str]]:
    """One row per (run, variant) of every record whose ``tflite`` section has variants."""
    rows = []
    for record in records:
        variants = (record.get("tflite") or {}).get("variants") or {}
        reference = variants.get("float32", {})
        for name, variant in variants.items():
            mean, pooled = _ua(variant.get("mean")), _ua(variant.get("pooled"))
            std = _ua(variant.get("std"))
            ua = "–" if mean is None else f"{mean:.2f}" + ("" if std is None else f" ± {std:.2f}")
            delta = (f"{_delta(mean, _ua(reference.get('mean')))} / "
                     f"{_delta(pooled, _ua(reference.get('pooled')))}")
            agreement = variant.get("argmax_agreement")
            mark = " ⚠" if input_mismatch(record) is not None else ""
            rows.append([
                f"`{record.get('run_id', '?')}`{mark}", str(record.get("corpus", "?")),
                str(record.get("protocol", "?")), name, f"{variant.get('size_bytes', 0):,}", ua,
                "–" if pooled is None else f"{pooled:.2f}",
                "–" if name == "float32" else delta,
                "–" if name == "float32" else _fold_delta_interval(variant, reference),
                "–" if agreement is None else f"{100 * agreement:.1f} %",
                _latency(variant.get("latency"), "1"), _latency(variant.get("latency"), "2")])
    return rows


def input_mismatch(record: Mapping) -> dict | None:
    """:func:`ser_tf.export.evaluate.compare_with_run` of a record's TFLite rows against its
    folds (computed from the record, so older records are checked too)."""
    from ser_tf.export.evaluate import compare_with_run

    folds = {int(f["fold"]): (f.get("metrics") or {}).get("UA")
             for f in record.get("per_fold") or [] if "fold" in f}
    check = compare_with_run(record.get("tflite") or {}, folds)
    return check if check is not None and not check["keras_matches_run"] else None


def input_mismatch_lines(records: Sequence[Mapping]) -> list[str]:
    """A warning per record whose TFLite rows were scored on other inputs than its Keras
    folds (their run id is marked ⚠ in the table)."""
    lines = []
    for record in records:
        check = input_mismatch(record)
        if check is not None:
            lines.append(f"- ⚠ `{record.get('run_id', '?')}`: its exported models were scored "
                         "on other inputs than the run (their Keras UA differs from the "
                         f"run's by up to {check['max_keras_UA_difference']:.2f} points on the "
                         "same fold): these TFLite scores are not the run's")
    return lines


def latency_host_lines(records: Sequence[Mapping]) -> list[str]:
    """A bullet per record with TFLite latency: the CPU it was timed on (records written
    before hosts were recorded say so), since the same file runs 3–10× slower on an
    AVX2-only host than on an AVX-512 one."""
    from ser_tf.util.machine import describe_cpu

    lines = []
    for record in records:
        tflite = record.get("tflite") or {}
        if tflite.get("variants"):
            lines.append(f"- `{record.get('run_id', '?')}`: latency timed on "
                         f"{describe_cpu(tflite.get('latency_host'))}")
    return lines
