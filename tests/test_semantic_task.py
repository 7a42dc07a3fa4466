"""The shared masked per-frame regression (training.tasks.FrameRegressionTask and the masked
CCC of training.metrics): padding frames, whatever they hold, change nothing; the 1/i
weighting; the semantic package uses the shared task and keeps its config."""

import keras
import numpy as np
import pytest

from ser_tf.training.metrics import (MaskedCCCLoss, MaskedConcordanceCorrelation, ccc,
                                     masked_ccc)
from ser_tf.training.tasks import (FrameRegressionTask, RegressionTask, compile_metrics,
                                   real_frame_pairs, task_from_config)

OUTPUTS = ("arousal", "valence", "liking")


def padded_batch(seed=0, rows=3, frames=7, dims=3):
    """``(y, p, mask)`` of padded sequences: rows of 7, 4 and 2 real frames."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((rows, frames, dims)).astype("float32")
    p = (0.6 * y + 0.4 * rng.standard_normal(y.shape) + 0.1).astype("float32")
    mask = np.ones((rows, frames), "float32")
    mask[1, 4:] = 0
    mask[2, 2:] = 0
    return y, p, mask


def with_garbage(y, p, mask, value=1e3):
    y, p = y.copy(), p.copy()
    y[mask == 0], p[mask == 0] = value, -value
    return y, p


def real(y, p, mask):
    keep = mask.reshape(-1) > 0
    return y.reshape(-1, y.shape[-1])[keep], p.reshape(-1, p.shape[-1])[keep]


def test_masked_ccc_is_the_ccc_of_the_real_frames():
    y, p, mask = padded_batch()
    t, q = real(y, p, mask)
    expected = ccc(t, q)
    for value in (0.0, 1e3, np.nan):
        gy, gp = with_garbage(y, p, mask, value)
        np.testing.assert_allclose(masked_ccc(gy, gp, mask), expected, rtol=1e-12)
    # A mask of the targets' own shape (one output) and the rescaled mask of a source.
    np.testing.assert_allclose(masked_ccc(y[..., 0], p[..., 0], mask), expected[0])
    np.testing.assert_allclose(masked_ccc(y, p, mask * 1.7), expected)
    with pytest.raises(ValueError, match="no real frame"):
        masked_ccc(y, p, np.zeros_like(mask))
    with pytest.raises(ValueError, match="mask"):
        masked_ccc(y, p, mask[:, :3])


@pytest.mark.parametrize("value", [0.0, 50.0, np.nan])
def test_masked_loss_ignores_padding_whatever_it_holds(value):
    y, p, mask = padded_batch(1)
    t, q = real(y, p, mask)
    gy, gp = with_garbage(y, p, mask, value)
    loss = FrameRegressionTask(OUTPUTS).loss()
    assert isinstance(loss, MaskedCCCLoss)
    # The source's weights average 1 over the batch (mask * B*T / sum): only > 0 matters.
    weights = mask * mask.size / mask.sum()
    got = float(loss(gy, gp, weights))
    assert got == pytest.approx(float(np.mean(1 - ccc(t, q))), abs=1e-5)
    # Without a mask every frame counts: the unmasked CCC of the whole batch.
    whole = float(loss(y, p))
    assert whole == pytest.approx(float(np.mean(1 - ccc(y.reshape(-1, 3), p.reshape(-1, 3)))),
                                  abs=1e-5)
    # A (N, D) batch with a (N,) mask is the same computation.
    assert float(loss(gy.reshape(-1, 3), gp.reshape(-1, 3), mask.reshape(-1))) == \
        pytest.approx(got, abs=1e-6)


def test_inverse_index_weighting_weights_output_i_by_one_over_i():
    y, p, mask = padded_batch(2)
    t, q = real(y, p, mask)
    gy, gp = with_garbage(y, p, mask)
    per_output = 1 - ccc(t, q)
    task = FrameRegressionTask(OUTPUTS, weighting="inverse_index")
    raw = np.array([1.0, 1 / 2, 1 / 3])
    np.testing.assert_allclose(task.output_weights(), raw / raw.sum(), rtol=1e-6)
    assert float(task.loss()(gy, gp, mask)) == pytest.approx(
        float(np.sum(raw / raw.sum() * per_output)), abs=1e-5)
    mean = float(FrameRegressionTask(OUTPUTS).loss()(gy, gp, mask))
    assert mean == pytest.approx(float(per_output.mean()), abs=1e-5)
    with pytest.raises(ValueError, match="weighting"):
        FrameRegressionTask(OUTPUTS, weighting="harmonic")


def test_streaming_metric_counts_real_frames_over_batches():
    y, p, mask = padded_batch(3)
    t, q = real(y, p, mask)
    gy, gp = with_garbage(y, p, mask, np.nan)
    metric = FrameRegressionTask(OUTPUTS).metrics()[0]
    assert isinstance(metric, MaskedConcordanceCorrelation) and metric.name == "CCC"
    metric.update_state(gy[:2], gp[:2], sample_weight=mask[:2])
    metric.update_state(gy[2:], gp[2:], sample_weight=mask[2:] * 3.0)
    assert float(metric.result()) == pytest.approx(float(np.mean(ccc(t, q))), abs=1e-5)
    assert float(metric.count.numpy()) == mask.sum()
    metric.reset_state()
    metric.update_state(y, p)  # no weights: every frame
    assert float(metric.result()) == pytest.approx(
        float(np.mean(ccc(y.reshape(-1, 3), p.reshape(-1, 3)))), abs=1e-5)


def test_loss_and_metric_reach_the_mask_through_keras():
    """``model.evaluate`` on ``(x, y, sample_weight)`` batches: the compiled loss and metric
    see the frame weights (one batch: the loss is that batch's masked CCC loss). Keras gives
    sample weights to ``weighted_metrics`` only: :func:`compile_metrics` puts the masked
    metric there."""
    y, p, mask = padded_batch(4)
    gy, gp = with_garbage(y, p, mask, 7.0)
    t, q = real(y, p, mask)
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    task = FrameRegressionTask(OUTPUTS)
    assert set(compile_metrics(task)) == {"weighted_metrics"}
    assert set(compile_metrics(RegressionTask(OUTPUTS))) == {"metrics"}
    # The runner's path: FitConfig.compile must hand the masked metric the weights.
    from ser_tf.training.classifier import FitConfig

    FitConfig(learning_rate=1e-3).compile(model, task)
    logs = model.evaluate(gp, gy, sample_weight=mask * mask.size / mask.sum(),
                          batch_size=len(gy), verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(float(np.mean(1 - ccc(t, q))), abs=1e-5)
    assert logs["CCC"] == pytest.approx(float(np.mean(ccc(t, q))), abs=1e-5)


def test_loss_and_metric_serialise():
    loss = MaskedCCCLoss([0.5, 0.25, 0.25])
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, MaskedCCCLoss) and again.output_weights == [0.5, 0.25, 0.25]
    metric = MaskedConcordanceCorrelation(3)
    clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(clone, MaskedConcordanceCorrelation) and clone.num_outputs == 3


def test_fold_metrics_are_the_real_frames_ones():
    y, p, mask = padded_batch(5)
    nan_y = y.copy()
    nan_y[mask == 0] = np.nan
    metrics = FrameRegressionTask(OUTPUTS).evaluate(nan_y, with_garbage(y, p, mask)[1])
    t, q = real(y, p, mask)
    assert metrics["n"] == int(mask.sum()) and metrics["outputs"] == list(OUTPUTS)
    np.testing.assert_allclose([metrics["ccc"][o] for o in OUTPUTS], ccc(t, q), rtol=1e-9)
    pairs = real_frame_pairs(nan_y, p)
    assert pairs[0].shape == (mask.sum(), 3)


def test_config_kind_and_rebuild():
    task = FrameRegressionTask(OUTPUTS, weighting="inverse_index")
    # What the semantic runs' configs (and ids) hold: unchanged by the move.
    assert task.config() == {"kind": "frame_regression", "outputs": list(OUTPUTS),
                             "weighting": "inverse_index"}
    assert task_from_config(task.config(), ()) == task
    assert task.labels == OUTPUTS and task.num_outputs == 3
    assert RegressionTask(OUTPUTS).config()["kind"] == "regression"
    assert type(task_from_config(RegressionTask(OUTPUTS).config(), ())) is RegressionTask


def test_semantic_package_uses_the_shared_task():
    from ser_tf.papers.semantic import task as semantic_task

    assert semantic_task.FrameRegressionTask is FrameRegressionTask
    assert semantic_task.real_frame_pairs is real_frame_pairs
