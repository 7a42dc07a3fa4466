"""SequenceRecordSource: the runner's data-source protocol over frame-sequence records."""

from dataclasses import dataclass, field

import keras
import numpy as np
import pytest

from ser_tf.data.sequence_records import SequenceItem, write_sequence_records
from ser_tf.training.classifier import FitConfig, train_fold
from ser_tf.training.protocols import Fold
from ser_tf.training.sequence_source import SequenceRecordSource
from ser_tf.training.tasks import ClassificationTask, RegressionTask, regression_metrics

FRAME_LEN, N_TARGETS, VOCAB = 8, 2, 20
LENGTHS = [3, 5, 7, 4, 6, 2, 8, 5]


def items(seed=0):
    rng = np.random.default_rng(seed)
    for k, length in enumerate(LENGTHS):
        audio = rng.normal(size=(length, FRAME_LEN)).astype(np.float32)
        # A learnable target: arousal follows the first sample, valence the second.
        targets = np.tanh(audio[:, :2]).astype(np.float32)
        yield SequenceItem(f"utt{k}", audio, rng.integers(0, VOCAB, length), targets,
                           {"speaker": f"s{k % 2}"})


@pytest.fixture
def index_path(tmp_path):
    return write_sequence_records(items(), tmp_path / "seq", shard_size=3,
                                  target_names=["arousal", "valence"])


def tiny_model(bias: float = 0.0):
    audio = keras.Input((None, FRAME_LEN), name="audio")
    words = keras.Input((None,), dtype="int64", name="words")
    embedded = keras.layers.Embedding(VOCAB, N_TARGETS, embeddings_initializer="zeros")(words)
    frames = keras.layers.Dense(N_TARGETS, bias_initializer=keras.initializers.Constant(bias))(
        audio)
    return keras.Model({"audio": audio, "words": words}, keras.layers.Add()([frames, embedded]))


def test_source_describes_the_records(index_path):
    source = SequenceRecordSource(index_path, chunk_frames=4)
    assert source.ids == [f"utt{k}" for k in range(len(LENGTHS))]
    assert source.label_names == ("arousal", "valence")
    assert (source.frame_len, source.n_targets) == (FRAME_LEN, N_TARGETS)
    assert source.metadata("utt3") == {"speaker": "s1"}
    assert source.lengths(["utt2", "utt0"]) == [7, 3]
    assert source.stats["frames"] == sum(LENGTHS)
    with pytest.raises(KeyError, match="nope"):
        source.lengths(["nope"])


def test_batches_are_inputs_targets_and_mask_weights(index_path):
    source = SequenceRecordSource(index_path, chunk_frames=4)
    ids = ["utt1", "utt2", "utt6"]  # 5, 7, 8 frames -> 2 + 2 + 2 chunks
    batches = list(source.dataset(ids, training=False, batch_size=4))
    assert len(batches) == 2
    x, y, w = batches[0]
    assert set(x) == {"audio", "words"}
    assert x["audio"].shape == (4, 4, FRAME_LEN) and x["words"].shape == (4, 4)
    assert y.shape == (4, 4, N_TARGETS) and w.shape == (4, 4)
    weights = np.concatenate([b[2].numpy() for b in batches])
    assert weights.shape == (6, 4)
    assert ((weights > 0).sum(axis=1) == [4, 1, 4, 3, 4, 4]).all()  # real frames per chunk
    assert [k for k, _, _ in source.examples(ids)] == ["utt1", "utt1", "utt2", "utt2", "utt6",
                                                       "utt6"]
    for x, y, w in batches:  # each batch's weights average 1: the loss is a real-frame mean
        assert np.isclose(w.numpy().mean(), 1.0)


def test_padding_contributes_nothing_to_the_loss(index_path):
    """A model predicting 1.0 everywhere: padding frames (target 0) would add error 1 each
    if they counted; the loss must be the mean over real frames only."""
    for chunk_frames in (None, 3):
        source = SequenceRecordSource(index_path, chunk_frames=chunk_frames)
        model = tiny_model(bias=1.0)
        dense = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
        dense.kernel.assign(np.zeros((FRAME_LEN, N_TARGETS), np.float32))
        model.compile(loss="mse")
        ids = source.ids
        loss = model.evaluate(source.dataset(ids, training=False, batch_size=64), verbose=0)
        real = source.frame_targets(ids)
        assert real.shape == (sum(LENGTHS), N_TARGETS)
        np.testing.assert_allclose(loss, np.mean((1.0 - real) ** 2), rtol=1e-5)


