"""ser_tf.lite.predict: TF-free prediction on files of any length, rate and channel count.

The key tests run the predictor in a subprocess where importing ``tensorflow``, ``keras``
or ``tf_keras`` raises ImportError (a meta-path finder installed by ``sitecustomize``), so
they prove the on-device path never needs TensorFlow. The models are a tiny classifier
(a pooling/dense head on Light-SERNet's MFCCs) converted here, in the parent process, with
the suite's own export code: waveform-in (the TF front-end inside the graph) and
features-in float32 / int8 (the front-end computed in NumPy by the predictor). The shipped
``tflite_models/`` are run the same way when they are present.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ser_tf.data.synthetic import write_wav

REPO = Path(__file__).resolve().parents[1]
LABELS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
MODEL_NAME = "lightsernet-emodb-waveform-float32.tflite"
PI_MODULES = {"ai_edge_litert", "numpy", "soundfile", "soxr", "cffi", "pycparser",
              "typing_extensions", "flatbuffers", "backports", "google", "tqdm"}

BLOCK_TF = textwrap.dedent("""\
    # Test harness: make TensorFlow and Keras unimportable in this interpreter.
    import sys

    class _BlockTensorFlow:
        BLOCKED = ("tensorflow", "keras", "tf_keras")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.BLOCKED:
                raise ImportError(f"{name} is blocked by the TF-free test")
            return None

    sys.meta_path.insert(0, _BlockTensorFlow())
    """)


def tiny_features_classifier():
    """A pooling/dense head on Light-SERNet's (184, 40) MFCCs, random but seeded weights."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((184, 40)), keras.layers.GlobalAveragePooling1D(),
                             keras.layers.Dense(len(LABELS), activation="softmax")],
                            name="tiny")


