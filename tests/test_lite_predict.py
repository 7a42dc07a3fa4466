"""ser_tf.lite.predict: TF-free prediction on files of any length, rate and channel count.

The key tests run the predictor in a subprocess where importing ``tensorflow``, ``keras``
or ``tf_keras`` raises ImportError (a meta-path finder installed by ``sitecustomize``), so
they prove the on-device path never needs TensorFlow. The model is a tiny waveform-in
classifier (Light-SERNet's MFCC front-end + a pooling/dense head) converted here, in the
parent process, with the suite's own export code.
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


def export_tiny_waveform_model(out_dir):
    """Convert a tiny waveform-in classifier to ``out_dir/MODEL_NAME`` (+ its sidecar);
    returns (path of the .tflite, the Keras model)."""
    import keras

    from ser_tf.export.tflite import export_variants
    from ser_tf.export.waveform import build_waveform_model, input_spec
    from ser_tf.features.recipes import get_recipe

    recipe = get_recipe("lightsernet")
    keras.utils.set_random_seed(0)
    features = keras.Sequential([keras.Input((184, 40)), keras.layers.GlobalAveragePooling1D(),
                                 keras.layers.Dense(len(LABELS), activation="softmax")],
                                name="tiny")
    model = build_waveform_model(features, recipe)
    spec = input_spec(recipe, "waveform", model.input_shape[1:])
    paths = export_variants(model, out_dir, labels=LABELS, input_spec=spec,
                            variants=("float32",), name=MODEL_NAME.rsplit("-", 1)[0])
    assert paths["float32"].name == MODEL_NAME
    return paths["float32"], model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(path of the .tflite, the Keras model it was converted from)."""
    return export_tiny_waveform_model(tmp_path_factory.mktemp("models"))


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


def test_cli_json_document(tiny, audio, blocked_env):
    model_path, _ = tiny
    out = run_blocked(blocked_env, "-m", "ser_tf.lite.predict", "--json", "--threads", "2",
                      "--model", str(model_path), str(audio["long"]), str(audio["empty"]))
    assert out.returncode == 1
    document = json.loads(out.stdout)  # one document, nothing else on stdout
    assert document["model"] == str(model_path) and document["labels"] == LABELS
    (result,) = document["results"]
    assert set(result) == {"file", "label", "probabilities", "windows", "duration_s"}
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
    assert out.returncode == 2 and "positive integer" in out.stderr


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


def test_features_model_is_refused_with_a_pointer_to_the_waveform_model(tiny, tmp_path, audio):
    from ser_tf.lite.predict import predict_file
    from ser_tf.lite.runtime import LiteModel

    model_path, _ = tiny
    # Same graph, sidecar claiming features input: exercises the refusal without converting
    # a second model.
    copy = tmp_path / "lightsernet-emodb-features-float32.tflite"
    shutil.copy(model_path, copy)
    meta = json.loads(model_path.with_suffix(".json").read_text())
    meta["input"]["kind"] = "features"
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="waveform-in") as err:
        predict_file(audio["short"], LiteModel(copy))
    assert "TensorFlow" in str(err.value)


def test_window_must_match_the_model(tiny, audio):
    from ser_tf.lite.predict import predict_file
    from ser_tf.lite.runtime import LiteModel

    model = LiteModel(tiny[0])
    with pytest.raises(ValueError, match="48000 samples"):
        predict_file(audio["short"], model, window=2.0)
    with pytest.raises(ValueError, match="positive"):
        predict_file(audio["short"], model, hop=0)