def test_fit_one_epoch_then_predict_real_frames(index_path):
    source = SequenceRecordSource(index_path, chunk_frames=3, shuffle_buffer=8)
    train, test = source.ids[:6], source.ids[6:]
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    history = model.fit(source.dataset(train, training=True, batch_size=4, seed=0), epochs=1,
                        verbose=0, shuffle=False)  # the dataset shuffles (seeded)
    assert np.isfinite(history.history["loss"][0])
    test_ds = source.dataset(source.evaluation_order(test), training=False, batch_size=2)
    predictions = model.predict(test_ds, verbose=0)
    rows = source.examples(test)
    assert predictions.shape == (len(rows), 3, N_TARGETS)
    frames = source.real_frames(test, predictions)
    assert frames.shape == source.frame_targets(test).shape == (8 + 5, N_TARGETS)
    targets = source.targets(test)
    assert targets.shape == predictions.shape
    assert np.isnan(targets).any(axis=-1).sum() == len(rows) * 3 - 13  # NaN on padding
    np.testing.assert_array_equal(source.mask(test).sum(), 13)


def test_unchunked_evaluation_pads_to_the_longest_recording(index_path):
    source = SequenceRecordSource(index_path)
    ids = ["utt0", "utt6", "utt5"]
    shapes = [x["audio"].shape[1] for x, _, _ in source.dataset(ids, training=False,
                                                                  batch_size=1)]
    assert shapes == [8, 8, 8]  # predict can join the batches
    assert source.evaluation_order(ids) == ["utt0", "utt5", "utt6"]
    train_shapes = sorted(x["audio"].shape[1] for x, _, _ in
                          source.dataset(ids, training=True, batch_size=1, seed=0))
    assert train_shapes == [2, 3, 8]  # training pads per batch only


def test_training_order_is_seeded_and_resumes(index_path):
    source = SequenceRecordSource(index_path, shuffle_buffer=8)

    def keys(ds, n=None):
        out = []
        for x, _, w in ds.take(n) if n else ds:
            out += [tuple(np.round(a[:1, 0], 5)) for a in x["audio"].numpy()]
        return out

    ids = source.ids
    first = keys(source.dataset(ids, training=True, batch_size=1, seed=5))
    assert first == keys(source.dataset(ids, training=True, batch_size=1, seed=5))
    ds = source.dataset(ids, training=True, batch_size=1, seed=5)
    passes = [keys(ds), keys(ds)]
    resumed = source.dataset(ids, training=True, batch_size=1, seed=5, consumed=len(ids))
    assert keys(resumed) == passes[1]  # a resumed fold reads the order of its next pass
    with pytest.raises(ValueError, match="whole passes"):
        source.dataset(ids, training=True, batch_size=1, seed=5, consumed=3)
    with pytest.raises(ValueError, match="seed"):
        source.dataset(ids, training=True, batch_size=1)


def test_refuses_a_classification_task_and_applies_a_regression_encoding(index_path):
    source = SequenceRecordSource(index_path)
    with pytest.raises(ValueError, match="classification"):
        source.dataset(source.ids, task=ClassificationTask(("a", "b")), training=False,
                       batch_size=2)
    _, y, _ = next(iter(source.dataset(source.ids, task=RegressionTask(("arousal", "valence")),
                                       training=False, batch_size=2)))
    assert y.dtype == "float32"


@dataclass(frozen=True)
class FrameRegression:
    """A minimal per-frame task for the runner (the real one belongs to a model package)."""

    outputs: tuple = ("arousal", "valence")
    kind: str = field(default="frame_regression", init=False)

    @property
    def num_outputs(self):
        return len(self.outputs)

    @property
    def labels(self):
        return self.outputs

    def loss(self, fit=None):
        return "mse"

    def metrics(self):
        return []

    def encode_targets(self, targets):
        return targets

    def evaluate(self, y_true, predictions):
        real = ~np.isnan(y_true).any(axis=-1)  # padding frames are NaN in the raw targets
        return regression_metrics(y_true[real], np.asarray(predictions)[real], self.outputs)

    def config(self):
        return {"kind": self.kind}


def test_train_fold_runs_from_sequence_records(index_path, tmp_path):
    source = SequenceRecordSource(index_path, chunk_frames=4)
    ids = source.ids
    fold = Fold(index=0, train_ids=ids[:5], val_ids=ids[5:6], test_ids=ids[6:],
                selection_on_test=False)
    fit = FitConfig(epochs=1, batch_size=2, learning_rate=0.01, checkpoint="last",
                    jit_compile=False, seed=0)
    result = train_fold(fold, tmp_path / "fold", build_model=lambda n: tiny_model(),
                        fit=fit, source=source, task=FrameRegression(), quiet=True)
    assert result["metrics"]["n"] == 8 + 5  # the test recordings' real frames
    assert result["test_ids"] == ["utt6", "utt7"]
    assert np.isfinite(result["history"]["loss"][0])
