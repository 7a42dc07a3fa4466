"""Attention-FCN (Zhang et al., APSIPA ASC 2018) and its 1-D student variant: the attention
maths, masking of padded frames, parameter counts, trunk weights, the padded data source,
collapse flags, TFLite with α as a second output, and `ser-tf train attention_fcn` end to end."""

import json
import os
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ser_tf.data.synthetic import class_signal, make_emodb_like, write_wav  # noqa: E402
from ser_tf.models.attention_fcn import (MIN_FRAMES, AttentionPooling, PadTime,  # noqa: E402
                                         SequenceLengths, TimeMask, alexnet_trunk,
                                         build_attention_fcn_1d, build_attention_fcn_2d,
                                         load_trunk_weights, trunk_output_length)
from ser_tf.papers.attention_fcn import recipes  # noqa: E402
from ser_tf.reporting.attention_maps import (ExplainLiteModel, attention_of,  # noqa: E402
                                             explain, export_explain_tflite, stretch)

LABELS = ["anger", "happiness", "neutral", "sadness"]


def _pooling(lam, channels=2):
    """An AttentionPooling with W = I, b = 0, u = e_0: e_i = tanh(a_i0)."""
    layer = AttentionPooling(lam)
    layer.build((None, 3, channels))
    layer.set_weights([np.eye(channels, dtype="float32"), np.zeros(channels, "float32"),
                       np.eye(channels, 1, dtype="float32")])
    return layer


def test_attention_is_the_papers_formula_and_lambda_sharpens_it():
    a = np.array([[[0.2, 1.0], [1.5, -2.0], [-0.7, 0.5]]], "float32")
    entropies = []
    for lam in (0.0, 0.3, 1.0, 5.0):
        context, alpha = (np.asarray(t) for t in _pooling(lam)(a))
        e = lam * np.tanh(a[0, :, 0])
        expected = np.exp(e) / np.exp(e).sum()
        np.testing.assert_allclose(alpha[0], expected, rtol=1e-6)
        np.testing.assert_allclose(context[0], expected @ a[0], rtol=1e-6)
        entropies.append(float(-(alpha * np.log(alpha)).sum()))
    assert entropies[0] == pytest.approx(np.log(3))  # λ = 0: the plain mean
    assert entropies == sorted(entropies, reverse=True) and entropies[-1] < entropies[0] - 0.3


def test_masked_positions_get_no_attention_and_the_rest_sums_to_one():
    a = np.random.default_rng(0).normal(size=(2, 3, 2)).astype("float32")
    mask = np.array([[1, 1, 0], [1, 1, 1]], "float32")
    layer = _pooling(1.0)
    context, alpha = (np.asarray(t) for t in layer([a, mask]))
    assert alpha[0, 2] == 0.0 and alpha[0, :2].sum() == pytest.approx(1.0)
    alone_context, alone = (np.asarray(t) for t in layer(a[:1, :2]))
    np.testing.assert_allclose(alpha[0, :2], alone[0], rtol=1e-6)
    np.testing.assert_allclose(context[0], alone_context[0], rtol=1e-6)
    # A 4-D map with a (batch, H') time mask: whole rows are masked.
    grid = np.random.default_rng(1).normal(size=(1, 4, 3, 2)).astype("float32")
    _, alpha = (np.asarray(t) for t in AttentionPooling(0.3)([grid, np.array([[1, 1, 0, 0]])]))
    assert alpha.shape == (1, 4, 3) and not alpha[0, 2:].any()
    assert alpha[0, :2].sum() == pytest.approx(1.0) and (alpha[0, :2] > 0).all()


@pytest.mark.parametrize("layer", [AttentionPooling(0.8, units=7, return_attention=False),
                                   SequenceLengths(11, 4, "valid"), TimeMask(mask_only=True),
                                   PadTime(67)])
