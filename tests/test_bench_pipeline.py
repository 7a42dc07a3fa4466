import json

import pytest

from ser_tf.bench.pipeline import benchmark_stall, destruction_seconds, main


def test_destruction_is_timed_once_per_epoch_for_both_settings():
    for autotune in (False, True):
        stalls = destruction_seconds(autotune=autotune, epochs=3, n_examples=10, batch_size=4,
                                     step_seconds=0.0, feature_shape=(5, 2))
        assert len(stalls) == 3 and all(s >= 0 for s in stalls)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="epochs >= 1"):
        destruction_seconds(autotune=False, epochs=0, n_examples=10, batch_size=4,
                            step_seconds=0.0)


def test_cli_writes_a_record(tmp_path, capsys):
    out = tmp_path / "stall.json"
    assert main(["--epochs", "2", "--examples", "8", "--batch-size", "4",
                 "--step-seconds", "0", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    for name in ("autotune_off", "autotune_on"):
        assert len(record[name]["destruction_seconds"]) == 2
        assert record[name]["max_seconds"] >= record[name]["mean_seconds"]
    assert record["setup"]["simulated_epoch_seconds"] == 0
    assert "autotune_on" in capsys.readouterr().out
    assert main(["--epochs", "0"]) == 2
