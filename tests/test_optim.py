"""ser_tf.training.optim (optimiser registry, per-layer-group learning rates) and the
schedule registry in ser_tf.training.schedules."""

import math

import keras
import numpy as np
import pytest

from ser_tf.training.optim import (GROUPED_OPTIMIZERS, OPTIMIZER_PARAMS, OPTIMIZERS,
                                   check_groups, lr_multiplier, make_optimizer)
from ser_tf.training.schedules import (SCHEDULES, lr_scheduler_callback, make_schedule,
                                       step_exp_decay)

RNG = np.random.default_rng(7)
X = RNG.normal(size=(16, 4)).astype("float32")
Y = RNG.normal(size=(16, 2)).astype("float32")


def tiny_model(seed=3):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense_0"),
                             keras.layers.Dense(2, name="dense_1")],
                            name="net")


def weights_by_path(model):
    """``{"dense_1/kernel": array, ...}`` (paths less the Sequential model's own name)."""
    return {v.path.removeprefix(f"{model.name}/"): np.array(v.numpy())
            for v in model.trainable_variables}


def one_step(model, optimizer):
    """One optimiser step on the MSE of (X, Y); returns the weights before and after."""
    import tensorflow as tf

    before = weights_by_path(model)
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.ops.square(model(X) - Y))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return before, weights_by_path(model)


# -------------------------------------------------------------------------------- registry

GOOD_PARAMS = {
    "adam": {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6, "clipnorm": 1.0},
    "adamw": {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6, "clipnorm": 1.0,
              "weight_decay": 0.01},
    "sgd": {"momentum": 0.9, "nesterov": True, "clipnorm": 2.0},
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_builds_with_its_params(name):
    assert set(GOOD_PARAMS[name]) == set(OPTIMIZER_PARAMS[name])
    opt = make_optimizer(name, 0.01, **GOOD_PARAMS[name])
    expected_class = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
                      "sgd": keras.optimizers.SGD}[name]
    assert type(opt) is expected_class
    config = opt.get_config()
    assert config["learning_rate"] == pytest.approx(0.01)
    for key, value in GOOD_PARAMS[name].items():
        assert config[key] == pytest.approx(value), key


@pytest.mark.parametrize("name,bad", [("adam", "weight_decay"), ("adam", "momentum"),
                                      ("adamw", "nesterov"), ("sgd", "epsilon"),
                                      ("sgd", "beta_1")])
def test_unknown_params_are_rejected_naming_the_allowed_ones(name, bad):
    with pytest.raises(ValueError) as error:
        make_optimizer(name, 0.01, **{bad: 0.5})
    message = str(error.value)
    assert repr(name) in message and bad in message
    for allowed in OPTIMIZER_PARAMS[name]:
        assert allowed in message


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_grouped_optimizer_has_the_plain_ones_variable_layout(name):
    groups = [{"match": "dense_1/.*", "lr_multiplier": 0.5}]
    params = {"sgd": {"momentum": 0.9}}.get(name, {})
    plain = make_optimizer(name, 0.01, **params)
    grouped = make_optimizer(name, 0.01, groups=groups, **params)
    assert isinstance(grouped, type(plain)) and type(grouped) is not type(plain)
    plain.build(tiny_model().trainable_variables)
    grouped.build(tiny_model().trainable_variables)
    layout = [(v.path.split("/", 1)[1], tuple(v.shape)) for v in plain.variables]
    assert [(v.path.split("/", 1)[1], tuple(v.shape)) for v in grouped.variables] == layout
    assert len(layout) > 2


def test_bad_name_and_values_are_rejected():
    with pytest.raises(ValueError, match="known: adam, adamw, sgd"):
        make_optimizer("rmsprop", 0.01)
    for lr in (0, -1e-3, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="learning_rate"):
            make_optimizer("adam", lr)
    with pytest.raises(ValueError, match="beta_1"):
        make_optimizer("adam", 0.01, beta_1=1.0)
    with pytest.raises(ValueError, match="nesterov"):
        make_optimizer("sgd", 0.01, nesterov=1)
    with pytest.raises(ValueError, match="weight_decay"):
        make_optimizer("adamw", 0.01, weight_decay=-0.1)


