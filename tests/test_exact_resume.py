"""A fold killed mid-training and resumed is the fold an uninterrupted run trains, bit for bit.

Each case trains a tiny model on tiny data for 6 epochs without interruption, then again
killed in the middle of epoch 4 (3 epochs in the backup) and resumed by a second
``train_fold`` call on the same folder, and compares the final weights, the per-epoch
history and the fold's test scores exactly. Before the fix, a resumed fold restarted its
shuffle orders (epoch 4 got epoch 1's order), its repeat stream, its dropout masks and its
augmentation noise.
"""

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ser_tf.features.cache import FeatureSet  # noqa: E402
from ser_tf.training import kfold  # noqa: E402
from ser_tf.training.backup import STATE_FILE, seed_state_variables  # noqa: E402
from ser_tf.training.classifier import FitConfig, train_fold  # noqa: E402
from ser_tf.training.protocols import Fold  # noqa: E402
from ser_tf.training.rundir import BACKUP_DIR, HISTORY_FILE, WEIGHTS_FILE  # noqa: E402
from ser_tf.training.sources import CachedFeatureSource  # noqa: E402

EPOCHS, KILL_EPOCH = 6, 3  # 0-based epoch killed mid-way: the backup holds 3 epochs


class Killed(RuntimeError):
    pass


