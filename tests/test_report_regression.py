"""`ser-tf report` for regression runs: CCC per output beside the published CCC, a table of
its own; classification tables unchanged beside them."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ser_tf.reporting.records import write_run_record
from ser_tf.reporting.references import entry_kind, record_kind
from ser_tf.reporting.report import load_reference, render_report
from ser_tf.training.protocols import Fold
from ser_tf.training.tasks import FrameRegressionTask, regression_metrics

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("arousal", "valence", "liking")
FINGERPRINT = {"format": 1, "files": 64, "sample_rates": {"16000": 64},
               "duration_s": {"min": 60.0, "max": 180.0}, "same_duration": False,
               "release": "original release", "digest": "abcdef0123456789"}
REFERENCE = """\
paper: semantic
title: Semantic SER
citation: "Tzirakis et al., ICASSP 2021."
entries:
  - corpus: SEWA
    setting: {model.variant: fusion, protocol: paper}
    metrics: {ccc_arousal: 0.52, ccc_valence: null, ccc_liking: 0.301}
    source: {paper: "Tzirakis et al., ICASSP 2021", table: 2}
  - corpus: SEWA
    setting: {model.variant: audio, protocol: paper}
    metrics: {ccc_arousal: null, ccc_valence: null, ccc_liking: null}
    source: {paper: "Tzirakis et al., ICASSP 2021", note: "not checked"}
