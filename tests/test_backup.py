"""FoldBackup: the in-fold resume state is one atomic file; Keras-format backups still resume."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ser_tf.training.backup import KERAS_METADATA, KERAS_WEIGHTS, STATE_FILE, FoldBackup  # noqa: E402


class Stop(RuntimeError):
    pass


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def model(units=2):
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation="softmax")])
    m.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    return m


class StopAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Stop(epoch)


class Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def test_state_is_one_file_and_resume_restores_weights_and_optimizer(tmp_path):
    x, y = data()
    first = model()
    with pytest.raises(Stop):
        first.fit(x, y, epochs=5, batch_size=16, verbose=0,
                  callbacks=[FoldBackup(tmp_path / "b"), StopAt(3)])
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [STATE_FILE]
    saved = [w.copy() for w in first.get_weights()]
    iterations = int(first.optimizer.iterations.numpy())

    second, epochs, backup = model(), Epochs(), FoldBackup(tmp_path / "b")

    class Check(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 3:  # before any step of the resumed fit: the killed run's state
                for a, b in zip(self.model.get_weights(), saved):
                    np.testing.assert_array_equal(a, b)
                assert int(self.model.optimizer.iterations.numpy()) == iterations

    second.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[backup, Check(), epochs])
    assert backup.resumed_epoch == 3 and epochs.seen == [3, 4]
    assert not (tmp_path / "b").exists()  # fit ended normally: nothing left to resume


def test_a_keras_backup_from_an_older_run_is_resumed(tmp_path):
    x, y = data()
    first = model()
    with pytest.raises(Stop):
        first.fit(x, y, epochs=5, batch_size=16, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "b"),
                                                              double_checkpoint=True),
                             StopAt(2)])
    assert (tmp_path / "b" / KERAS_WEIGHTS).is_file() and (tmp_path / "b" / KERAS_METADATA).is_file()
    saved = [w.copy() for w in first.get_weights()]
    second, epochs = model(), Epochs()

    class Check(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                for a, b in zip(self.model.get_weights(), saved):
                    np.testing.assert_array_equal(a, b)
                raise Stop(epoch)

    backup = FoldBackup(tmp_path / "b")
    with pytest.raises(Stop):
        second.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[backup, epochs, Check()])
    assert backup.resumed_epoch == 2 and epochs.seen == [2]


def test_a_state_of_another_model_is_refused(tmp_path):
    x, y = data()
    with pytest.raises(Stop):
        model().fit(x, y, epochs=3, verbose=0, callbacks=[FoldBackup(tmp_path / "b"), StopAt(1)])
    with pytest.raises(ValueError, match="another model"):
        model(units=3).fit(x, y, epochs=3, verbose=0, callbacks=[FoldBackup(tmp_path / "b")])


def dropout_model():
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5),
                          keras.layers.Dense(2, activation="softmax")])
    m.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    return m


def test_seed_generators_and_the_learning_rate_come_back_and_resumes_are_logged(tmp_path):
    from ser_tf.training.backup import saved_epoch, seed_state_variables

    x, y = data()
    assert saved_epoch(tmp_path / "b") is None
    first = dropout_model()
    first.optimizer.learning_rate.assign(0.02)  # as a schedule callback sets it
    with pytest.raises(Stop):
        first.fit(x, y, epochs=6, batch_size=16, verbose=0,
                  callbacks=[FoldBackup(tmp_path / "b"), StopAt(2)])
    assert saved_epoch(tmp_path / "b") == 2
    (seed,) = seed_state_variables(first)
    saved_seed = np.asarray(seed).copy()
    assert saved_seed[1] == 4  # one draw per step: 2 epochs of 2 steps

    second = dropout_model()
    (fresh,) = seed_state_variables(second)
    assert np.asarray(fresh)[1] == 0

    class Check(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                np.testing.assert_array_equal(np.asarray(fresh), saved_seed)
                assert float(self.model.optimizer.learning_rate) == pytest.approx(0.02)
                raise Stop(epoch)

    backup = FoldBackup(tmp_path / "b")
    backup.resume_notes = {"data": "fast-forwarded"}
    with pytest.raises(Stop):
        second.fit(x, y, epochs=6, batch_size=16, verbose=0, callbacks=[backup, Check()])
    assert backup.resumes == [{"at_epoch": 2, "seed_generators": "restored", "exact": True,
                               "data": "fast-forwarded"}]

    # That resume trained no epoch, so it left no trace. Resumed again, killed after epoch 4,
    # resumed by a caller that did not position the data: the log keeps both resumes.
    third, backup = dropout_model(), FoldBackup(tmp_path / "b")
    backup.resume_notes = {"data": "fast-forwarded"}
    with pytest.raises(Stop):
        third.fit(x, y, epochs=6, batch_size=16, verbose=0, callbacks=[backup, StopAt(4)])
    last = FoldBackup(tmp_path / "b")
    dropout_model().fit(x, y, epochs=6, batch_size=16, verbose=0, callbacks=[last])
    assert [(r["at_epoch"], r["exact"], r["data"]) for r in last.resumes] == [
        (2, True, "fast-forwarded"), (4, False, "not positioned by the trainer")]


def test_an_older_state_without_seed_generators_derives_them_from_the_step_count(tmp_path):
    from ser_tf.training.backup import seed_state_variables

    x, y = data()
    first = dropout_model()
    with pytest.raises(Stop):
        first.fit(x, y, epochs=5, batch_size=8, verbose=0,
                  callbacks=[FoldBackup(tmp_path / "b"), StopAt(3)])
    expected = np.asarray(seed_state_variables(first)[0]).copy()
    path = tmp_path / "b" / STATE_FILE
    with np.load(path) as state:  # what FoldBackup wrote before it kept seed generators
        old = {k: state[k] for k in state.files if k[0] in "wo" or k.startswith("n_w")
               or k in ("n_optimizer", "epoch")}
    np.savez(path, **old)

    second, backup = dropout_model(), FoldBackup(tmp_path / "b")

    class Check(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            np.testing.assert_array_equal(np.asarray(seed_state_variables(self.model)[0]),
                                          expected)
            raise Stop(epoch)

    with pytest.raises(Stop):
        second.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[backup, Check()])
    assert backup.resumes[0]["seed_generators"] == "derived from the step count"
