"""Losses (focal, label smoothing), the Light-SERNet LR schedule, seeding and strategies."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from ser_tf.training import seeding
from ser_tf.training.losses import get_loss
from ser_tf.training.schedules import lr_scheduler_callback, step_exp_decay
from ser_tf.training.seeding import get_strategy, set_seed

RNG = np.random.default_rng(0)
Y = np.eye(4, dtype="float32")[RNG.integers(0, 4, 16)]
LOGITS = RNG.normal(size=(16, 4)).astype("float32")
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)


def value(loss, y=Y, p=PROBS) -> float:
    return float(keras.ops.convert_to_numpy(loss(y, p)))


def manual_focal(y, p, gamma, alpha=1.0):
    return float(np.mean(np.sum(-alpha * y * (1 - p) ** gamma * np.log(p), axis=1)))


def test_focal_with_gamma_0_and_no_alpha_is_cross_entropy():
    ce = value(get_loss("cross_entropy"))
    assert value(get_loss("focal", gamma=0.0)) == pytest.approx(ce, rel=1e-5)
    assert ce == pytest.approx(float(np.mean(-np.sum(Y * np.log(PROBS), axis=1))), rel=1e-5)


def test_focal_formula_and_alpha_none_means_one():
    focal = value(get_loss("focal", gamma=2.0))
    assert focal == pytest.approx(manual_focal(Y, PROBS, 2.0), rel=1e-5)
    assert focal < value(get_loss("cross_entropy"))  # easy examples are down-weighted
    # Keras' own default alpha=0.25 would scale the loss by 1/4 - not what alpha=None means.
    keras_default = value(keras.losses.CategoricalFocalCrossentropy(gamma=2.0))
    assert focal == pytest.approx(4 * keras_default, rel=1e-5)
    assert value(get_loss("focal", alpha=0.5)) == pytest.approx(0.5 * focal, rel=1e-5)
    weights = [1.0, 2.0, 0.5, 1.0]
    assert value(get_loss("focal", alpha=weights)) == pytest.approx(
        manual_focal(Y, PROBS, 2.0, np.array(weights)), rel=1e-5)


def test_from_logits_matches_probabilities():
    for name in ("cross_entropy", "focal"):
        assert value(get_loss(name, from_logits=True), p=LOGITS) == pytest.approx(
            value(get_loss(name)), rel=1e-4)


def test_label_smoothing_applied_once_and_targets_not_mutated():
    y = Y.copy()
    smooth = get_loss("cross_entropy", label_smoothing=0.1)
    first = value(smooth, y=y)
    assert np.array_equal(y, Y)  # caller's targets untouched
    # TIM-Net's smooth_labels: y * (1 - 0.1) + 0.1 / K
    expected = float(np.mean(-np.sum((Y * 0.9 + 0.1 / 4) * np.log(PROBS), axis=1)))
    assert first == pytest.approx(expected, rel=1e-5)
    # a second call (next fold/epoch) smooths the original targets again, not the smoothed ones
    assert value(smooth, y=y) == pytest.approx(first, rel=1e-6)
    twice = float(np.mean(-np.sum(((Y * 0.9 + 0.025) * 0.9 + 0.025) * np.log(PROBS), axis=1)))
    assert first != pytest.approx(twice, rel=1e-4)
    focal = get_loss("focal", gamma=0.0, label_smoothing=0.1)
    assert value(focal, y=y) == pytest.approx(first, rel=1e-5) and np.array_equal(y, Y)


def test_get_loss_rejects_bad_arguments():
    with pytest.raises(ValueError, match="loss"):
        get_loss("mse")
    with pytest.raises(ValueError, match="gamma"):
        get_loss("focal", gamma=-1)
    with pytest.raises(ValueError, match="label_smoothing"):
        get_loss("cross_entropy", label_smoothing=1.0)
    with pytest.raises(ValueError, match="alpha"):
        get_loss("cross_entropy", alpha=0.25)


def original_lightsernet_rates(epochs, lr=1e-4):
    """The released callbacks.LearningRateScheduler (start point 50, step 20), stateful."""
    rates = []
    for epoch in range(epochs):
        if epoch >= 50 and epoch % 20 == 0:
            lr = lr * math.exp(-0.15)
        rates.append(lr)
    return rates


def test_schedule_table():
    lr = step_exp_decay()
    table = {0: 1e-4, 59: 1e-4, 60: 1e-4 * math.exp(-0.15), 79: 1e-4 * math.exp(-0.15),
             80: 1e-4 * math.exp(-0.30), 99: 1e-4 * math.exp(-0.30),
             100: 1e-4 * math.exp(-0.45), 299: 1e-4 * math.exp(-0.15 * 12)}
    for epoch, expected in table.items():
        assert lr(epoch) == pytest.approx(expected, rel=1e-12), epoch
    assert [lr(e) for e in range(300)] == pytest.approx(original_lightsernet_rates(300))
    custom = step_exp_decay(initial_lr=1.0, start_epoch=2, every=3, factor=0.5)
    assert [custom(e) for e in range(8)] == [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    with pytest.raises(ValueError):
        step_exp_decay(every=0)
    with pytest.raises(ValueError):
        step_exp_decay(factor=1.5)


def test_scheduler_callback_sets_optimizer_rate():
    x = RNG.normal(size=(8, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="softmax")])
    model.compile(keras.optimizers.Adam(1.0), "categorical_crossentropy")
    schedule = step_exp_decay(initial_lr=1e-3, start_epoch=1, every=1, factor=0.5)
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))
    model.fit(x, Y[:8], epochs=3, verbose=0, callbacks=[lr_scheduler_callback(schedule), record])
    assert seen == pytest.approx([1e-3, 5e-4, 2.5e-4])


def initial_weights(seed):
    set_seed(seed)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3),
                              keras.layers.Dense(2)])
    return [w.copy() for w in model.get_weights()]


def test_set_seed_reproduces_initial_weights():
    a, b, c = initial_weights(123), initial_weights(123), initial_weights(124)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    import random

    import tensorflow as tf

    def draws():
        return (np.random.rand(), random.random(), float(tf.random.uniform(())),
                float(keras.random.uniform(())))

    set_seed(5)
    first = draws()
    set_seed(5)
    assert draws() == first


def test_set_seed_deterministic_flag(monkeypatch):
    calls = []
    # op determinism is process-wide and permanent: record the call instead of enabling it
    monkeypatch.setattr(seeding.tf.config.experimental, "enable_op_determinism",
                        lambda: calls.append(True))
    assert set_seed(1) == {"seed": 1, "deterministic": False} and calls == []
    assert set_seed(1, deterministic=True)["deterministic"] and calls == [True]
    with pytest.raises(ValueError):
        set_seed(-1)


def test_get_strategy(monkeypatch):
    import tensorflow as tf

    assert isinstance(get_strategy(), tf.distribute.Strategy)
    assert isinstance(get_strategy("mirrored"), tf.distribute.MirroredStrategy)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(RuntimeError, match="TF_CONFIG"):
        get_strategy("multi-worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(RuntimeError, match="JSON"):
        get_strategy("multi-worker")
    with pytest.raises(ValueError):
        get_strategy("tpu")


def test_fit_config_adam_epsilon():
    from ser_tf.training.classifier import FitConfig

    assert "epsilon" not in FitConfig().to_dict()  # Keras' default, configs unchanged
    assert float(FitConfig().make_optimizer().epsilon) == pytest.approx(1e-7)
    fit = FitConfig(learning_rate=1e-3, beta_1=0.93, beta_2=0.98, epsilon=1e-8)
    assert fit.to_dict()["epsilon"] == 1e-8
    adam = fit.make_optimizer()
    assert (float(adam.epsilon), float(adam.beta_1), float(adam.beta_2)) == \
        pytest.approx((1e-8, 0.93, 0.98))
