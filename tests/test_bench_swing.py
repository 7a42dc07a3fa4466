import json

import pytest

from ser_tf.data.synthetic import make_emodb_like
from ser_tf.bench import swing as bench_swing
from ser_tf.experiments import lightsernet as exp
from ser_tf.experiments.common import fold_list


def test_swing_measures_consecutive_changes_from_the_given_epoch():
    acc = [0.1, 0.5, 0.6, 0.4, 0.7]
    full = bench_swing.swing(acc, from_epoch=2)
    # changes from epoch 2: +10, -20, +30 points
    assert full["epochs"] == 4
    assert full["mean_abs_change"] == pytest.approx(20.0)
    assert full["max_drop"] == pytest.approx(20.0)
    later = bench_swing.swing(acc, from_epoch=4)
    assert later == {"epochs": 2, "mean_abs_change": pytest.approx(30.0), "max_drop": 0.0,
                     "std": pytest.approx(15.0)}
    with pytest.raises(ValueError, match="two validated epochs"):
        bench_swing.swing(acc, from_epoch=5)
    with pytest.raises(ValueError, match="every epoch"):
        bench_swing.swing([0.1, None, 0.3, 0.4], from_epoch=1)


def test_fold_list_parses_and_rejects():
    assert fold_list("0,6") == [0, 6]
    with pytest.raises(Exception, match="0,6"):
        fold_list("a")
    with pytest.raises(Exception, match=">= 0"):
        fold_list("-1")


def test_train_folds_trains_only_those_and_writes_the_record_when_all_are_done(tmp_path,
                                                                               capsys):
    root = make_emodb_like(tmp_path / "emodb", per_class=2, duration=0.5)
    base = ["--data-dir", str(root), "--epochs", "2", "--batch-size", "4", "--folds", "2",
            "--protocol", "clean", "--results-dir", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--quiet", "--no-export"]
    assert exp.main([*base, "--train-folds", "1"]) == 0
    assert "1 of 2 folds finished (1)" in capsys.readouterr().out
    plan = exp.plan(exp.build_parser().parse_args(base))
    assert not (plan.work_dir / "fold_00").exists()
    assert (plan.work_dir / "fold_01" / "result.json").is_file()
    assert not (plan.work_dir.parent / plan.run_id).exists()  # no record yet
    assert exp.main([*base, "--train-folds", "5"]) == 1
    assert "folds [5] are not in this run" in capsys.readouterr().err
    out = exp.run(exp.build_parser().parse_args(base))
    assert out["folds_done"] == [0, 1] and (out["record"] / "record.json").is_file()


def test_partial_batches_is_another_run(tmp_path):
    root = make_emodb_like(tmp_path / "emodb", per_class=2, duration=0.5)
    base = ["--data-dir", str(root), "--protocol", "clean", "--results-dir", str(tmp_path),
            "--folds", "2"]
    full = exp.plan(exp.build_parser().parse_args(base))
    partial = exp.plan(exp.build_parser().parse_args([*base, "--partial-batches"]))
    assert full.fit.full_batches and not partial.fit.full_batches
    assert full.run_id != partial.run_id


def test_bench_trains_both_settings_and_writes_a_record(tmp_path):
    root = make_emodb_like(tmp_path / "emodb", per_class=3, duration=0.5)
    results = tmp_path / "results"
    argv = ["--train-folds", "1", "--protocol", "clean", "--from-epoch", "2", "--results-dir",
            str(results), "--data-dir", str(root), "--epochs", "4", "--batch-size", "4",
            "--folds", "2"]
    with pytest.raises(SystemExit):  # a flag neither the bench nor the experiment knows
        bench_swing.main([*argv, "--bogus"])
    argv += ["--cache-dir", str(tmp_path / "cache"), "--quiet", "--no-export"]
    assert bench_swing.main(argv) == 0
    record = json.loads((results / "bench" / "swing-lightsernet-emodb-clean-cross_entropy.json")
                        .read_text())
    assert record["folds"] == [1] and record["from_epoch"] == 2 and record["epochs"] == 4
    full, partial = record["runs"]["full_batches"], record["runs"]["partial_batches"]
    assert full["full_batches"] is True and partial["full_batches"] is False
    assert full["run_id"] != partial["run_id"]
    for run in (full, partial):
        fold = run["folds"]["1"]
        assert len(fold["val_accuracy"]) == 4 and fold["swing"]["epochs"] == 3
    assert full["folds"]["1"]["last_batch"] == 4  # an endless stream: every batch is full
    fold = partial["folds"]["1"]
    assert fold["last_batch"] == (fold["n_train"] % 4 or 4)
    assert record["data"]["files"] == 21
    # Summaries alone, nothing trained: the same figures.
    assert bench_swing.main([*argv, "--no-train"]) == 0
    again = json.loads((results / "bench" / "swing-lightsernet-emodb-clean-cross_entropy.json")
                       .read_text())
    assert again["runs"] == record["runs"]
