"""The CNN-family settings trained speaker-independently are the two of lowest validation
loss among the report's six `paper` runs (ser_tf.papers.cnn_family.speaker_choice)."""

import json

import pytest

from ser_tf.papers.cnn_family import SPEC
from ser_tf.papers.cnn_family.speaker_choice import REPORTED, main, setting_name


def _write_run(results, n, model, features, awgn, val_loss, test_ua, *, lr=None):
    cfg = SPEC.config()
    run_id = f"paper-{n:010d}"
    fit = {"learning_rate": lr or cfg["learning_rate"][model], "epochs": cfg["epochs"],
           "seed": cfg["seed"], "patience": cfg["patience"]["awgn" if awgn else "plain"]}
    record_dir = results / "cnn_family" / "RAVDESS" / run_id
    record_dir.mkdir(parents=True)
    (record_dir / "record.json").write_text(json.dumps({
        "run_id": run_id, "paper": "cnn_family", "corpus": "RAVDESS", "protocol": "paper",
        "created": f"2026-12-0{1 + n % 5}T00:00:00",
        "config": {"model": model, "features": features, "awgn_copies": awgn, "fit": fit}}))
    fold = results / "cnn_family" / "RAVDESS" / f"{run_id}.work" / "fold_00"
    fold.mkdir(parents=True)
    # The kept epoch (2) has val_loss; the last epoch is lower still but was not kept.
    (fold / "history.json").write_text(json.dumps({"val_loss": [9.0, val_loss, 0.01]}))
    (fold / "result.json").write_text(json.dumps({
        "fold": 0, "chosen_epoch": 2, "selection_on_test": False,
        "metrics": {"UA": test_ua, "WA": test_ua}}))


@pytest.fixture
def results(tmp_path):
    losses = [1.12, 1.83, 1.48, 1.43, 1.39, 1.30]  # cnn, parallel, transformer x4
    tests = [52.0, 28.0, 50.0, 49.0, 47.0, 30.0]  # test UA: not used
    for n, ((model, features, awgn), loss, ua) in enumerate(zip(REPORTED, losses, tests)):
        _write_run(tmp_path, n, model, features, awgn, loss, ua)
    return tmp_path


def test_the_two_lowest_validation_losses_are_chosen_not_the_best_test(results, tmp_path,
                                                                        capsys):
    out = tmp_path / "choice.json"
    assert main(["--results", str(results), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out.split()
    assert printed == ["cnn:mfcc:0", "2cnn_transformer:mel:2"]
    marked = [line for line in captured.err.splitlines() if line.endswith("| yes |")]
    assert [line.split(" | ")[0].strip("| ") for line in marked] == [
        "cnn:mfcc:0", "2cnn_transformer:mel:2"]
    choice = json.loads(out.read_text())
    assert choice["speaker_runs"] == printed and choice["metric"] == "val_loss"
    assert choice["ranking"][-1] == "2cnn:mfcc:2"


def test_a_run_with_other_settings_does_not_stand_for_its_configuration(results, capsys):
    # A newer transformer mel+AWGN run at another learning rate, with a far lower loss: it is
    # not the planned configuration, so the planned one still counts.
    _write_run(results, 7, "transformer", "mel", 2, 0.2, 90.0, lr=1e-3)
    assert main(["--results", str(results), "--top", "1"]) == 0
    assert capsys.readouterr().out.split() == ["cnn:mfcc:0"]


def test_the_choice_waits_for_all_six_and_names_the_missing(tmp_path, capsys):
    for n, (model, features, awgn) in enumerate(REPORTED[:4]):
        _write_run(tmp_path, n, model, features, awgn, 1.0 + n, 50.0)
    assert main(["--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{setting_name('transformer', 'mel', 0)}, {setting_name('transformer', 'mel', 2)}" \
        in err and "all six" in err
