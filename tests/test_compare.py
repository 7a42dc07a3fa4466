"""`ser-tf compare A B`: two runs fold by fold on the same test sets."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ser_tf.cli import main
from ser_tf.reporting.compare import compare_runs, load_run_folds, render_comparison
from ser_tf.reporting.records import write_run_record
from ser_tf.training.kfold import run_kfold
from ser_tf.training.protocols import Fold, save_folds
from ser_tf.training.scores import classification_metrics
from ser_tf.util.errors import UserError

REPO = Path(__file__).resolve().parents[1]
LABELS = ["anger", "neutral", "sadness"]
TRUTH = np.array([0, 0, 1, 1, 2, 2])


def make_folds(n=3, shift=0):
    ids = [f"u{i:02d}" for i in range(n * 6)]
    ids = ids[shift:] + ids[:shift]
    return [Fold(index=k, train_ids=[i for i in ids if i not in ids[k * 6:(k + 1) * 6]],
                 val_ids=ids[k * 6:(k + 1) * 6], test_ids=ids[k * 6:(k + 1) * 6],
                 selection_on_test=True) for k in range(n)]


def fold_result(fold, wrong: int, last_wrong: int):
    """A fold's result with ``wrong`` of its 6 test utterances misclassified (the first ones:
    two runs with other counts disagree on exactly the difference)."""
    pred = TRUTH.copy()
    pred[:wrong] = (TRUTH[:wrong] + 1) % 3
    last = TRUTH.copy()
    last[:last_wrong] = (TRUTH[:last_wrong] + 1) % 3
    return {"metrics": classification_metrics(TRUTH, pred, LABELS),
            "test_ids": list(fold.test_ids),
            "test_probabilities": np.eye(3)[pred].tolist(),
            "last_epoch": {"epoch": 9, "metrics": classification_metrics(TRUTH, last, LABELS)},
            "history": {"loss": [1.0, 0.5]}, "chosen_epoch": 2, "epochs_run": 2}


def config(loss):
    fit = {"epochs": 2} if loss == "cross_entropy" else {"epochs": 2, "patience": 5}
    return {"paper": "toy", "corpus": "TOY", "loss": loss, "fit": fit, "n_folds": 3,
            "data": {"digest": "abc" if loss == "cross_entropy" else "abd"}}


def write_record(root, folds, wrong, loss="cross_entropy"):
    results = [fold_result(f, w, 0) for f, w in zip(folds, wrong)]
    return write_run_record(root, config=config(loss), protocol="paper", folds=folds,
                            fold_results=results, wall_time=1.0, labels=LABELS)


def write_work(root, folds, wrong, loss="focal", finished=(0, 1)):
    work = Path(root) / "toy" / "TOY" / "paper-work1.work"
    work.mkdir(parents=True)
    (work / "config.json").write_text(json.dumps(config(loss) | {"protocol": "paper"}))
    save_folds(folds, work / "folds.json")
    run_kfold(work, folds, lambda fold, _: fold_result(fold, wrong[fold.index], 1),
              train_only=list(finished), quiet=True)
    return work


def test_work_folder_compared_with_a_record_on_the_folds_both_finished(tmp_path):
    folds = make_folds()
    a = load_run_folds(write_record(tmp_path, folds, wrong=[2, 1, 0]))
    b = load_run_folds(write_work(tmp_path, folds, wrong=[0, 1, 3], finished=(0, 2)))
    assert (a.complete, b.complete, sorted(b.folds)) == (True, False, [0, 2])
    result = compare_runs(a, b, metric="WA")
    assert result["folds"] == [0, 2]
    assert [(r["A"], r["B"]) for r in result["per_fold"]] == [(pytest.approx(400 / 6), 100.0),
                                                             (100.0, 50.0)]
    change = result["change"]
    deltas = [100 - 400 / 6, 50 - 100]
    assert change["mean"] == pytest.approx(np.mean(deltas))
    assert change["std"] == pytest.approx(np.std(deltas, ddof=1))
    half = stats.t.ppf(0.975, 1) * np.std(deltas, ddof=1) / np.sqrt(2)
    assert change["interval95"] == pytest.approx([np.mean(deltas) - half, np.mean(deltas) + half])
    assert (change["higher"], change["lower"], change["equal"]) == (1, 1, 0)
    # Pooled over the two compared folds' 12 predictions: A 10 right, B 9.
    assert (result["pooled"]["A"]["right"], result["pooled"]["B"]["right"]) == (10, 9)
    assert result["pooled"]["B"]["WA"] == pytest.approx(75.0)
    # Same class: fold 0 differs on 2 utterances, fold 2 on 3 -> 7 of 12.
    assert result["same_answers"] == pytest.approx(700 / 12)
    assert ("loss", "cross_entropy", "focal") in result["config_differences"]
    assert not any(key == "data" or key.startswith("data.")
                   for key, *_ in result["config_differences"])
    assert ("fit.patience", None, 5) in result["config_differences"]
    text = render_comparison(a, b, result)
    assert "fit.patience: (not set) -> 5" in text
    assert "training, 2 of 3 folds finished" in text and "| 2 | 100.00 | 50.00 | -50.00 |" in text


def test_last_epoch_view_reads_the_last_epoch_scores(tmp_path):
    folds = make_folds()
    a = load_run_folds(write_record(tmp_path, folds, wrong=[2, 2, 2]))
    b = load_run_folds(write_work(tmp_path, folds, wrong=[0, 0, 0], finished=(0, 1, 2)))
    chosen = compare_runs(a, b, metric="WA")
    last = compare_runs(a, b, metric="WA", last_epoch=True)
    # The record's last epoch is perfect (0 wrong), the work run's misses 1 of 6.
    assert [r["B"] - r["A"] for r in last["per_fold"]] == [pytest.approx(-100 / 6)] * 3
    assert chosen["change"]["mean"] == pytest.approx(200 / 6)
    assert last["same_answers"] is None and last["view"] == "last epoch"
    assert "not known at the last epoch" in render_comparison(a, b, last)


def test_runs_on_other_folds_or_without_common_folds_are_refused(tmp_path):
    a = load_run_folds(write_record(tmp_path, make_folds(), wrong=[0, 0, 0]))
    b = load_run_folds(write_work(tmp_path, make_folds(shift=1), wrong=[0, 0, 0]))
    with pytest.raises(UserError, match=r"paper-work1.work\) tested on different folds"):
        compare_runs(a, b)
    empty = load_run_folds(write_work(tmp_path / "other", make_folds(), wrong=[0, 0, 0],
                                      finished=()))
    with pytest.raises(UserError, match="no finished fold in common"):
        compare_runs(a, empty)
    with pytest.raises(ValueError, match="metric must be one of"):
        compare_runs(a, a, metric="accuracy")


def rewrite_results(work, change):
    for path in sorted(Path(work).glob("fold_*/result.json")):
        result = json.loads(path.read_text())
        change(result)
        path.write_text(json.dumps(result))


def test_what_cannot_be_compared_is_named_with_the_run(tmp_path):
    folds = make_folds()
    record = write_record(tmp_path, folds, wrong=[0, 0, 0])
    work = write_work(tmp_path, folds, wrong=[0, 0, 0])
    # Other test utterances under equal digests (a hand-edited or corrupted result).
    rewrite_results(work, lambda r: r.update(test_ids=r["test_ids"][::-1]))
    with pytest.raises(UserError, match=r"fold 0: A \(.*\) and B \(.*paper-work1.work\) name "
                                        "other test utterances"):
        compare_runs(load_run_folds(record), load_run_folds(work))
    # Results without test_ids (older runs): the digests vouch for the folds.
    rewrite_results(work, lambda r: r.pop("test_ids"))
    assert compare_runs(load_run_folds(record), load_run_folds(work))["folds"] == [0, 1]
    # A fold without last-epoch scores (trained before they were recorded) is left out of
    # the last-epoch view and named; with none left, the comparison is refused.
    rewrite_results(work, lambda r: r.pop("last_epoch") if r["fold"] == 0 else None)
    last = compare_runs(load_run_folds(record), load_run_folds(work), last_epoch=True)
    assert last["folds"] == [1] and last["left_out"] == {0: "B has no last-epoch scores"}
    assert "left out: fold 0 (B has no last-epoch scores)" in render_comparison(
        load_run_folds(record), load_run_folds(work), last)
    rewrite_results(work, lambda r: r.pop("last_epoch", None))
    with pytest.raises(UserError, match=r"no fold with last-epoch scores in both"):
        compare_runs(load_run_folds(record), load_run_folds(work), last_epoch=True)
    # Other classes.
    rewrite_results(work, lambda r: r["metrics"].update(labels=["x", "y", "z"]))
    with pytest.raises(UserError, match=r"have other classes: \['anger'.*\['x', 'y', 'z'\]"):
        compare_runs(load_run_folds(record), load_run_folds(work))
    # Regression runs (CCC scores, no confusion matrix) are refused by name.
    rewrite_results(work, lambda r: r.update(metrics={"mean_ccc": 0.5, "ccc": [0.5]}))
    with pytest.raises(UserError, match=r"B \(.*\), fold 0: no UA, WA, .*classification runs "
                                        "only"):
        compare_runs(load_run_folds(record), load_run_folds(work))


def test_bad_run_folders_are_named(tmp_path):
    with pytest.raises(UserError, match=r"nowhere: no such run folder"):
        load_run_folds(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty: not a run folder"):
        load_run_folds(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "record.json").write_text("{\"run_id\": 1}")
    with pytest.raises(UserError, match=r"broken/record.json: not a run record"):
        load_run_folds(broken)
    (broken / "record.json").write_text("{not json")
    with pytest.raises(UserError, match=r"broken/record.json: not valid JSON"):
        load_run_folds(broken)


def test_a_run_id_finds_its_work_folder(tmp_path):
    work = write_work(tmp_path, make_folds(), wrong=[0, 0, 0])
    run = load_run_folds(work.with_name("paper-work1"))
    assert run.path == work and run.run_id == "paper-work1"


def test_cli_prints_the_comparison_and_one_line_errors(tmp_path, capsys):
    folds = make_folds()
    a = write_record(tmp_path, folds, wrong=[1, 1, 1])
    b = write_work(tmp_path, folds, wrong=[0, 0, 0], finished=(0, 1, 2))
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "UA, B − A: mean +" in out and "higher in 3, lower in 0" in out
    assert main(["compare", str(a), str(b), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["change"]["higher"] == 3
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing: no such run folder" in err[0]


def test_committed_records_compare_as_their_own_numbers():
    """Light-SERNet paper-time, cross-entropy against focal (the same ten test sets): each
    side's per-fold and pooled scores are the records' own; the changes are their
    differences."""
    root = REPO / "experiments" / "results" / "lightsernet" / "EMODB"
    path_a, path_b = root / "paper-time-6c7fc9ee05", root / "paper-time-d4316be73c"
    if not (path_a / "record.json").is_file() or not (path_b / "record.json").is_file():
        pytest.skip("the Light-SERNet paper-time records are not in this checkout")
    a, b = load_run_folds(path_a), load_run_folds(path_b)
    result = compare_runs(a, b)
    record_a = json.loads((path_a / "record.json").read_text())
    record_b = json.loads((path_b / "record.json").read_text())
    ua_a = [f["metrics"]["UA"] for f in record_a["per_fold"]]
    ua_b = [f["metrics"]["UA"] for f in record_b["per_fold"]]
    assert [r["A"] for r in result["per_fold"]] == pytest.approx(ua_a)
    assert [r["B"] for r in result["per_fold"]] == pytest.approx(ua_b)
    assert result["change"]["mean"] == pytest.approx(np.mean(np.subtract(ua_b, ua_a)))
    for side, record in (("A", record_a), ("B", record_b)):
        for key in ("UA", "WA", "weighted_F1"):
            assert result["pooled"][side][key] == pytest.approx(record["summary"]["pooled"][key])
    same = np.mean(np.concatenate([
        np.argmax(fa["test_probabilities"], 1) == np.argmax(fb["test_probabilities"], 1)
        for fa, fb in zip(record_a["per_fold"], record_b["per_fold"])]))
    assert result["same_answers"] == pytest.approx(100 * same)
