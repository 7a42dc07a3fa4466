"""The cnn_family paper end to end on a tiny generated pooled corpus: training through
``ser-tf train`` with AWGN copies and the per-fold TFLite export, protocol ``paper`` never
choosing on its test split, every fold scored under noise, the Hyperband learning-rate
search on training and validation ids only and its best value reused with ``--hparams``,
the issue's command line (``python -m ser_tf.experiments.cnn_family``), and the three
models as TFLite."""

import json
import subprocess
import sys
import time

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
    # What each corpus gave, per label (3 per class, 7 classes, 4 corpora = 84).
    counts = record["corpus_counts"]
    assert sorted(counts) == ["CREMAD", "RAVDESS", "SAVEE", "TESS"]
    assert all(list(c) == config["labels"] for c in counts.values())
    assert sum(sum(c.values()) for c in counts.values()) == 84
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
    for variant in tflite["variants"].values():  # size and latency in the export record
        assert variant["size_bytes"] > 0 and variant["latency"]
    # Noise scores of both folds: clean, 20, 10 and 0 dB, summarised in the record.
    noise = record["noise_robustness"]
    assert list(noise["conditions"]) == ["clean", "20 dB", "10 dB", "0 dB"]
    assert noise["n_folds"] == 2 and noise["snr_db"] == [20.0, 10.0, 0.0]


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
    # The test tenth scored under noise too; clean through the same path = the fold's scores.
    conditions = fold["noise"]["conditions"]
    assert list(conditions) == ["clean", "20 dB", "10 dB", "0 dB"]
    assert conditions["clean"]["UA"] == pytest.approx(fold["metrics"]["UA"])
    assert conditions["clean"]["WA"] == pytest.approx(fold["metrics"]["WA"])
    assert fold["noise"]["n_utterances"] == 8 and fold["noise"]["seed"] == 42
    summary = record["noise_robustness"]["conditions"]
    assert summary["0 dB"]["UA"]["per_fold"] == [conditions["0 dB"]["UA"]]
    assert "hparams" not in record and "tflite" not in record


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
def test_tune_command_searches_the_grid_then_training_reuses_the_best_value(
        data_root, tmp_path, monkeypatch):
    from ser_tf.training import sources
    from ser_tf.training.classifier import FitConfig

    asked = set()
    original = sources.CachedFeatureSource.dataset

    def recording(self, ids, **kwargs):
        asked.update(ids)
        return original(self, ids, **kwargs)

    monkeypatch.setattr(sources.CachedFeatureSource, "dataset", recording)
    assert train(data_root, tmp_path, "--tune", "--tune-epochs", "2") == 0
    path, = (tmp_path / "results").glob("cnn_family/*/paper-*.tuning/hyperband-2ep/result.json")
    result = json.loads(path.read_text())
    assert result["grid"] == [1e-5, 1e-4, 1e-3, 1e-2]
    assert result["learning_rate"] in result["grid"] and result["objective"] == "val_loss"
    assert (result["train_utterances"], result["val_utterances"]) == (68, 8)
    assert result["config"]["protocol"] == "paper" and result["fold"] == 0
    assert len(asked) == 76  # 68 training + 8 validation utterances, no test utterance
    assert not list((tmp_path / "results").glob("cnn_family/*/*/record.json"))  # no training
    assert list((path.parent / "keras_tuner" / "fold_00" / "tensorboard").glob("*/execution0"))
    best_file = path.parent / "best_hparams.json"
    best = json.loads(best_file.read_text())
    assert best["fit"] == {"learning_rate": result["learning_rate"]}
    assert best["source"]["search"] == str(path) and best["source"]["tuner"] == "hyperband"

    # Training with --hparams: the optimiser gets the file's rate, the builder its model
    # settings, and the record says where they came from.
    best_file.write_text(json.dumps({**best, "fit": {"learning_rate": 0.0042},
                                     "model": {"dropout": 0.125}}))
    compiled = []
    compile_ = FitConfig.compile

    def spy(self, model, task):
        compiled.append(compile_(self, model, task))
        return compiled[-1]

    monkeypatch.setattr(FitConfig, "compile", spy)
    assert train(data_root, tmp_path, "--hparams", str(best_file), "--no-export",
                 "--noise-eval", "off") == 0
    model = compiled[-1]
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0042)
    dropouts = [layer.rate for layer in model.layers if "dropout" in layer.name]
    assert dropouts and set(dropouts) == {0.125}
    record = only_record(tmp_path)
    assert record["config"]["fit"]["learning_rate"] == 0.0042
    assert record["config"]["model_kwargs"] == {"dropout": 0.125}
    assert record["hparams"]["file"] == str(best_file.resolve())
    assert record["hparams"]["source"]["search"] == str(path)
    assert record["hparams"]["fit"] == {"learning_rate": 0.0042}
    assert "noise_robustness" not in record  # --noise-eval off
    assert train(data_root, tmp_path, "--hparams", str(tmp_path / "none.json")) == 1