def export_tiny_waveform_model(out_dir):
    """Convert a tiny waveform-in classifier to ``out_dir/MODEL_NAME`` (+ its sidecar);
    returns (path of the .tflite, the Keras model)."""
    from ser_tf.export.tflite import export_variants
    from ser_tf.export.waveform import build_waveform_model, input_spec
    import ser_tf.papers.lightsernet  # noqa: F401 (registers the "lightsernet" recipe)
    from ser_tf.features.recipes import get_recipe

    recipe = get_recipe("lightsernet")
    model = build_waveform_model(tiny_features_classifier(), recipe)
    spec = input_spec(recipe, "waveform", model.input_shape[1:])
    paths = export_variants(model, out_dir, labels=LABELS, input_spec=spec,
                            variants=("float32",), name=MODEL_NAME.rsplit("-", 1)[0])
    assert paths["float32"].name == MODEL_NAME
    return paths["float32"], model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(path of the .tflite, the Keras model it was converted from)."""
    return export_tiny_waveform_model(tmp_path_factory.mktemp("models"))


def tf_mfcc(windows) -> np.ndarray:
    """The training pipeline's features for audio windows: the recipe's TF layer."""
    from ser_tf.features.frontends import compute_features
    import ser_tf.papers.lightsernet  # noqa: F401 (registers the "lightsernet" recipe)
    from ser_tf.features.recipes import get_recipe

    recipe = get_recipe("lightsernet")
    return compute_features(windows, recipe.sample_rate, recipe.frontend)


@pytest.fixture(scope="module")
def tiny_features(tmp_path_factory):
    """Features-in float32 and int8 exports of the tiny classifier:
    ({variant: .tflite path}, the Keras features model)."""
    from ser_tf.data.synthetic import class_signal
    from ser_tf.export.tflite import export_variants
    from ser_tf.export.waveform import input_spec
    from ser_tf.features.recipes import get_recipe
    # Importing it registers the "lightsernet" recipe.
    from ser_tf.papers.lightsernet.recipes import segment_lightsernet

    recipe = get_recipe("lightsernet")
    model = tiny_features_classifier()
    # Calibration as from a training split: 1-4.25 s clips, the short ones zero-padded
    # (padding reaches MFCC values that full 3 s windows never do).
    calibration = tf_mfcc(np.stack([
        segment_lightsernet(class_signal(c % 7, 1.0 + 0.25 * c, seed=100 + c))
        for c in range(14)]))
    paths = export_variants(model, tmp_path_factory.mktemp("features_models"),
                            representative=calibration, labels=LABELS,
                            input_spec=input_spec(recipe, "features", (184, 40)),
                            variants=("float32", "int8"), name="tiny-emodb-mfcc")
    return paths, model


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    files = {
        "long": write_wav(root / "long.wav", duration=10.0, class_index=2),
        "stereo": write_wav(root / "stereo.wav", sr=44100, channels=2, duration=4.5,
                            class_index=5, subtype="PCM_24"),
        "short": write_wav(root / "short.flac", duration=1.2, class_index=0),
        "empty": root / "empty.wav",
        "text": root / "notes.wav",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not audio\n")
    return files


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory):
    """Environment for a subprocess in which TensorFlow / Keras cannot be imported."""
    site = tmp_path_factory.mktemp("block_tf")
    (site / "sitecustomize.py").write_text(BLOCK_TF)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("SER_TF_MODEL", None)
    return env


def run_blocked(env, *args, code: str | None = None):
    argv = [sys.executable, *(["-c", code] if code else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


def expected_probabilities(keras_model, path) -> np.ndarray:
    """What the Keras model says for the same windows: the TFLite path must agree."""
    from ser_tf.data.audio import read_audio
    from ser_tf.features.segment import sliding_windows

    samples, sr = read_audio(path, 16000)
    windows = sliding_windows(samples, sr, 3.0, 1.0)
    return np.asarray(keras_model.predict(windows, verbose=0)).mean(axis=0)


def test_blocker_really_blocks_tensorflow(blocked_env):
    out = run_blocked(blocked_env, code="import tensorflow")
    assert out.returncode != 0 and "blocked by the TF-free test" in out.stderr
    out = run_blocked(blocked_env, code="import keras")
    assert out.returncode != 0 and "blocked" in out.stderr


def test_predict_file_without_tensorflow(tiny, audio, blocked_env):
    model_path, keras_model = tiny
    script = textwrap.dedent("""\
        import json, sys
        import ser_tf.lite
        import ser_tf.lite.mic  # the live path too (sounddevice itself is imported on use)
        from ser_tf.lite.predict import predict_file
        from ser_tf.lite.runtime import LiteModel
        model = LiteModel(sys.argv[1])
        results = [predict_file(path, model) for path in sys.argv[2:]]
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        third_party = sorted({m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names)
                             - {"ser_tf", "sitecustomize"})
        print(json.dumps({"results": results, "heavy": heavy,
                          "third_party": [m for m in third_party if not m.startswith("_")]}))
        """)
    out = run_blocked(blocked_env, str(model_path), str(audio["long"]), str(audio["stereo"]),
                      str(audio["short"]), code=script)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["heavy"] == []
    # What a Raspberry Pi needs: the model card's `pip install ai-edge-litert numpy soundfile
    # soxr` and what those packages pull in themselves (cffi, LiteRT's dependencies).
    assert set(report["third_party"]) <= PI_MODULES, report["third_party"]
    long, stereo, short = report["results"]

    # 10 s at a 1 s hop: window starts 0..7 s, the last one ends exactly at 10 s.
    assert long["windows"] == 8 and long["duration_s"] == pytest.approx(10.0)
    # 4.5 s of 44.1 kHz stereo: starts 0, 1 s, then one window aligned to the end.
    assert stereo["windows"] == 3 and stereo["duration_s"] == pytest.approx(4.5, abs=1e-3)
    # Shorter than a window: one centre-padded window.
    assert short["windows"] == 1 and short["duration_s"] == pytest.approx(1.2, abs=1e-3)

    for result, key in zip((long, stereo, short), ("long", "stereo", "short")):
        assert result["file"] == str(audio[key])
        probabilities = result["probabilities"]
        assert list(probabilities) == LABELS
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        assert result["label"] == max(probabilities, key=probabilities.get)
        expected = expected_probabilities(keras_model, audio[key])
        np.testing.assert_allclose(list(probabilities.values()), expected, atol=1e-4)


def test_cli_reports_bad_files_and_still_prints_the_others(tiny, audio, blocked_env):
    model_path, _ = tiny
    files = [audio["empty"], audio["long"], audio["text"], audio["stereo"]]
    for entry in (["-m", "ser_tf.lite.predict"], ["-m", "ser_tf.cli", "predict"]):
        out = run_blocked(blocked_env, *entry, "--model", str(model_path), *map(str, files))
        assert out.returncode == 1, out.stderr
        assert "Traceback" not in out.stderr
        assert f"{audio['empty']}: empty file (0 bytes)" in out.stderr
        assert f"{audio['text']}: not a readable audio file" in out.stderr
        # The good files after each bad one were still classified and printed.
        assert f"{audio['long']}: " in out.stdout and "(8 windows, 10.00 s)" in out.stdout
        assert f"{audio['stereo']}: " in out.stdout and "(3 windows, 4.50 s)" in out.stdout
        block = out.stdout.split(f"{audio['long']}: ")[1].split("\n")
        rows = [line.split() for line in block[1:1 + len(LABELS)]]
        assert sorted(label for label, _ in rows) == sorted(LABELS)
        values = [float(p) for _, p in rows]
        assert values == sorted(values, reverse=True)  # most likely class first
        assert block[0].split(" (")[0] == rows[0][0]  # the headline label is the top row


def test_cli_drops_the_runtime_delegate_note_unless_verbose(tiny, audio, blocked_env):
    """LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on stderr
    when it loads a model: noise to a user, shown with -v only; real errors still pass."""
    model_path, _ = tiny
    for entry in (["-m", "ser_tf.lite.predict"], ["-m", "ser_tf.cli", "predict"]):
        quiet = run_blocked(blocked_env, *entry, "--model", str(model_path), str(audio["long"]))
        assert quiet.returncode == 0, quiet.stderr
        assert "XNNPACK" not in quiet.stderr and f"{audio['long']}: " in quiet.stdout
        loud = run_blocked(blocked_env, *entry, "-v", "--model", str(model_path),
                           str(audio["long"]))
        assert loud.returncode == 0 and "XNNPACK delegate" in loud.stderr
    bad = run_blocked(blocked_env, "-m", "ser_tf.lite.predict", "--model", str(model_path),
                      str(audio["empty"]))
    assert bad.returncode == 1 and f"{audio['empty']}: empty file (0 bytes)" in bad.stderr


def test_cli_json_document(tiny, audio, blocked_env):
    model_path, _ = tiny
    out = run_blocked(blocked_env, "-m", "ser_tf.lite.predict", "--json", "--threads", "2",
                      "--model", str(model_path), str(audio["long"]), str(audio["empty"]))
    assert out.returncode == 1
    document = json.loads(out.stdout)  # one document, nothing else on stdout
    assert document["model"] == str(model_path) and document["labels"] == LABELS
    (result,) = document["results"]
    assert set(result) == {"file", "label", "probabilities", "windows", "duration_s", "calibrated"}
    assert result["windows"] == 8 and list(result["probabilities"]) == LABELS
    assert document["errors"] == [{"file": str(audio["empty"]),
                                   "error": f"{audio['empty']}: empty file (0 bytes)"}]

    out = run_blocked(blocked_env, "-m", "ser_tf.lite.predict", "--json",
                      "--model", str(model_path), str(audio["short"]))
    assert out.returncode == 0 and json.loads(out.stdout)["errors"] == []


def test_missing_model_and_bad_threads_are_one_line(tmp_path, audio, blocked_env):
    out = run_blocked(blocked_env, "-m", "ser_tf.cli", "predict", "--model",
                      str(tmp_path / "nope.tflite"), str(audio["short"]))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "nope.tflite" in out.stderr
    env = dict(blocked_env, SER_TF_MODEL=str(tmp_path))  # a folder without the default model
    out = run_blocked(env, "-m", "ser_tf.lite.predict", str(audio["short"]))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert MODEL_NAME in out.stderr and "make reproduce-lightsernet" in out.stderr
    out = run_blocked(blocked_env, "-m", "ser_tf.lite.predict", "--threads", "0", "x.wav")
    assert out.returncode == 2 and "expected a whole number >= 1" in out.stderr


def test_default_model_path(tiny, tmp_path, monkeypatch):
    from ser_tf.lite.predict import ModelNotFoundError, default_model_path

    model_path, _ = tiny
    monkeypatch.setenv("SER_TF_MODEL", str(model_path.parent))
    assert default_model_path() == model_path
    monkeypatch.setenv("SER_TF_MODEL", str(model_path))
    assert default_model_path() == model_path
    assert default_model_path(model_path.parent) == model_path
    with pytest.raises(ModelNotFoundError, match="make reproduce-lightsernet"):
        default_model_path(tmp_path)


def test_features_in_models_predict_without_tensorflow(tiny_features, audio, blocked_env):
    """float32 and full-integer int8 features-in models: MFCCs computed in NumPy on the
    device; the float32 result equals the Keras model on the TF front-end's features."""
    from ser_tf.data.audio import read_audio
    from ser_tf.features.segment import sliding_windows

    paths, keras_model = tiny_features
    script = textwrap.dedent("""\
        import json, sys
        from ser_tf.lite.predict import predict_file
        from ser_tf.lite.runtime import LiteModel
        print(json.dumps([predict_file(f, LiteModel(sys.argv[1])) for f in sys.argv[2:]]))
        """)
    files = [audio["long"], audio["stereo"], audio["short"]]
    results = {}
    for variant, path in paths.items():
        out = run_blocked(blocked_env, str(path), *map(str, files), code=script)
        assert out.returncode == 0, out.stderr
        results[variant] = json.loads(out.stdout)
    for i, path in enumerate(files):
        samples, sr = read_audio(path, 16000)
        windows = sliding_windows(samples, sr, 3.0, 1.0)
        expected = keras_model.predict(tf_mfcc(windows), verbose=0).mean(axis=0)
        float32, int8 = results["float32"][i], results["int8"][i]
        assert float32["windows"] == int8["windows"] == len(windows)
        assert list(float32["probabilities"]) == LABELS
        np.testing.assert_allclose(list(float32["probabilities"].values()), expected, atol=1e-4)
        # int8: same classes, probabilities within quantisation error.
        np.testing.assert_allclose(list(int8["probabilities"].values()), expected, atol=0.05)


