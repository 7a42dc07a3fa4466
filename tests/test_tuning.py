"""keras-tuner drives a paper's model through the build(hp) hook, on training and
validation ids only."""

import json

import keras
import numpy as np
import pytest

pytest.importorskip("keras_tuner")
import keras_tuner as kt  # noqa: E402

from ser_tf.training.classifier import FitConfig  # noqa: E402
from ser_tf.training.protocols import Fold  # noqa: E402
from ser_tf.training.sources import TFRecordSource, write_tfrecord_shards  # noqa: E402
from ser_tf.training.tasks import ClassificationTask  # noqa: E402
from ser_tf.tuning.search import hypermodel, resolve, tune_fold  # noqa: E402

TASK = ClassificationTask(("low", "high"))


def build(num_outputs, units=4):
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(num_outputs, activation="softmax")])


def space(hp):
    return {"fit": {"learning_rate": hp.Choice("learning_rate", [1e-5, 1e-1])},
            "model": {"units": hp.Choice("units", [2, 8])}}


def test_build_hp_compiles_the_drawn_model_through_fit_config():
    hp = kt.HyperParameters()
    hp.Fixed("learning_rate", 0.05)
    hp.Fixed("units", 8)
    model = hypermodel(build, FitConfig(jit_compile=False), TASK, space).build(hp)
    assert model.layers[0].units == 8
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    assert model.loss is not None and model.compiled


def test_space_sections_and_fields_are_checked():
    hp = kt.HyperParameters()
    with pytest.raises(ValueError, match="unknown FitConfig fields"):
        resolve(lambda hp: {"fit": {"learnig_rate": 1.0}}, hp)
    with pytest.raises(ValueError, match="'fit' and 'model'"):
        resolve(lambda hp: {"optimiser": {}}, hp)


class Recording(TFRecordSource):
    """A source that remembers every id a dataset was asked for."""

    asked: set = set()

    def dataset(self, ids, **kw):
        Recording.asked |= set(ids)
        return super().dataset(ids, **kw)


def test_tune_fold_finds_the_working_learning_rate_without_reading_test_ids(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2)).astype("float32")
    data = ({"id": f"u{i:03d}", "inputs": {"x": x[i]}, "target": int(x[i].sum() > 0)}
            for i in range(120))
    source = Recording(write_tfrecord_shards(data, tmp_path / "tfr", shard_size=50))
    ids = source.ids
    fold = Fold(0, train_ids=ids[:80], val_ids=ids[80:100], test_ids=ids[100:],
                selection_on_test=False)
    fit = FitConfig(epochs=6, batch_size=16, monitor="val_accuracy", jit_compile=False, seed=1)
    result = tune_fold(fold, source=source, task=TASK, build_model=build, fit=fit, space=space,
                       directory=tmp_path / "tuner", tuner="random", max_trials=4)
    assert result["best"]["learning_rate"] == 1e-1
    assert len(result["trials"]) == 4
    assert Recording.asked == set(ids[:100])
    paper_fold = Fold(1, ids[:80], ids[100:], ids[100:], selection_on_test=True)
    with pytest.raises(ValueError, match="validation ids apart from the test"):
        tune_fold(paper_fold, source=source, task=TASK, build_model=build, fit=fit,
                  space=space, directory=tmp_path / "t2")


def small_fold(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2)).astype("float32")
    data = ({"id": f"u{i:03d}", "inputs": {"x": x[i]}, "target": int(x[i].sum() > 0)}
            for i in range(60))
    source = TFRecordSource(write_tfrecord_shards(data, tmp_path / "tfr", shard_size=30))
    ids = source.ids
    return source, Fold(0, ids[:40], ids[40:50], ids[50:], selection_on_test=False)


