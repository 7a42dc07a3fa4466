"""TFLite export: variants, waveform-in model (builtins only, parity), evaluation, folds.

Models are small (Light-SERNet on 1 s of audio -> 59 x 40 MFCCs, or a narrow variant of
it) and untrained but seeded: conversion parity does not need trained weights.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from ser_tf.data.synthetic import class_signal
from ser_tf.export.evaluate import evaluate_tflite, export_fold_models
from ser_tf.export.latency import measure_latency
from ser_tf.export.tflite import VARIANTS, convert, export_variants, flex_ops
from ser_tf.export.waveform import build_waveform_model, input_spec
from ser_tf.features.recipes import get_recipe
from ser_tf.lite import LiteModel
from ser_tf.models.lightsernet import build_lightsernet
# Importing the paper packages registers the "lightsernet" and "timnet-*" recipes.
from ser_tf.papers.lightsernet.recipes import segment_lightsernet
import ser_tf.papers.timnet  # noqa: F401,E402

LABELS = ["W", "L", "E", "A", "F", "T", "N"]
RECIPE_1S = get_recipe("lightsernet", segment={"duration": 1.0})


def _segments(n: int, seed: int = 0) -> np.ndarray:
    """Segmented generated clips of 0.6-1.6 s (so both crop and pad paths run)."""
    return np.stack([segment_lightsernet(
        class_signal(i % 7, duration=0.6 + (i * 0.37) % 1.0, seed=seed + i), 16000, 1.0)
        for i in range(n)])


def _small_model(num_classes=7, seed=0, narrow=False):
    keras.utils.set_random_seed(seed)
    extra = dict(path_filters=4, lflb_specs=((8, (2, 2)), (8, (2, 1))), final_filters=16) \
        if narrow else {}
    return build_lightsernet(num_classes, (59, 40), **extra)


def _sharpen(model, factor=40.0):
    """An untrained Light-SERNet is nearly uniform (top-1 margins ~1e-3, below the int8
    output step of 1/256): argmax agreement would be noise and probability differences
    trivially small. Scaling the softmax layer's kernel gives margins like a trained
    model's (median ~0.02-0.09) without training."""
    dense = model.get_layer("emotion")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * factor, bias])
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = _sharpen(_small_model())
    features = RECIPE_1S.compute(_segments(48))
    assert features.shape == (48, 59, 40)
    paths = export_variants(model, tmp_path_factory.mktemp("variants"),
                            representative=features[:32], labels=LABELS,
                            input_spec=input_spec(RECIPE_1S, "features", (59, 40)))
    return model, features, paths


def test_every_variant_converts_and_loads(exported):
    _, _, paths = exported
    assert list(paths) == list(VARIANTS)
    sizes = {v: p.stat().st_size for v, p in paths.items()}
    assert sizes["float16"] < 0.6 * sizes["float32"]
    assert sizes["dynamic_int8"] < 0.35 * sizes["float32"]
    for variant, path in paths.items():
        assert path.name == f"lightsernet-{variant}.tflite"
        assert flex_ops(path.read_bytes()) == []
        lite = LiteModel(path)
        assert lite.labels == LABELS and lite.input_shape == (59, 40)
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["variant"] == variant and meta["input"]["kind"] == "features"
        assert meta["input"]["shape"] == [59, 40] and meta["input"]["samples"] == 16000
        assert meta["input"]["normalise"] == RECIPE_1S.window_normalisation() == {
            "method": "percentile", "percentile": 99.9, "clip": 1.0}
        assert "inputs" not in meta  # one input: the single "input" entry, as before
        expected = np.int8 if variant == "int8" else np.float32
        assert lite.input_dtype == expected and lite.output_dtype == expected


def test_float32_matches_keras(exported):
    model, features, paths = exported
    expected = model.predict(features, verbose=0)
    got = LiteModel(paths["float32"]).predict(features)
    assert np.abs(got - expected).max() <= 1e-5
    got16 = LiteModel(paths["float16"]).predict(features)
    assert np.abs(got16 - expected).max() <= 1e-3