def test_a_model_the_predictor_cannot_run_is_refused_clearly(tiny, tmp_path, audio):
    from ser_tf.lite.predict import predict_file
    from ser_tf.lite.runtime import LiteModel

    model_path, _ = tiny
    # The waveform graph with a sidecar claiming features input but no front-end: the
    # features it was trained on are unknown.
    copy = tmp_path / "lightsernet-emodb-features-float32.tflite"
    shutil.copy(model_path, copy)
    meta = json.loads(model_path.with_suffix(".json").read_text())
    meta["input"]["kind"] = "features"
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"lacks \['frontend'\]") as err:
        predict_file(audio["short"], LiteModel(copy))
    assert str(copy) in str(err.value)
    # A front-end whose output is not the model's input shape.
    meta["input"].update(frontend={"kind": "mfcc", "frame_length": 1024, "frame_step": 256,
                                   "window": "hann", "power": 1.0, "center": False,
                                   "num_mel_bins": 128, "mel_scale": "htk", "num_mfcc": 40,
                                   "dct_norm": "tf", "fmin": 80.0, "fmax": 7600.0,
                                   "norm": None, "log": None})
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"features of shape \(184, 40\) but the model takes"):
        predict_file(audio["short"], LiteModel(copy))
    meta["input"]["kind"] = "pictures"
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown input kind 'pictures'"):
        predict_file(audio["short"], LiteModel(copy))