"""


def fold_results(outputs=OUTPUTS, n_folds=2, seed=0, last_epoch=False):
    rng = np.random.default_rng(seed)
    results = []
    for k in range(n_folds):
        t = rng.standard_normal((40, len(outputs)))
        p = 0.5 * t + 0.5 * rng.standard_normal(t.shape)
        result = {"metrics": regression_metrics(t, p, outputs), "epochs_run": 3,
                  "history": {"loss": [0.9, 0.7, 0.6]}}
        if last_epoch:
            result["last_epoch"] = {"epoch": 3, "metrics": regression_metrics(t, 0.3 * p,
                                                                              outputs)}
        results.append(result)
    return results


def folds(n_folds=2):
    ids = [f"r{i}" for i in range(2 * n_folds)]
    return [Fold(index=k, train_ids=[i for i in ids if i not in ids[2 * k:2 * k + 2]],
                 val_ids=ids[2 * k:2 * k + 1], test_ids=ids[2 * k:2 * k + 2],
                 selection_on_test=False) for k in range(n_folds)]


def write_regression(results_dir, *, corpus="SEWA", variant="fusion", protocol="paper",
                     outputs=OUTPUTS, data=FINGERPRINT, **kwargs):
    task = FrameRegressionTask(outputs)
    config = {"paper": "semantic", "corpus": corpus, "model": {"variant": variant},
              "task": task.config(), "fit": {"epochs": 3, "checkpoint": "best-val",
                                             "loss": "1-ccc (masked, per frame)"}}
    if data:
        config["data"] = data
    folder = write_run_record(results_dir, config=config, protocol=protocol, folds=folds(),
                              fold_results=fold_results(outputs, **kwargs), wall_time=1.0,
                              labels=outputs, summarize=task.summarize)
    return json.loads((folder / "record.json").read_text())


@pytest.fixture
def experiments(tmp_path):
    (tmp_path / "papers" / "semantic").mkdir(parents=True)
    (tmp_path / "papers" / "semantic" / "reference.yaml").write_text(REFERENCE)
    return tmp_path / "papers"


def table_lines(text, paper="semantic"):
    return [line for line in text.splitlines() if line.startswith(f"| {paper} |")]


def ccc_cell(record, key):
    stats = record["summary"][key]
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def test_regression_run_sits_beside_the_published_ccc(tmp_path, experiments):
    results = tmp_path / "results"
    record = write_regression(results)
    assert record_kind(record) == "regression"
    text = render_report(results, experiments, "semantic")
    header = next(line for line in text.splitlines() if line.startswith("| paper |"))
    assert header == ("| paper | corpus | setting | published CCC arousal / valence / liking | "
                      "source | protocol | loss | epochs | folds | CCC arousal | CCC valence | "
                      "CCC liking | mean CCC | data | date | run id |")
    assert "published UA / WA / F1" not in text  # no classification table for this paper
    fusion, audio = table_lines(text)
    cells = [c.strip() for c in fusion.strip("|").split("|")]
    assert cells[:6] == ["semantic", "SEWA", "model.variant=fusion, protocol=paper",
                         "0.520 / – / 0.301", "Tzirakis et al., ICASSP 2021, Table 2",
                         "paper (best-val)"]
    assert cells[6:9] == ["1-ccc (masked, per frame)", "3", "2"]
    assert cells[9:13] == [ccc_cell(record, f"ccc_{o}") for o in OUTPUTS] + \
        [ccc_cell(record, "mean_ccc")]
    folds_ccc = [f["metrics"]["ccc"]["valence"] for f in record["per_fold"]]
    assert cells[10] == f"{np.mean(folds_ccc):.3f} ± {np.std(folds_ccc, ddof=1):.3f}"
    assert cells[13] == "64 files, 16 kHz, 60.00–180.00 s, original release (#abcdef01)"
    assert cells[15] == f"`{record['run_id']}`"
    # No run of the audio variant: "not run"; nothing checked: "not verified".
    assert "| not verified |" in audio and "| not run |" in audio
    assert len(audio.split("|")) == len(header.split("|"))
    assert "- SEWA (model.variant=audio, protocol=paper): not checked" in text


def test_runs_matching_no_entry_get_their_own_row_with_their_outputs(tmp_path, experiments):
    results = tmp_path / "results"
    proxy = write_regression(results, corpus="EMODB", variant="audio", protocol="speaker",
                             outputs=("arousal", "valence"), data=None)
    text = render_report(results, experiments, "semantic")
    row = next(line for line in table_lines(text) if proxy["run_id"] in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:5] == ["EMODB", "—", "—", "—"] and cells[5] == "speaker (best-val)"
    assert cells[9:13] == [ccc_cell(proxy, "ccc_arousal"), ccc_cell(proxy, "ccc_valence"),
                           "—", ccc_cell(proxy, "mean_ccc")]
    assert cells[13] == "not recorded"
    # Both reference entries are still listed, not run.
    assert sum("| not run |" in line for line in table_lines(text)) == 2


def test_describe_keys_name_each_regression_run_in_its_setting_cell(tmp_path, experiments):
    """A proxy run (no entry) and a placed run both show the reference's ``describe`` keys,
    so a table row says which variant it is and where its targets came from."""
    reference = experiments / "semantic" / "reference.yaml"
    reference.write_text(REFERENCE.replace("entries:", "describe: [model.variant, targets]\n"
                                           "entries:"))
    results = tmp_path / "results"
    proxy = write_regression(results, corpus="EMODB", variant="audio", protocol="speaker",
                             outputs=("arousal", "valence"), data=None)
    placed = write_regression(results, variant="fusion")
    text = render_report(results, experiments, "semantic")
    cells = {run: [c.strip() for c in line.strip("|").split("|")]
             for line in table_lines(text) for run in (proxy["run_id"], placed["run_id"])
             if run in line}
    # The run has no ``targets`` key: shown as missing, never silently dropped.
    assert cells[proxy["run_id"]][2] == "model.variant=audio, targets=—"
    assert cells[placed["run_id"]][2] == ("model.variant=fusion, protocol=paper, "
                                          "targets=—")
    # A reference entry nobody ran keeps its own setting.
    audio = next(line for line in table_lines(text) if "| not run |" in line)
    assert "| model.variant=audio, protocol=paper |" in audio


def test_last_epoch_of_a_regression_run_is_a_second_row(tmp_path, experiments):
    results = tmp_path / "results"
    record = write_regression(results, last_epoch=True)
    assert "summary_last_epoch" in record
    text = render_report(results, experiments, "semantic")
    row = next(line for line in table_lines(text) if f"{record['run_id']}, last epoch" in line)
    assert "paper (last)" in row and ccc_cell({"summary": record["summary_last_epoch"]},
                                              "mean_ccc") in row


def test_classification_table_is_unchanged_beside_regression_runs(tmp_path, experiments):
    from tests.test_records_report import write as write_classification

    for paper in ("lightsernet",):
        (experiments / paper).mkdir()
        shutil.copy(REPO / "ser_tf" / "papers" / paper / "reference.yaml", experiments / paper)
    results = tmp_path / "results"
    write_classification(results, protocol="paper-time")
    before = render_report(results, experiments)
    write_regression(results)
    after = render_report(results, experiments)
    classification = [line for line in before.splitlines() if line.startswith("| lightsernet")]
    assert classification and all(line in after.splitlines() for line in classification)
    # The classification table comes first, its header unchanged, then the CCC table.
    lines = after.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("| paper |")))
    assert "published UA / WA / F1" in lines[first]
    assert "published CCC" in next(line for line in lines[first + 1:]
                                   if line.startswith("| paper |"))
    assert "Measured: mean ± std over folds (%, F1 = macro-F1)" in after
    # Neither kind of run sits beside the other kind's entries.
    assert not any("| semantic |" in line and "UA" in line for line in lines)


def test_reference_entries_are_classification_or_regression(tmp_path):
    assert entry_kind({"metrics": {"ccc_arousal": None}}) == "regression"
    assert entry_kind({"metrics": {"UA": 70.0}}) == "classification"
    path = tmp_path / "reference.yaml"
    for metrics, message in (("{UA: 70.0, ccc_arousal: 0.4}", "not both"),
                             ("{ccc_arousal: high}", "numbers"),
                             ("{CCC: 0.4}", "unknown metrics")):
        path.write_text(f"entries:\n  - corpus: SEWA\n    metrics: {metrics}\n")
        with pytest.raises(ValueError, match=message):
            load_reference(path)


def test_the_semantic_reference_file_is_read_as_regression_entries():
    ref = load_reference(REPO / "ser_tf" / "papers" / "semantic" / "reference.yaml")
    assert "ccc_entries" not in ref
    assert [e["setting"]["model.variant"] for e in ref["entries"]] == ["audio", "text",
                                                                       "fusion"]
    assert all(entry_kind(e) == "regression" for e in ref["entries"])
    text = render_report(REPO / "no-results-here", paper="semantic")
    rows = table_lines(text)
    assert len(rows) == 3 and all("| not verified |" in r and "| not run |" in r for r in rows)


def test_a_regression_run_in_progress_shows_the_mean_ccc_of_its_folds(tmp_path):
    from ser_tf.reporting.report import in_progress_lines

    work = tmp_path / "semantic" / "SEWA" / "paper-abc.work"
    (work / "fold_00").mkdir(parents=True)
    (work / "folds.json").write_text(json.dumps({"folds": [{}]}))
    (work / "config.json").write_text(json.dumps({"protocol": "paper", "fit": {"epochs": 50}}))
    metrics = fold_results(n_folds=1)[0]["metrics"]
    (work / "fold_00" / "result.json").write_text(json.dumps({"metrics": metrics}))
    assert in_progress_lines(tmp_path, "semantic") == [
        f"- semantic SEWA `paper-abc` (protocol paper, epochs 50): 1/1 folds done; mean CCC "
        f"of the finished folds {metrics['mean_ccc']:.3f}"]