def test_quantized_variants_agree_on_argmax(exported):
    model, features, paths = exported
    expected = model.predict(features, verbose=0)
    for variant in ("dynamic_int8", "int8"):
        got = LiteModel(paths[variant]).predict(features)
        assert got.dtype == np.float32 and np.allclose(got.sum(1), 1.0, atol=0.05)
        assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.8, variant


def test_full_integer_needs_representative_set(tmp_path):
    model = _small_model(narrow=True)
    with pytest.raises(ValueError, match="representative"):
        convert(model, "int8")
    with pytest.raises(ValueError, match="representative set must have shape"):
        convert(model, "int8", np.zeros((4, 40, 59), np.float32))
    with pytest.raises(ValueError, match="representative"):
        export_variants(model, tmp_path / "out", labels=LABELS,
                        input_spec={"kind": "features"})
    assert not (tmp_path / "out").exists()  # checked before converting anything
    with pytest.raises(ValueError, match="unknown TFLite variant"):
        convert(model, "int4")
    with pytest.raises(ValueError, match="labels"):
        export_variants(model, tmp_path, labels=LABELS[:3], variants=("float32",),
                        input_spec={"kind": "features"})


def test_waveform_model_is_builtins_only_and_matches_the_keras_pipeline(tmp_path):
    model = _sharpen(_small_model())
    waveform = build_waveform_model(model, RECIPE_1S)
    assert waveform.input_shape == (None, 16000)
    content = convert(waveform, "float32")  # supported_ops = TFLITE_BUILTINS only
    assert flex_ops(content) == []
    path = tmp_path / "wave-float32.tflite"
    path.write_bytes(content)
    segments = _segments(8, seed=100)
    expected = model.predict(RECIPE_1S.compute(segments), verbose=0)
    got = LiteModel(path).predict(segments)
    assert np.abs(got - expected).max() <= 1e-4


def test_quantising_a_waveform_model_warns(tmp_path):
    model = _small_model(narrow=True)  # the spec is metadata: any input shape will do
    spec = {"kind": "waveform", "sample_rate": 16000, "samples": 16000}
    with pytest.warns(UserWarning, match="float32 or float16"):
        export_variants(model, tmp_path, labels=LABELS, variants=("dynamic_int8",),
                        input_spec=spec)


def test_waveform_model_checks_the_recipe():
    model = _small_model(narrow=True)
    with pytest.raises(ValueError, match=r"\(184, 40\).*\(59, 40\)"):
        build_waveform_model(model, get_recipe("lightsernet"))  # 3 s recipe, 1 s model
    with pytest.raises(ValueError, match="cannot run inside a graph"):
        build_waveform_model(model, get_recipe("timnet-EMODB"))


def test_evaluate_and_latency(exported):
    model, features, paths = exported
    labels = np.arange(len(features)) % 7
    metrics = evaluate_tflite(paths["float32"], features, labels, LABELS)
    keras_pred = model.predict(features, verbose=0).argmax(1)
    assert metrics["WA"] == pytest.approx(100.0 * np.mean(keras_pred == labels))
    assert {"UA", "WA", "macro_F1", "confusion_matrix"} <= set(metrics)
    latency = measure_latency(paths["int8"], features[0], threads=(1, 2), warmup=1, runs=5)
    assert set(latency) == {1, 2}
    assert all(v["mean_ms"] > 0 and v["p95_ms"] > 0 for v in latency.values())
    with pytest.raises(ValueError, match="example must have shape"):
        measure_latency(paths["int8"], features[:2], runs=1)


