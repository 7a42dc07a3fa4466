"""The Light-SERNet benchmark runs end to end on a tiny generated corpus (1 timed epoch)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from ser_tf.data.synthetic import make_emodb_like
from ser_tf.bench import lightsernet as bench


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_emodb_like(tmp_path_factory.mktemp("bench") / "emodb", per_class=2, duration=0.5)


@pytest.mark.slow
def test_bench_cli_writes_a_complete_record(corpus, tmp_path):
    results = tmp_path / "results"
    assert bench.main(["--data-dir", str(corpus), "--epochs", "1", "--warmup-epochs", "1",
                       "--batch-size", "8", "--folds", "2", "--tflite-runs", "3",
                       "--results-dir", str(results), "--cache-dir", str(tmp_path / "cache"),
                       "--quiet"]) == 0
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    path = results / "bench" / f"lightsernet-emodb-{day}.json"
    record = json.loads(path.read_text())

    assert record["format"] == bench.FORMAT and record["corpus"] == "EMODB"
    assert record["files"] == 14 and record["feature_shape"] == [184, 40]
    assert record["split"] == {"protocol": "paper", "n_folds": 2, "fold": 0, "train_examples": 7}
    assert record["cpu"]["cpu_count"] >= 1 and len(record["cpu"]["load_average_before"]) == 3
    other = record["cpu"]["other_load"]  # None only where /proc/stat does not exist
    assert other is None or (other["wall_seconds"] > 0 and other["other_cores_busy"] >= 0
                             and other["steal_cores"] >= 0)
    assert record["versions"]["tensorflow"] and record["versions"]["keras"]

    runs = record["training"]["runs"]
    assert [r["jit_compile"] for r in runs] == [False, True]
    for run in runs:
        assert "error" not in run, run
        assert len(run["epoch_seconds"]) == 1 and len(run["warmup_epoch_seconds"]) == 1
        assert run["median_seconds"] > 0 and run["steps_per_epoch"] == 1
    assert record["training"]["faster"] in ("jit_compile=False", "jit_compile=True")
    assert record["training"]["speedup"] >= 1.0

    fe = record["feature_extraction"]
    assert fe["files"] == 14 and fe["cold"]["computed"] == 14 and fe["warm"]["cached"] == 14
    assert fe["cold"]["files_per_second"] > 0

    tfl = record["tflite"]
    # `make install` has the lite extra: an export that cannot be imported is a failure
    # here, not the bench's graceful "missing export" record.
    assert tfl["status"] == "ok", tfl
    assert set(tfl["variants"]) == {"float32", "float16", "dynamic_int8", "int8"}
    for variant, row in tfl["variants"].items():
        assert "error" not in row, (variant, row)
        assert row["size_bytes"] > 0 and set(row["latency_ms"]) == {"1", "2"}
        assert row["latency_ms"]["1"]["median_ms"] > 0
    assert tfl["numpy_frontend_ms"]["median_ms"] > 0  # the device's MFCC for features-in

    prof = record["profile"]
    assert prof["jit_compile"] is False and prof["batches_per_epoch"] == 1
    assert prof["input_seconds"] > 0 and prof["step_seconds"] > 0
    assert prof["bottleneck"] in ("input pipeline", "train step")
    assert record["total_seconds"] > 0


def test_bench_guards_missing_export(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_export(name, *args, **kwargs):
        if name.startswith("ser_tf.export"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_export)
    out = bench.time_tflite(model=None, representative=None, example=None)
    assert out["status"] == bench.MISSING_EXPORT


def test_bench_rejects_bad_settings(corpus):
    from ser_tf.data import load_manifest

    manifest = load_manifest("EMODB", corpus)
    with pytest.raises(ValueError, match="need epochs >= 1"):
        bench.benchmark(manifest, epochs=0)
    with pytest.raises(ValueError, match="jit must list at least one"):
        bench.benchmark(manifest, jit=())
    with pytest.raises(ValueError, match=r"fold must be in \[0, 2\), got 5"):
        bench.benchmark(manifest, fold=5, n_folds=2)
