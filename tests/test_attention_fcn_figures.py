"""Attention-FCN attention maps per class and the shipped explain model: on a tiny
generated EMO-DB-like corpus and a tiny 2-fold speaker-independent 2-D run (1 epoch), the
figure has one panel per class, each drawn utterance comes from the test set of the fold
whose explain TFLite model drew it, the JSON beside it says so, the shipped explain model
predicts (and `ser-tf explain` draws) without TensorFlow, and an unfinished run or a
folder that is no run gets a clear error."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ser_tf.data.synthetic import make_emodb_like  # noqa: E402
from ser_tf.papers.attention_fcn import figures  # noqa: E402
from ser_tf.papers.attention_fcn.ship import median_fold, ship_explain_model  # noqa: E402
from ser_tf.reporting.attention_maps import (ExplainLiteModel, alpha_time_profile,  # noqa: E402
                                             real_frames)
from ser_tf.training.protocols import load_folds  # noqa: E402
from ser_tf.training.rundir import RunDir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LABELS = ["anger", "happiness", "neutral", "sadness"]


def test_alpha_profile_is_a_density_over_the_audio_part():
    uniform = np.full((8, 5), 1 / 40)  # 8 rows over 300 frames: 37 or 38 frames each
    np.testing.assert_allclose(alpha_time_profile(uniform, 300), 1.0, rtol=0.015)
    first = np.zeros((8, 5))
    first[0, 2] = 1.0  # all attention on the first of 8 rows: its 1/8 of the time, density 8
    profile = alpha_time_profile(first, 300, points=80)
    assert profile[:9].min() == pytest.approx(300 / 38, rel=0.01) and not profile[11:].any()
    # Rows past the audio (zero padding) are cut and the rest renormalised: uniform again.
    padded = np.zeros((8, 5))
    padded[:4] = 1.0
    np.testing.assert_allclose(alpha_time_profile(padded, 300, real_frames=150), 1.0,
                               rtol=0.015)
    with pytest.raises(ValueError, match="no weight"):
        alpha_time_profile(np.eye(8, 5)[::-1] * 0, 300)


def test_real_frames_is_where_the_audio_ends():
    from ser_tf.papers.attention_fcn.recipes import RECIPE

    assert real_frames(16000, RECIPE, 300) == 100  # 1 s of a 3.03 s crop
    assert real_frames(16001, RECIPE, 300) == 101
    assert real_frames(10 * 16000, RECIPE, 300) == 300  # longer than the crop


def test_choose_prefers_correct_answers_and_says_which():
    def row(uid, p):
        return {"utterance_id": uid, "probabilities": np.asarray(p)}

    rows = [row("a", [0.9, 0.1]), row("b", [0.6, 0.4]), row("c", [0.7, 0.3]),
            row("d", [0.2, 0.8])]
    assert figures.choose(rows, 0)["utterance_id"] == "a"
    assert figures.choose(rows, 0, "median")["utterance_id"] == "c"
    # No correct answer for class 1 except d; none at all: the highest p(class).
    assert figures.choose(rows, 1)["utterance_id"] == "d"
    assert figures.choose(rows[:3], 1)["utterance_id"] == "b"
    assert figures.choose([], 0) is None
    with pytest.raises(ValueError, match="per_class"):
        figures.choose(rows, 0, "worst")


def test_median_fold_is_the_lower_middle_by_test_ua():
    per_fold = [{"fold": i, "metrics": {"UA": ua}} for i, ua in enumerate([50, 20, 70, 40, 60])]
    assert median_fold(per_fold) == 0  # UAs sorted: 20, 40, 50, 60, 70
    assert median_fold(per_fold[:4]) == 3  # 20, 40, 50, 70: the lower of 40 and 50
    tied = [{"fold": 3, "metrics": {"UA": 10}}, {"fold": 1, "metrics": {"UA": 10}}]
    assert median_fold(tied) == 1
    with pytest.raises(ValueError):
        median_fold([])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-fold speaker-independent 2-D run (1 epoch) on 16 utterances of 4
    speakers: (corpus root, manifest, work folder)."""
    from ser_tf import cli
    from ser_tf.data import load_manifest
    from ser_tf.papers.attention_fcn.experiment import four_class_manifest

    tmp = tmp_path_factory.mktemp("afcn_figures")
    root = make_emodb_like(tmp / "emodb", per_class=4, duration=1.0, classes="WFNTL")
    code = cli.main(["train", "attention_fcn", "--variant", "2d", "--dataset", "EMODB",
                     "--data-dir", str(root), "--results-dir", str(tmp / "results"),
                     "--cache-dir", str(tmp / "cache"), "--protocol", "speaker",
                     "--folds", "2", "--epochs", "1", "--batch-size", "4", "--quiet",
                     "--no-export"])
    assert code == 0
    work, = (tmp / "results").glob("attention_fcn/EMODB/*.work")
    return root, four_class_manifest(load_manifest("EMODB", root)), work


