"""TIM-Net's ablation --compounded-smoothing: fold k trains on the targets the code of the
paper's time had after writing smoothed labels back into its label array in every fold."""

import json

import numpy as np
import pytest

from ser_tf.experiments import timnet as exp
from ser_tf.papers.timnet.compounded_smoothing import (CompoundedSmoothingSource,
                                                       compounded_targets, smoothing_counts)
from ser_tf.training.protocols import Fold


def _authors_smooth(labels, factor):
    # The authors' smooth_labels, in place on a float32 one-hot array.
    labels *= 1 - factor
    labels += factor / labels.shape[1]
    return labels


def _authors_like(n=21, frames=6, classes=7, seed=0):
    rng = np.random.default_rng(seed)
    y = np.eye(classes, dtype=np.float32)[np.arange(n) % classes]
    x = rng.normal(size=(n, frames, 39)).astype(np.float32)  # every row distinct
    return x, y


def test_counts_are_the_folds_so_far_that_trained_on_each_utterance():
    folds = [Fold(0, ["a", "b"], ["c"], ["c"], True), Fold(1, ["a", "c"], ["b"], ["b"], True),
             Fold(2, ["b", "c"], ["a"], ["a"], True)]
    assert smoothing_counts(folds) == [{"a": 1, "b": 1}, {"a": 2, "c": 1}, {"b": 2, "c": 2}]


def test_targets_equal_the_formula_applied_again_and_again():
    labels = np.array([0, 2, 1, 2])
    counts = np.array([0, 1, 2, 5])
    targets = compounded_targets(labels, counts, 3, 0.1)
    for row, (label, count) in enumerate(zip(labels, counts)):
        expected = np.eye(3, dtype=np.float64)[label]
        for _ in range(count):
            expected = expected * 0.9 + 0.1 / 3
        np.testing.assert_allclose(targets[row], expected, rtol=1e-6)
    np.testing.assert_allclose(targets.sum(1), 1.0, rtol=1e-6)
    assert (targets.argmax(1) == labels).all()  # accuracy cannot tell them apart
    with pytest.raises(ValueError, match="one count per label"):
        compounded_targets(labels, counts[:2], 3, 0.1)
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        compounded_targets(np.array([3]), np.array([1]), 3, 0.1)


def test_training_batches_carry_the_targets_of_the_authors_fold_loop(tmp_path):
    from sklearn.model_selection import KFold

    from ser_tf.papers.timnet.authors_features import load_timnet_features
    from ser_tf.papers.timnet.folds import SPLIT
    from ser_tf.training.protocols import make_folds
    from ser_tf.training.tasks import ClassificationTask

    x, y = _authors_like()
    path = tmp_path / "EMODB.npy"
    np.save(path, {"x": x, "y": y}, allow_pickle=True)
    manifest, feature_set = load_timnet_features(path, "EMODB")
    folds = make_folds(manifest, "paper", n_folds=3, paper_split=SPLIT)
    source = CompoundedSmoothingSource(feature_set, folds, 0.1)
    task = ClassificationTask(tuple(manifest.labels))
    # Rows of the authors' file; their one-hot columns are in their class order.
    row_of = {x[i].tobytes(): i for i in range(len(x))}
    columns = feature_set.stats["column_labels"]
    to_ours = [columns.index(name) for name in feature_set.label_names]
    authors_y = y.copy()
    authors = KFold(3, shuffle=True, random_state=46).split(x)
    for fold, (train, _) in zip(folds, authors):
        authors_y[train] = _authors_smooth(authors_y[train], 0.1)  # their bug: written back
        assert sorted(fold.train_ids) == sorted(f"{i:04d}" for i in train)
        seen = 0
        for features, targets in source.dataset(fold.train_ids, task=task, training=True,
                                                batch_size=4, seed=3):
            for example, target in zip(features.numpy(), targets.numpy()):
                row = row_of[example.tobytes()]
                np.testing.assert_allclose(target, authors_y[row][to_ours], rtol=1e-5)
                seen += 1
        assert seen == len(fold.train_ids)
        # A resumed fold (``consumed``: one epoch read by an earlier process) reads the
        # next epoch's order and still pairs every example with its own target.
        resumed = source.dataset(fold.train_ids, task=task, training=True, batch_size=4,
                                 seed=3, consumed=len(fold.train_ids))
        pairs = [(row_of[e.tobytes()], t) for features, targets in resumed
                 for e, t in zip(features.numpy(), targets.numpy())]
        assert sorted(row for row, _ in pairs) == sorted(int(i) for i in fold.train_ids)
        for row, target in pairs:
            np.testing.assert_allclose(target, authors_y[row][to_ours], rtol=1e-5)
    # Validation and test keep hard labels; a split that is no fold's training part is refused.
    _, hard = next(iter(source.dataset(folds[2].test_ids, task=task, training=False,
                                       batch_size=64)))
    assert set(np.unique(hard.numpy())) == {0.0, 1.0}
    with pytest.raises(ValueError, match="not the training part of any fold"):
        source.dataset(folds[2].train_ids[1:], task=task, training=True, batch_size=4, seed=3)


def test_cli_runs_the_ablation_as_its_own_run_and_only_under_the_paper_protocol(
        tmp_path, capsys, monkeypatch):
    x, y = _authors_like(n=14, frames=40)
    path = tmp_path / "EMODB.npy"
    np.save(path, {"x": x, "y": y}, allow_pickle=True)
    flags = ["--features", str(path), "--folds", "2", "--epochs", "1", "--blocks", "1",
             "--batch-size", "8", "--no-export", "--results-dir", str(tmp_path / "r"),
             "--quiet"]
    with pytest.raises(SystemExit):
        exp.build_parser().parse_args(flags + ["--protocol", "clean", "--compounded-smoothing"])
    assert "use it with --protocol paper" in capsys.readouterr().err
    by_hand = exp.build_parser().parse_args(flags + ["--protocol", "paper",
                                                     "--compounded-smoothing"])
    by_hand.protocol = "clean"  # a Namespace the parser never checked
    with pytest.raises(ValueError, match="use it with --protocol paper"):
        exp.setup(by_hand, exp.load_config())
    plain = exp.plan(exp.build_parser().parse_args(flags + ["--protocol", "paper"]))
    # Every fold trains from the compounded source (not from plain one-hot targets).
    trained = []
    dataset = CompoundedSmoothingSource.dataset

    def spy(self, ids, *, training, **options):
        if training:
            trained.append(sorted(ids))
        return dataset(self, ids, training=training, **options)

    monkeypatch.setattr(CompoundedSmoothingSource, "dataset", spy)
    out = exp.run(exp.build_parser().parse_args(flags + ["--protocol", "paper",
                                                         "--compounded-smoothing"]))
    record = json.loads((out["record"] / "record.json").read_text())
    config = record["config"]
    assert config["compounded_smoothing"] == 0.1 and config["fit"]["label_smoothing"] == 0.0
    assert out["run_id"] != plain.run_id and len(record["per_fold"]) == 2
    assert record["tsne"]["points"] == 14  # the hooks got the features behind the source
    folds = json.loads((out["record"] / "folds.json").read_text())["folds"]
    assert trained == [sorted(f["train_ids"]) for f in folds]
