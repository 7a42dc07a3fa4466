"""CheckpointPolicy on scripted metric sequences, its on-disk state, and EpochLogger output
(:mod:`ser_tf.training.progress`)."""

import io
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ser_tf.training.callbacks import (  # noqa: E402
    CheckpointPolicy, LastEpochPredictions, infer_mode)
from ser_tf.training.progress import EpochLogger  # noqa: E402


def tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.optimizer.build(model.trainable_variables)  # as after fit() starts
    return model


def mark(model, value):
    """Fill every weight with ``value`` so the test can tell which epoch's weights are in."""
    model.set_weights([np.full(w.shape, float(value), dtype=w.dtype) for w in model.get_weights()])


def marked_value(model):
    return float(model.get_weights()[0].flat[0])


def drive(policy, model, values, monitor="val_loss", start=0, end=True):
    """Feed ``values`` (one per epoch from ``start``) as fake epoch logs; weights = epoch+1."""
    policy.set_model(model)
    policy.on_train_begin()
    for epoch, value in enumerate(values, start=start):
        policy.on_epoch_begin(epoch)
        mark(model, epoch + 1)
        policy.on_epoch_end(epoch, {"loss": 1.0, monitor: value})
        if model.stop_training:
            break
    if end:
        policy.on_train_end()
    return policy


def test_best_val_picks_the_best_epoch_and_restores_its_weights():
    model = tiny_model()
    policy = drive(CheckpointPolicy("best-val", "val_loss"), model, [0.9, 0.7, 0.8, 0.5, 0.6])
    assert policy.mode == "min"
    assert policy.chosen_epoch == 4 and policy.best_value == pytest.approx(0.5)
    assert marked_value(model) == 4.0  # weights of epoch 4, not the last (5)
    assert [c["epoch"] for c in policy.checks] == [1, 2, 3, 4, 5]
    assert [c["improved"] for c in policy.checks] == [True, True, False, True, False]
    assert policy.to_dict()["selection_on_test"] is False


def test_max_mode_is_inferred_for_accuracy_and_ua():
    assert infer_mode("val_accuracy") == "max" and infer_mode("val_UA") == "max"
    assert infer_mode("val_loss") == "min"
    model = tiny_model()
    policy = drive(CheckpointPolicy("paper", "val_UA"), model, [40, 55, 55, 50], monitor="val_UA")
    assert policy.chosen_epoch == 2  # a tie is not an improvement: the first best stays
    assert policy.selection_on_test and policy.to_dict()["selection_on_test"] is True


def test_patience_counts_checks_and_stops():
    model = tiny_model()
    policy = drive(CheckpointPolicy("best-val", "val_loss", patience=2), model,
                   [0.5, 0.6, 0.7, 0.8, 0.9])
    assert policy.stopped_epoch == 3 and model.stop_training
    assert policy.chosen_epoch == 1 and marked_value(model) == 1.0


