"""bench_epoch: times the runner, a bare fit with validation and fit alone, and says the gaps."""

import json

import pytest

from ser_tf.data.synthetic import make_emodb_like
from ser_tf.bench import epoch as bench_epoch


@pytest.mark.heavy  # times full-size models: make test-all
def test_bench_epoch_writes_a_record_with_the_three_settings(tmp_path):
    root = make_emodb_like(tmp_path / "emodb", per_class=2, duration=0.5)
    assert bench_epoch.main(["--paper", "timnet", "--data-dir", str(root), "--epochs", "2",
                             "--warmup", "1", "--tag", "t", "--cache-dir", str(tmp_path / "c"),
                             "--results-dir", str(tmp_path / "r"), "--quiet"]) == 0
    (path,) = (tmp_path / "r" / "bench").glob("epoch-timnet-emodb-*-t.json")
    record = json.loads(path.read_text())
    settings = record["settings"]
    assert set(settings) == {"runner", "fit_and_validation", "fit_only"}
    assert all(len(s["epoch_seconds"]) == 2 and s["median_seconds"] > 0
               for s in settings.values())
    assert record["callbacks_seconds_per_epoch"] == round(
        settings["runner"]["median_seconds"] - settings["fit_and_validation"]["median_seconds"], 4)
    assert record["fold"]["train"] + record["fold"]["validation"] == 14
    assert record["data"]["files"] == 14 and record["machine"]["cpu_count"] >= 1
