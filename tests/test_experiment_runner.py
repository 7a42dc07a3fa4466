"""End to end on a tiny generated corpus: cached features -> folds -> k-fold -> run record."""

import json

import keras
import pytest

from ser_tf.data import load_manifest
from ser_tf.data.synthetic import make_emodb_like
from ser_tf.features.recipes import get_recipe
import ser_tf.papers.lightsernet  # noqa: F401 (registers the "lightsernet" recipe)
from ser_tf.experiments import runner
from ser_tf.training import classifier
from ser_tf.training.classifier import FitConfig
from ser_tf.training.protocols import PaperSplit, kfold_test_folds
from ser_tf.experiments.runner import run_experiment
from ser_tf.training.kfold import RunLockedError


def tiny_model(num_classes):
    return keras.Sequential([keras.Input((None, 40)), keras.layers.GlobalAveragePooling1D(),
                             keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(num_classes, activation="softmax")])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = make_emodb_like(tmp_path_factory.mktemp("c") / "emodb", per_class=4, duration=0.6)
    return load_manifest("EMODB", root)


RECIPE = get_recipe("lightsernet").replace(segment={"duration": 0.6})
FIT = FitConfig(epochs=3, batch_size=8, learning_rate=1e-2, checkpoint="best-val",
                monitor="val_loss", seed=7, jit_compile=False)


def run(corpus, tmp, **kw):
    return run_experiment(corpus, RECIPE, tiny_model, paper="tiny", protocol="clean",
                          fit=FIT, results_dir=tmp / "results", cache_dir=tmp / "cache",
                          n_folds=2, fold_seed=1, quiet=True, **kw)


def test_same_seed_same_metrics_and_a_complete_record(corpus, tmp_path):
    a = run(corpus, tmp_path / "a")
    b = run(corpus, tmp_path / "b")
    rec_a = json.loads((a["record"] / "record.json").read_text())
    rec_b = json.loads((b["record"] / "record.json").read_text())
    assert a["run_id"] == b["run_id"]
    assert [f["metrics"] for f in rec_a["per_fold"]] == [f["metrics"] for f in rec_b["per_fold"]]
    assert rec_a["summary"] == rec_b["summary"]
    for name in ("confusion_matrix.png", "training_curves.png", "folds.json"):
        assert (a["record"] / name).is_file()
    assert rec_a["protocol"] == "clean" and rec_a["folds"]["n_folds"] == 2
    assert rec_a["config"]["fit"]["epochs"] == 3 and rec_a["labels"][0] == "anger"
    assert all(f["epochs_run"] == 3 for f in rec_a["per_fold"])
    # The second run's features came from its own (empty) cache: both computed all files.
    assert a["feature_stats"]["computed"] == b["feature_stats"]["computed"] == len(corpus)


def killed_in_fold_1_once(monkeypatch):
    """Make the next run die in fold 1 the first time it gets there; returns the folds
    trained, in order."""
    real, calls = classifier.train_fold, []

    def flaky(fold, fold_dir, **kw):
        calls.append(fold.index)
        if fold.index == 1 and calls.count(1) == 1:
            raise KeyboardInterrupt("killed")
        return real(fold, fold_dir, **kw)

    monkeypatch.setattr(runner, "train_fold", flaky)
    return calls