def _two_trained_folds(work, n, seed):
    """A feature set of ``n`` examples, two folds, and each fold's (seeded, untrained)
    weights in ``work/fold_XX/final.weights.h5``; returns ``(feature_set, folds, build)``."""
    from ser_tf.features.cache import FeatureSet
    from ser_tf.training.protocols import Fold

    features = RECIPE_1S.compute(_segments(n, seed=seed))
    ids = [f"u{i:02d}" for i in range(n)]
    feature_set = FeatureSet(features, np.arange(n) % 7, ids, tuple(LABELS), [""] * n)
    folds = [Fold(index=0, train_ids=ids[:n - 8], val_ids=[], test_ids=ids[n - 8:],
                  selection_on_test=False),
             Fold(index=1, train_ids=ids[8:], val_ids=[], test_ids=ids[:8],
                  selection_on_test=False)]
    for fold in folds:
        (work / f"fold_{fold.index:02d}").mkdir(parents=True)
        _small_model(seed=fold.index, narrow=True).save_weights(
            work / f"fold_{fold.index:02d}" / "final.weights.h5")
    build = lambda k: _small_model(k, seed=99, narrow=True)  # noqa: E731 (weights get loaded)
    return feature_set, folds, build


def test_export_fold_models(tmp_path):
    work = tmp_path / "work"
    feature_set, folds, build = _two_trained_folds(work, 28, seed=7)
    out = tmp_path / "out"
    # Two variants keep the test short: float32 (parity) and int8 (per-fold calibration).
    result = export_fold_models(work, folds, feature_set, build, out, recipe=RECIPE_1S,
                                variants=("float32", "int8"), representative_size=12,
                                latency_threads=(1,), latency_runs=3)
    assert result["kept_fold"] == 0 and result["representative_size"] == 12
    assert sorted(p.name for p in out.iterdir()) == ["fold_00"]  # fold 1 files removed
    assert set(result["files"]) == {"float32", "int8"}
    assert sorted(p.name for p in (out / "fold_00").iterdir()) == [
        "lightsernet-float32.json", "lightsernet-float32.tflite",
        "lightsernet-int8.json", "lightsernet-int8.tflite"]
    assert result["float32_max_prob_diff"] <= 1e-5
    for variant, row in result["variants"].items():
        assert len(row["folds"]) == 2 and row["size_bytes_max"] >= row["size_bytes"] > 0
        assert set(row["mean"]) == {"UA", "WA", "macro_F1", "weighted_F1"}
        assert all(v["mean_ms"] > 0 for v in row["latency"].values())
        assert LiteModel(result["files"][variant]).labels == LABELS
        # Pooled: every test utterance of both folds once (their summed confusion matrix);
        # std over folds as the run record's (ddof 1).
        summed = np.sum([np.asarray(f["metrics"]["confusion_matrix"]) for f in row["folds"]], 0)
        assert row["pooled"]["WA"] == pytest.approx(100 * np.trace(summed) / summed.sum())
        assert row["std"]["UA"] == pytest.approx(np.std([f["UA"] for f in row["folds"]], ddof=1))
    # float32 scores are the Keras model's scores, fold by fold.
    assert result["variants"]["float32"]["mean"] == pytest.approx(result["keras"]["mean"])
    (work / "fold_01" / "final.weights.h5").unlink()
    with pytest.raises(FileNotFoundError, match="fold_01"):
        export_fold_models(work, folds, feature_set, build, out, recipe=RECIPE_1S)


