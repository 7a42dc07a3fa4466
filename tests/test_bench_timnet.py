"""The TIM-Net XLA benchmark runs end to end on a tiny generated corpus (1 timed epoch)."""

from __future__ import annotations

import json

import pytest

from ser_tf.data.synthetic import make_emodb_like
from ser_tf.bench import timnet as bench


@pytest.mark.slow
@pytest.mark.heavy  # times full-size models: make test-all
def test_bench_timnet_writes_a_record_for_both_jit_settings(tmp_path):
    corpus = make_emodb_like(tmp_path / "emodb", per_class=2, duration=0.5)
    out = tmp_path / "bench.json"
    assert bench.main(["--data-dir", str(corpus), "--epochs", "1", "--warmup-epochs", "1",
                       "--batch-size", "8", "--out", str(out), "--cache-dir",
                       str(tmp_path / "cache"), "--quiet"]) == 0
    record = json.loads(out.read_text())
    assert record["format"] == bench.FORMAT and record["corpus"] == "EMODB"
    assert record["feature_shape"] == [188, 39] and record["n_blocks"] == 8
    assert record["split"]["train_examples"] < record["files"] == 14
    runs = record["training"]["runs"]
    assert [r["jit_compile"] for r in runs] == [False, True]
    for run in runs:
        assert "error" not in run, run
        assert run["median_seconds"] > 0 and run["steps_per_epoch"] == 2
    # The record names the faster setting and how much faster it was than the other.
    medians = {r["jit_compile"]: r["median_seconds"] for r in runs}
    faster = min(medians, key=medians.get)
    assert record["training"]["faster"] == f"jit_compile={faster}"
    assert record["training"]["speedup"] == pytest.approx(
        max(medians.values()) / min(medians.values()), abs=1e-3)
    assert record["training"]["estimated_hours_per_run"] > 0
    assert len(record["cpu"]["load_average_before"]) == 3
    other = record["cpu"]["other_load"]  # None only where /proc/stat does not exist
    assert other is None or (other["wall_seconds"] > 0 and other["other_cores_busy"] >= 0
                             and other["steal_cores"] >= 0)