def test_kill_mid_run_resumes_without_redoing_finished_folds(corpus, tmp_path, monkeypatch):
    calls = killed_in_fold_1_once(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(corpus, tmp_path)
    work = next((tmp_path / "results" / "tiny" / "EMODB").glob("*.work"))
    assert (work / "fold_00" / "result.json").is_file()
    assert not (work / "fold_01" / "result.json").exists()
    assert not [p for p in (tmp_path / "results" / "tiny" / "EMODB").iterdir()
                if not p.name.endswith(".work")]  # no record before all folds are done
    out = run(corpus, tmp_path)
    assert calls == [0, 1, 1]  # fold 0 was not trained again
    assert out["feature_stats"]["computed"] == 0  # features came from the cache
    assert (out["record"] / "record.json").is_file()
    # A fold's time is the sum of its epochs' wall times, each recorded in its history.
    fold0 = json.loads((work / "fold_00" / "result.json").read_text())
    assert fold0["seconds"] == pytest.approx(sum(fold0["history"]["epoch_seconds"]), abs=1e-3)
    assert all(t > 0 for t in fold0["history"]["epoch_seconds"])


def test_a_run_another_process_is_training_is_refused_untouched(corpus, tmp_path, monkeypatch,
                                                                 run_lock_held_by):
    """A second process on the same run (a make reaching a run another terminal trains)
    stops before writing anything; once the first is gone the run resumes as usual."""
    calls = killed_in_fold_1_once(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(corpus, tmp_path)
    work = next((tmp_path / "results" / "tiny" / "EMODB").glob("*.work"))
    config = (work / "config.json").stat().st_mtime_ns
    with run_lock_held_by(work / "run.lock", 4242):
        with pytest.raises(RunLockedError, match=r"being trained by another process \(pid 4242"):
            run(corpus, tmp_path)
    assert calls == [0, 1]  # the refused call trained nothing
    assert (work / "config.json").stat().st_mtime_ns == config
    out = run(corpus, tmp_path)
    assert calls == [0, 1, 1] and (out["record"] / "record.json").is_file()


#: A paper's own split for the tests: the shared shuffled KFold, chosen on the test fold.
TINY_SPLIT = PaperSplit("tiny", {"paper": kfold_test_folds}, lambda manifest, protocol: 0)


def test_paper_protocol_selects_on_test_and_says_so(corpus, tmp_path, capsys):
    out = run_experiment(corpus, RECIPE, tiny_model, paper="tiny", protocol="paper", fit=FIT,
                         paper_split=TINY_SPLIT,
                         results_dir=tmp_path / "r", cache_dir=tmp_path / "c", n_folds=2,
                         fold_seed=3, quiet=False)
    record = json.loads((out["record"] / "record.json").read_text())
    assert record["folds"]["selection_on_test"] is True
    assert record["config"]["fit"]["checkpoint"] == "paper"
    assert "optimistic" in record["protocol_warning"]
    assert "optimistic" in capsys.readouterr().out


def test_paper_protocol_with_the_last_epoch_chooses_nothing_on_test(corpus, tmp_path):
    """TIM-Net's corrected setting: the original folds, the last epoch's weights."""
    from dataclasses import replace

    out = run_experiment(corpus, RECIPE, tiny_model, paper="tiny", protocol="paper",
                         paper_split=TINY_SPLIT,
                         fit=replace(FIT, checkpoint="last"), results_dir=tmp_path / "r",
                         cache_dir=tmp_path / "c", n_folds=2, fold_seed=3, quiet=True)
    record = json.loads((out["record"] / "record.json").read_text())
    assert record["config"]["fit"]["checkpoint"] == "last"
    assert [f["selection_on_test"] for f in record["per_fold"]] == [False, False]
    assert [f["chosen_epoch"] for f in record["per_fold"]] == [3, 3]
    assert "nothing was chosen" in record["protocol_warning"]
    assert "optimistic" not in record["protocol_warning"]


def test_check_every_validates_only_on_checked_epochs(corpus, tmp_path):
    from dataclasses import replace

    out = run_experiment(corpus, RECIPE, tiny_model, paper="tiny", protocol="clean",
                         fit=replace(FIT, epochs=4, check_every=2), results_dir=tmp_path / "r",
                         cache_dir=tmp_path / "c", n_folds=2, fold_seed=1, quiet=True)
    record = json.loads((out["record"] / "record.json").read_text())
    for fold in record["per_fold"]:
        assert [c["epoch"] for c in fold["checkpoint"]["checks"]] == [2, 4]
        assert fold["chosen_epoch"] in (2, 4)
    histories = json.loads((out["record"] / "histories.json").read_text())
    for history in histories:
        assert len(history["loss"]) == 4 and None not in history["loss"]
        assert [v is None for v in history["val_loss"]] == [True, False, True, False]


def test_on_fold_done_runs_per_fold_and_catches_up_finished_folds_on_resume(corpus, tmp_path):
    calls = []

    def hook(work_dir, fold, feature_set, result):
        calls.append((fold.index, result["fold"], len(feature_set.ids)))

    out = run(corpus, tmp_path, on_fold_done=hook)
    assert calls == [(0, 0, len(corpus)), (1, 1, len(corpus))]  # each fold as it finished
    # Resumed (here: everything finished) on a machine that still has fold 0's weights
    # only: the hook runs again for fold 0, so it can make what an earlier session missed.
    (out["work_dir"] / "fold_01" / "final.weights.h5").unlink()
    calls.clear()
    run(corpus, tmp_path, on_fold_done=hook)
    assert calls == [(0, 0, len(corpus))]


def test_record_names_the_commit_the_run_started_from(corpus, tmp_path, monkeypatch):
    from ser_tf.reporting import records

    # Commits land while a long run trains (its fold results are committed as they finish):
    # the record must name the code the process runs, not the HEAD at the end.
    heads = iter([{"commit": "started-here", "dirty": False}])
    monkeypatch.setattr(records, "git_info",
                        lambda repo=None: next(heads, {"commit": "landed-later", "dirty": False}))
    out = run(corpus, tmp_path)
    record = json.loads((out["record"] / "record.json").read_text())
    assert record["git"] == {"commit": "started-here", "dirty": False}

    # Rerunning the finished run trains nothing: the rebuilt record keeps the commit,
    # time, machine and versions of the process that trained it.
    # Rerunning on another machine must not relabel where the folds ran.
    monkeypatch.setattr(records.platform, "platform", lambda: "another-host")
    again = run(corpus, tmp_path)
    rebuilt = json.loads((again["record"] / "record.json").read_text())
    assert rebuilt["machine"] == record["machine"]
    assert rebuilt["machine"]["platform"] != "another-host"
    assert rebuilt["versions"] == record["versions"]
    assert rebuilt["git"] == {"commit": "started-here", "dirty": False}
    assert rebuilt["created"] == record["created"]
    assert rebuilt["summary"] == record["summary"]


@pytest.mark.parametrize("paper", ["timnet", "lightsernet"])
def test_experiment_cli_names_a_missing_corpus_folder_in_one_line(paper, tmp_path, capsys):
    import importlib

    cli = importlib.import_module(f"ser_tf.experiments.{paper}")
    missing = tmp_path / "no-emodb-here"
    assert cli.main(["--data-dir", str(missing), "--results-dir", str(tmp_path / "r"),
                     "--cache-dir", str(tmp_path / "c"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"python -m ser_tf.experiments.{paper}: error: ")
    assert f"{missing}: not a folder" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing was started


class CountTrainingRows(keras.layers.Layer):
    """Adds the rows of every training batch to a counter (identity otherwise)."""

    def build(self, shape):
        self.rows = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                    name="rows")

    def call(self, x, training=False):
        if training:
            self.rows.assign_add(keras.ops.cast(keras.ops.shape(x)[0], "float32"))
        return x


@pytest.mark.parametrize("full_batches", [False, True])
def test_full_batches_train_on_whole_batches_only(corpus, tmp_path, full_batches):
    from ser_tf.features.cache import extract_features
    from ser_tf.training.protocols import make_folds

    features = extract_features(corpus, RECIPE, tmp_path / "cache", progress=False)
    fold = make_folds(corpus, "clean", n_folds=2, seed=1)[0]
    n_train, batch, epochs = len(fold.train_ids), 8, 3
    assert n_train % batch  # a short last batch exists to be dropped
    counter = CountTrainingRows()

    def build(num_classes):
        return keras.Sequential([keras.Input((None, 40)), counter,
                                 keras.layers.GlobalAveragePooling1D(),
                                 keras.layers.Dense(num_classes, activation="softmax")])

    fit = FitConfig(epochs=epochs, batch_size=batch, checkpoint="last", seed=7,
                    jit_compile=False, full_batches=full_batches)
    classifier.train_fold(fold, tmp_path / "fold", feature_set=features, build_model=build,
                          fit=fit, quiet=True)
    rows = int(counter.rows.numpy())
    assert rows == (epochs * (n_train // batch) * batch if full_batches else epochs * n_train)


@pytest.mark.parametrize("full_batches", [False, True])
def test_training_and_validation_steps_are_not_retraced_every_epoch(corpus, tmp_path,
                                                                       full_batches):
    """Retracing a step every epoch would cost seconds per epoch: the train and validation
    steps are traced at most twice (the first batch's shape, then one relaxed shape once a
    batch of another length or size comes), however many epochs run."""
    from ser_tf.features.cache import extract_features
    from ser_tf.training.protocols import make_folds

    features = extract_features(corpus, RECIPE, tmp_path / "cache", progress=False)
    fold = make_folds(corpus, "clean", n_folds=2, seed=1)[0]
    assert fold.val_ids and len(fold.train_ids) % 8
    traced = {"train": 0, "test": 0}

    class CountingTraces(keras.Sequential):
        # A step's Python body runs only while TensorFlow traces it.
        def train_step(self, data):
            traced["train"] += 1
            return super().train_step(data)

        def test_step(self, data):
            traced["test"] += 1
            return super().test_step(data)

    def build(num_classes):
        return CountingTraces([keras.Input((None, 40)), keras.layers.GlobalAveragePooling1D(),
                               keras.layers.Dense(num_classes, activation="softmax")])

    fit = FitConfig(epochs=5, batch_size=8, checkpoint="best-val", seed=7, jit_compile=False,
                    full_batches=full_batches)
    result = classifier.train_fold(fold, tmp_path / "fold", feature_set=features,
                                   build_model=build, fit=fit, quiet=True)
    assert result["epochs_run"] == 5
    assert 1 <= traced["train"] <= 2, traced
    assert 1 <= traced["test"] <= 2, traced


def test_settings_added_later_stay_out_of_the_run_id_at_their_default():
    assert "full_batches" not in FitConfig().to_dict()
    assert "epsilon" not in FitConfig().to_dict()
    assert FitConfig(full_batches=True).to_dict()["full_batches"] is True
    assert FitConfig(**FitConfig(full_batches=True).to_dict()).full_batches is True