@pytest.fixture(scope="module")
def figure(trained, tmp_path_factory, request):
    """The class figure of the run, with the matplotlib figure it saved."""
    import ser_tf.reporting.attention_maps as maps

    _, manifest, work = trained
    saved, original = [], maps._save
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(maps, "_save", lambda fig, path: saved.append(fig) or original(fig, path))
    try:
        out = tmp_path_factory.mktemp("figure") / "classes.png"
        summary = figures.class_attention_figure(work, manifest, out)
    finally:
        monkeypatch.undo()
    return summary, out, saved[-1]


@pytest.mark.slow
def test_figure_has_one_panel_per_class_from_the_folds_own_test_sets(trained, figure):
    root, manifest, work = trained
    summary, out, fig = figure
    assert out.stat().st_size > 10_000
    assert json.loads(out.with_suffix(".json").read_text()) == json.loads(json.dumps(summary))
    titles = [ax.get_title() for ax in fig.axes]
    for label in LABELS:  # one spectrogram panel per class, titled by class and file
        assert sum(t.startswith(f"{label}: ") for t in titles) == 1
    assert "explain TFLite" in fig.get_suptitle()
    # Each panel shows the recording (at most 1.16 s here), not the model's 2 s window.
    maps = [ax for ax in fig.axes if ax.get_title().split(":")[0] in LABELS]
    assert maps and all(0.5 < ax.get_xlim()[1] < 1.6 for ax in maps)
    features = np.zeros((200, 4))
    cut, alpha = figures.audio_part(features, np.ones((5, 5)), real_frames=81)
    assert alpha.shape == (3, 5) and cut.shape == (120, 4)  # 81 frames: cells 0-2 of 5

    folds = {f.index: f for f in load_folds(RunDir(work).folds)}
    assert summary["run_id"] == RunDir(work).run_id and summary["protocol"] == "speaker"
    assert [f["fold"] for f in summary["folds"]] == sorted(folds)
    labels = {u.utterance_id: u.label for u in manifest}
    assert sum(c["n_test_utterances"] for c in summary["classes"].values()) == \
        sum(len(f.test_ids) for f in folds.values()) == len(manifest)
    for k, label in enumerate(LABELS):
        entry = summary["classes"][label]
        chosen = entry["chosen"]
        fold = folds[chosen["fold"]]
        # Drawn by the model of the fold that tested it, which never trained on it.
        assert chosen["utterance_id"] in fold.test_ids
        assert chosen["utterance_id"] not in fold.train_ids + fold.val_ids
        assert labels[chosen["utterance_id"]] == label
        assert chosen["file"] == f"{chosen['utterance_id']}.wav"
        assert chosen["probability"] == chosen["probabilities"][label]
        assert chosen["correct"] == (max(chosen["probabilities"],
                                         key=chosen["probabilities"].get) == label)
        assert len(entry["profile"]) == figures.PROFILE_POINTS
        assert np.mean(entry["profile"]) == pytest.approx(1.0, abs=0.05)
        # The JSON's probabilities are that fold's explain TFLite model's on that file.
        model = next(f["explain_model"] for f in summary["folds"] if f["fold"] == fold.index)
        lite = ExplainLiteModel(model)
        path = next(u.path for u in manifest if u.utterance_id == chosen["utterance_id"])
        features, _, lengths = lite.inputs(path)
        probabilities, _ = lite.predict(features[None], [lengths])
        np.testing.assert_allclose(probabilities[0][k], chosen["probability"], atol=1e-4)
        assert lite.metadata["source"]["fold"] == fold.index
        # Whole utterances, padding masked: the run's own Keras probabilities.
        np.testing.assert_allclose(list(chosen["probabilities"].values()),
                                   chosen["keras_whole_utterance_probabilities"], atol=2e-3)
        assert entry["alpha_on_padding"] == 0


@pytest.mark.slow
def test_explain_models_are_exported_once_per_weights(trained, figure):
    _, _, work = trained
    run = figures.load_run(work)
    path = figures.ensure_explain_model(run, run.folds[0])
    stamp = path.stat().st_mtime_ns
    assert figures.ensure_explain_model(run, run.folds[0]).stat().st_mtime_ns == stamp
    assert path.parent == RunDir(work).fold(0).path / figures.EXPLAIN_DIR