def test_windows_are_normalised_only_as_the_sidecar_says(tiny, tmp_path, audio):
    """The runtime reads ``input.normalise`` and nothing else: not the recipe or segment
    names. Null: raw windows; missing (a sidecar from before the key): a clear error."""
    from ser_tf.data.audio import read_audio
    from ser_tf.features.segment import sliding_windows
    from ser_tf.lite.predict import predict_file
    from ser_tf.lite.runtime import LiteModel

    model_path, keras_model = tiny
    meta = json.loads(model_path.with_suffix(".json").read_text())
    assert meta["input"]["normalise"] == {"method": "percentile", "percentile": 99.9,
                                          "clip": 1.0}
    copy = tmp_path / model_path.name
    shutil.copy(model_path, copy)
    # A segment kind the runtime has never heard of changes nothing.
    meta["input"]["segment"] = {"kind": "someone-elses", "duration": 3.0}
    copy.with_suffix(".json").write_text(json.dumps(meta))
    result = predict_file(audio["stereo"], LiteModel(copy))
    np.testing.assert_allclose(list(result["probabilities"].values()),
                               expected_probabilities(keras_model, audio["stereo"]), atol=1e-4)
    meta["input"]["normalise"] = None
    copy.with_suffix(".json").write_text(json.dumps(meta))
    samples, sr = read_audio(audio["stereo"], 16000)
    raw = sliding_windows(samples, sr, 3.0, 1.0, normalize=None)
    result = predict_file(audio["stereo"], LiteModel(copy))
    np.testing.assert_allclose(list(result["probabilities"].values()),
                               keras_model.predict(raw, verbose=0).mean(axis=0), atol=1e-4)
    del meta["input"]["normalise"]
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"json: the input entry has no 'normalise' key.*"
                                         r"Re-export the model") as err:
        predict_file(audio["stereo"], LiteModel(copy))
    assert str(copy.with_suffix(".json")) in str(err.value)
    meta["input"]["normalise"] = {"method": "loudness"}
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="window normalisation must be null or a dict"):
        predict_file(audio["stereo"], LiteModel(copy))