def test_per_fold_scores_outlive_the_weights(tmp_path):
    from ser_tf.export.evaluate import collect_fold_exports, export_fold_scores

    work = tmp_path / "work"
    feature_set, folds, build = _two_trained_folds(work, 24, seed=8)
    options = dict(recipe=RECIPE_1S, variants=("float32", "int8"), representative_size=10,
                   latency_threads=(1,), latency_runs=2)
    row0 = export_fold_scores(work, folds[0], feature_set, build, **options)
    assert (work / "fold_00" / "tflite.json").is_file() and row0["representative_size"] == 10
    assert not list(work.rglob("*.tflite"))  # only the numbers are kept
    # Fold 0 was scored when it finished; its weights can go. Fold 1 is exported from its
    # weights now (a fold finished before per-fold export existed).
    (work / "fold_00" / "final.weights.h5").unlink()
    summary = collect_fold_exports(work, folds, feature_set, build, **options)
    assert (work / "fold_01" / "tflite.json").is_file()
    assert [r["fold"] for r in summary["variants"]["int8"]["folds"]] == [0, 1]
    assert summary["variants"]["int8"]["folds"][0]["UA"] == row0["variants"]["int8"]["UA"]
    assert summary["variants"]["float32"]["mean"] == pytest.approx(summary["keras"]["mean"])
    assert summary["variants"]["float32"]["latency"]["1"]["mean_ms"] > 0
    assert summary["latency_fold"] == 1  # the fold timed last, on the machine finishing the run
    fold1 = json.loads((work / "fold_01" / "tflite.json").read_text())
    assert summary["latency_host"] == fold1["latency_host"]  # the CPU those times belong to
    assert summary["latency_host"]["cpu_count"] >= 1 and "simd" in summary["latency_host"]
    # Fold 1 retrained (new weights): its stale scores are redone, not reused.
    stale = json.loads((work / "fold_01" / "tflite.json").read_text())
    _small_model(seed=5, narrow=True).save_weights(work / "fold_01" / "final.weights.h5")
    collect_fold_exports(work, folds, feature_set, build, **options)
    fresh = json.loads((work / "fold_01" / "tflite.json").read_text())
    assert fresh["weights_sha256"] != stale["weights_sha256"]
    # No scores and no weights: the error names the fold's weights file.
    (work / "fold_01" / "tflite.json").unlink()
    (work / "fold_01" / "final.weights.h5").unlink()
    with pytest.raises(FileNotFoundError, match="fold_01"):
        collect_fold_exports(work, folds, feature_set, build, **options)


@pytest.mark.integration
def test_waveform_parity_on_emodb(shared_data, tmp_path):
    from ser_tf.data.audio import read_audio

    files = sorted((shared_data / "emodb" / "wav").glob("*.wav"))[::97][:5]
    if len(files) < 5:
        pytest.skip("EMO-DB wav files not found")
    recipe = get_recipe("lightsernet")
    segments = np.stack([recipe.segment_audio(read_audio(f, sr=16000)[0]) for f in files])
    keras.utils.set_random_seed(3)
    model = _sharpen(build_lightsernet(7, (184, 40)))
    expected = model.predict(recipe.compute(segments), verbose=0)
    path = tmp_path / "emodb-wave.tflite"
    path.write_bytes(convert(build_waveform_model(model, recipe), "float32"))
    got = LiteModel(path).predict(segments)
    assert np.abs(got - expected).max() <= 1e-4


def test_int8_calibration_draws_only_the_folds_training_rows():
    """The representative set must come from the fold's training ids: never its validation
    or test ids, whose value ranges would then shape the quantisation being scored."""
    from ser_tf.export.evaluate import _representative
    from ser_tf.features.cache import FeatureSet
    from ser_tf.training.protocols import Fold

    ids = [f"u{i:02d}" for i in range(40)]
    # Each row's features hold its own row number, so the drawn rows can be identified.
    features = np.repeat(np.arange(40, dtype=np.float32)[:, None, None], 3, axis=1)
    feature_set = FeatureSet(features, np.zeros(40, int), ids, ("a",), [None] * 40)
    fold = Fold(2, train_ids=ids[10:30], val_ids=ids[30:], test_ids=ids[:10],
                selection_on_test=False)
    for seed in range(5):
        drawn = _representative(feature_set, fold, size=8, seed=seed)[:, 0, 0].astype(int)
        assert len(drawn) == 8 and len(set(drawn)) == 8
        assert set(drawn) <= set(range(10, 30)), drawn
    everything = _representative(feature_set, fold, size=100, seed=0)[:, 0, 0].astype(int)
    assert sorted(everything) == list(range(10, 30))  # capped at the training rows