@pytest.mark.parametrize("tuner", ["hyperband", "bayesian"])
def test_every_trial_writes_tensorboard_logs_and_the_best_values_resolve(tmp_path, tuner):
    source, fold = small_fold(tmp_path)
    fit = FitConfig(epochs=3, batch_size=16, monitor="val_loss", jit_compile=False, seed=1)
    result = tune_fold(fold, source=source, task=TASK, build_model=build, fit=fit, space=space,
                       directory=tmp_path / "tuner", tuner=tuner, max_epochs=3, max_trials=3)
    finished = [t for t in result["trials"] if t["status"] == "COMPLETED"]
    assert finished and result["trials_run"] == [t["trial_id"] for t in result["trials"]]
    logdir = tmp_path / "tuner" / "fold_00" / "tensorboard"
    assert result["tensorboard"] == str(logdir)
    for trial in finished:  # one log per trial, training and validation curves
        for part in ("train", "validation"):
            events = list((logdir / trial["trial_id"] / "execution0" / part).glob("events.*"))
            assert events and events[0].stat().st_size > 0, (trial["trial_id"], part)
    # The best values are the space's (Hyperband's own tuner/* values left out) and
    # resolve into the sections a training run takes.
    assert set(result["best"]) == {"learning_rate", "units"}
    assert result["fit"] == {"learning_rate": result["best"]["learning_rate"]}
    assert result["model"] == {"units": result["best"]["units"]}
    best = min(finished, key=lambda t: t["score"])
    assert result["best_trial"]["score"] == best["score"]
    assert result["distributed"] == {"role": "single", "tuner_id": "tuner0", "oracle": None}


def test_hyperband_on_a_small_grid_says_it_trained_no_trial_for_the_full_budget(tmp_path):
    """keras-tuner ends a Hyperband search once its space has no new values to draw: on a
    4-value space with a 9-epoch budget no trial is ever promoted, and the result must say
    so; a grid search trains every value for the full budget."""
    source, fold = small_fold(tmp_path)
    fit = FitConfig(epochs=9, batch_size=16, monitor="val_loss", jit_compile=False, seed=1)
    hyperband = tune_fold(fold, source=source, task=TASK, build_model=build, fit=fit,
                          space=space, directory=tmp_path / "hb", tuner="hyperband",
                          max_epochs=9)
    assert len(hyperband["trials"]) == 4
    assert max(t["values"]["tuner/epochs"] for t in hyperband["trials"]) < 9
    assert hyperband["note"] and "none trained more than" in hyperband["note"]
    grid = tune_fold(fold, source=source, task=TASK, build_model=build, fit=fit, space=space,
                     directory=tmp_path / "grid", tuner="grid", max_epochs=9)
    assert grid["note"] is None and grid["max_trials"] is None
    assert sorted((t["values"]["learning_rate"], t["values"]["units"]) for t in grid["trials"]) \
        == [(1e-5, 2), (1e-5, 8), (1e-1, 2), (1e-1, 8)]


def test_hyperband_shortfall_is_silent_once_a_trial_had_the_full_budget():
    from ser_tf.tuning.search import hyperband_shortfall

    def trial(epochs, score=1.0):
        return {"values": {"tuner/epochs": epochs}, "score": score}

    assert hyperband_shortfall([trial(1), trial(3), trial(9)], 9) is None
    assert "none trained more than 3 of the 9" in hyperband_shortfall([trial(1), trial(3)], 9)
    assert hyperband_shortfall([trial(1, score=None)], 9) is None  # nothing finished


def test_best_values_file_round_trip_and_clear_errors(tmp_path):
    from ser_tf.tuning.hparams import (HParamsError, apply_fit, provenance, read_hparams,
                                       write_hparams)

    path = write_hparams(tmp_path / "best.json", values={"learning_rate": 0.01, "units": 8},
                         fit={"learning_rate": 0.01}, model={"units": 8},
                         source={"tuner": "hyperband", "score": 0.5})
    hparams = read_hparams(path)
    assert (hparams.fit, hparams.model) == ({"learning_rate": 0.01}, {"units": 8})
    fit = apply_fit(FitConfig(learning_rate=1e-4, epochs=7), hparams)
    assert fit.learning_rate == 0.01 and fit.epochs == 7
    record = provenance(hparams)
    assert record["file"] == str(path.resolve()) and len(record["sha256"]) == 64
    assert record["source"]["tuner"] == "hyperband"
    bad = tmp_path / "bad.json"
    for text, message in (('{"fit": {"learnig_rate": 1}}', "unknown FitConfig fields"),
                          ("[1]", "JSON object"), ("{", "not JSON"),
                          ('{"values": {}}', "neither a 'fit' nor a 'model'"),
                          ('{"fit": {"epochs": 0}}', "must be positive"),
                          ('{"format": "other/2", "fit": {}}', "format")):
        bad.write_text(text)
        with pytest.raises(HParamsError, match=message):
            apply_fit(FitConfig(), read_hparams(bad))
    with pytest.raises(HParamsError, match="no such file"):
        read_hparams(tmp_path / "missing.json")