def test_epsilon_none_is_keras_default_like_the_old_fitconfig_optimizer():
    ours = make_optimizer("adam", 1e-4, beta_1=0.9, beta_2=0.98, epsilon=None)
    old = keras.optimizers.Adam(1e-4, beta_1=0.9, beta_2=0.98)
    assert type(ours) is keras.optimizers.Adam
    mine, theirs = ours.get_config(), old.get_config()
    mine.pop("name"), theirs.pop("name")
    assert mine == theirs
    assert ours.epsilon == keras.optimizers.Adam().epsilon == 1e-7
    assert make_optimizer("adam", 1e-4, epsilon=1e-8).epsilon == 1e-8


def test_groups_are_checked():
    assert check_groups(None) == () == check_groups([])
    assert check_groups([{"match": "a/.*", "lr_multiplier": 2}]) == (("a/.*", 2.0),)
    for bad in ([{"match": "a"}], [{"match": "(", "lr_multiplier": 1.0}],
                [{"match": "a", "lr_multiplier": -1}], [{"match": "a", "lr_multiplier": 1,
                                                         "x": 1}], {"match": "a"}, "a"):
        with pytest.raises(ValueError):
            make_optimizer("sgd", 0.1, groups=bad)


def test_first_matching_group_wins_on_the_path_or_a_tail_after_a_slash():
    groups = [{"match": "wav2vec2/.*", "lr_multiplier": 0.1},
              {"match": ".*/bias", "lr_multiplier": 2.0},
              {"match": "dense_1/.*", "lr_multiplier": 0.0}]
    assert lr_multiplier("wav2vec2/enc/bias", groups) == 0.1
    assert lr_multiplier("model/wav2vec2/enc/kernel", groups) == 0.1
    assert lr_multiplier("dense/bias", groups) == 2.0
    assert lr_multiplier("dense/kernel", groups) == 1.0
    assert lr_multiplier("outer_wav2vec2/enc/kernel", groups) == 1.0  # not a name's tail
    assert lr_multiplier("net/dense_1/kernel", groups) == 0.0
    assert lr_multiplier("dense_10/kernel", groups) == 1.0


def test_a_group_matching_no_variable_warns():
    model = tiny_model()
    opt = make_optimizer("sgd", 0.1, groups=[{"match": "dense_1/.*", "lr_multiplier": 0.5},
                                             {"match": "wav2vec2/.*", "lr_multiplier": 0.1}])
    with pytest.warns(UserWarning, match="learning-rate group") as record:
        opt.build(model.trainable_variables)
    messages = [str(w.message) for w in record if "learning-rate group" in str(w.message)]
    assert len(messages) == 1 and "'wav2vec2/.*'" in messages[0]


# -------------------------------------------------------------------------- group updates

def test_sgd_group_multiplier_zero_freezes_a_layer():
    model = tiny_model()
    opt = make_optimizer("sgd", 0.1, groups=[{"match": "dense_1/.*", "lr_multiplier": 0.0}])
    assert type(opt) is GROUPED_OPTIMIZERS["sgd"]
    before, after = one_step(model, opt)
    assert opt.lr_multipliers() == {"net/dense_0/kernel": 1.0,
                                    "net/dense_0/bias": 1.0,
                                    "net/dense_1/kernel": 0.0,
                                    "net/dense_1/bias": 0.0}
    for path in ("dense_1/kernel", "dense_1/bias"):
        np.testing.assert_array_equal(after[path], before[path])
    for path in ("dense_0/kernel", "dense_0/bias"):
        assert np.abs(after[path] - before[path]).max() > 1e-4, path


def test_sgd_group_multiplier_half_moves_exactly_half():
    plain = tiny_model()
    before, after_plain = one_step(plain, make_optimizer("sgd", 0.1))
    grouped = tiny_model()
    opt = make_optimizer("sgd", 0.1, groups=[{"match": "dense_1/.*", "lr_multiplier": 0.5}])
    before_g, after_grouped = one_step(grouped, opt)
    for path in before:
        np.testing.assert_array_equal(before_g[path], before[path])
    for path in ("dense_1/kernel", "dense_1/bias"):
        full = after_plain[path] - before[path]
        assert np.abs(full).max() > 1e-4
        np.testing.assert_allclose(after_grouped[path] - before[path], 0.5 * full,
                                   rtol=1e-5, atol=1e-7)
    for path in ("dense_0/kernel", "dense_0/bias"):  # multiplier 1: the plain arithmetic
        np.testing.assert_array_equal(after_grouped[path], after_plain[path])