def test_min_epochs_and_check_every():
    model = tiny_model()
    # Better values at epochs 3 (before min_epochs) and 5 (not a check epoch) are ignored.
    values = [0.9, 0.8, 0.1, 0.7, 0.05, 0.6, 0.65, 0.7]
    policy = drive(CheckpointPolicy("best-val", "val_loss", min_epochs=4, check_every=2),
                   model, values)
    assert [c["epoch"] for c in policy.checks] == [4, 6, 8]
    assert policy.chosen_epoch == 6 and marked_value(model) == 6.0

    # patience counts checks, not epochs: with checks every 2 epochs and patience 2, the
    # stop comes 4 epochs after the best check.
    model = tiny_model()
    policy = drive(CheckpointPolicy("best-val", "val_loss", check_every=2, patience=2), model,
                   [1.0, 0.5, 0.4, 0.6, 0.3, 0.7, 0.8, 0.9])
    assert [c["epoch"] for c in policy.checks] == [2, 4, 6]
    assert policy.stopped_epoch == 6 and policy.chosen_epoch == 2

    # no stop before min_epochs even with patience 1
    model = tiny_model()
    policy = drive(CheckpointPolicy("best-val", "val_loss", min_epochs=5, patience=1), model,
                   [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert policy.stopped_epoch == 6 and policy.chosen_epoch == 5


def test_last_policy_keeps_the_final_weights_without_a_monitor():
    model = tiny_model()
    policy = drive(CheckpointPolicy("last"), model, [0.3, 0.2, 0.9], monitor="unused")
    assert policy.chosen_epoch == 3 and marked_value(model) == 3.0 and policy.checks == []


def test_no_check_happened_warns_and_keeps_last():
    model = tiny_model()
    with pytest.warns(UserWarning, match="no check"):
        policy = drive(CheckpointPolicy("best-val", min_epochs=10), model, [0.3, 0.2])
    assert policy.chosen_epoch == 2 and marked_value(model) == 2.0


def test_missing_monitor_is_a_clear_error():
    model = tiny_model()
    policy = CheckpointPolicy("best-val", "val_loss")
    policy.set_model(model)
    policy.on_train_begin()
    with pytest.raises(ValueError, match="validation_data"):
        policy.on_epoch_end(0, {"loss": 0.3})
    with pytest.raises(ValueError, match="unknown checkpoint policy"):
        CheckpointPolicy("best")
    with pytest.raises(ValueError, match=".weights.h5"):
        CheckpointPolicy(path="best.h5")


def test_state_on_disk_survives_a_restart(tmp_path):
    path = tmp_path / "best.weights.h5"
    model = tiny_model()
    first = drive(CheckpointPolicy("best-val", "val_loss", path=path), model, [0.5, 0.3, 0.4],
                  end=False)  # "killed" after epoch 3
    assert path.exists() and first.state_path.exists()
    assert json.loads(first.state_path.read_text())["best_epoch"] == 2

    model = tiny_model()  # a new process: new model, new policy, same files
    mark(model, 99)
    second = drive(CheckpointPolicy("best-val", "val_loss", path=path), model, [0.35, 0.45],
                   start=3)
    assert [c["epoch"] for c in second.checks] == [1, 2, 3, 4, 5]
    assert second.chosen_epoch == 2 and second.best_value == pytest.approx(0.3)
    assert marked_value(model) == 2.0  # best weights read back from the file


def test_interrupted_weights_save_is_rolled_forward(tmp_path, monkeypatch):
    path = tmp_path / "best.weights.h5"
    model = tiny_model()
    drive(CheckpointPolicy("best-val", "val_loss", path=path), model, [0.5], end=False)

    def killed(self):
        raise KeyboardInterrupt("killed between the state write and the rename")

    policy = CheckpointPolicy("best-val", "val_loss", path=path)
    monkeypatch.setattr(CheckpointPolicy, "_commit_weights", killed)
    with pytest.raises(KeyboardInterrupt):
        drive(policy, model, [0.2], start=1, end=False)  # epoch 2 improves; rename "killed"
    monkeypatch.undo()
    assert json.loads(policy.state_path.read_text())["best_epoch"] == 2

    model = tiny_model()
    resumed = drive(CheckpointPolicy("best-val", "val_loss", path=path), model, [0.9], start=2)
    assert resumed.chosen_epoch == 2 and marked_value(model) == 2.0
    assert not (tmp_path / "best.saving.weights.h5").exists()


def test_reading_the_best_weights_back_leaves_the_resumed_state_alone(tmp_path):
    """On resume the policy reads its best weights from disk (load_weights, which also
    loads the optimizer's variables): the weights, the optimizer state and the dropout
    seed generators the backup just restored must stay as they are until training ends."""
    from ser_tf.training.backup import seed_state_variables

    def model_with_dropout():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(0.5),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.optimizer.build(model.trainable_variables)
        return model

    path = tmp_path / "best.weights.h5"
    first = model_with_dropout()
    drive(CheckpointPolicy("best-val", "val_loss", path=path), first, [0.5, 0.3, 0.4], end=False)

    model = model_with_dropout()  # the backup's restore, in a new process:
    mark(model, 7)
    model.optimizer.iterations.assign(12)
    (seed,) = seed_state_variables(model)
    seed.assign(np.array([5, 12], "uint32"))
    optimizer = [np.asarray(v).copy() for v in model.optimizer.variables]
    policy = CheckpointPolicy("best-val", "val_loss", path=path)
    policy.set_model(model)
    policy.on_train_begin()
    policy.on_epoch_begin(3)  # the resumed fit's first epoch reads the best weights back
    assert marked_value(model) == 7.0
    np.testing.assert_array_equal(np.asarray(seed), [5, 12])
    for before, variable in zip(optimizer, model.optimizer.variables):
        np.testing.assert_array_equal(before, np.asarray(variable))
    policy.on_epoch_end(3, {"loss": 1.0, "val_loss": 0.9})
    policy.on_train_end()
    assert policy.chosen_epoch == 2 and marked_value(model) == 2.0


def fit_with(logger, epochs=2):
    model = tiny_model()
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model.fit(x, y, validation_data=(x, y), epochs=epochs, batch_size=4, verbose=0,
              callbacks=[logger])


def test_epoch_logger_plain_lines_bars_and_quiet():
    out = io.StringIO()
    fit_with(EpochLogger(fold=2, n_folds=5, stream=out, tty=False))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("fold 2/5 epoch 1/2 loss ") and "val_accuracy" in lines[0]
    assert lines[1].endswith("s") and "epoch 2/2" in lines[1]

    out = io.StringIO()
    fit_with(EpochLogger(fold=1, n_folds=3, stream=out, tty=True))
    assert "fold 1/3" in out.getvalue() and "epoch" in out.getvalue()

    out = io.StringIO()
    fit_with(EpochLogger(fold=1, n_folds=3, stream=out, quiet=True))
    assert out.getvalue() == ""


def test_last_epoch_predictions_see_the_last_weights_before_the_policy_restores():
    model = tiny_model()
    x = np.ones((4, 3), dtype="float32")
    last = LastEpochPredictions(x)
    policy = CheckpointPolicy("best-val", "val_loss")
    for cb in (last, policy):
        cb.set_model(model)
        cb.on_train_begin()
    for epoch, value in enumerate([0.5, 0.9, 0.8]):  # best: epoch 1
        for cb in (last, policy):
            cb.on_epoch_begin(epoch)
        kernel = np.zeros((3, 2), dtype="float32")
        kernel[:, 0] = epoch + 1  # marks the epoch, and each epoch predicts differently
        model.set_weights([kernel, np.zeros(2, dtype="float32")])
        for cb in (last, policy):
            cb.on_epoch_end(epoch, {"loss": 1.0, "val_loss": value})
    expected_last = model.predict(x, verbose=0)
    for cb in (last, policy):  # the order train_fold uses
        cb.on_train_end()
    assert last.epoch == 3 and marked_value(model) == 1.0  # policy restored epoch 1
    np.testing.assert_allclose(last.probabilities, expected_last)
    assert not np.allclose(last.probabilities, model.predict(x, verbose=0))
