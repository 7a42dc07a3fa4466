"""Adding a paper is adding one package: a toy paper (a few lines, a tiny two-input model)
joins the registry from outside ``ser_tf/papers`` and runs end to end through
``ser-tf train`` on generated audio: a TFRecord data source, k-fold training, run record,
then its model exported to TFLite and run by ``ser_tf.lite``."""

import importlib
import json
import sys
import textwrap

import numpy as np
import pytest

from ser_tf import cli
from ser_tf.data.synthetic import make_emodb_like
from ser_tf.papers import PAPERS_ENV, get_paper, paper_names, unregister_paper

TOY_PAPER = '''
"""A toy paper: log-mel frames and a loudness pair -> a tiny two-input classifier."""
import numpy as np

from ser_tf.experiments import runner
from ser_tf.experiments.spec import Experiment, PaperSpec
from ser_tf.features.recipes import FeatureRecipe

RECIPE = FeatureRecipe("toy_logmel", 16000, {"kind": "window", "offset": 0.0, "duration": 0.5},
                       {"kind": "log_mel", "frame_length": 400, "frame_step": 160,
                        "fft_length": 512, "window": "hann", "power": 2.0, "center": False,
                        "pad_mode": "constant", "num_mel_bins": 16, "fmin": 0.0,
                        "fmax": 8000.0, "mel_scale": "htk", "norm": None, "log": "log",
                        "log_offset": 1e-6, "dft": "fft"})


#: Regression targets per class (a stand-in for continuous annotations).
AROUSAL_VALENCE = {"anger": [0.8, -0.6], "boredom": [-0.7, -0.2], "neutral": [0.0, 0.1]}


def build_model(num_outputs, activation="softmax"):
    import keras

    frames = keras.Input((48, 16), name="frames")
    level = keras.Input((2,), name="level")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Conv1D(8, 3, activation="relu")(frames))
    x = keras.layers.Concatenate()([x, keras.layers.Dense(4, activation="relu")(level)])
    return keras.Model([frames, level], keras.layers.Dense(num_outputs, activation=activation)(x))


def make_source(manifest, folder, regression=False):
    from ser_tf.data.audio import read_audio
    from ser_tf.training.sources import TFRecordSource, write_tfrecord_shards

    def examples():
        for utterance in manifest:
            audio = RECIPE.segment_audio(read_audio(utterance.path, 16000)[0])
            target = (AROUSAL_VALENCE[utterance.label] if regression
                      else manifest.labels.index(utterance.label))
            yield {"id": utterance.utterance_id, "target": target,
                   "inputs": {"frames": RECIPE.compute(audio[None])[0],
                              "level": np.array([np.sqrt(np.mean(audio ** 2)), np.abs(audio).max()])}}

    return TFRecordSource(write_tfrecord_shards(examples(), folder, shard_size=8))


def setup(args, config):
    from ser_tf.data import load_manifest
    from ser_tf.training.classifier import FitConfig
    from ser_tf.training.tasks import RegressionTask

    manifest = load_manifest("EMODB", args.data_dir)
    fit = FitConfig(epochs=config["epochs"], batch_size=8, learning_rate=config["learning_rate"],
                    seed=args.seed, jit_compile=False,
                    monitor="val_CCC" if args.regression else "val_accuracy")
    task = RegressionTask(("arousal", "valence")) if args.regression else None
    return Experiment(
        manifest=manifest, recipe=RECIPE, fit=fit, task=task,
        build_model=lambda n: build_model(n, "tanh" if args.regression else "softmax"),
        source=lambda cache_dir, quiet: make_source(manifest, args.tfrecord_dir, args.regression))


def add_arguments(parser, config):
    parser.add_argument("--tfrecord-dir", required=True)
    parser.add_argument("--regression", action="store_true")


SPEC = PaperSpec(name="toy_paper", title="A toy paper", package=__name__, setup=setup,
                 add_arguments=add_arguments)
build_parser, plan, run, main = runner.commands(SPEC, "toy")
'''