def test_the_issues_command_line_spelling(data_root):
    from ser_tf.experiments.cnn_family import build_parser

    parse = build_parser().parse_args
    args = parse(["--model", "2cnn_transformer", "--input", "mel", "--awgn", "2",
                  "--protocol", "speaker", "--dataset", "RAVDESS", "--tune", "--tuner", "random"])
    assert (args.model, args.features, args.awgn, args.corpora) == \
        ("transformer", "mel", 2, ["ravdess"])
    assert parse(["--model", "2cnn"]).model == "parallel"
    assert parse(["--dataset", "ravdess+savee+tess+crema-d"]).corpora == \
        ["ravdess", "savee", "tess", "cremad"]
    assert parse([]).noise_eval == [20.0, 10.0, 0.0]
    assert parse(["--noise-eval", "off"]).noise_eval == []
    for argv in (["--model", "3cnn"], ["--dataset", "EMODB"],
                 ["--dataset", "RAVDESS", "--corpora", "tess"],
                 ["--hparams", "f.json", "--learning-rate", "0.1"],
                 ["--noise-eval", "20,x"]):
        with pytest.raises(SystemExit):
            parse(argv)
    # One corpus: --data-dir may be that corpus's own folder, as for the other papers.
    from ser_tf.papers.cnn_family.corpora import corpus_dirs

    dirs = corpus_dirs(parse(["--dataset", "RAVDESS", "--data-dir", str(data_root / "ravdess")]))
    assert dirs == {"RAVDESS": data_root / "ravdess"}


def test_hparams_model_settings_must_be_the_models(data_root, tmp_path):
    from ser_tf.experiments.cnn_family import build_parser, plan
    from ser_tf.tuning.hparams import HParamsError

    path = tmp_path / "best.json"
    path.write_text(json.dumps({"fit": {}, "model": {"units": 8}}))
    base = ["--data-root", str(data_root), "--results-dir", str(tmp_path), "--model", "cnn"]
    with pytest.raises(HParamsError, match=r"\['units'\] are not settings of the cnn model"):
        plan(build_parser().parse_args([*base, "--hparams", str(path)]))
    path.write_text(json.dumps({"fit": {"batch_size": 8}, "model": {"dropout": 0.2}}))
    planned = plan(build_parser().parse_args([*base, "--hparams", str(path)]))
    assert planned.config["fit"]["batch_size"] == 8
    assert planned.config["model_kwargs"] == {"dropout": 0.2}
    # Without --hparams the config has no model_kwargs entry: earlier run ids stay.
    assert "model_kwargs" not in plan(build_parser().parse_args(base)).config


def test_the_experiments_module_answers_help_without_tensorflow():
    probe = ("import runpy, sys; sys.argv = ['x', '--help']\n"
             "try:\n    runpy.run_module('ser_tf.experiments.cnn_family', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'tensorflow', 'keras', 'keras_tuner', 'sklearn'}))")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60)
    elapsed = time.perf_counter() - start
    assert out.returncode == 0, out.stderr
    assert "--model {cnn,2cnn,2cnn_transformer}" in out.stdout and "--tuner" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert elapsed < 5


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cnn", "parallel", "transformer"])
def test_every_model_as_builtin_only_tflite_gives_the_keras_probabilities(tmp_path, kind):
    from ser_tf.export.tflite import export_variants, flex_ops, operators
    from ser_tf.lite import LiteModel
    from ser_tf.models.cnn_family import build_model

    model = build_model(kind, 7, (94, 128))
    x = np.random.default_rng(0).normal(scale=20.0, size=(3, 94, 128)).astype("float32")
    reference = model.predict(x, verbose=0)
    paths = export_variants(model, tmp_path, labels=[str(i) for i in range(7)],
                            name=f"cnn-family-{kind}", variants=("float32",),
                            input_spec={"kind": "features"})
    content = paths["float32"].read_bytes()
    assert flex_ops(content) == []  # TFLite builtins only, the Transformer's attention too
    assert "CONV_2D" in operators(content)
    lite = LiteModel(paths["float32"])
    np.testing.assert_allclose(lite.predict(x), reference, atol=1e-5)
