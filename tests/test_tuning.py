"""keras-tuner drives a paper's model through the build(hp) hook, on training and
validation ids only."""

import keras
import numpy as np
import pytest

pytest.importorskip("keras_tuner")
import keras_tuner as kt  # noqa: E402

from ser_tf.training.classifier import FitConfig  # noqa: E402
from ser_tf.training.protocols import Fold  # noqa: E402
from ser_tf.training.sources import TFRecordSource, write_tfrecord_shards  # noqa: E402
from ser_tf.training.tasks import ClassificationTask  # noqa: E402
from ser_tf.training.tuning import hypermodel, resolve, tune_fold  # noqa: E402

TASK = ClassificationTask(("low", "high"))


def build(num_outputs, units=4):
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(num_outputs, activation="softmax")])


def space(hp):
    return {"fit": {"learning_rate": hp.Choice("learning_rate", [1e-5, 1e-1])},
            "model": {"units": hp.Choice("units", [2, 8])}}


def test_build_hp_compiles_the_drawn_model_through_fit_config():
    hp = kt.HyperParameters()
    hp.Fixed("learning_rate", 0.05)
    hp.Fixed("units", 8)
    model = hypermodel(build, FitConfig(jit_compile=False), TASK, space).build(hp)
    assert model.layers[0].units == 8
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    assert model.loss is not None and model.compiled


def test_space_sections_and_fields_are_checked():
    hp = kt.HyperParameters()
    with pytest.raises(ValueError, match="unknown FitConfig fields"):
        resolve(lambda hp: {"fit": {"learnig_rate": 1.0}}, hp)
    with pytest.raises(ValueError, match="'fit' and 'model'"):
        resolve(lambda hp: {"optimiser": {}}, hp)


class Recording(TFRecordSource):
    """A source that remembers every id a dataset was asked for."""

    asked: set = set()

    def dataset(self, ids, **kw):
        Recording.asked |= set(ids)
        return super().dataset(ids, **kw)


def test_tune_fold_finds_the_working_learning_rate_without_reading_test_ids(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2)).astype("float32")
    data = ({"id": f"u{i:03d}", "inputs": {"x": x[i]}, "target": int(x[i].sum() > 0)}
            for i in range(120))
    source = Recording(write_tfrecord_shards(data, tmp_path / "tfr", shard_size=50))
    ids = source.ids
    fold = Fold(0, train_ids=ids[:80], val_ids=ids[80:100], test_ids=ids[100:],
                selection_on_test=False)
    fit = FitConfig(epochs=6, batch_size=16, monitor="val_accuracy", jit_compile=False, seed=1)
    result = tune_fold(fold, source=source, task=TASK, build_model=build, fit=fit, space=space,
                       directory=tmp_path / "tuner", tuner="random", max_trials=4)
    assert result["best"]["learning_rate"] == 1e-1
    assert len(result["trials"]) == 4
    assert Recording.asked == set(ids[:100])
    paper_fold = Fold(1, ids[:80], ids[100:], ids[100:], selection_on_test=True)
    with pytest.raises(ValueError, match="validation ids apart from the test"):
        tune_fold(paper_fold, source=source, task=TASK, build_model=build, fit=fit,
                  space=space, directory=tmp_path / "t2")