def test_distributed_environment_is_checked():
    from ser_tf.tuning.distributed import describe, environment, role

    assert role({}) == "single"
    assert role(environment("chief", "127.0.0.1", 8000)) == "chief"
    assert describe(environment("tuner1", "10.0.0.2", 8000)) == {
        "role": "worker", "tuner_id": "tuner1", "oracle": "10.0.0.2:8000"}
    for env, message in (({"KERASTUNER_ORACLE_PORT": "8000"}, "ORACLE_IP is not"),
                         ({"KERASTUNER_ORACLE_IP": "x"}, "ORACLE_PORT is not"),
                         ({"KERASTUNER_ORACLE_IP": "x", "KERASTUNER_ORACLE_PORT": "99999",
                           "KERASTUNER_TUNER_ID": "chief"}, "1-65535"),
                         ({"KERASTUNER_ORACLE_IP": "x", "KERASTUNER_ORACLE_PORT": "1"},
                          "TUNER_ID is not")):
        with pytest.raises(ValueError, match=message):
            role(env)


def test_search_flags_are_checked_when_parsed():
    from ser_tf.experiments.common import ExperimentParser
    from ser_tf.tuning.cli import (add_tuning_arguments, search_folder_name,
                                   search_settings)

    parser = ExperimentParser(prog="x")
    add_tuning_arguments(parser, max_epochs=30)
    args = parser.parse_args(["--tune"])
    assert search_settings(args) == {"tuner": "hyperband", "max_epochs": 30,
                                     "max_trials": 10, "overwrite": False}
    assert search_folder_name(search_settings(args)) == "hyperband-30ep"
    args = parser.parse_args(["--tune", "--tuner", "bayesian", "--tune-trials", "4",
                              "--tune-epochs", "5"])
    assert search_folder_name(search_settings(args)) == "bayesian-5ep-4trials"
    for argv in (["--tuner", "random"], ["--tune-epochs", "3"], ["--tune", "--hparams", "f"],
                 ["--tune", "--tune-trials", "3"], ["--tune", "--tuner", "nope"],
                 ["--tune", "--tuner", "grid", "--tune-trials", "2"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)


def test_search_state_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """keras-tuner's state files go through a temporary file and a rename: a write that
    dies before the rename leaves the previous state readable (keras-tuner's own write
    empties the file first, and a search killed then could not resume)."""
    from keras_tuner.src import utils

    from ser_tf.tuning import search

    search._keras_tuner()
    state = tmp_path / "oracle.json"
    assert utils.save_json(str(state), {"trials": 1}) == '{"trials": 1}'
    assert json.loads(state.read_text()) == {"trials": 1}

    def killed(*args):
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(search.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        utils.save_json(str(state), {"trials": 2})
    assert json.loads(state.read_text()) == {"trials": 1}


def test_an_unreadable_saved_search_says_how_to_start_afresh(tmp_path):
    """State emptied by a search killed with keras-tuner's own writer: one message naming
    the search folder and --tune-overwrite, not a JSONDecodeError traceback."""
    source, fold = small_fold(tmp_path)
    fit = FitConfig(epochs=1, batch_size=16, monitor="val_loss", jit_compile=False, seed=1)
    directory = tmp_path / "tuner"
    kwargs = dict(source=source, task=TASK, build_model=build, fit=fit, space=space,
                  directory=directory, tuner="random", max_trials=1, max_epochs=1,
                  tensorboard=False)
    tune_fold(fold, **kwargs)
    (directory / "fold_00" / "oracle.json").write_text("")
    with pytest.raises(ValueError, match=r"fold_00: a saved search state file is unreadable"
                                         r".*--tune-overwrite"):
        tune_fold(fold, **kwargs)