def test_layers_round_trip_through_their_config(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config


def test_parameter_counts_by_hand():
    conv = [(11, 1, 96), (5, 96, 256), (3, 256, 384), (3, 384, 384), (3, 384, 256)]
    trunk = sum(k * k * cin * cout + cout for k, cin, cout in conv)
    assert trunk == 3_723_968
    attention, head = 256 * 256 + 256 + 256, 256 * 4 + 4  # W, b, u; softmax layer
    assert build_attention_fcn_2d(4).count_params() == trunk + attention + head == 3_791_044
    assert build_attention_fcn_2d(4, (300, 200)).count_params() == 3_791_044
    conv_1d = [(11, 1, 5), (5, 5, 10), (3, 10, 20), (3, 20, 30)]
    convs = sum(k * cin * cout + cout for k, cin, cout in conv_1d)
    assert convs == 2770
    assert build_attention_fcn_1d(4).count_params() == convs + (30 * 30 + 30 + 30) + (30 * 4 + 4) \
        == 3854
    # The shapes the README states: a 300 x 200 crop gives an 8 x 5 map; 67 frames at least.
    assert (trunk_output_length(300), trunk_output_length(200), MIN_FRAMES) == (8, 5, 67)
    assert build_attention_fcn_1d(4).get_layer("attention").output[1].shape == (None, 2)


def test_padding_changes_nothing_and_padded_frames_get_no_attention():
    model = build_attention_fcn_2d(4)
    rng = np.random.default_rng(0)
    lengths = [150, 400, 30]  # 30 < MIN_FRAMES: padded inside the model
    utterances = [rng.normal(size=(n, 200)).astype("float32") for n in lengths]
    batch = np.zeros((3, 400, 200), "float32")
    for i, u in enumerate(utterances):
        batch[i, :len(u)] = u
    batch[0, 150:] = 7.0  # whatever lies past a row's length must not matter
    inputs = {"features": batch, "lengths": np.asarray(lengths, "int32")}
    together, alpha = attention_of(model, inputs)
    for i, u in enumerate(utterances):
        alone, alone_alpha = attention_of(model, {"features": u[None],
                                                  "lengths": np.asarray([len(u)], "int32")})
        np.testing.assert_allclose(together[i], alone[0], atol=1e-6)
        rows = max(int(trunk_output_length(len(u))), 1)
        np.testing.assert_allclose(alpha[i, :rows], alone_alpha[0, :rows], atol=1e-6)
        assert not alpha[i, rows:].any()  # exactly 0 on padding
        assert alpha[i].sum() == pytest.approx(1.0, abs=1e-6)
        assert (alpha[i, :rows] > 0).all()


def test_fixed_length_model_takes_the_variable_models_weights(tmp_path):
    variable, fixed = build_attention_fcn_2d(4), build_attention_fcn_2d(4, (300, 200))
    variable.save_weights(tmp_path / "fold.weights.h5")
    fixed.load_weights(tmp_path / "fold.weights.h5")
    x = np.random.default_rng(2).normal(size=(2, 300, 200)).astype("float32")
    np.testing.assert_allclose(
        fixed.predict(x, verbose=0),
        variable.predict({"features": x, "lengths": np.array([300, 300], "int32")}, verbose=0),
        atol=1e-6)


def test_saved_variable_model_loads_with_its_custom_layers(tmp_path):
    model = build_attention_fcn_2d(4, lam=0.5)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    assert loaded.get_layer("attention").lam == 0.5
    x = {"features": np.random.default_rng(3).normal(size=(1, 120, 200)).astype("float32"),
         "lengths": np.array([100], "int32")}
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_trunk_weights_load_from_saved_files(tmp_path):
    trunk = alexnet_trunk()
    trunk.save(tmp_path / "trunk.keras")
    trunk.save_weights(tmp_path / "trunk.weights.h5")
    for path in (tmp_path / "trunk.keras", tmp_path / "trunk.weights.h5"):
        model = build_attention_fcn_2d(4)
        assert load_trunk_weights(model, path) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
        for name in ("conv1", "conv3", "conv5"):
            for ours, theirs in zip(model.get_layer(name).get_weights(),
                                    trunk.get_layer(name).get_weights()):
                np.testing.assert_array_equal(ours, theirs)
    rgb = alexnet_trunk((None, None, 3))
    rgb.save_weights(tmp_path / "rgb.weights.h5")
    model = build_attention_fcn_2d(4)
    load_trunk_weights(model, tmp_path / "rgb.weights.h5")
    np.testing.assert_allclose(model.get_layer("conv1").kernel.numpy(),
                               rgb.get_layer("conv1").kernel.numpy().sum(axis=2, keepdims=True),
                               rtol=1e-6)
    build_attention_fcn_1d(4).save(tmp_path / "one_d.keras")
    with pytest.raises(ValueError, match="Conv2D"):
        load_trunk_weights(model, tmp_path / "one_d.keras")
    with pytest.raises(FileNotFoundError):
        load_trunk_weights(model, tmp_path / "missing.keras")


def test_recipe_moved_with_its_config_unchanged():
    expected = ('{"frontend": {"center": false, "dft": "matmul", "fft_length": 800, '
                '"frame_length": 640, "frame_step": 160, "kind": "spectrogram", "log": "log", '
                '"log_offset": 1e-06, "max_hz": 4000.0, "pad_mode": "constant", "power": 1.0, '
                '"window": "hamming"}, "name": "attention_fcn", "sample_rate": 16000, '
                '"segment": {"duration": 3.03, "kind": "window", "offset": 0.0}}')
    assert json.dumps(recipes.RECIPE.config(), sort_keys=True) == expected
    assert recipes.crop_recipe(None) is recipes.RECIPE
    assert recipes.crop_recipe(1.5).feature_shape() == (150, 200)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from ser_tf.data import load_manifest
    from ser_tf.papers.attention_fcn.experiment import four_class_manifest

    root = make_emodb_like(tmp_path_factory.mktemp("emodb"), per_class=3, duration=1.0,
                           classes="WFNTL")  # boredom (L) is left out of the 4 classes
    return root, four_class_manifest(load_manifest("EMODB", root))


def test_padded_source_pads_each_batch_and_passes_true_lengths(corpus, tmp_path):
    from ser_tf.features.cache import extract_features
    from ser_tf.training.padded import PaddedFeatureSource, extract_utterance_features
    from ser_tf.training.tasks import ClassificationTask

    _, manifest = corpus
    assert manifest.labels == tuple(LABELS) and len(manifest) == 12
    features = extract_utterance_features(manifest, recipes.UTTERANCE_RECIPE, tmp_path)
    assert features.stats["computed"] == 12 and len(set(features.lengths)) > 3
    again = extract_utterance_features(manifest, recipes.UTTERANCE_RECIPE, tmp_path, load=False)
    assert again.stats["cached"] == 12 and again.arrays is None
    np.testing.assert_array_equal(again.array(5), features.array(5))
    # The same front-end as the 3 s crops: equal on the frames both have.
    crops = extract_features(manifest, recipes.RECIPE, tmp_path)
    n = int(features.lengths[0])
    np.testing.assert_allclose(features.array(0), crops.features[0, :n], atol=1e-3)

    source, task = PaddedFeatureSource(features), ClassificationTask(manifest.labels)
    ids = source.ids
    x, y = next(iter(source.dataset(ids[:4], task=task, training=False, batch_size=4)))
    lengths = features.lengths[:4]
    assert x["features"].shape == (4, lengths.max(), 200)
    np.testing.assert_array_equal(x["lengths"], lengths)
    short = int(np.argmin(lengths))
    assert not np.asarray(x["features"][short, lengths[short]:]).any()  # zero padding
    np.testing.assert_array_equal(np.argmax(y, 1), source.targets(ids[:4]))

    def order(dataset):  # one pass, as lengths (they identify the rows here)
        return [int(v) for x, _ in dataset for v in x["lengths"]]

    train = dict(task=task, training=True, batch_size=5, seed=7)
    first = source.dataset(ids, **train)
    passes = [order(first), order(first)]
    assert passes[0] != passes[1] and sorted(passes[0]) == sorted(features.lengths)
    assert order(source.dataset(ids, **train)) == passes[0]  # the seed repeats it
    assert order(source.dataset(ids, **train, consumed=len(ids))) == passes[1]  # resumed
    stream = iter(source.dataset(ids, **train, repeat=True))  # full batches across passes
    assert [int(v) for _ in range(3) for v in next(stream)[0]["lengths"]] == \
        passes[0] + passes[1][:3]


def test_mean_over_time_gives_one_vector_per_utterance(corpus, tmp_path):
    from ser_tf.training.padded import extract_utterance_features, mean_over_time

    _, manifest = corpus
    features = extract_utterance_features(manifest, recipes.RECIPE_1D, tmp_path)
    vectors = mean_over_time(features)
    assert vectors.features.shape == (12, 128) and vectors.ids == features.ids
    np.testing.assert_allclose(vectors.features[3], features.array(3).mean(axis=0), rtol=1e-6)


def test_collapsed_folds_are_flagged_in_their_results(tmp_path):
    from ser_tf.papers.attention_fcn.collapse import collapse, collapse_summary, flag_fold

    collapsed = {"confusion_matrix": [[0, 5, 0, 0], [0, 5, 0, 0], [0, 4, 1, 0], [0, 5, 0, 0]]}
    balanced = {"confusion_matrix": np.diag([5, 5, 5, 5]).tolist()}
    assert collapse(collapsed, LABELS) == {"class": "happiness", "share": 0.95}
    assert collapse(balanced, LABELS) is None
    assert collapse(collapsed, LABELS, threshold=0.96) is None
    stored = tmp_path / "fold_01" / "result.json"
    stored.parent.mkdir()
    stored.write_text(json.dumps({"fold": 1, "metrics": collapsed}))
    result = json.loads(stored.read_text())
    flag_fold(tmp_path, types.SimpleNamespace(index=1), result, LABELS)
    assert result["collapsed"] == json.loads(stored.read_text())["collapsed"] \
        == {"class": "happiness", "share": 0.95}
    assert collapse_summary([result, {"fold": 0, "collapsed": None}]) == {
        "threshold": 0.9, "n_collapsed": 1, "folds": [{"fold": 1, "class": "happiness",
                                                       "share": 0.95}]}


def test_explain_tflite_returns_probabilities_and_alpha_as_keras_does(corpus, tmp_path):
    root, manifest = corpus
    fixed = build_attention_fcn_2d(4, (300, 200))
    paths = export_explain_tflite(fixed, tmp_path, labels=LABELS, recipe=recipes.RECIPE,
                                  name="afcn-explain", variants=("float32",))
    lite = ExplainLiteModel(paths["float32"])
    x = np.random.default_rng(4).normal(size=(3, 300, 200)).astype("float32")
    probabilities, alpha = lite.predict(x)
    expected_p, expected_alpha = attention_of(fixed, x)
    assert alpha.shape == (3, 8, 5)
    np.testing.assert_allclose(probabilities, expected_p, atol=1e-5)
    np.testing.assert_allclose(alpha, expected_alpha, atol=1e-6)
    # From audio: the TFLite file (TF-free features) and the Keras model with a recipe.
    audio = manifest[0].path
    from_lite = explain(audio, paths["float32"], tmp_path / "lite.png")
    from_keras = explain(audio, fixed, tmp_path / "keras.png", recipe="attention_fcn",
                         labels=LABELS)
    assert from_lite["png"].stat().st_size > 1000 and from_keras["png"].is_file()
    np.testing.assert_allclose(from_lite["attention"], from_keras["attention"], atol=1e-3)
    variable = explain(audio, build_attention_fcn_2d(4), tmp_path / "whole.png",
                       recipe=recipes.UTTERANCE_RECIPE, labels=LABELS)
    assert variable["attention"].sum() == pytest.approx(1.0, abs=1e-5)
    assert stretch(np.eye(2), (4, 6)).shape == (4, 6)


@pytest.mark.parametrize("scale", ["power", "db"])
def test_one_d_waveform_model_matches_features_and_converts(tmp_path, scale):
    from ser_tf.lite import LiteModel
    from ser_tf.papers.attention_fcn.export import build_waveform_model_1d, export_waveform_1d
    from ser_tf.training.padded import _frontend

    recipe, model = recipes.RECIPES_1D[scale], build_attention_fcn_1d(4)
    audio = class_signal(2, duration=3.0, sr=22050, seed=1)
    mean = _frontend(recipe)(audio).mean(axis=0)
    expected = model.predict(mean[None], verbose=0)
    waveform = build_waveform_model_1d(model, recipe)
    np.testing.assert_allclose(waveform.predict(audio[None], verbose=0), expected, rtol=1e-4,
                               atol=1e-6)
    paths = export_waveform_1d(model, tmp_path, recipe, LABELS, variants=("float32",))
    np.testing.assert_allclose(LiteModel(paths["float32"]).predict(audio[None]), expected,
                               rtol=1e-3, atol=1e-5)
    path = write_wav(tmp_path / "one.wav", audio, sr=22050)
    result = explain(path, model, tmp_path / "one_d.png", recipe=recipe, labels=LABELS)
    assert result["attention"].shape == (2,) and result["png"].is_file()


def _train(tmp_path, root, *flags):
    from ser_tf import cli

    results = tmp_path / "results"
    code = cli.main(["train", "attention_fcn", "--dataset", "EMODB", "--data-dir", str(root),
                     "--results-dir", str(results), "--cache-dir", str(tmp_path / "cache"),
                     "--folds", "2", "--epochs", "2", "--batch-size", "4", "--quiet", *flags])
    assert code == 0
    record_path, = results.glob("attention_fcn/EMODB/*/record.json")
    return json.loads(record_path.read_text()), record_path


@pytest.mark.slow
def test_train_2d_on_whole_utterances_end_to_end(corpus, tmp_path):
    alexnet_trunk().save_weights(tmp_path / "trunk.weights.h5")
    record, path = _train(tmp_path, corpus[0], "--variant", "2d", "--protocol", "paper",
                          "--no-export", "--trunk-weights", str(tmp_path / "trunk.weights.h5"))
    assert record["config"]["trunk_weights"]["file"] == "trunk.weights.h5"
    assert record["labels"] == LABELS and record["summary"]["n_folds"] == 2
    assert record["config"]["recipe"]["name"] == "attention_fcn_utterance"
    assert record["config"]["fit"]["checkpoint"] == "last" and record["config"]["lam"] == 0.3
    assert all("collapsed" in fold for fold in record["per_fold"])
    assert record["collapse"]["n_collapsed"] == sum(bool(f["collapsed"])
                                                    for f in record["per_fold"])
    stored = json.loads(next(path.parent.parent.glob("*.work/fold_00/result.json")).read_text())
    assert "collapsed" in stored and {"UA", "WA"} <= set(record["summary"])


@pytest.mark.slow
def test_train_1d_end_to_end_with_tflite_export(corpus, tmp_path):
    record, _ = _train(tmp_path, corpus[0], "--variant", "1d", "--protocol", "clean")
    assert record["config"]["recipe"]["name"] == "attention_fcn_1d"
    assert record["config"]["lam"] == 0.8 and record["config"]["fit"]["batch_size"] == 4
    tflite = record["tflite"]
    assert set(tflite["variants"]) == {"float32", "float16", "dynamic_int8", "int8"}
    assert tflite["variants"]["float32"]["max_prob_diff_vs_keras"] < 1e-4


@pytest.mark.slow
def test_train_2d_on_iemocap_holds_out_sessions_with_excited_as_happiness(tmp_path):
    """The paper's corpus through the experiment: IEMOCAP's layout, excited merged into
    happiness, frustration left out, speaker-independent folds that hold out whole sessions,
    spectrograms read from the cache per batch (IEMOCAP's are not held in memory)."""
    from ser_tf import cli
    from ser_tf.data.synthetic import IEMOCAP_CODES, make_iemocap_like

    root = make_iemocap_like(tmp_path / "iemocap", sessions=(1, 2, 3), per_code=2,
                             duration=1.0)
    results = tmp_path / "results"
    code = cli.main(["train", "attention_fcn", "--variant", "2d", "--dataset", "IEMOCAP",
                     "--data-dir", str(root), "--protocol", "speaker", "--results-dir",
                     str(results), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1",
                     "--batch-size", "8", "--no-export", "--quiet"])
    assert code == 0
    record = json.loads(next(results.glob("attention_fcn/IEMOCAP/*/record.json")).read_text())
    assert record["labels"] == LABELS and record["corpus"] == "IEMOCAP"
    # 3 sessions x 2 speakers x 2 utterances of each code but "fru": 60 utterances.
    assert record["config"]["n_utterances"] == 3 * 2 * 2 * (len(IEMOCAP_CODES) - 1)
    sizes = record["folds"]["sizes"]
    assert [fold["test_groups"] for fold in sizes] == [["Session1"], ["Session2"],
                                                       ["Session3"]]
    assert all(fold["test"] == 20 and not fold["selection_on_test"] for fold in sizes)
    # Happiness holds hap and exc: twice the other classes in every test session.
    for fold in record["per_fold"]:
        support = fold["metrics"]["per_class"]
        assert support["happiness"]["support"] == 2 * support["anger"]["support"] == 8
    assert record["config"]["data"]["files"] == 60


def test_flags_of_one_variant_are_refused_for_the_other(capsys):
    from ser_tf.papers.attention_fcn.experiment import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--variant", "1d", "--crop", "2"])
    assert "only for --variant 2d" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--variant", "2d", "--input-scale", "db"])
    assert "only for --variant 1d" in capsys.readouterr().err
    args = build_parser().parse_args(["--crop", "2"])
    assert args.variant == "2d" and args.folds == 5 and args.protocol == "clean"


def test_input_scale_picks_the_recipe_and_keeps_the_power_run_id(corpus):
    from ser_tf.papers.attention_fcn.experiment import SPEC, build_parser, plan

    def planned(*flags):
        args = build_parser().parse_args(["--variant", "1d", "--dataset", "EMODB",
                                          "--data-dir", str(corpus[0]), "--folds", "2", *flags])
        return plan(args)

    power, default, db = planned("--input-scale", "power"), planned(), planned(
        "--input-scale", "db")
    assert power.run_id == default.run_id != db.run_id
    assert db.config["recipe"]["name"] == "attention_fcn_1d_db"
    assert db.config["recipe"]["frontend"]["log"] == "db"
    assert db.config["input"] == "mel dB, mean over time"


def test_crop_runs_train_a_fixed_length_model(corpus):
    from ser_tf.papers.attention_fcn.experiment import SPEC, build_parser, plan

    args = build_parser().parse_args(["--dataset", "EMODB", "--data-dir", str(corpus[0]),
                                      "--crop", "1.5", "--folds", "2"])
    config = plan(args).config
    assert config["crop_seconds"] == 1.5 and config["recipe"]["segment"]["duration"] == 1.53
    assert config["labels"] == LABELS and config["protocol"] == "clean"
    experiment = SPEC.setup(args, SPEC.config())
    assert experiment.source is None  # fixed-length crops: the shared feature cache
    model = experiment.build_model(4)
    assert [tuple(t.shape) for t in model.inputs] == [(None, 150, 200)]


def test_explain_command_draws_the_map_from_an_explain_tflite(corpus, tmp_path, capsys):
    from ser_tf import cli

    root, manifest = corpus
    paths = export_explain_tflite(build_attention_fcn_2d(4, (300, 200)), tmp_path,
                                  labels=LABELS, recipe=recipes.RECIPE, name="afcn-explain",
                                  variants=("float32",))
    out = tmp_path / "map.png"
    assert cli.main(["explain", manifest[0].path, "--model", str(paths["float32"]),
                     "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and "attention map in" in capsys.readouterr().out
    assert cli.main(["explain", manifest[0].path, "--model", str(tmp_path / "m.keras")]) == 1
    assert "needs --recipe" in capsys.readouterr().err