def test_adamw_weight_decay_is_scaled_by_the_group_multiplier():
    plain = tiny_model()
    _, after_plain = one_step(plain, make_optimizer("adamw", 0.01, weight_decay=0.5))
    grouped = tiny_model()
    opt = make_optimizer("adamw", 0.01, weight_decay=0.5,
                         groups=[{"match": "dense_1/.*", "lr_multiplier": 0.0}])
    before, after = one_step(grouped, opt)
    np.testing.assert_array_equal(after["dense_1/kernel"], before["dense_1/kernel"])
    np.testing.assert_array_equal(after["dense_0/kernel"], after_plain["dense_0/kernel"])
    # Decay alone at multiplier 0.5: a zero gradient leaves only w -= w * wd * lr * 0.5.
    import tensorflow as tf

    model = tiny_model()
    opt = make_optimizer("adamw", 0.01, weight_decay=0.5,
                         groups=[{"match": "dense_1/.*", "lr_multiplier": 0.5}])
    w = model.get_layer("dense_1").kernel
    start = np.array(w.numpy())
    opt.apply_gradients([(tf.zeros_like(v), v) for v in model.trainable_variables])
    np.testing.assert_allclose(w.numpy(), start * (1 - 0.5 * 0.01 * 0.5), rtol=1e-6)
    # exclude_from_weight_decay still holds.
    model = tiny_model()
    opt = make_optimizer("adamw", 0.01, weight_decay=0.5,
                         groups=[{"match": "dense_1/.*", "lr_multiplier": 0.5}])
    opt.exclude_from_weight_decay(var_names=["bias"])
    layer = model.get_layer("dense_1")
    layer.bias.assign(np.ones(2, "float32"))
    kernel = np.array(layer.kernel.numpy())
    opt.apply_gradients([(tf.zeros_like(v), v) for v in model.trainable_variables])
    np.testing.assert_array_equal(layer.bias.numpy(), np.ones(2, "float32"))
    np.testing.assert_allclose(layer.kernel.numpy(), kernel * (1 - 0.5 * 0.01 * 0.5), rtol=1e-6)


def test_adam_groups_train_under_fit_with_lr_scheduler():
    model = tiny_model()
    groups = [{"match": "dense_0/.*", "lr_multiplier": 0.0}]
    model.compile(make_optimizer("adam", 0.05, groups=groups), "mse")
    start = weights_by_path(model)
    schedule = make_schedule({"name": "step", "every": 1, "factor": 0.5},
                             initial_lr=0.05, epochs=3)
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))
    history = model.fit(X, Y, epochs=3, batch_size=4, verbose=0, shuffle=False,
                        callbacks=[lr_scheduler_callback(schedule), record])
    assert seen == pytest.approx([0.05, 0.025, 0.0125])
    end = weights_by_path(model)
    np.testing.assert_array_equal(end["dense_0/kernel"], start["dense_0/kernel"])
    assert np.abs(end["dense_1/kernel"] - start["dense_1/kernel"]).max() > 1e-3
    assert history.history["loss"][-1] < history.history["loss"][0]
    # The config carries the groups and rebuilds the same optimiser.
    config = keras.optimizers.serialize(model.optimizer)
    again = keras.optimizers.deserialize(config)
    assert type(again) is GROUPED_OPTIMIZERS["adam"] and again.lr_groups == groups