@pytest.mark.slow
def test_kept_explain_models_stand_in_for_weights_gone_with_the_machine(trained, figure,
                                                                       tmp_path):
    import shutil

    from ser_tf.util.jsonio import content_hash

    _, _, work = trained
    copy = tmp_path / work.name
    shutil.copytree(work, copy)
    run = figures.load_run(copy)
    kept = {}
    for fold in run.folds:
        fold_dir = run.fold_dir(fold)
        kept[fold.index] = figures.ensure_explain_model(run, fold)
        # What the fold's TFLite export records when the fold ends: its weights' sha256.
        fold_dir.tflite.write_text(json.dumps({"weights_sha256": content_hash(fold_dir.weights)}))
        fold_dir.weights.unlink()  # a new checkout: weights are not committed
    run = figures.load_run(copy)
    assert [figures.ensure_explain_model(run, f) for f in run.folds] == \
        [kept[f.index] for f in run.folds]
    assert kept[0].name.endswith(f"-{figures.EXPLAIN_VARIANT}.tflite")
    # An explain model made from other weights does not stand in for them.
    sidecar = kept[1].with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["source"]["weights_sha256"] = "0" * 64
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"fold\(s\) \[1\].*neither final weights"):
        figures.load_run(copy)


BLOCK_TF = textwrap.dedent("""\
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name in ("tensorflow", "keras") or name.startswith(("tensorflow.", "keras.")):
                raise ImportError("blocked " + name)
    sys.meta_path.insert(0, Block())
    """)


@pytest.mark.slow
def test_shipped_explain_model_runs_without_tensorflow(trained, figure, tmp_path):
    root, manifest, work = trained
    shipped = ship_explain_model(work, dest=tmp_path / "tflite_models")
    record = json.loads((RunDir(work).record / "record.json").read_text())
    assert shipped["fold"] == median_fold(record["per_fold"])
    assert shipped["tflite"] == tmp_path / "tflite_models" / "attention_fcn-emodb-explain.tflite"
    sidecar = json.loads(shipped["sidecar"].read_text())
    assert sidecar["outputs"] == ["probabilities", "attention"] and sidecar["labels"] == LABELS
    assert sidecar["source"]["fold"] == shipped["fold"]
    assert sidecar["source"]["chosen_by"] == "median test UA"
    # One fold's numbers, not a cross-validated estimate: never the default predictor.
    from ser_tf.lite.catalog import shipped_models

    assert "expected_accuracy" not in sidecar and shipped_models(shipped["tflite"].parent) == []
    card = shipped["card"].read_text()
    for text in ("German", "anger, happiness, neutral, sadness", "speaker-independent",
                 "not the best classifier", f"{shipped['test_UA']:.2f}",
                 "ser-tf explain speech.wav --model tflite_models/attention_fcn-emodb-explain"):
        assert text in card, text

    wav = manifest[0].path
    png = tmp_path / "map.png"
    code = BLOCK_TF + textwrap.dedent(f"""\
        import json
        from ser_tf import cli
        from ser_tf.reporting.attention_maps import ExplainLiteModel
        lite = ExplainLiteModel({str(shipped['tflite'])!r})
        features, heard, lengths = lite.inputs({wav!r})
        p, alpha = lite.predict(features[None], [lengths])
        assert cli.main(["explain", {wav!r}, "--model", {str(shipped['tflite'])!r},
                         "--out", {str(png)!r}]) == 0
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        print(json.dumps({{"p": p[0].tolist(), "alpha_shape": list(alpha.shape),
                           "heard": heard}}))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # The corpus' longest file is 1.16 s: a 2 s (200-frame) input, 5 x 5 positions.
    assert result["alpha_shape"] == [1, 5, 5] and 0 < result["heard"] < 200
    assert sum(result["p"]) == pytest.approx(1.0, abs=1e-5)
    assert png.stat().st_size > 1000
    # The same probabilities as the fold's explain model the figure used.
    fold_model = ExplainLiteModel(figures.ensure_explain_model(
        figures.load_run(work), figures.load_run(work).folds[shipped["fold"]]))
    features, _, lengths = fold_model.inputs(wav)
    expected, _ = fold_model.predict(features[None], [lengths])
    np.testing.assert_allclose(result["p"], expected[0], atol=1e-5)


@pytest.mark.slow
def test_unfinished_run_and_non_run_folders_get_clear_errors(trained, tmp_path, capsys):
    root, manifest, work = trained
    copy = tmp_path / work.name
    shutil.copytree(work, copy, ignore=shutil.ignore_patterns("*.h5", "explain"))
    for fold in ("fold_00", "fold_01"):
        shutil.copy(work / fold / "final.weights.h5", copy / fold / "final.weights.h5")
    (copy / "fold_01" / "result.json").unlink()
    with pytest.raises(ValueError, match=r"unfinished: fold\(s\) \[1\] of 2"):
        figures.load_run(copy)
    assert figures.main(["--run-dir", str(copy), "--data-dir", str(root),
                         "--out", str(tmp_path / "x.png")]) == 1
    assert "unfinished" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(ValueError, match="unfinished"):
        ship_explain_model(copy, dest=tmp_path / "ship")
    with pytest.raises(ValueError, match="not a run's work folder"):
        figures.load_run(tmp_path)
    with pytest.raises(FileNotFoundError):
        figures.load_run(tmp_path / "missing.work")
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "variant": "1d"}))
    with pytest.raises(ValueError, match="variant 2d"):
        figures.load_run(copy)