@pytest.fixture()
def toy_paper(tmp_path, monkeypatch):
    package = tmp_path / "lab" / "toy_paper"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(TOY_PAPER))
    (package / "config.yaml").write_text("epochs: 4\nlearning_rate: 0.01\nfolds: 2\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lab"))
    monkeypatch.setenv(PAPERS_ENV, "toy_paper")
    yield importlib.import_module("toy_paper")
    unregister_paper("toy_paper")
    sys.modules.pop("toy_paper", None)


@pytest.mark.slow
def test_toy_paper_runs_end_to_end_through_the_registry(toy_paper, tmp_path):
    assert "toy_paper" in paper_names() and get_paper("toy_paper") is toy_paper.SPEC
    corpus = make_emodb_like(tmp_path / "emodb", per_class=4, duration=0.6, classes="WLN")
    results = tmp_path / "results"
    code = cli.main(["train", "toy_paper", "--data-dir", str(corpus), "--results-dir",
                     str(results), "--tfrecord-dir", str(tmp_path / "tfr"), "--quiet",
                     "--protocol", "speaker"])
    assert code == 0
    record_path, = results.glob("toy_paper/EMODB/*/record.json")
    record = json.loads(record_path.read_text())
    assert record["summary"]["n_folds"] == 2
    assert len(record["per_fold"]) == 2
    assert {"UA", "WA"} <= set(record["summary"])

    # Fold 0's two-input model -> TFLite (float32, full int8) -> ser_tf.lite, TF-free runtime.
    from ser_tf.export.tflite import export_variants
    from ser_tf.lite import LiteModel
    from ser_tf.training.protocols import load_folds
    from ser_tf.training.rundir import RunDir
    from ser_tf.training.sources import TFRecordSource
    from ser_tf.training.tasks import ClassificationTask

    run_dir = RunDir(next(results.glob("toy_paper/EMODB/*.work")))
    fold = load_folds(run_dir.folds)[0]
    model = toy_paper.build_model(len(record["labels"]))
    model.load_weights(run_dir.fold(fold).weights)
    source = TFRecordSource(tmp_path / "tfr")
    task = ClassificationTask(tuple(record["labels"]))

    def inputs(ids):
        batches = list(source.dataset(ids, task=task, training=False, batch_size=64))
        return {name: np.concatenate([np.asarray(x[name]) for x, _ in batches])
                for name in ("frames", "level")}

    paths = export_variants(model, tmp_path / "lite", labels=record["labels"],
                            representative=inputs(fold.train_ids), variants=("float32", "int8"),
                            input_spec=[{"kind": "features"}, {"kind": "tensor"}], name="toy")
    test = inputs(source.evaluation_order(fold.test_ids))
    stored = np.asarray(record["per_fold"][0]["test_probabilities"])
    lite = LiteModel(paths["float32"])
    assert lite.input_names == ["frames", "level"]
    np.testing.assert_allclose(lite.predict(test), stored, atol=1e-4)
    int8 = LiteModel(paths["int8"]).predict([test["frames"], test["level"]])
    assert np.mean(int8.argmax(1) == stored.argmax(1)) >= 0.8


@pytest.mark.slow
def test_toy_paper_regression_task_runs_and_summarises_ccc(toy_paper, tmp_path):
    corpus = make_emodb_like(tmp_path / "emodb", per_class=4, duration=0.6, classes="WLN")
    results = tmp_path / "results"
    argv = ["--data-dir", str(corpus), "--results-dir", str(results), "--tfrecord-dir",
            str(tmp_path / "tfr"), "--quiet", "--protocol", "speaker"]
    assert cli.main(["train", "toy_paper", *argv, "--regression"]) == 0
    record_path, = results.glob("toy_paper/EMODB/*/record.json")
    record = json.loads(record_path.read_text())
    assert record["config"]["task"] == {"kind": "regression", "outputs": ["arousal", "valence"],
                                        "weighting": "mean"}
    assert set(record["summary"]) >= {"ccc_arousal", "ccc_valence", "mean_ccc"}
    assert record["per_fold"][0]["metrics"]["outputs"] == ["arousal", "valence"]
    assert "confusion_matrix.png" not in record["files"]
    # The classification run of the same paper is another run (the task is in its id).
    assert cli.main(["train", "toy_paper", *argv]) == 0
    assert len(list(results.glob("toy_paper/EMODB/*/record.json"))) == 2
