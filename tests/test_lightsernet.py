import json

import numpy as np
import pytest

from ser_tf.data.synthetic import make_emodb_like
from ser_tf.experiments import lightsernet as exp
from ser_tf.models.lightsernet import build_lightsernet


def test_parameter_count_matches_the_paper_model():
    assert build_lightsernet(7, (184, 40)).count_params() == 463_431
    # 4 classes: the dense layer shrinks by 3 * 321 parameters.
    assert build_lightsernet(4, (434, 40)).count_params() == 463_431 - 3 * 321


@pytest.mark.parametrize("input_type,bins", [("mfcc", 40), ("spectrogram", 513),
                                             ("mel_spectrogram", 128)])
def test_input_types_and_durations(input_type, bins):
    for duration, frames in ((3.0, 184), (7.0, 434)):
        recipe = exp.feature_recipe(input_type, duration)
        shape = recipe.feature_shape()
        assert shape == (frames, bins)
        model = build_lightsernet(7, shape)
        out = model.predict(np.zeros((2, *shape), np.float32), verbose=0)
        assert out.shape == (2, 7) and np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_original_flags_are_accepted():
    args = exp.build_parser().parse_args(["-dn", "EMO-DB", "-id", "7", "-at", "impro", "-ln",
                                          "focal", "-v", "0", "-it", "mel_spectrogram"])
    assert (args.dataset, args.duration, args.audio_type, args.loss, args.verbose,
            args.input_type) == ("EMO-DB", 7.0, "impro", "focal", 0, "mel_spectrogram")
    defaults = exp.build_parser().parse_args([])
    assert (defaults.epochs, defaults.batch_size, defaults.seed, defaults.folds,
            defaults.protocol) == (300, 32, 42, 10, "paper")


def test_cli_runs_end_to_end_on_a_tiny_corpus(tmp_path):
    root = make_emodb_like(tmp_path / "emodb", per_class=2, duration=0.5)
    out = exp.run(exp.build_parser().parse_args([
        "--data-dir", str(root), "--epochs", "2", "--batch-size", "4", "--folds", "2",
        "--protocol", "clean", "--results-dir", str(tmp_path / "results"),
        "--cache-dir", str(tmp_path / "cache"), "--quiet"]))
    record = json.loads((out["record"] / "record.json").read_text())
    assert record["config"]["fit"]["full_batches"] is True  # as the authors' .repeat() pipeline
    assert record["config"]["data"]["files"] == 14
    assert record["config"]["loss"] == "cross_entropy" and record["config"]["duration"] == 3.0
    assert record["config"]["fit"]["lr_schedule"]["start_epoch"] == 60
    assert record["config"]["fit"]["checkpoint"] == "best-val"
    # Keras' Adam epsilon, as the authors' code: not in the config (run ids unchanged).
    assert "epsilon" not in record["config"]["fit"]
    assert len(record["per_fold"]) == 2 and 0 <= record["summary"]["UA"]["mean"] <= 100
    tflite = record["tflite"]
    assert set(tflite["variants"]) == {"float32", "float16", "dynamic_int8", "int8"}
    assert tflite["variants"]["float16"]["size_bytes"] < tflite["variants"]["float32"]["size_bytes"]
    assert tflite["float32_max_prob_diff"] <= 1e-4
    assert len(tflite["variants"]["int8"]["folds"]) == 2
    int8, float32 = tflite["variants"]["int8"], tflite["variants"]["float32"]
    assert tflite["int8_ua_drop_vs_float32"] == pytest.approx(
        float32["mean"]["UA"] - int8["mean"]["UA"], abs=1e-3)
    assert tflite["int8_ua_drop_vs_float32_pooled"] == pytest.approx(
        float32["pooled"]["UA"] - int8["pooled"]["UA"], abs=1e-3)
    # Each fold was scored the moment it finished: the record's numbers are those files'.
    for i in range(2):
        row = json.loads((out["work_dir"] / f"fold_{i:02d}" / "tflite.json").read_text())
        assert row["fold"] == i
        assert row["variants"]["int8"]["UA"] == tflite["variants"]["int8"]["folds"][i]["UA"]

    # Ship fold 0 of the same run: models, sidecars, model cards, and a measurement record.
    shipped = exp.run(exp.build_parser().parse_args([
        "--data-dir", str(root), "--epochs", "2", "--batch-size", "4", "--folds", "2",
        "--protocol", "clean", "--results-dir", str(tmp_path / "results"),
        "--cache-dir", str(tmp_path / "cache"), "--quiet", "--ship-fold", "0",
        "--ship-dest", str(tmp_path / "models")]))
    measured = json.loads(shipped["record"].read_text())
    assert measured["waveform"]["parity"]["max_prob_diff"] <= 1e-4
    names = sorted(p.name for p in (tmp_path / "models").iterdir())
    for variant in ("mfcc-float32", "mfcc-float16", "mfcc-dynamic_int8", "mfcc-int8",
                    "waveform-float32"):
        for ext in (".tflite", ".json", ".md"):
            assert f"lightsernet-emodb-fold00-{variant}{ext}" in names
    # Never the --ship model's names: a fold's export does not replace the deployable model.
    assert not any(name.startswith("lightsernet-emodb-mfcc") for name in names)
    from ser_tf.lite import LiteModel
    from ser_tf.lite.predict import predict_file

    wav = next((root / "wav").glob("*.wav"))
    models = tmp_path / "models"
    model = LiteModel(models / "lightsernet-emodb-fold00-waveform-float32.tflite")
    result = predict_file(wav, model)
    assert result["label"] in model.labels
    # The MFCC-input export of the same weights gives the same answer from the same file.
    features = predict_file(
        wav, LiteModel(models / "lightsernet-emodb-fold00-mfcc-float32.tflite"))
    np.testing.assert_allclose(list(features["probabilities"].values()),
                               list(result["probabilities"].values()), atol=1e-4)
    # Features-in cards also give the NumPy MFCC time the device spends before the model.
    assert measured["numpy_frontend_latency"]["p95_ms"] > 0
    assert "MFCC in NumPy" in (models / "lightsernet-emodb-fold00-mfcc-int8.md").read_text()
    waveform_card = models / "lightsernet-emodb-fold00-waveform-float32.md"
    assert "MFCC in NumPy" not in waveform_card.read_text()
    # Latencies name the CPU they were timed on, in the record and on every card.
    assert measured["latency_host"]["cpu_count"] >= 1
    assert "latency on " in (models / "lightsernet-emodb-fold00-mfcc-int8.md").read_text()


def test_ship_refuses_an_unfinished_fold(tmp_path):
    root = make_emodb_like(tmp_path / "emodb", per_class=2, duration=0.5)
    with pytest.raises(FileNotFoundError, match="has not finished"):
        exp.run(exp.build_parser().parse_args([
            "--data-dir", str(root), "--folds", "2", "--protocol", "clean",
            "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
            "--quiet", "--ship-fold", "1"]))
