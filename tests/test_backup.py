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
