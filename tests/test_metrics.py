"""Metrics: hand-computed UA/WA/F1, summaries, CCC and the streaming Keras metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_recall_fscore_support

from ser_tf.training.metrics import (
    ConcordanceCorrelation, UnweightedAccuracy, ccc, ccc_loss, classification_metrics, summarize)

# 6 x "a", 2 x "b", 2 x "c": imbalanced, so UA and WA differ.
Y_TRUE = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2]
Y_PRED = [0, 0, 0, 0, 0, 0, 0, 1, 2, 0]
# confusion: a -> [6, 0, 0], b -> [1, 1, 0], c -> [1, 0, 1]


def test_hand_computed_example():
    m = classification_metrics(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[6, 0, 0], [1, 1, 0], [1, 0, 1]]
    assert m["WA"] == pytest.approx(80.0)                      # 8 / 10
    assert m["UA"] == pytest.approx(100 * (1 + 0.5 + 0.5) / 3)  # 66.67: mean recall
    f1_a = 2 * 0.75 * 1.0 / 1.75                                # precision 6/8, recall 1
    f1_bc = 2 * 1.0 * 0.5 / 1.5                                 # precision 1, recall 1/2
    assert m["macro_F1"] == pytest.approx(100 * (f1_a + 2 * f1_bc) / 3)
    assert m["weighted_F1"] == pytest.approx(100 * (6 * f1_a + 4 * f1_bc) / 10)
    assert m["per_class"]["a"] == pytest.approx({"precision": 75.0, "recall": 100.0,
                                                 "f1": 100 * f1_a, "support": 6})
    assert m["per_class"]["b"]["recall"] == pytest.approx(50.0)
    assert m["UA"] != pytest.approx(m["WA"])


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_agrees_with_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    t[t == 4] = 3  # class 4 never true but sometimes predicted
    m = classification_metrics(t, p, list("abcde"))
    assert m["UA"] == pytest.approx(100 * balanced_accuracy_score(t, p))
    assert m["macro_F1"] == pytest.approx(100 * f1_score(t, p, average="macro"))
    assert m["weighted_F1"] == pytest.approx(100 * f1_score(t, p, average="weighted"))
    prec, rec, f1, sup = precision_recall_fscore_support(t, p, labels=range(5), zero_division=0)
    for i, name in enumerate("abcde"):
        assert m["per_class"][name]["precision"] == pytest.approx(100 * prec[i])
        assert m["per_class"][name]["recall"] == pytest.approx(100 * rec[i])
        assert m["per_class"][name]["support"] == sup[i]


def test_absent_label_gets_a_row_but_does_not_lower_ua():
    m = classification_metrics(Y_TRUE, Y_PRED, ["a", "b", "c", "d"])
    assert np.shape(m["confusion_matrix"]) == (4, 4)
    assert m["confusion_matrix"][3] == [0, 0, 0, 0]
    assert m["per_class"]["d"]["support"] == 0
    assert m["UA"] == pytest.approx(100 * 2 / 3)


def test_accepts_probabilities_and_names():
    probs = np.eye(3)[Y_PRED] * 0.7 + 0.1  # argmax = Y_PRED
    by_prob = classification_metrics(np.eye(3)[Y_TRUE], probs, ["a", "b", "c"])
    by_index = classification_metrics(Y_TRUE, Y_PRED, ["a", "b", "c"])
    by_name = classification_metrics(["abc"[i] for i in Y_TRUE], ["abc"[i] for i in Y_PRED],
                                     ["a", "b", "c"])
    assert by_prob == by_index == by_name


def test_bad_inputs():
    with pytest.raises(ValueError, match="outside"):
        classification_metrics([0, 3], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="samples"):
        classification_metrics([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match="columns"):
        classification_metrics([0, 1], np.ones((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        classification_metrics([0], [0], ["a", "a"])


def test_summarize_sample_std_and_pooled_matrix():
    f1 = classification_metrics([0, 0, 1, 1, 1], [0, 1, 1, 1, 1], ["a", "b"])  # UA 75, WA 80
    f2 = classification_metrics([0, 1, 1, 1, 1], [0, 0, 0, 1, 1], ["a", "b"])  # UA 75, WA 60
    s = summarize([f1, f2])
    assert s["WA"]["mean"] == pytest.approx(70.0)
    assert s["WA"]["std"] == pytest.approx(math.sqrt(200))  # ddof=1: 14.14, population: 10
    assert s["UA"] == pytest.approx({"mean": 75.0, "std": 0.0})
    assert s["confusion_matrix"] == [[2, 1], [2, 5]]
    assert s["pooled"]["WA"] == pytest.approx(70.0)
    assert s["n_folds"] == 2
    assert summarize([f1])["WA"]["std"] == 0.0
    other = classification_metrics([0, 1, 2], [0, 1, 2], ["a", "b", "c"])
    with pytest.raises(ValueError, match="label"):
        summarize([f1, other])


def test_ccc_values():
    x = np.array([-2.0, -1.0, 0.5, 1.0, 1.5])
    assert ccc(x, x) == pytest.approx(1.0)
    assert ccc(x - x.mean(), -(x - x.mean())) == pytest.approx(-1.0)
    # mean 2.5 / 3, var 1.25 / 1.5 (population), cov 1.25: 2*1.25 / (1.25 + 1.5 + 0.25)
    assert ccc([1, 2, 3, 4], [2, 2, 3, 5]) == pytest.approx(2.5 / 3.0)
    # Pearson would be 1 for a shifted copy; CCC penalizes the bias.
    assert ccc(x, x + 1) < 0.8
    both = ccc(np.c_[x, x], np.c_[x, -x])
    assert both[0] == pytest.approx(1.0) and both[1] < 0


def test_ccc_loss_and_streaming_metric():
    t = np.array([1.0, 2.0, 3.0, 4.0], dtype="float32")
    p = np.array([2.0, 2.0, 3.0, 5.0], dtype="float32")
    assert float(ccc_loss(t, p)) == pytest.approx(1 - 2.5 / 3, abs=1e-5)
    assert float(ccc_loss(t[:, None], t[:, None])) == pytest.approx(0.0, abs=1e-5)
    metric = ConcordanceCorrelation()
    metric.update_state(t[:2, None], p[:2, None])  # batch CCC 0
    metric.update_state(t[2:, None], p[2:, None])  # batch CCC 2/3
    # over the whole epoch, not the mean of batch values (1/3)
    assert float(metric.result()) == pytest.approx(2.5 / 3, abs=1e-5)
    metric.reset_state()
    metric.update_state(t[:, None], t[:, None])
    assert float(metric.result()) == pytest.approx(1.0, abs=1e-5)


def test_unweighted_accuracy_metric_streams_like_classification_metrics():
    probs = np.eye(3)[Y_PRED].astype("float32")
    onehot = np.eye(3)[Y_TRUE].astype("float32")
    metric = UnweightedAccuracy(num_classes=3)
    metric.update_state(onehot[:5], probs[:5])
    metric.update_state(onehot[5:], probs[5:])
    expected = classification_metrics(Y_TRUE, Y_PRED, ["a", "b", "c"])["UA"]
    assert float(metric.result()) == pytest.approx(expected, abs=1e-4)
    metric.reset_state()
    metric.update_state(np.array(Y_TRUE), probs)  # sparse targets
    assert float(metric.result()) == pytest.approx(expected, abs=1e-4)


def test_keras_metrics_work_inside_fit():
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = np.eye(3)[rng.integers(0, 3, 32)].astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=[UnweightedAccuracy(3)])
    logs = model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(x, y)).history
    assert "val_UA" in logs and 0 <= logs["val_UA"][0] <= 100
    reg = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    reg.compile("adam", ccc_loss, metrics=[ConcordanceCorrelation(2)])
    logs = reg.fit(x, x[:, :2], batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and -1 <= logs["CCC"][0] <= 1