def test_optimizer_variables_save_and_restore():
    groups = [{"match": "dense_1/.*", "lr_multiplier": 0.3}]

    def compiled(seed):
        model = tiny_model(seed)
        model.compile(make_optimizer("adam", 0.01, groups=groups), "mse")
        return model

    first = compiled(3)
    first.fit(X[:4], Y[:4], epochs=1, batch_size=4, verbose=0)
    saved_weights = first.get_weights()
    saved_opt = [np.array(v.numpy()) for v in first.optimizer.variables]
    assert int(first.optimizer.iterations.numpy()) == 1
    # Same layout as a plain Adam's (the grouped subclass adds no variable).
    plain = tiny_model(3)
    plain_opt = keras.optimizers.Adam(0.01)
    plain_opt.build(plain.trainable_variables)
    assert [v.shape for v in plain_opt.variables] == [a.shape for a in saved_opt]

    first.fit(X[4:8], Y[4:8], epochs=1, batch_size=4, verbose=0)
    reference = weights_by_path(first)

    second = compiled(11)  # other initial weights: everything must come from the copy
    second.optimizer.build(second.trainable_variables)
    second.set_weights(saved_weights)
    for variable, value in zip(second.optimizer.variables, saved_opt):
        variable.assign(value)
    assert int(second.optimizer.iterations.numpy()) == 1
    second.fit(X[4:8], Y[4:8], epochs=1, batch_size=4, verbose=0)
    resumed = weights_by_path(second)
    for path, value in reference.items():
        np.testing.assert_allclose(resumed[path], value, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------ schedules

def test_constant_and_none():
    for schedule in (make_schedule(None, initial_lr=0.01, epochs=10),
                     make_schedule({"name": "constant"}, initial_lr=0.01, epochs=10)):
        assert [schedule(e) for e in (0, 5, 500)] == [0.01, 0.01, 0.01]
        assert schedule.config == {"name": "constant", "initial_lr": 0.01}


def test_step_schedule_boundaries():
    schedule = make_schedule({"name": "step", "every": 10, "factor": 0.5},
                             initial_lr=1.0, epochs=50)
    table = {0: 1.0, 9: 1.0, 10: 0.5, 19: 0.5, 20: 0.25, 35: 0.125}
    assert {e: schedule(e) for e in table} == table
    assert schedule.config == {"name": "step", "initial_lr": 1.0, "start_epoch": 10,
                               "every": 10, "factor": 0.5}
    late = make_schedule({"name": "step", "every": 10, "factor": 0.1, "start_epoch": 25},
                         initial_lr=2.0, epochs=50)
    assert [late(e) for e in (0, 24, 25, 34, 35, 45)] == pytest.approx(
        [2.0, 2.0, 0.2, 0.2, 0.02, 0.002], rel=1e-12)
    with pytest.raises(ValueError, match="every"):
        make_schedule({"name": "step", "every": 0}, initial_lr=1.0, epochs=5)


def test_cosine_schedule_values():
    schedule = make_schedule({"name": "cosine", "min_lr": 0.1}, initial_lr=1.1, epochs=100)
    assert schedule(0) == pytest.approx(1.1, rel=1e-12)
    assert schedule(50) == pytest.approx(0.6, rel=1e-12)  # halfway: the mean
    assert schedule(25) == pytest.approx(0.1 + 1.0 * (1 + math.cos(math.pi / 4)) / 2)
    assert schedule(99) == pytest.approx(0.1 + (1 + math.cos(math.pi * 0.99)) / 2)
    assert schedule(99) > 0.1
    assert schedule(100) == pytest.approx(0.1, rel=1e-12) == schedule(150)
    assert all(schedule(e) > schedule(e + 1) for e in range(99))
    assert schedule.config == {"name": "cosine", "initial_lr": 1.1, "epochs": 100,
                               "min_lr": 0.1, "warmup_epochs": 0}


def test_cosine_warmup():
    schedule = make_schedule({"name": "cosine", "warmup_epochs": 4}, initial_lr=1.0,
                             epochs=24)
    assert [schedule(e) for e in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert schedule(4) == pytest.approx(1.0)
    assert schedule(14) == pytest.approx(0.5)  # halfway through the 20 decay epochs
    assert schedule(24) == pytest.approx(0.0, abs=1e-15)
    # The config's own epochs wins over the fit's.
    short = make_schedule({"name": "cosine", "epochs": 10}, initial_lr=1.0, epochs=100)
    assert short(5) == pytest.approx(0.5) and short(10) == 0.0 and short(60) == 0.0
    with pytest.raises(ValueError, match="warmup_epochs"):
        make_schedule({"name": "cosine", "warmup_epochs": 10}, initial_lr=1.0, epochs=10)


def test_step_exp_decay_through_make_schedule_is_the_old_function():
    stored = {"name": "step_exp_decay", "initial_lr": 1e-4, "start_epoch": 60, "every": 20,
              "factor": 0.8607079764250578}
    ours = make_schedule(stored, initial_lr=1e-4, epochs=300)
    # What the trainer built from the same dict before the schedule registry existed.
    old = step_exp_decay(**{k: v for k, v in stored.items() if k != "name"})
    assert [ours(e) for e in range(301)] == [old(e) for e in range(301)]
    assert ours.config == old.config == stored
    assert ours(60) < ours(59) == 1e-4
    # Without initial_lr in the config, the fit's rate is the start.
    bare = {k: v for k, v in stored.items() if k != "initial_lr"}
    from_fit = make_schedule(bare, initial_lr=3e-4, epochs=300)
    assert from_fit(0) == 3e-4 and from_fit(60) == pytest.approx(3e-4 * 0.8607079764250578)


def test_unknown_schedule_or_param_is_rejected_listing_the_known_ones():
    assert set(SCHEDULES) == {"constant", "step", "step_exp_decay", "cosine"}
    with pytest.raises(ValueError) as error:
        make_schedule({"name": "linear"}, initial_lr=1.0, epochs=5)
    for name in SCHEDULES:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="unknown lr schedule None"):
        make_schedule({"every": 3}, initial_lr=1.0, epochs=5)
    with pytest.raises(ValueError, match="does not take gamma; allowed: "):
        make_schedule({"name": "step", "every": 3, "gamma": 0.1}, initial_lr=1.0, epochs=5)
    with pytest.raises(ValueError, match="epochs"):
        make_schedule(None, initial_lr=1.0, epochs=0)


def test_schedules_are_resume_safe():
    """Same value for an epoch whatever was asked before (no state)."""
    for config in ({"name": "step", "every": 3}, {"name": "cosine", "warmup_epochs": 2},
                   {"name": "step_exp_decay"}):
        schedule = make_schedule(config, initial_lr=0.1, epochs=20)
        fresh = make_schedule(config, initial_lr=0.1, epochs=20)
        forward = [schedule(e) for e in range(20)]
        assert [fresh(e) for e in reversed(range(20))] == forward[::-1]
        with pytest.raises(ValueError):
            schedule(-1)


# --- FitConfig: the registry through the one compile call ---------------------------------

def test_fit_config_builds_each_optimizer_with_groups_and_keeps_old_configs():
    import keras

    from ser_tf.training.classifier import FitConfig
    from ser_tf.training.tasks import ClassificationTask

    old = FitConfig(learning_rate=1e-4, epsilon=None)
    assert "optimizer" not in old.to_dict() and "lr_groups" not in old.to_dict()
    assert type(old.make_optimizer()) is keras.optimizers.Adam
    fit = FitConfig(optimizer="sgd", learning_rate=0.1, optimizer_params={"momentum": 0.9},
                    lr_groups=[{"match": "frozen/.*", "lr_multiplier": 0.0}], jit_compile=False)
    assert fit.to_dict()["optimizer"] == "sgd"
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="frozen")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(hidden))
    fit.compile(model, ClassificationTask(("a", "b")))
    assert model.optimizer.momentum == pytest.approx(0.9)
    before = [w.numpy().copy() for w in model.weights]
    model.fit(np.ones((8, 3)), np.eye(2)[[0, 1] * 4], epochs=1, verbose=0)
    after = [w.numpy() for w in model.weights]
    frozen = [np.array_equal(b, a) for b, a in zip(before, after)]
    assert frozen == [True, True, False, False]
    with pytest.raises(ValueError, match="unknown optimizer"):
        FitConfig(optimizer="rmsprop")
    cosine = FitConfig(learning_rate=1.0, epochs=10, lr_schedule={"name": "cosine"})
    assert cosine.schedule_callback().schedule(5, 0.0) == pytest.approx(0.5)
