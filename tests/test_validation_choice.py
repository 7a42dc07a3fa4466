"""Choosing a setting between runs on validation scores only (ser_tf.reporting.validation_choice)."""

import json

import pytest

from ser_tf.reporting.validation_choice import (choice_table, choose_on_validation,
                                                fold_validation_scores, main)


def _run(tmp_path, name, folds, *, selection_on_test=False, metric="val_UA"):
    """A run folder with ``folds``: {fold: (chosen_epoch, val series, test UA)}."""
    work = tmp_path / f"{name}.work"
    for fold, (epoch, series, test_ua) in folds.items():
        fold_dir = work / f"fold_{fold:02d}"
        fold_dir.mkdir(parents=True)
        (fold_dir / "history.json").write_text(json.dumps({metric: series, "loss": series}))
        (fold_dir / "result.json").write_text(json.dumps({
            "fold": fold, "chosen_epoch": epoch, "epochs_run": len(series),
            "selection_on_test": selection_on_test,
            "metrics": {"UA": test_ua, "WA": test_ua + 1}}))
    (tmp_path / name).mkdir()
    return tmp_path / name


def test_the_choice_follows_validation_at_the_kept_epoch_not_test(tmp_path):
    # "a": validation better at the kept epochs, test worse; "b": the opposite. The last
    # epochs of "b" are high but were not kept, so they must not count.
    a = _run(tmp_path, "a", {0: (2, [40, 60, 50], 30), 1: (1, [55, 10, 10], 31)})
    b = _run(tmp_path, "b", {0: (1, [50, 90, 90], 70), 1: (1, [50, 90, 90], 71)})
    choice = choose_on_validation({"a": a, "b": b})
    assert choice["chosen"] == "a"
    assert choice["settings"]["a"]["validation_mean"] == pytest.approx(57.5)
    assert choice["settings"]["b"]["validation_mean"] == pytest.approx(50.0)
    assert choice["settings"]["b"]["test_UA_mean"] == pytest.approx(70.5)
    assert "| a | 57.50" in choice_table(choice)


def test_a_loss_is_chosen_lowest_and_every_setting_is_ranked(tmp_path):
    a = _run(tmp_path, "a", {0: (1, [1.4, 0.2], 90)}, metric="val_loss")
    b = _run(tmp_path, "b", {0: (2, [0.1, 1.2], 10)}, metric="val_loss")
    c = _run(tmp_path, "c", {0: (1, [1.3], 50)}, metric="val_loss")
    choice = choose_on_validation({"a": a, "b": b, "c": c}, metric="val_loss")
    # At the kept epochs: a 1.4, b 1.2, c 1.3; the test UA plays no part.
    assert choice["ranking"] == ["b", "c", "a"] and choice["chosen"] == "b"
    assert "lowest mean val_loss" in choice["note"]


def test_runs_that_selected_on_test_or_differ_in_folds_are_refused(tmp_path):
    paper = _run(tmp_path, "paper", {0: (3, [1, 2, 3], 5)}, selection_on_test=True)
    with pytest.raises(ValueError, match="chose its epoch on the test fold"):
        fold_validation_scores(paper)
    a = _run(tmp_path, "a", {0: (1, [1], 1), 1: (1, [1], 1)})
    b = _run(tmp_path, "b", {0: (1, [1], 1)})
    with pytest.raises(ValueError, match="different finished folds"):
        choose_on_validation({"a": a, "b": b})
    no_val = _run(tmp_path, "noval", {0: (1, [1], 1)}, metric="UA")
    with pytest.raises(ValueError, match="no 'val_UA'"):
        fold_validation_scores(no_val)
    with pytest.raises(FileNotFoundError, match="not a run's work folder"):
        fold_validation_scores(tmp_path / "missing")


def test_command_line_writes_the_choice(tmp_path, capsys):
    a = _run(tmp_path, "a", {0: (1, [60], 1)})
    b = _run(tmp_path, "b", {0: (1, [70], 1)})
    out = tmp_path / "choice" / "c.json"
    assert main([f"lam=0.3={a}", f"lam=0.8={b}", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["chosen"] == "lam=0.8"
    assert "| lam=0.8 | 70.00" in capsys.readouterr().out
    assert main([f"x={a}", f"y={tmp_path / 'nothing'}"]) == 2
    assert "not a run's work folder" in capsys.readouterr().out
