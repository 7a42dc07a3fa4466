"""The cnn_family paper end to end on a tiny generated pooled corpus: training through
``ser-tf train`` with AWGN copies and the per-fold TFLite export, protocol ``paper`` never
choosing on its test split, the Hyperband learning-rate search on training and validation
ids only, and the CNN + Transformer model as TFLite."""

import json

import numpy as np
import pytest

from ser_tf import cli
from ser_tf.papers.cnn_family.synthetic import make_pooled_corpora


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_pooled_corpora(tmp_path_factory.mktemp("pooled"), per_class=3, duration=1.0)


def train(data_root, tmp_path, *flags):
    argv = ["train", "cnn_family", "--data-root", str(data_root), "--results-dir",
            str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--quiet",
            "--model", "cnn", "--epochs", "1", "--batch-size", "16", *flags]
    return cli.main(argv)


def only_record(tmp_path):
    path, = (tmp_path / "results").glob("cnn_family/*/*/record.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_trains_with_awgn_copies_and_exports_every_fold(data_root, tmp_path):
    assert train(data_root, tmp_path, "--protocol", "clean", "--folds", "2", "--awgn", "1") == 0
    record = only_record(tmp_path)
    config = record["config"]
    assert record["corpus"] == "RAVDESS-SAVEE-TESS-CREMAD" and config["n_utterances"] == 84
    assert (config["model"], config["features"], config["bn_axis"]) == ("cnn", "mfcc", "time")
    assert (config["awgn_copies"], config["awgn_snr_db"]) == (1, [15.0, 30.0])
    assert config["fit"]["learning_rate"] == 1e-2 and config["fit"]["patience"] == 10
    assert config["fit"]["checkpoint"] == "best-val" and config["fit"]["monitor"] == "val_loss"
    assert config["labels"] == ["anger", "disgust", "fear", "happiness", "neutral", "sadness",
                                "surprise"]
    for fold in record["per_fold"]:
        assert fold["checkpoint"]["policy"] == "best-val" and not fold["selection_on_test"]
    tflite = record["tflite"]
    assert set(tflite["variants"]) == {"float32", "float16", "dynamic_int8", "int8"}
    assert tflite["n_folds"] == 2 and tflite["float32_max_prob_diff"] < 1e-4


@pytest.mark.slow
def test_paper_protocol_never_chooses_on_the_test_split(data_root, tmp_path, capsys):
    assert train(data_root, tmp_path, "--no-export") == 0  # protocol paper is the default
    record = only_record(tmp_path)
    assert record["folds"]["sizes"] and not record["folds"]["selection_on_test"]
    fold = record["per_fold"][0]
    assert fold["checkpoint"]["policy"] == "best-val" and not fold["selection_on_test"]
    assert len(fold["test_ids"]) == 8
    # Nothing chosen on the test split, but the split is random: the note says that much.
    assert "validation split of its own" in record["protocol_warning"]


@pytest.mark.slow
def test_tuner_picks_the_working_learning_rate_from_training_and_validation_ids(tmp_path):
    from ser_tf.features.cache import FeatureSet
    from ser_tf.models.cnn_family import build_cnn
    from ser_tf.papers.cnn_family.tune import tune_learning_rate
    from ser_tf.training.classifier import FitConfig
    from ser_tf.training.protocols import Fold
    from ser_tf.training.sources import CachedFeatureSource
    from ser_tf.training.tasks import ClassificationTask

    # Three classes told apart by a raised band of bins: 1e-2 learns it in two epochs,
    # 1e-6 does not move.
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    x = rng.normal(size=(150, 32, 32)).astype("float32")
    for c in range(3):
        x[y == c, :, 10 * c:10 * c + 8] += 1.5
    ids = [f"u{i:03d}" for i in range(150)]
    asked = set()

    class Recording(CachedFeatureSource):
        def dataset(self, wanted, **kwargs):
            asked.update(wanted)
            return super().dataset(wanted, **kwargs)

    source = Recording(FeatureSet(x, y, ids, ("a", "b", "c"), [f"{i}.npy" for i in ids]))
    fold = Fold(0, ids[:100], ids[100:125], ids[125:], selection_on_test=False)
    fit = FitConfig(epochs=4, batch_size=16, monitor="val_loss", jit_compile=False, seed=1)
    result = tune_learning_rate(fold, source=source, task=ClassificationTask(("a", "b", "c")),
                                build_model=lambda k: build_cnn(k, (32, 32)), fit=fit,
                                grid=[1e-6, 1e-2], directory=tmp_path / "tuner", max_epochs=4)
    assert result["learning_rate"] == 1e-2 and result["objective"] == "val_loss"
    assert {t["values"]["learning_rate"] for t in result["trials"]} == {1e-6, 1e-2}
    assert asked == set(ids[:125])  # training and validation ids, never a test id


@pytest.mark.slow
def test_tune_command_searches_the_grid_on_the_paper_split(data_root, tmp_path, monkeypatch):
    from ser_tf.training import sources

    asked = set()
    original = sources.CachedFeatureSource.dataset

    def recording(self, ids, **kwargs):
        asked.update(ids)
        return original(self, ids, **kwargs)

    monkeypatch.setattr(sources.CachedFeatureSource, "dataset", recording)
    assert train(data_root, tmp_path, "--tune", "--tune-epochs", "2") == 0
    path, = (tmp_path / "results").glob("cnn_family/*/paper-*.tuning/result.json")
    result = json.loads(path.read_text())
    assert result["grid"] == [1e-5, 1e-4, 1e-3, 1e-2]
    assert result["learning_rate"] in result["grid"] and result["objective"] == "val_loss"
    assert (result["train_utterances"], result["val_utterances"]) == (68, 8)
    assert result["config"]["protocol"] == "paper" and result["fold"] == 0
    assert len(asked) == 76  # 68 training + 8 validation utterances, no test utterance
    assert not list((tmp_path / "results").glob("cnn_family/*/*/record.json"))  # no training


@pytest.mark.slow
def test_cnn_transformer_as_tflite_gives_the_keras_probabilities(tmp_path):
    from ser_tf.export.tflite import export_variants
    from ser_tf.lite import LiteModel
    from ser_tf.models.cnn_family import build_cnn_transformer

    model = build_cnn_transformer(7, (94, 128))
    x = np.random.default_rng(0).normal(scale=20.0, size=(3, 94, 128)).astype("float32")
    reference = model.predict(x, verbose=0)
    paths = export_variants(model, tmp_path, labels=[str(i) for i in range(7)], name="cnn-tf",
                            variants=("float32",), input_spec={"kind": "features"})
    lite = LiteModel(paths["float32"])
    np.testing.assert_allclose(lite.predict(x), reference, atol=1e-5)
