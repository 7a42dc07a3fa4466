"""TIM-Net: model structure (size, causality, fusion, TFLite), the experiment CLI end to end,
and the authors' MFCC-file loader."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from ser_tf.reporting import embeddings
from ser_tf.data.synthetic import make_emodb_like
from ser_tf.papers.timnet.authors_features import (AUTHORS_CLASS_ORDER, TimnetFeaturesError,
                                         load_timnet_features, read_timnet_npy)
from ser_tf.experiments import timnet as exp
from ser_tf.models.timnet import DynamicFusion, build_timnet, embedding_model


def expected_params(num_classes, n_blocks, filters=39, coefficients=39, kernel=2):
    """Every weight of build_timnet, by hand:

    - 1×1 conv opening each stream: coefficients·filters + filters = 39·39 + 39 = 1,560;
      two streams: 3,120.
    - one TAB: two convs of kernel·filters·filters + filters = 2·39·39 + 39 = 3,081, two
      batch norms of 4·39 = 156 (γ, β, moving mean, moving variance): 6,474. n levels × 2
      streams: n = 8 gives 16 TABs, 103,584.
    - dynamic fusion: one weight per level, 8.
    - dense softmax: filters·classes + classes = 39·7 + 7 = 280.

    7 classes, n = 8: 3,120 + 103,584 + 8 + 280 = 106,992 (the issue's "about 107k"); of
    these the 32 batch norms' moving statistics, 32·2·39 = 2,496, are not trainable.
    """
    stream_in = 2 * (coefficients * filters + filters)
    tab = 2 * (kernel * filters * filters + filters) + 2 * 4 * filters
    return stream_in + 2 * n_blocks * tab + n_blocks + filters * num_classes + num_classes


def test_parameter_count_is_derived_exactly():
    model = build_timnet(7, (188, 39))
    assert expected_params(7, 8) == 106_992
    assert model.count_params() == 106_992
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 106_992 - 32 * 2 * 39 == 104_496
    # IEMOCAP: 10 levels, 4 classes, 606 frames (the frame count adds no weights).
    assert build_timnet(4, (606, 39), n_blocks=10).count_params() == expected_params(4, 10)


def _stream(model, direction, level):
    return keras.Model(model.input, model.get_layer(f"{direction}_tab{level}_out").output)


def test_forward_stream_is_causal_and_the_reversed_one_sees_the_future():
    frames, t0, levels = 32, 20, 3  # receptive field 1 + 2·(1 + 2 + 4) = 15 frames
    model = build_timnet(4, (frames, 39), n_blocks=levels)
    forward, backward = _stream(model, "forward", levels), _stream(model, "backward", levels)
    x = np.random.default_rng(0).normal(size=(2, frames, 39)).astype("float32")
    future = x.copy()
    future[:, t0:] += 3.0  # change frames t0 ... end
    past = x.copy()
    past[:, :t0] += 3.0  # change frames 0 ... t0 - 1

    def run(stream, inputs, flip=False):
        out = np.asarray(stream(inputs, training=False))
        return out[:, ::-1] if flip else out  # backward stream: back to the input's time axis

    fwd, fwd_future, fwd_past = (run(forward, v) for v in (x, future, past))
    np.testing.assert_array_equal(fwd_future[:, :t0], fwd[:, :t0])  # never sees ahead
    assert not np.allclose(fwd_future[:, t0:], fwd[:, t0:])
    assert not np.allclose(fwd_past[:, t0:t0 + 5], fwd[:, t0:t0 + 5])  # sees the past
    bwd, bwd_future, bwd_past = (run(backward, v, flip=True) for v in (x, future, past))
    assert not np.allclose(bwd_future[:, t0 - 5:t0], bwd[:, t0 - 5:t0])  # sees ahead
    np.testing.assert_array_equal(bwd_past[:, t0:], bwd[:, t0:])  # never sees the past


def test_dynamic_fusion_is_a_trainable_weighted_sum_of_the_levels():
    levels = 3
    model = build_timnet(5, (24, 39), n_blocks=levels)
    fusion = model.get_layer("fused")
    assert isinstance(fusion, DynamicFusion)
    assert tuple(fusion.kernel.shape) == (levels, 1) and fusion.kernel.trainable
    assert any(w is fusion.kernel for w in model.trainable_weights)
    x = np.random.default_rng(1).normal(size=(3, 24, 39)).astype("float32")
    gaps = keras.Model(model.input, [model.get_layer(f"level{i}_gap").output
                                     for i in range(1, levels + 1)])(x, training=False)
    fused = np.asarray(embedding_model(model)(x, training=False))
    w = np.asarray(fusion.kernel)[:, 0]
    manual = sum(w[i] * np.asarray(gaps[i]) for i in range(levels))
    assert fused.shape == (3, 39)
    np.testing.assert_allclose(fused, manual, rtol=1e-5, atol=1e-6)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) * np.eye(5)[[0, 1, 2]])
    grad = tape.gradient(loss, fusion.kernel)
    assert grad is not None and np.any(np.asarray(grad) != 0)


def test_model_saves_and_loads_with_its_custom_layers(tmp_path):
    model = build_timnet(3, (16, 39), n_blocks=2)
    x = np.random.default_rng(2).normal(size=(2, 16, 39)).astype("float32")
    model.save(tmp_path / "timnet.keras")
    again = keras.models.load_model(tmp_path / "timnet.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_converts_to_tflite_with_builtin_ops_only(tmp_path):
    from ser_tf.export.tflite import convert
    from ser_tf.lite import LiteModel
    from ser_tf.lite.runtime import interpreter_class

    model = build_timnet(7, (188, 39), n_blocks=3)  # dilations 1, 2, 4; fixed time length
    flatbuffer = convert(model, "float32")
    interpreter = interpreter_class()(model_content=flatbuffer)
    ops = {d["op_name"] for d in interpreter._get_ops_details()}
    assert "REVERSE_V2" in ops and "CONV_2D" in ops
    assert not [op for op in ops if "FLEX" in op.upper() or "CUSTOM" in op.upper()]
    x = np.random.default_rng(3).normal(size=(2, 188, 39)).astype("float32")
    path = tmp_path / "timnet.tflite"
    path.write_bytes(flatbuffer)
    np.testing.assert_allclose(LiteModel(path).predict(x), model.predict(x, verbose=0),
                               atol=1e-5)


def test_int8_export_keeps_a_scale_per_fusion_level(tmp_path):
    """Deeper levels' vectors are much smaller than level 1's; full-integer int8 must not
    put them all on level 1's scale (a stack before the fusion did, and cost 14 points UA)."""
    from ser_tf.export.tflite import convert
    from ser_tf.lite.runtime import interpreter_class

    model = build_timnet(4, (64, 39), n_blocks=4)
    x = np.random.default_rng(5).normal(size=(16, 64, 39)).astype("float32")
    x[..., 0] *= 100  # MFCC c0 dwarfs the other coefficients
    interpreter = interpreter_class()(model_content=convert(model, "int8", representative=x))
    scales = {}
    for tensor in interpreter.get_tensor_details():
        name = tensor["name"]
        for level in range(1, 5):
            if f"level{level}_gap" in name and tensor["quantization"][0] > 0:
                scales[level] = tensor["quantization"][0]
    assert sorted(scales) == [1, 2, 3, 4]
    assert len(set(scales.values())) == 4, scales


def test_help_lists_the_six_corpora_and_checkpoint_options():
    text = exp.build_parser().format_help()
    for corpus in ("CASIA", "EMODB", "EMOVO", "IEMOCAP", "RAVDESS", "SAVEE"):
        assert corpus in text
    for option in ("--checkpoint", "last", "best-val", "paper", "--check-every", "--patience",
                   "--min-epochs", "--features", "--blocks"):
        assert option in text
    args = exp.build_parser().parse_args([])
    assert (args.dataset, args.protocol, args.checkpoint, args.epochs, args.batch_size,
            args.folds, args.seed) == ("EMODB", "clean", "best-val", 500, 64, 10, None)
    with pytest.raises(SystemExit):
        exp.build_parser().parse_args(["--dataset", "TESS"])


@pytest.mark.slow
def test_cli_runs_end_to_end_with_tsne_and_tflite(tmp_path, capsys, run_lock_held_by):
    root = make_emodb_like(tmp_path / "emodb", per_class=2, duration=0.5)
    args = ["--data-dir", str(root), "--epochs", "2", "--batch-size", "8", "--folds", "2",
            "--blocks", "2", "--results-dir", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    out = exp.run(exp.build_parser().parse_args(args))
    record = json.loads((out["record"] / "record.json").read_text())
    config = record["config"]
    assert config["recipe"]["name"] == "timnet-EMODB" and config["input_shape"] == [188, 39]
    assert (config["n_blocks"], config["checkpoint"], config["features"]) == (2, "best-val", None)
    fit = config["fit"]
    assert (fit["beta_1"], fit["beta_2"], fit["epsilon"], fit["label_smoothing"],
            fit["batch_size"]) == (0.93, 0.98, 1e-8, 0.1, 8)
    assert fit["seed"] == 46 and record["protocol"] == "clean"
    assert len(record["per_fold"]) == 2 and record["protocol_warning"] is None
    # The epoch was chosen on validation; the last epoch was scored too, in the same run.
    assert [f["last_epoch"]["epoch"] for f in record["per_fold"]] == [2, 2]
    assert 0 <= record["summary_last_epoch"]["UA"]["mean"] <= 100
    for name in ("tsne.png", "training_curves.png", "confusion_matrix.png"):
        assert name in record["files"] and (out["record"] / name).stat().st_size > 1000
    assert record["tsne"]["points"] == 14 and record["tsne"]["layer"] == "fused"
    assert (record["tsne"]["folds"], record["tsne"]["panels"]) == (2, "one t-SNE per fold")
    history = json.loads((out["record"] / "histories.json").read_text())[0]
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history)  # the curves
    tflite = record["tflite"]
    assert set(tflite["variants"]) == {"float32", "float16", "dynamic_int8", "int8"}
    assert tflite["float32_max_prob_diff"] <= 1e-4
    assert len(tflite["variants"]["int8"]["folds"]) == 2

    # Each fold left its TFLite scores and test embeddings when it ended: on a machine
    # without the weights files (a later session), the same command rebuilds the record.
    for weights in out["work_dir"].glob("fold_*/final.weights.h5"):
        weights.unlink()
    again = exp.run(exp.build_parser().parse_args(args))
    rebuilt = json.loads((again["record"] / "record.json").read_text())
    assert rebuilt["tflite"]["variants"]["int8"]["mean"] == tflite["variants"]["int8"]["mean"]
    assert rebuilt["tsne"]["points"] == 14 and rebuilt["summary"] == record["summary"]

    # The same command while another process trains this run: one line, exit 1, no traceback.
    with run_lock_held_by(out["work_dir"] / "run.lock", 4242):
        assert exp.main(args) == 1
    err = capsys.readouterr().err
    assert "being trained by another process (pid 4242" in err and "Traceback" not in err
    assert json.loads((again["record"] / "record.json").read_text()) == rebuilt  # untouched


def _write_npy(path, x, y):
    np.save(path, {"x": x, "y": y}, allow_pickle=True)
    return path


def _authors_like(n=14, frames=40, classes=7, seed=0):
    rng = np.random.default_rng(seed)
    y = np.eye(classes, dtype=np.float32)[np.arange(n) % classes]
    x = (rng.normal(size=(n, frames, 39)) + y.argmax(1)[:, None, None]).astype(np.float32)
    return x, y


def test_tsne_skips_folds_too_small_for_it_and_says_so(tmp_path):
    from types import SimpleNamespace

    from ser_tf.training.protocols import Fold

    rng = np.random.default_rng(0)
    folds = []
    for index, n in enumerate([6, 2]):
        ids = [f"f{index}-u{i}" for i in range(n)]
        folds.append(Fold(index, [], [], ids, selection_on_test=False))
        (tmp_path / f"fold_{index:02d}").mkdir()
        np.savez(tmp_path / f"fold_{index:02d}" / embeddings.EMBEDDING_FILE,
                 embedding=rng.normal(size=(n, 5)), labels=np.arange(n) % 2, ids=np.asarray(ids))
    features = SimpleNamespace(label_names=("anger", "neutral"))
    about = embeddings.write_tsne(tmp_path, folds, features, None, None, tmp_path / "tsne.png")
    assert (about["file"], about["points"], about["folds"]) == ("tsne.png", 6, 2)
    assert about["folds_without_panel"] == [2] and (tmp_path / "tsne.png").stat().st_size > 0
    about = embeddings.write_tsne(tmp_path, folds[1:], features, None, None,
                                  tmp_path / "none.png")
    assert about["file"] is None and not (tmp_path / "none.png").exists()


def test_features_loader_maps_the_authors_columns_to_our_label_order(tmp_path):
    x, y = _authors_like()
    path = _write_npy(tmp_path / "EMODB.npy", x, y)
    manifest, features = load_timnet_features(path, "EMODB")
    assert manifest.labels == features.label_names == (
        "anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
    assert features.ids[:3] == ["0000", "0001", "0002"] == [u.utterance_id for u in manifest][:3]
    # Authors' column 5 is neutral and column 6 sadness; ours are the other way round.
    assert AUTHORS_CLASS_ORDER["EMODB"][5] == "neutral"
    assert features.labels[5] == 6 and features.labels[6] == 5 and features.labels[0] == 0
    assert [u.label for u in manifest][5] == "neutral" and manifest[0].speaker == "unknown"
    np.testing.assert_array_equal(features.features, x)
    assert features.stats["rows"] == 14 and len(features.stats["sha256"]) == 64
    # The file's rows are already in the authors' order: their KFold splits them as they are.
    from sklearn.model_selection import KFold
    from ser_tf.papers.timnet.folds import SPLIT
    from ser_tf.training.protocols import make_folds
    folds = make_folds(manifest, "paper", paper_split=SPLIT, n_folds=7)
    expected = KFold(n_splits=7, shuffle=True, random_state=46).split(np.zeros(14))
    assert [f.test_ids for f in folds] == [[f"{i:04d}" for i in sorted(t)] for _, t in expected]
    # An explicit column order wins.
    _, relabelled = load_timnet_features(path, "EMODB", column_labels=manifest.labels)
    np.testing.assert_array_equal(relabelled.labels, y.argmax(1))


@pytest.mark.parametrize("content,message", [
    (np.zeros((3, 40, 39)), "pickled dict"),
    ({"x": np.zeros((3, 40, 39))}, "lacks \\['y'\\]"),
    ({"x": np.zeros((3, 40, 40)), "y": np.eye(7)[:3]}, "'x' must have shape"),
    ({"x": np.zeros((3, 40, 39)), "y": np.eye(7)[:2]}, "'y' must be one-hot"),
    ({"x": np.zeros((3, 40, 39)), "y": np.full((3, 7), 0.5)}, "not one-hot"),
    ({"x": np.full((3, 40, 39), np.nan), "y": np.eye(7)[:3]}, "NaN"),
])
def test_features_loader_rejects_malformed_files(tmp_path, content, message):
    path = tmp_path / "bad.npy"
    np.save(path, content, allow_pickle=True)
    with pytest.raises(TimnetFeaturesError, match=message) as info:
        read_timnet_npy(path)
    assert "bad.npy" in str(info.value)


def test_features_loader_checks_files_and_class_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        read_timnet_npy(tmp_path / "missing.npy")
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(TimnetFeaturesError, match="text.npy"):
        read_timnet_npy(tmp_path / "text.npy")
    path = _write_npy(tmp_path / "SAVEE.npy", *_authors_like(classes=7))
    with pytest.raises(TimnetFeaturesError, match="7 columns but 4"):
        load_timnet_features(path, "SAVEE", column_labels=["a", "b", "c", "d"])


@pytest.mark.slow
def test_features_run_uses_the_authors_folds_and_refuses_the_speaker_protocol(tmp_path):
    from sklearn.model_selection import KFold

    x, y = _authors_like()
    path = _write_npy(tmp_path / "EMODB.npy", x, y)
    flags = ["--features", str(path), "--folds", "2", "--epochs", "1", "--blocks", "1",
             "--batch-size", "8", "--no-export", "--results-dir", str(tmp_path / "r"), "--quiet"]
    with pytest.raises(SystemExit, match="no speaker ids"):
        exp.run(exp.build_parser().parse_args(flags + ["--protocol", "speaker"]))
    out = exp.run(exp.build_parser().parse_args(flags + ["--protocol", "paper"]))
    record = json.loads((out["record"] / "record.json").read_text())
    assert record["config"]["features"]["file"] == "EMODB.npy"
    assert record["config"]["checkpoint"] == "paper" and record["folds"]["selection_on_test"]
    assert "optimistic" in record["protocol_warning"]
    folds = json.loads((out["record"] / "folds.json").read_text())["folds"]
    authors = KFold(2, shuffle=True, random_state=46).split(x)  # README seed for EMO-DB
    assert [f["test_ids"] for f in folds] == [[f"{i:04d}" for i in t] for _, t in authors]
