"""The k-fold runner resumes after a kill: across folds (result.json) and inside a fold
(FoldBackup + the policy's and history's state on disk)."""

import json
import os

import numpy as np
import pytest

from ser_tf.training.kfold import (fold_callbacks, load_fold_results, run_kfold,
                                   write_json_atomic)
from ser_tf.training.protocols import Fold, load_folds


def hand_folds(n=5, ids_per_fold=3, offset=0):
    ids = [f"utt{i + offset:03d}" for i in range(n * ids_per_fold)]
    folds = []
    for k in range(n):
        test = ids[k * ids_per_fold:(k + 1) * ids_per_fold]
        train = [i for i in ids if i not in test]
        folds.append(Fold(index=k, train_ids=train, val_ids=test, test_ids=test,
                          selection_on_test=True))
    return folds


class Killed(RuntimeError):
    pass


def test_kill_then_rerun_skips_the_folds_already_done(tmp_path):
    calls, kill_at, done = [], {2}, []

    def train_fold(fold, fold_dir):
        calls.append(fold.index)
        if fold.index in kill_at:
            kill_at.clear()  # only the first time: the rerun gets through
            raise Killed("process killed during fold 2")
        return {"metrics": {"UA": 50.0 + fold.index}, "ids": len(fold.test_ids),
                "value": np.float32(0.5)}

    folds = hand_folds()
    with pytest.raises(Killed):
        run_kfold(tmp_path, folds, train_fold)
    assert calls == [0, 1, 2]
    assert (tmp_path / "fold_00" / "result.json").exists()
    assert (tmp_path / "fold_01" / "result.json").exists()
    assert not (tmp_path / "fold_02" / "result.json").exists()
    assert [f.index for f in load_folds(tmp_path / "folds.json")] == [0, 1, 2, 3, 4]

    calls.clear()
    results = run_kfold(tmp_path, folds, train_fold,
                        on_fold_done=lambda fold, result: done.append(fold.index))
    assert calls == [2, 3, 4]  # folds 0 and 1 were not trained again
    assert done == [2, 3, 4]
    assert [r["fold"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["metrics"]["UA"] for r in results] == [50.0, 51.0, 52.0, 53.0, 54.0]
    assert results[0]["value"] == 0.5  # numpy converted
    assert load_fold_results(tmp_path) == results

    calls.clear()
    assert run_kfold(tmp_path, folds, train_fold) == results and calls == []


def test_a_rerun_names_the_folds_it_skips_unless_quiet(tmp_path, capsys):
    folds = hand_folds(6)
    run_kfold(tmp_path, folds, lambda fold, d: {"metrics": {}}, train_only=[0, 1, 2, 4])
    assert capsys.readouterr().out == ""  # nothing was done before
    run_kfold(tmp_path, folds, lambda fold, d: {"metrics": {}}, train_only=[0])
    assert capsys.readouterr().out.splitlines() == [
        "folds 1-3 of 6 done, skipped (fold_00-fold_02/result.json)",
        "fold 5 of 6 done, skipped (fold_04/result.json)"]
    run_kfold(tmp_path, folds, lambda fold, d: {"metrics": {}}, quiet=True)
    assert capsys.readouterr().out == ""


def test_a_second_process_on_the_same_run_is_refused_until_the_first_ends(tmp_path):
    """Two trainers writing one fold's backup and history would corrupt both: the second
    is stopped before it touches anything, and the lock goes with the first process."""
    import subprocess
    import sys

    calls = []

    def train_fold(fold, fold_dir):
        calls.append(fold.index)
        # a second process starts the same run while this fold trains
        child = subprocess.run(
            [sys.executable, "-c",
             "import sys; from ser_tf.training.kfold import run_kfold; "
             "from ser_tf.training.protocols import load_folds; "
             "run_kfold(sys.argv[1], load_folds(sys.argv[1] + '/folds.json'), "
             "lambda f, d: {'metrics': {}})", str(tmp_path)],
            capture_output=True, text=True)
        assert child.returncode != 0
        assert "being trained by another process" in child.stderr
        assert str(os.getpid()) in child.stderr and str(tmp_path) in child.stderr
        return {"metrics": {"UA": 1.0}}

    results = run_kfold(tmp_path, hand_folds(2), train_fold)
    assert calls == [0, 1] and [r["metrics"]["UA"] for r in results] == [1.0, 1.0]
    assert not (tmp_path / "fold_00" / "backup").exists()  # the refused process wrote nothing
    # the lock went with the run: the same run opens again, from this process or another
    assert run_kfold(tmp_path, hand_folds(2), train_fold) == results
    rerun = subprocess.run(
        [sys.executable, "-c",
         "import sys; from ser_tf.training.kfold import run_kfold; "
         "from ser_tf.training.protocols import load_folds; "
         "print(len(run_kfold(sys.argv[1], load_folds(sys.argv[1] + '/folds.json'), None, "
         "quiet=True)))",
         str(tmp_path)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.strip() == "2"


def test_refuses_to_resume_with_different_folds(tmp_path):
    run_kfold(tmp_path, hand_folds(), lambda fold, d: {"metrics": {}})
    with pytest.raises(ValueError, match="different folds"):
        run_kfold(tmp_path, hand_folds(offset=1), lambda fold, d: {"metrics": {}})
    # the same folds given as dicts are the same folds
    run_kfold(tmp_path, [f.to_dict() for f in hand_folds()], lambda fold, d: {"metrics": {}})


def test_unserialisable_result_leaves_no_result_file(tmp_path):
    with pytest.raises(TypeError):
        run_kfold(tmp_path, hand_folds(2), lambda fold, d: {"model": object()})
    assert not list(tmp_path.glob("fold_00/*"))  # neither result.json nor a temp file


def test_write_json_atomic_keeps_the_old_file_on_failure(tmp_path):
    path = write_json_atomic(tmp_path / "x.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_in_fold_resume_continues_from_the_last_epoch(tmp_path):
    keras = pytest.importorskip("keras")
    from ser_tf.training.callbacks import CheckpointPolicy
    from ser_tf.training.progress import HistoryLog

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype("int32")
    epochs, interrupt_at = 6, 3  # 0-based epoch at which the first attempt dies
    attempts = []

    class RecordEpochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            attempts[-1].append(epoch)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == interrupt_at:
                raise Killed(f"killed at the start of epoch {epoch + 1}")

    def train_fold(fold, fold_dir):
        attempts.append([])
        keras.utils.set_random_seed(1)  # a restarted process builds a fresh model
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(0.05),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        policy = CheckpointPolicy("paper", "val_loss", path=fold_dir / "best.weights.h5")
        callbacks = fold_callbacks(fold_dir, policy=policy) + [RecordEpochs()]
        if len(attempts) == 1:
            callbacks.append(Interrupt())
        model.fit(x, y, validation_data=(x, y), epochs=epochs, batch_size=16, verbose=0,
                  callbacks=callbacks)
        history = next(c for c in callbacks if isinstance(c, HistoryLog)).history
        return {"history": history, "checkpoint": policy.to_dict(),
                "chosen_epoch": policy.chosen_epoch, "epochs_run": len(history["loss"]),
                "iterations": int(model.optimizer.iterations.numpy()),
                "weights": [w.tolist() for w in model.get_weights()]}

    folds = hand_folds(1, ids_per_fold=32)
    with pytest.raises(Killed):
        run_kfold(tmp_path, folds, train_fold)
    assert attempts == [[0, 1, 2, 3]]
    assert (tmp_path / "fold_00" / "backup").is_dir()

    (result,) = run_kfold(tmp_path, folds, train_fold)
    assert attempts[1] == [3, 4, 5]  # resumed after the 3 finished epochs, not from scratch
    assert not (tmp_path / "fold_00" / "backup").exists()  # removed when fit completed
    assert result["iterations"] == epochs * 2  # optimizer state came back with the weights
    val_loss = result["history"]["val_loss"]
    assert len(val_loss) == epochs and None not in val_loss  # the full curve, both attempts
    # Every epoch's wall time, from both attempts: a resumed fold's time adds up.
    timed = result["history"]["epoch_seconds"]
    assert len(timed) == epochs and all(t > 0 for t in timed)
    assert [c["epoch"] for c in result["checkpoint"]["checks"]] == [1, 2, 3, 4, 5, 6]
    assert result["chosen_epoch"] == int(np.argmin(val_loss)) + 1
    assert result["checkpoint"]["selection_on_test"] is True

    # the model ended with the chosen weights, the same ones the policy saved to disk
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.load_weights(tmp_path / "fold_00" / "best.weights.h5")
    for saved, returned in zip(model.get_weights(), result["weights"]):
        np.testing.assert_allclose(saved, np.asarray(returned), rtol=1e-6)