def _is_classifier(path) -> bool:
    """A shipped classifier; explain models (probabilities and attention out) are
    tested with their runtime, ser_tf.reporting.attention_maps.ExplainLiteModel."""
    try:
        sidecar = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return True  # a model without a readable sidecar must fail the test below
    return "attention" not in (sidecar.get("outputs") or ())


SHIPPED = sorted(p for p in (REPO / "tflite_models").glob("*.tflite") if _is_classifier(p))


@pytest.mark.skipif(not SHIPPED, reason="no shipped models in tflite_models/")
def test_every_shipped_model_predicts_without_tensorflow(audio, blocked_env):
    """The shipped files themselves, as a Raspberry Pi runs them: each loads, predicts with
    its sidecar's labels, and the float32 features-in and waveform-in exports of the same
    weights agree (NumPy MFCC on the device vs the TF front-end inside the graph)."""
    script = textwrap.dedent("""\
        import json, sys
        from ser_tf.lite.predict import predict_file
        from ser_tf.lite.runtime import LiteModel
        out = {}
        for path in sys.argv[2:]:
            model = LiteModel(path)
            out[path] = {"labels": model.labels, **predict_file(sys.argv[1], model)}
        print(json.dumps(out))
        """)
    out = run_blocked(blocked_env, str(audio["long"]), *map(str, SHIPPED), code=script)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    for path in SHIPPED:
        result = results[str(path)]
        meta = json.loads(path.with_suffix(".json").read_text())
        assert result["labels"] == meta["labels"] == list(result["probabilities"])
        # Every variant sums to 1: a full-integer model's outputs (multiples of 1/256, each
        # rounded) are renormalised by LiteModel.predict.
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        # 10 s of audio in windows of the model's own length every 1 s, and one more
        # aligned to the end when the last of them stops short of it (3 s models: 8;
        # TIM-Net EMO-DB's 4.35 s: starts 0..5 s, then 5.65 s: 7).
        window = meta["input"]["samples"] / meta["input"]["sample_rate"]
        starts = int(np.floor((10.0 - window) / 1.0 + 1e-9)) + 1
        tail = (starts - 1) * 1.0 + window < 10.0 - 1e-6
        assert result["windows"] == starts + tail, path.name
    # Per shipped model ("lightsernet-emodb"): its mfcc-float32 and waveform-float32 files.
    pairs = [(path.with_name(path.name.replace("-waveform-float32", "-mfcc-float32")), path)
             for path in SHIPPED if path.stem.endswith("-waveform-float32")]
    # Every waveform-in model has its features-in twin (a renamed file must not drop the
    # comparison silently).
    assert pairs and all(features_in in SHIPPED for features_in, _ in pairs), pairs
    for features_in, path in pairs:
        features, waveform = (list(results[str(p)]["probabilities"].values())
                              for p in (features_in, path))
        np.testing.assert_allclose(features, waveform, atol=1e-4)


def test_window_must_match_the_model(tiny, audio):
    from ser_tf.lite.predict import predict_file
    from ser_tf.lite.runtime import LiteModel

    model = LiteModel(tiny[0])
    with pytest.raises(ValueError, match="48000 samples"):
        predict_file(audio["short"], model, window=2.0)
    with pytest.raises(ValueError, match="positive"):
        predict_file(audio["short"], model, hop=0)