class KillMidEpoch(keras.callbacks.Callback):
    """Dies at the second step of epoch ``epoch`` (0-based), as a kill -9 would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            raise Killed(f"killed in epoch {self.epoch + 1}")


def with_killer(monkeypatch, epoch=KILL_EPOCH):
    original = kfold.fold_callbacks

    def fold_callbacks(*args, **kwargs):
        return original(*args, **kwargs) + [KillMidEpoch(epoch)]

    monkeypatch.setattr(kfold, "fold_callbacks", fold_callbacks)
    return original


def feature_set(n=36, shape=(8, 4), classes=3):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % classes
    features = rng.normal(size=(n, *shape)).astype("float32") + labels[:, None, None] * 0.5
    return FeatureSet(features, labels, [f"u{i:02d}" for i in range(n)],
                      tuple("abc"[:classes]), [None] * n)


def fold_of(ids, n_test=6, n_val=4):
    return Fold(index=1, train_ids=ids[n_test + n_val:], val_ids=ids[n_test:n_test + n_val],
                test_ids=ids[:n_test], selection_on_test=False)


def spectrogram_model(dropout=True):
    def build(num_outputs):
        layers = [keras.Input((8, 4)), keras.layers.Conv1D(6, 3, padding="same"),
                  keras.layers.BatchNormalization(), keras.layers.ReLU()]
        if dropout:
            layers.append(keras.layers.SpatialDropout1D(0.3))
        layers += [keras.layers.Flatten(), keras.layers.Dense(12, activation="relu")]
        if dropout:
            layers.append(keras.layers.Dropout(0.4))
        layers.append(keras.layers.Dense(num_outputs, activation="softmax"))
        return keras.Sequential(layers)

    return build


def fit_config(**kw):
    defaults = dict(epochs=EPOCHS, batch_size=8, learning_rate=0.02, checkpoint="best-val",
                    monitor="val_loss", seed=5, jit_compile=False,
                    lr_schedule={"name": "step", "every": 2, "factor": 0.5})
    return FitConfig(**{**defaults, **kw})


def final_weights(fold_dir, build, num_outputs=3):
    model = build(num_outputs)
    model.load_weights(fold_dir / WEIGHTS_FILE)
    return model.get_weights()


def comparable(result):
    """The result without what differs between any two runs (wall time) or by design."""
    history = {k: v for k, v in result["history"].items() if k != "epoch_seconds"}
    return {**{k: v for k, v in result.items() if k not in ("seconds", "history", "resumed")},
            "history": history}


def train_both_ways(tmp_path, monkeypatch, *, build, fit, source, fold, kill=KILL_EPOCH,
                    between=None, **kw):
    run = dict(build_model=build, fit=fit, source=source, n_folds=3, quiet=True, **kw)
    uninterrupted = train_fold(fold, tmp_path / "a", **run)
    original = with_killer(monkeypatch, kill)
    with pytest.raises(Killed):
        train_fold(fold, tmp_path / "b", **run)
    assert (tmp_path / "b" / BACKUP_DIR / STATE_FILE).is_file()
    assert len(json.loads((tmp_path / "b" / HISTORY_FILE).read_text())["loss"]) == kill
    monkeypatch.setattr(kfold, "fold_callbacks", original)
    if between is not None:
        between(tmp_path / "b")
    resumed = train_fold(fold, tmp_path / "b", **run)
    return uninterrupted, resumed


def assert_same_fold(tmp_path, uninterrupted, resumed, build, num_outputs=3):
    assert "resumed" not in uninterrupted
    assert comparable(resumed) == comparable(uninterrupted)
    for a, b in zip(final_weights(tmp_path / "a", build, num_outputs),
                    final_weights(tmp_path / "b", build, num_outputs)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("full_batches", [False, True], ids=["partial-batches", "full-batches"])
def test_a_resumed_fold_is_the_uninterrupted_fold(tmp_path, monkeypatch, full_batches):
    fs = feature_set()
    build = spectrogram_model()
    # 26 training utterances in batches of 8: 3 full + 1 of 2 per pass, or (full batches)
    # 3 steps per epoch and a stream whose epochs end inside passes.
    a, b = train_both_ways(tmp_path, monkeypatch, build=build, fit=fit_config(
        full_batches=full_batches), source=CachedFeatureSource(fs), fold=fold_of(fs.ids))
    assert_same_fold(tmp_path, a, b, build)
    (entry,) = b["resumed"]
    assert entry == {"at_epoch": KILL_EPOCH, "seed_generators": "restored", "exact": True,
                     "data": "fast-forwarded"}
    assert a["epochs_run"] == b["epochs_run"] == EPOCHS
    assert not (tmp_path / "b" / BACKUP_DIR).exists()


def test_each_part_of_the_state_matters(tmp_path, monkeypatch):
    """The data position and the seed generators each decide the resumed fold: leave either
    one out, as a resume did before, and the fold differs from the first resumed epoch on."""
    from ser_tf.training import classifier

    fs = feature_set()
    build = spectrogram_model()
    fold, fit = fold_of(fs.ids), fit_config(checkpoint="last")
    source = CachedFeatureSource(fs)
    reference = train_fold(fold, tmp_path / "a", build_model=build, fit=fit, source=source,
                           quiet=True)["history"]["loss"]

    def restarting_data(source, fold, fit, split, done, steps_per_epoch):
        # the dataset as it was built before: every process starts at the first order
        return source.dataset(fold.train_ids, training=True, seed=fit.seed + int(fold.index),
                              repeat=fit.full_batches, **split), {}

    def forget_seeds(fold_dir):
        # seed generators back at their start, as the old backup's resume left them
        path = fold_dir / BACKUP_DIR / STATE_FILE
        with np.load(path) as state:
            arrays = dict(state)
        for k in range(int(arrays["n_seeds"])):
            arrays[f"s{k}"] = arrays[f"s{k}"] * np.array([1, 0], arrays[f"s{k}"].dtype)
        np.savez(path, **arrays)

    for name in ("data restarted", "seeds restarted"):
        folder = tmp_path / name.replace(" ", "-")
        original = with_killer(monkeypatch)
        with pytest.raises(Killed):
            train_fold(fold, folder, build_model=build, fit=fit, source=source, quiet=True)
        monkeypatch.setattr(kfold, "fold_callbacks", original)
        with monkeypatch.context() as patch:
            if name == "data restarted":
                patch.setattr(classifier, "_training_dataset", restarting_data)
            else:
                forget_seeds(folder)
            loss = train_fold(fold, folder, build_model=build, fit=fit, source=source,
                              quiet=True)["history"]["loss"]
        assert loss[:KILL_EPOCH] == reference[:KILL_EPOCH]
        assert loss[KILL_EPOCH] != reference[KILL_EPOCH], name


def test_a_source_without_consumed_is_resumed_as_far_as_possible(tmp_path, monkeypatch):
    """Its shuffle orders are replayed from outside (exact here: no augmentation, no repeat
    stream), but the result cannot know that and says the resume may not be exact."""
    fs = feature_set()

    class OwnSource(CachedFeatureSource):
        def dataset(self, ids, *, task, training, batch_size, seed=None, repeat=False):
            return super().dataset(ids, task=task, training=training, batch_size=batch_size,
                                   seed=seed, repeat=repeat)

    build = spectrogram_model()
    a, b = train_both_ways(tmp_path, monkeypatch, build=build, fit=fit_config(),
                           source=OwnSource(fs), fold=fold_of(fs.ids))
    assert_same_fold(tmp_path, a, b, build)
    (entry,) = b["resumed"]
    assert entry["exact"] is False and "takes no `consumed`" in entry["data"]


def test_a_state_from_before_seeds_were_saved_resumes_exactly(tmp_path, monkeypatch):
    """The two runs in progress were backed up by the old FoldBackup (weights, optimizer,
    epoch; no seed generators, no resume log): the seed generators are derived from the
    step count, and the fold still comes out as if never interrupted."""
    fs = feature_set()
    build = spectrogram_model()

    def as_old_backup(fold_dir):
        path = fold_dir / BACKUP_DIR / STATE_FILE
        with np.load(path) as state:
            arrays = {k: state[k] for k in state.files
                      if not (k.startswith("s") or k in ("n_seeds", "resumes"))}
        np.savez(path, **arrays)

    a, b = train_both_ways(tmp_path, monkeypatch, build=build, fit=fit_config(),
                           source=CachedFeatureSource(fs), fold=fold_of(fs.ids),
                           between=as_old_backup)
    assert_same_fold(tmp_path, a, b, build)
    assert b["resumed"][0]["seed_generators"] == "derived from the step count"
    assert b["resumed"][0]["exact"] is True


def test_seed_generators_draw_once_per_training_step():
    """What deriving them from the step count rests on, for this project's random layers
    (Light-SERNet's Dropout, TIM-Net's SpatialDropout1D), validation and predict included."""
    from ser_tf.models.lightsernet import build_lightsernet
    from ser_tf.models.timnet import build_timnet

    for model in (build_lightsernet(3, (32, 13), path_filters=4, final_filters=8),
                  build_timnet(input_shape=(20, 6), num_classes=3, n_blocks=2, filters=4)):
        model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
        seeds = seed_state_variables(model)
        assert seeds, type(model).__name__
        start = [np.asarray(v).copy() for v in seeds]
        assert all(s[1] == 0 for s in start)
        x = np.random.default_rng(0).normal(size=(10, *model.input_shape[1:])).astype("float32")
        y = np.eye(3)[np.arange(10) % 3]
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x, y))
        model.predict(x, verbose=0)
        steps = int(model.optimizer.iterations.numpy())
        assert steps == 6
        for before, v in zip(start, seeds):
            np.testing.assert_array_equal(np.asarray(v), before + np.array([0, steps]))


def test_a_resumed_waveform_fold_with_awgn_is_the_uninterrupted_fold(tmp_path, monkeypatch):
    from ser_tf.data import load_manifest
    from ser_tf.data.synthetic import make_emodb_like
    from ser_tf.features.recipes import FeatureRecipe
    from ser_tf.training.sources import WaveformSource, awgn_augmentation

    corpus = load_manifest("EMODB", make_emodb_like(tmp_path / "emodb", per_class=6,
                                                    duration=0.3, classes="WLN"))
    recipe = FeatureRecipe("tenth", 16000, {"kind": "window", "offset": 0.0, "duration": 0.1})
    source = WaveformSource(corpus, recipe, augment=awgn_augmentation((5, 15), seed=3))

    def build(num_outputs):
        return keras.Sequential([keras.Input((1600,)), keras.layers.Reshape((1600, 1)),
                                 keras.layers.Conv1D(4, 16, strides=16, activation="relu"),
                                 keras.layers.GlobalAveragePooling1D(),
                                 keras.layers.Dropout(0.2),
                                 keras.layers.Dense(num_outputs, activation="softmax")])

    ids = source.ids
    fold = Fold(index=0, train_ids=ids[5:], val_ids=ids[2:5], test_ids=ids[:2],
                selection_on_test=False)
    for full_batches in (False, True):
        folder = tmp_path / ("full" if full_batches else "partial")
        a, b = train_both_ways(folder, monkeypatch, build=build, source=source, fold=fold,
                               fit=fit_config(batch_size=4, full_batches=full_batches))
        assert_same_fold(folder, a, b, build, num_outputs=len(corpus.labels))
        assert b["resumed"][0]["exact"] is True


def test_a_resumed_tfrecord_fold_is_the_uninterrupted_fold(tmp_path, monkeypatch):
    from ser_tf.training.sources import TFRecordSource, write_tfrecord_shards
    from ser_tf.training.tasks import ClassificationTask

    fs = feature_set(n=30)
    examples = ({"id": uid, "inputs": {"x": fs.features[i]}, "target": int(fs.labels[i])}
                for i, uid in enumerate(fs.ids))
    source = TFRecordSource(write_tfrecord_shards(examples, tmp_path / "tfr", shard_size=7),
                            shuffle_buffer=9)
    build = spectrogram_model()
    fold = fold_of(fs.ids)
    for full_batches in (False, True):
        folder = tmp_path / ("full" if full_batches else "partial")
        a, b = train_both_ways(folder, monkeypatch, build=build, source=source, fold=fold,
                               task=ClassificationTask(("a", "b", "c")),
                               fit=fit_config(full_batches=full_batches))
        assert_same_fold(folder, a, b, build)


def test_the_rerun_says_what_it_skips_and_where_the_fold_resumes(tmp_path, monkeypatch,
                                                                 capsys):
    """Through the k-fold runner: fold 1 finished, fold 2 killed in its 4th epoch. The rerun
    names the skipped fold and where fold 2 resumes, and fold 2's result.json says it was
    resumed (the run record's per-fold entries carry it on)."""
    from ser_tf.training.kfold import run_kfold
    from ser_tf.util.jsonio import read_json

    fs = feature_set()
    ids = fs.ids
    folds = [Fold(index=k, train_ids=[i for i in ids if i not in ids[6 * k:6 * k + 10]],
                  val_ids=ids[6 * k + 6:6 * k + 10], test_ids=ids[6 * k:6 * k + 6],
                  selection_on_test=False) for k in range(2)]
    run = dict(build_model=spectrogram_model(dropout=False), fit=fit_config(),
               source=CachedFeatureSource(fs), n_folds=2)

    def train(quiet):
        return lambda fold, fold_dir: train_fold(fold, fold_dir, quiet=quiet, **run)

    original = kfold.fold_callbacks

    def kill_the_second_fold(fold_dir, **kwargs):
        extra = [KillMidEpoch(KILL_EPOCH)] if fold_dir.name == "fold_01" else []
        return original(fold_dir, **kwargs) + extra

    monkeypatch.setattr(kfold, "fold_callbacks", kill_the_second_fold)
    with pytest.raises(Killed):
        run_kfold(tmp_path, folds, train(quiet=True), quiet=True)
    monkeypatch.setattr(kfold, "fold_callbacks", original)
    capsys.readouterr()
    results = run_kfold(tmp_path, folds, train(quiet=False))
    assert capsys.readouterr().out.splitlines() == [
        "fold 1 of 2 done, skipped (fold_00/result.json)",
        f"fold 2/2 resumes at epoch {KILL_EPOCH + 1}/{EPOCHS}: {KILL_EPOCH} epoch(s) done, "
        f"state in {tmp_path / 'fold_01' / BACKUP_DIR}"]
    assert "resumed" not in read_json(tmp_path / "fold_00" / "result.json")
    stored = read_json(tmp_path / "fold_01" / "result.json")
    assert stored["resumed"] == results[1]["resumed"] == [
        {"at_epoch": KILL_EPOCH, "seed_generators": "none", "exact": True,
         "data": "fast-forwarded"}]


KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path

import keras

from ser_tf.training import kfold
from ser_tf.training.classifier import train_fold
from ser_tf.training.sources import CachedFeatureSource
from tests.test_exact_resume import KILL_EPOCH, feature_set, fit_config, fold_of, spectrogram_model


class SigKill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.current == KILL_EPOCH and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # no Python clean-up, no finally blocks


original = kfold.fold_callbacks
kfold.fold_callbacks = lambda *a, **k: original(*a, **k) + [SigKill()]
fs = feature_set()
train_fold(fold_of(fs.ids), Path(sys.argv[1]), build_model=spectrogram_model(),
           fit=fit_config(), source=CachedFeatureSource(fs), n_folds=3, quiet=True)
"""


def test_a_fold_killed_by_sigkill_resumes_to_the_uninterrupted_fold(tmp_path):
    """A real kill -9 of the training process (not an exception inside it): what is on
    disk when the process dies is enough to resume to the uninterrupted fold."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    killed = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "b")], cwd=repo,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(json.loads((tmp_path / "b" / HISTORY_FILE).read_text())["loss"]) == KILL_EPOCH
    fs = feature_set()
    build = spectrogram_model()
    run = dict(build_model=build, fit=fit_config(), source=CachedFeatureSource(fs), n_folds=3,
               quiet=True)
    uninterrupted = train_fold(fold_of(fs.ids), tmp_path / "a", **run)
    resumed = train_fold(fold_of(fs.ids), tmp_path / "b", **run)
    assert_same_fold(tmp_path, uninterrupted, resumed, build)
    assert resumed["resumed"][0]["at_epoch"] == KILL_EPOCH
