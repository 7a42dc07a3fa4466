"""Run records are complete and atomic; the report puts them beside the published numbers."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ser_tf.cli import main
from ser_tf.reporting import records
from ser_tf.reporting.plots import curve_stats, plot_tsne, tsne_by_group, tsne_embedding
from ser_tf.reporting.records import iter_run_records, run_id, write_run_record
from ser_tf.reporting.report import load_reference, render_report
from ser_tf.training.metrics import classification_metrics
from ser_tf.training.protocols import Fold, load_folds

REPO = Path(__file__).resolve().parents[1]
LABELS = ["anger", "neutral", "sadness"]


def folds_and_results(n=3, selection_on_test=True):
    rng = np.random.default_rng(0)
    ids = [f"u{i:02d}" for i in range(n * 6)]
    folds, results = [], []
    for k in range(n):
        test = ids[k * 6:(k + 1) * 6]
        train = [i for i in ids if i not in test]
        folds.append(Fold(index=k, train_ids=train, val_ids=test if selection_on_test else train[:2],
                          test_ids=test, selection_on_test=selection_on_test))
        y_true = np.array([0, 0, 1, 1, 2, 2])
        y_pred = np.where(rng.random(6) < 0.7, y_true, (y_true + 1) % 3)
        length = 5 + 2 * k  # early stopping: histories of different lengths
        history = {"loss": list(np.linspace(1.2, 0.4, length)),
                   "accuracy": list(np.linspace(0.3, 0.9, length)),
                   "val_loss": list(np.linspace(1.3, 0.6, length)),
                   "val_accuracy": list(np.linspace(0.3, 0.8, length))}
        results.append({"metrics": classification_metrics(y_true, y_pred, LABELS),
                        "history": history, "chosen_epoch": length - 1, "epochs_run": length})
    return folds, results


def config(**extra):
    return {"paper": "lightsernet", "corpus": "EMODB", "loss": "cross-entropy", "duration": 3,
            "epochs": 7, "fit": {"full_batches": True}, **extra}


def write(results_dir, cfg=None, protocol="paper", **kwargs):
    folds, results = folds_and_results(selection_on_test=protocol in ("paper", "paper-time"))
    return write_run_record(results_dir, config=cfg or config(), protocol=protocol, folds=folds,
                            fold_results=results, wall_time=12.5, labels=LABELS, **kwargs)


def test_run_id_is_deterministic():
    a = run_id({"protocol": "paper", "corpus": "EMODB", "lr": 1e-3})
    assert a == run_id({"lr": 1e-3, "corpus": "EMODB", "protocol": "paper"})
    assert a.startswith("paper-") and len(a) == len("paper-") + 10
    assert a != run_id({"protocol": "paper", "corpus": "EMODB", "lr": 2e-3})


def test_record_holds_everything(tmp_path):
    extra = tmp_path / "model_card.md"
    extra.write_text("card")
    folder = write(tmp_path / "results", extra_files=[extra])
    assert folder.parent == tmp_path / "results" / "lightsernet" / "EMODB"
    rec = json.loads((folder / "record.json").read_text())
    assert folder.name == rec["run_id"] == run_id({**config(), "protocol": "paper"})
    assert rec["config"]["protocol"] == "paper" and rec["labels"] == LABELS
    assert "optimistic" in rec["protocol_warning"]
    assert rec["git"]["commit"] and "dirty" in rec["git"]
    assert {"tensorflow", "keras", "numpy", "librosa", "scikit-learn", "python"} <= set(rec["versions"])
    assert rec["machine"]["cpu_count"] >= 1 and rec["wall_time_seconds"] == 12.5
    assert rec["folds"]["file"] == "folds.json" and rec["folds"]["n_folds"] == 3
    assert [f.index for f in load_folds(folder / "folds.json")] == [0, 1, 2]
    assert len(rec["per_fold"]) == 3 and "history" not in rec["per_fold"][0]
    assert rec["per_fold"][1]["metrics"]["UA"] >= 0
    uas = [r["metrics"]["UA"] for r in rec["per_fold"]]
    assert rec["summary"]["UA"]["mean"] == pytest.approx(np.mean(uas))
    assert np.sum(rec["summary"]["confusion_matrix"]) == 18
    for name in ("confusion_matrix.png", "training_curves.png", "histories.json", "model_card.md"):
        assert (folder / name).stat().st_size > 0 and name in rec["files"]
    assert len(json.loads((folder / "histories.json").read_text())[2]["loss"]) == 9


def test_existing_record_is_refused_unless_overwrite(tmp_path):
    first = write(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write(tmp_path)
    second = write(tmp_path, overwrite=True)
    assert second == first and (second / "record.json").exists()
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]  # no .old / .tmp


def test_interrupted_write_leaves_no_half_record(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while plotting")

    monkeypatch.setattr(records, "plot_training_curves", crash)
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path)
    parent = tmp_path / "lightsernet" / "EMODB"
    assert list(parent.iterdir()) == []  # no record, no stray temporary folder
    assert list(iter_run_records(tmp_path)) == []


def test_interrupted_overwrite_keeps_the_old_record(tmp_path, monkeypatch):
    first = write(tmp_path)
    before = (first / "record.json").read_text()
    monkeypatch.setattr(records, "plot_confusion_matrix",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        write(tmp_path, overwrite=True)
    assert (first / "record.json").read_text() == before
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]


def experiments_with_references(tmp_path):
    experiments = tmp_path / "experiments"
    for paper in ("lightsernet", "timnet"):
        (experiments / paper).mkdir(parents=True)
        shutil.copy(REPO / "ser_tf" / "papers" / paper / "reference.yaml", experiments / paper)
    return experiments


def test_report_puts_runs_beside_published_numbers(tmp_path, capsys):
    experiments = experiments_with_references(tmp_path)
    results = experiments / "results"
    # Light-SERNet's published figures come from its paper-time protocol: only such a run
    # sits beside them; a run of the later `paper` protocol gets a row of its own.
    folder = write(results, protocol="paper-time")
    later = json.loads((write(results, protocol="paper") / "record.json").read_text())
    rec = json.loads((folder / "record.json").read_text())
    ua = f"{rec['summary']['UA']['mean']:.2f} ± {rec['summary']['UA']['std']:.2f}"

    text = render_report(results, paper="lightsernet")
    row = next(r for r in text.splitlines() if later["run_id"] in r)
    # Only the `describe` setting, no published numbers, no source.
    assert "| full_batches=True | — | — |" in row
    rows = [line for line in text.splitlines() if line.startswith("| lightsernet")]
    ce = next(r for r in rows if "loss=cross-entropy" in r)
    assert "94.15 / 94.21 / 94.16" in ce and ua in ce and rec["run_id"] in ce
    pooled = rec["summary"]["pooled"]  # the summed confusion matrix, as the authors report
    assert f"{pooled['UA']:.2f} / {pooled['WA']:.2f}" in ce
    focal = next(r for r in rows if "loss=focal, duration=3" in r)
    assert "92.88 / 93.08 / 93.05" in focal and "not run" in focal
    assert "not run" in next(r for r in rows if "IEMOCAP" in r)
    assert "optimistic" in text  # the paper-protocol warning is printed

    assert main(["report", "--results", str(results), "--paper", "lightsernet",
                 "--output", str(tmp_path / "report.md")]) == 0
    out = capsys.readouterr().out
    assert ua in out and (tmp_path / "report.md").read_text() == out


def test_report_check_says_whether_a_readme_table_is_what_the_records_say(tmp_path, capsys):
    experiments = experiments_with_references(tmp_path)
    results = experiments / "results"
    write(results, protocol="paper-time")
    readme = tmp_path / "README.md"
    stale = "intro\n<!-- report:lightsernet:start -->\nold\n<!-- report:lightsernet:end -->\n"
    readme.write_text(stale)
    args = ["report", "--results", str(results), "--paper", "lightsernet", "--readme", str(readme)]

    assert main(args + ["--check"]) == 1
    err = capsys.readouterr().err
    assert readme.read_text() == stale  # a check rewrites nothing
    assert f"{readme}: the lightsernet table is not what the records" in err
    assert "-old" in err and "+| lightsernet" in err  # the difference, line by line

    assert main(args) == 0
    assert main(args + ["--check"]) == 0
    assert "matches the records" in capsys.readouterr().out
    # One number edited by hand is caught.
    text = readme.read_text()
    assert "94.15" in text
    readme.write_text(text.replace("94.15", "95.15", 1))
    assert main(args + ["--check"]) == 1
    assert "-| lightsernet" in capsys.readouterr().err
    assert main(["report", "--results", str(results), "--paper", "lightsernet", "--check"]) == 1
    assert "--check needs --readme" in capsys.readouterr().err


def test_report_matching_prefers_the_most_specific_entry(tmp_path):
    experiments = experiments_with_references(tmp_path)
    results = experiments / "results"
    base = {"paper": "timnet", "corpus": "EMODB", "epochs": 5}
    write(results, cfg={**base, "checkpoint": "last"})
    write(results, cfg={**base, "checkpoint": "paper"})
    write(results, cfg={**base, "corpus": "TESS"})  # no published number: own row
    rows = [line for line in render_report(results, paper="timnet").splitlines()
            if line.startswith("| timnet | EMODB")]
    published = [r for r in rows if "95.17 / 95.70" in r and "compounded_smoothing=0.1" not in r]
    corrected = [r for r in rows if "89.19 / 90.28" in r]
    assert len(published) == 1 and "paper (paper)" in published[0]
    assert len(corrected) == 1 and "paper (last)" in corrected[0]
    # TIM-Net's `describe` key: a run without the ablation's setting says so.
    assert "| protocol=paper, compounded_smoothing=— |" in published[0]
    # The published figures' own-code ablation has an entry of its own: a run without that
    # setting never sits beside it; the ablation sits beside it alone.
    ablation = [r for r in rows if "compounded_smoothing=0.1" in r]
    assert len(ablation) == 1 and "not run" in ablation[0]
    write(results, cfg={**base, "checkpoint": "paper", "compounded_smoothing": 0.1})
    rows = [line for line in render_report(results, paper="timnet").splitlines()
            if line.startswith("| timnet | EMODB")]
    ablation = [r for r in rows if "compounded_smoothing=0.1" in r]
    assert len(ablation) == 1 and "paper (paper)" in ablation[0]
    assert len([r for r in rows if "95.17 / 95.70" in r and "paper (paper)" in r]) == 2
    text = render_report(results, paper="timnet")
    assert "| timnet | TESS | compounded_smoothing=— | — | — | paper" in text
    assert "not run" in next(line for line in text.splitlines() if "| timnet | EMOVO" in line)


def test_the_ablations_last_epoch_sits_beside_the_corrected_figures_named_as_such(tmp_path):
    experiments = experiments_with_references(tmp_path)
    results = experiments / "results"
    folds, fold_results = folds_and_results()
    for r in fold_results:
        r["last_epoch"] = {"epoch": r["epochs_run"], "metrics": r["metrics"]}
    cfg = {"paper": "timnet", "corpus": "EMODB", "epochs": 5, "checkpoint": "paper",
           "compounded_smoothing": 0.1}
    folder = write_run_record(results, config=cfg, protocol="paper", folds=folds,
                              fold_results=fold_results, wall_time=1.0, labels=LABELS)
    run = json.loads((folder / "record.json").read_text())["run_id"]
    rows = [line for line in render_report(results, paper="timnet").splitlines()
            if line.startswith("| timnet | EMODB")]
    chosen = [r for r in rows if f"`{run}`" in r]
    last = [r for r in rows if f"`{run}, last epoch`" in r]
    assert len(chosen) == 1 and "95.17 / 95.70" in chosen[0]
    assert "compounded_smoothing=0.1" in chosen[0]
    assert len(last) == 1 and "89.19 / 90.28" in last[0]
    assert "| checkpoint=last, protocol=paper, compounded_smoothing=0.1 |" in last[0]
    # The plain published row has no run here.
    plain = next(r for r in rows if r.startswith("| timnet | EMODB | protocol=paper |"))
    assert "not run" in plain


def test_one_run_sits_beside_both_the_best_epoch_and_the_last_epoch_figures(tmp_path):
    experiments = experiments_with_references(tmp_path)
    results = experiments / "results"
    folds, fold_results = folds_and_results()
    rng = np.random.default_rng(5)
    for r in fold_results:  # every fold also scored its last epoch's weights
        y_true = np.array([0, 0, 1, 1, 2, 2])
        r["last_epoch"] = {"epoch": r["epochs_run"], "metrics": classification_metrics(
            y_true, np.where(rng.random(6) < 0.5, y_true, (y_true + 2) % 3), LABELS)}
    cfg = {"paper": "timnet", "corpus": "EMODB", "epochs": 5, "checkpoint": "paper"}
    folder = write_run_record(results, config=cfg, protocol="paper", folds=folds,
                              fold_results=fold_results, wall_time=1.0, labels=LABELS)
    rec = json.loads((folder / "record.json").read_text())
    last = rec["summary_last_epoch"]["UA"]
    assert last["mean"] == pytest.approx(np.mean(
        [r["last_epoch"]["metrics"]["UA"] for r in fold_results]))
    rows = [line for line in render_report(results, paper="timnet").splitlines()
            if line.startswith("| timnet | EMODB")]
    published = next(r for r in rows if "95.17 / 95.70" in r)
    corrected = next(r for r in rows if "89.19 / 90.28" in r)
    assert f"{rec['summary']['UA']['mean']:.2f}" in published and "paper (paper)" in published
    assert f"{last['mean']:.2f} ± {last['std']:.2f}" in corrected
    assert "paper (last)" in corrected and f"{rec['run_id']}, last epoch" in corrected

    # One fold without a last-epoch score: no last-epoch summary, no second row.
    del fold_results[1]["last_epoch"]
    folder = write_run_record(results, config=cfg, protocol="paper", folds=folds,
                              fold_results=fold_results, wall_time=1.0, labels=LABELS,
                              overwrite=True)
    assert "summary_last_epoch" not in json.loads((folder / "record.json").read_text())
    rows = [line for line in render_report(results, paper="timnet").splitlines()
            if "89.19 / 90.28" in line and "| timnet | EMODB" in line]
    assert "not run" in rows[0]


def test_reference_files_hold_the_published_numbers():
    light = load_reference(REPO / "ser_tf" / "papers" / "lightsernet" / "reference.yaml")
    cells = {(e["corpus"], e["setting"].get("loss")): e["metrics"] for e in light["entries"]}
    assert cells[("EMODB", "cross-entropy")] == {"UA": 94.15, "WA": 94.21, "F1": 94.16}
    assert cells[("EMODB", "focal")] == {"UA": 92.88, "WA": 93.08, "F1": 93.05}
    assert cells[("IEMOCAP", "focal")] == {"UA": 70.76, "WA": 70.23}
    tim = load_reference(REPO / "ser_tf" / "papers" / "timnet" / "reference.yaml")
    kinds = {(e["corpus"], e["source"]["kind"]): e["metrics"] for e in tim["entries"]}
    assert kinds[("SAVEE", "published")] == {"UA": 86.31, "WA": 87.71}
    assert kinds[("SAVEE", "corrected")] == {"UA": 77.26, "WA": 79.36}
    assert len([k for k in kinds if k[1] == "published"]) == 6
    assert len([k for k in kinds if k[1] == "corrected"]) == 4


def test_curve_stats_and_tsne(tmp_path):
    mean, std, count = curve_stats([{"loss": [1.0, 2.0, 3.0]}, {"loss": [3.0, None]}], "loss")
    np.testing.assert_allclose(mean, [2.0, 2.0, 3.0])
    np.testing.assert_allclose(std, [1.0, 0.0, 0.0])
    assert count.tolist() == [2, 1, 1]
    assert curve_stats([{"loss": [1.0]}], "val_loss") is None

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 5)
    features = rng.normal(size=(15, 4)) + labels[:, None] * 3
    path = plot_tsne(features, labels, LABELS, tmp_path / "tsne.png", seed=0, max_iter=250)
    assert path.stat().st_size > 0


def test_tsne_by_group_embeds_each_group_on_its_own(tmp_path):
    # Two "fold models" whose feature spaces differ by a large offset: one pooled t-SNE
    # would separate the groups; per group, each group's map must not depend on the other.
    rng = np.random.default_rng(1)
    labels = np.tile(np.repeat([0, 1, 2], 4), 2)
    features = rng.normal(size=(24, 5)) + labels[:, None] * 3
    features[12:] += 100.0
    groups = np.repeat([2, 1], 12)
    panels = tsne_by_group(features, groups, seed=0, max_iter=250)
    assert list(panels) == [1, 2]
    rows, coords = panels[2]
    assert rows.tolist() == list(range(12)) and coords.shape == (12, 2)
    np.testing.assert_allclose(coords, tsne_embedding(features[:12], seed=0, max_iter=250))
    moved = features.copy()
    moved[12:] = rng.normal(size=(12, 5))
    np.testing.assert_allclose(tsne_by_group(moved, groups, seed=0, max_iter=250)[2][1], coords)
    path = plot_tsne(features, labels, LABELS, tmp_path / "tsne.png", seed=0, max_iter=250,
                     groups=groups)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="3 group labels for 24 samples"):
        tsne_by_group(features, groups[:3])
    with pytest.raises(ValueError, match="group 1: t-SNE needs at least 4 samples"):
        tsne_by_group(features[:13], groups[:13])


def test_readme_section_is_replaced_and_in_progress_runs_listed(tmp_path):
    import json as _json

    from ser_tf.reporting.readme_blocks import rewrite_block
    from ser_tf.reporting.report import in_progress_lines

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- report:demo:start -->\nold table\n<!-- report:demo:end -->\ntail\n")
    assert rewrite_block(readme, "report", "demo", "| new | table |")
    assert readme.read_text() == ("intro\n<!-- report:demo:start -->\n| new | table |\n"
                                  "<!-- report:demo:end -->\ntail\n")
    with pytest.raises(ValueError, match="markers"):
        rewrite_block(readme, "report", "other", "x")

    work = tmp_path / "results" / "demo" / "EMODB" / "paper-abc.work"
    (work / "fold_00").mkdir(parents=True)
    (work / "folds.json").write_text(_json.dumps({"folds": [{}, {}, {}]}))
    # As the experiments write it: training settings nested under "fit".
    (work / "config.json").write_text(_json.dumps(
        {"protocol": "paper", "loss": "focal", "fit": {"checkpoint": "last", "epochs": 500}}))
    (work / "fold_00" / "result.json").write_text(_json.dumps({"metrics": {"UA": 91.234}}))
    # A --ship run's final training folder (no folds, no config) is not a run in progress.
    deploy = tmp_path / "results" / "demo" / "EMODB" / "deploy-paper-abc.work"
    deploy.mkdir()
    (deploy / "history.json").write_text("{}")
    lines = in_progress_lines(tmp_path / "results", "demo")
    assert lines == ["- demo EMODB `paper-abc` (protocol paper, loss focal, checkpoint last, "
                     "epochs 500): 1/3 folds done; UA of the finished folds 91.23"]
    # With the fold's TFLite scores, the int8 change against float32 is listed too.
    (work / "fold_00" / "tflite.json").write_text(_json.dumps(
        {"variants": {"float32": {"UA": 91.234}, "int8": {"UA": 89.5}}}))
    assert in_progress_lines(tmp_path / "results", "demo")[0].endswith(
        "UA of the finished folds 91.23; full-int8 minus float32 UA (work folder: points) fold_00: -1.73")
    (tmp_path / "results" / "demo" / "EMODB" / "paper-abc").mkdir()
    (tmp_path / "results" / "demo" / "EMODB" / "paper-abc" / "record.json").write_text("{}")
    assert in_progress_lines(tmp_path / "results", "demo") == []


def test_run_cells_read_training_settings_from_the_fit_section():
    """Real records keep epochs and checkpoint under config["fit"]: the table shows the
    configured epochs even when every fold stopped early."""
    from ser_tf.reporting.report import _run_cells

    record = {"protocol": "paper", "run_id": "paper-x", "folds": {"n_folds": 10},
              "config": {"loss": "cross_entropy", "duration": 3,
                         "fit": {"epochs": 300, "checkpoint": "paper", "loss": "cross_entropy"}},
              "per_fold": [{"epochs_run": 120}, {"epochs_run": 90}], "summary": {}}
    cells = _run_cells(record)
    assert cells[:4] == ["paper (paper)", "cross_entropy", "300", "10"]
    del record["config"]["fit"]["epochs"]
    assert _run_cells(record)[2] == "120"  # no configured epochs: the longest fold


def test_report_lists_each_runs_tflite_variants(tmp_path):
    from ser_tf.export.evaluate import summarise_fold_exports

    # Fold 1 has four anger utterances and int8 gets one of them wrong: folds of different
    # class counts, so the pooled UA differs from the mean of the folds' UAs.
    truths = (np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 0, 0, 1, 2]))
    rows = []
    for k, y_true in enumerate(truths):
        keras = classification_metrics(y_true, y_true, LABELS)
        int8_pred = y_true.copy()
        int8_pred[:k] = 1
        int8 = classification_metrics(y_true, int8_pred, LABELS)
        rows.append({"fold": k, "keras": {"UA": keras["UA"], "WA": keras["WA"],
                                          "macro_F1": keras["macro_F1"],
                                          "weighted_F1": keras["weighted_F1"], "metrics": keras},
                     "variants": {
                         v: {"size_bytes": size, "UA": m["UA"], "WA": m["WA"],
                             "macro_F1": m["macro_F1"], "weighted_F1": m["weighted_F1"],
                             "metrics": m, "max_prob_diff_vs_keras": 0.1,
                             "argmax_agreement": 1 - k / 6 if v == "int8" else 1.0}
                         for v, m, size in (("float32", keras, 1_853_380),
                                            ("int8", int8, 495_808))}})
    latency = {"float32": {"1": {"mean_ms": 1.45, "p95_ms": 1.5}},
               "int8": {"1": {"mean_ms": 1.27, "p95_ms": 1.32}}}
    host = {"cpu_count": 2, "model_name": "Test CPU 9000", "simd": ["sse4_2", "avx2", "fma"]}
    tflite = summarise_fold_exports(rows, latency, latency_host=host)
    results = tmp_path / "experiments" / "results"
    folder = write(results, details={"tflite": tflite})
    text = render_report(results, paper="lightsernet")
    # The table's latency is only comparable with the CPU it was timed on beside it.
    assert "latency timed on Test CPU 9000 (2 CPUs; avx2)" in text
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(table) == 2
    float32, int8 = table
    assert "| float32 | 1,853,380 | 100.00 ± 0.00 | 100.00 | – |" in float32
    # int8 fold UAs 100 and (3/4 + 1 + 1) / 3 = 91.67: mean 95.83, sample std 5.89; pooled
    # anger 5 of 6: (5/6 + 1 + 1) / 3 = 94.44.
    # Per-fold changes 0 and -8.33: mean -4.17, standard error 5.89 / sqrt(2) = 4.17; the
    # t quantile for 1 degree of freedom is 12.706, so the interval is -4.17 -+ 52.94.
    assert "| int8 | 495,808 | 95.83 ± 5.89 | 94.44 | -4.17 / -5.56 | -57.11 … +48.78 |" in int8
    assert "| 91.7 % | 1.27 / 1.32 | not run |" in int8
    assert json.loads((folder / "record.json").read_text())["run_id"] in int8


def test_selection_gap_compares_the_chosen_epoch_with_its_neighbours():
    from ser_tf.reporting.selection import run_selection_gaps, selection_gap

    series = [50, 60, 55, 90, 58, 62, 61]
    # epoch 4 (90) against epochs 1-3 and 5-7: 90 - mean(50, 60, 55, 58, 62, 61) = 32.33
    assert selection_gap(series, 4) == pytest.approx(90 - np.mean([50, 60, 55, 58, 62, 61]))
    assert selection_gap(series, 1, window=1) == pytest.approx(-10)  # edge: one neighbour
    assert selection_gap([70.0], 1) is None
    with pytest.raises(ValueError, match="outside the 7 epochs"):
        selection_gap(series, 8)
    gaps = run_selection_gaps([{"val_UA": series}, {"val_UA": [1, 2, 3]}, {}], [4, 2, 1])
    assert gaps["per_fold"][1] == pytest.approx(0) and gaps["per_fold"][2] is None
    assert gaps["mean"] == pytest.approx(np.mean([gaps["per_fold"][0], 0]))
    assert run_selection_gaps([{"val_UA": series}], [None]) is None  # last-epoch run


def test_report_shows_the_selection_gap_of_each_run(tmp_path):
    folds, fold_results = folds_and_results()
    for r in fold_results:  # a peak at the chosen epoch, flat elsewhere
        length = r["epochs_run"]
        r["history"]["val_UA"] = [40.0] * length
        r["history"]["val_UA"][r["chosen_epoch"] - 1] = 70.0
    folder = write_run_record(tmp_path, config=config(), protocol="paper", folds=folds,
                              fold_results=fold_results, wall_time=1.0, labels=LABELS)
    text = render_report(tmp_path, REPO / "experiments", "lightsernet")
    line = next(l for l in text.splitlines() if l.startswith(f"- `{folder.name}`"))
    assert "test UA is +30.00 ± 0.00 points above" in line
    assert "per fold: +30.0, +30.0, +30.0" in line


def test_selection_is_called_test_only_where_the_folds_validated_on_test():
    """A `paper` split with a validation part of its own (the CNN family's 80/10/10) chose
    on validation utterances: the report must not call its series the test UA."""
    from ser_tf.reporting.selection import chose_on_test

    assert chose_on_test({"protocol": "paper", "folds": {"selection_on_test": True}})
    assert not chose_on_test({"protocol": "paper", "folds": {"selection_on_test": False}})
    assert not chose_on_test({"protocol": "speaker", "folds": {"selection_on_test": False}})
    assert chose_on_test({"protocol": "paper"})  # a record older than the flag
    assert not chose_on_test({"protocol": "speaker"})


def test_mean_interval_is_the_student_t_interval():
    from ser_tf.reporting.tflite_table import mean_interval

    # mean 3, standard error sqrt(2.5 / 5); t(0.975, 4 df) = 2.7764 from the tables
    low, high = mean_interval([1, 2, 3, 4, 5])
    assert (low, high) == pytest.approx((3 - 2.7764 * 0.5 ** 0.5, 3 + 2.7764 * 0.5 ** 0.5),
                                        abs=1e-3)
    assert mean_interval([2.0]) is None and mean_interval([]) is None
    assert mean_interval([0.0, 0.0, 0.0]) == (0.0, 0.0)  # float16: no change in any fold
    assert mean_interval([1, 2, 3], level=0.5)[1] - 2 < high - 3  # narrower at 50 %
    with pytest.raises(ValueError, match="level"):
        mean_interval([1, 2], level=1.0)


def test_report_note_is_each_runs_own_protocol_warning():
    """A `paper` run that kept its last epoch chose nothing on the test fold: the report's
    note must say so, not the test-selection warning (which another run may still need)."""
    from pathlib import Path

    from ser_tf.reporting.report import render_report

    repo = Path(__file__).resolve().parents[1]
    text = render_report(repo / "experiments" / "results", paper="attention_fcn")
    assert "Note: Protocol 'paper' with the last epoch's weights" in text
    assert "the best epoch was chosen on the test fold itself" not in text


def test_describe_keys_tell_runs_of_one_entry_apart(tmp_path):
    experiments = tmp_path / "experiments"
    (experiments / "toy").mkdir(parents=True)
    (experiments / "toy" / "reference.yaml").write_text(
        "paper: toy\ndescribe: [lam, input]\nentries:\n"
        "  - corpus: EMODB\n    setting: {input: power}\n    metrics: {UA: 50.0}\n")
    results = experiments / "results"
    base = {"paper": "toy", "corpus": "EMODB", "epochs": 5}
    write(results, cfg={**base, "input": "power", "lam": 0.3})
    write(results, cfg={**base, "input": "power", "lam": 0.8})
    write(results, cfg={**base, "input": "db", "lam": 0.8})  # matches no entry
    rows = [line for line in render_report(results, experiments, paper="toy").splitlines()
            if line.startswith("| toy | EMODB")]
    beside = [r.split(" | ")[2] for r in rows if "50.00" in r]
    assert sorted(beside) == ["input=power, lam=0.3", "input=power, lam=0.8"]
    assert any(r.startswith("| toy | EMODB | lam=0.8, input=db | — |") for r in rows)


def test_tflite_rows_scored_on_other_inputs_than_the_run_are_flagged(tmp_path, capsys):
    from ser_tf.experiments.runner import _check_tflite_inputs
    from ser_tf.export.evaluate import compare_with_run

    _, results = folds_and_results()
    run_ua = {k: r["metrics"]["UA"] for k, r in enumerate(results)}
    same = {"keras": {"folds": [{"fold": k, "UA": ua} for k, ua in run_ua.items()]},
            "variants": {}}
    other = {"keras": {"folds": [{"fold": k, "UA": ua - 12.5 * (k == 1)}
                                 for k, ua in run_ua.items()]}, "variants": {}}
    assert compare_with_run(same, run_ua) == {"keras_matches_run": True,
                                              "max_keras_UA_difference": 0.0,
                                              "folds_compared": 3}
    assert compare_with_run(other, run_ua)["max_keras_UA_difference"] == pytest.approx(12.5)
    assert compare_with_run({"variants": {}}, run_ua) is None  # nothing to compare

    # The runner records the check and warns when the inputs differ.
    details = {"tflite": json.loads(json.dumps(other))}
    _check_tflite_inputs(details, [{"fold": k, **r} for k, r in enumerate(results)])
    assert details["tflite"]["run_check"]["keras_matches_run"] is False
    assert "scored on other inputs than the run" in capsys.readouterr().err
    details = {"tflite": json.loads(json.dumps(same))}
    _check_tflite_inputs(details, [{"fold": k, **r} for k, r in enumerate(results)])
    assert details["tflite"]["run_check"]["keras_matches_run"] is True
    assert capsys.readouterr().err == ""

    # The report marks such a run's rows, and says why (records written before the check
    # are checked from their folds).
    from ser_tf.export.evaluate import summarise_fold_exports

    def rows(shift):
        out = []
        for k, result in enumerate(results):
            metrics = result["metrics"]
            scores = {key: metrics[key] for key in ("UA", "WA", "macro_F1", "weighted_F1")}
            scores["UA"] -= shift * (k == 1)  # the scalar the rows compare, as a crop gave
            out.append({"fold": k, "keras": {**scores, "metrics": metrics}, "variants": {
                "float32": {"size_bytes": 10, **scores, "metrics": metrics,
                            "max_prob_diff_vs_keras": 0.0, "argmax_agreement": 1.0}}})
        return out

    for shift, flagged in ((0.0, False), (40.0, True)):
        results_dir = tmp_path / f"shift{int(shift)}" / "results"
        write(results_dir, details={"tflite": summarise_fold_exports(rows(shift), {})})
        text = render_report(results_dir, paper="lightsernet")
        row, = [line for line in text.splitlines() if line.startswith("| `")]
        assert ("⚠" in row) == flagged
        assert ("scored on other inputs than the run" in text) == flagged
        if flagged:
            assert "by up to 40.00 points" in text


def test_plain_setting_keys_reach_the_fit_section_and_tell_ablations_apart(tmp_path):
    """A setting the experiments keep under ``fit`` (full batches) places a run and names it
    in its row and in its in-progress line: an ablation never sits beside the figures; a
    config without the setting has the reference's ``absent`` value."""
    experiments = tmp_path / "experiments"
    (experiments / "toy").mkdir(parents=True)
    (experiments / "toy" / "reference.yaml").write_text(
        "paper: toy\ndescribe: [full_batches]\nabsent: {full_batches: false}\nentries:\n"
        "  - corpus: EMODB\n    setting: {protocol: paper, full_batches: true}\n"
        "    metrics: {UA: 50.0}\n")
    results = experiments / "results"
    base = {"paper": "toy", "corpus": "EMODB"}
    write(results, cfg={**base, "fit": {"epochs": 5, "full_batches": True}})
    write(results, cfg={**base, "fit": {"epochs": 6}})  # recorded before the setting
    rows = [line for line in render_report(results, experiments, paper="toy").splitlines()
            if line.startswith("| toy | EMODB")]
    assert len(rows) == 2
    beside = next(r for r in rows if "50.00" in r)
    assert beside.startswith("| toy | EMODB | protocol=paper, full_batches=True | 50.00")
    assert "| 5 | 3 |" in beside  # the full-batch run (5 epochs), 3 folds
    apart = next(r for r in rows if "50.00" not in r)
    assert apart.startswith("| toy | EMODB | full_batches=False | — | — | paper")
    # A run still training names the setting too (its paper's `describe` keys).
    work = results / "toy" / "EMODB" / "paper-unfinished.work"
    work.mkdir(parents=True)
    (work / "folds.json").write_text(json.dumps({"folds": [{}, {}]}))
    (work / "config.json").write_text(json.dumps({"protocol": "paper", "compounded": 0.1}))
    text = render_report(results, experiments, paper="toy")
    assert ("- toy EMODB `paper-unfinished` (protocol paper, full_batches False): "
            "0/2 folds done") in text
    (experiments / "toy" / "reference.yaml").write_text(
        "paper: toy\ndescribe: [compounded]\nentries: []\n")  # no `absent` now
    text = render_report(results, experiments, paper="toy")
    assert "`paper-unfinished` (protocol paper, compounded 0.1): 0/2 folds done" in text


def test_reference_absent_must_be_a_mapping(tmp_path):
    path = tmp_path / "reference.yaml"
    path.write_text("paper: toy\nabsent: [full_batches]\nentries: []\n")
    with pytest.raises(ValueError, match="reference.yaml: 'absent' must be a mapping"):
        load_reference(path)
