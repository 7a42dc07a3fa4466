"""TIM-Net's deployable model end to end, on a tiny generated corpus: `--ship` refuses an
unfinished speaker run (naming the missing folds), then ships the finished one: cards,
calibration, out-of-domain check, the TFLite variants (full int8 only within 1 point UA),
and predictions through `ser_tf.lite` that equal the training pipeline's, without
TensorFlow."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_tf.data.synthetic import make_emodb_like
from ser_tf.papers.timnet.experiment import SPEC, build_parser, main

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
WINDOW = 1.0  # --window: a short input keeps the tiny run quick and tests the RAVDESS route
SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A finished 2-fold speaker run (fold TFLite scores on), then `--ship`; the attempts
    before the run is finished (no fold, then one fold done) are kept for the refusal test."""
    from ser_tf.experiments import runner

    root = tmp_path_factory.mktemp("timnet_ship")
    corpus = make_emodb_like(root / "emodb", per_class=8, duration=0.6, classes="WLNT",
                             speakers=SPEAKERS)
    argv = ["--dataset", "EMODB", "--data-dir", str(corpus),
            "--results-dir", str(root / "results"), "--cache-dir", str(root / "cache"),
            "--epochs", "3", "--folds", "2", "--protocol", "speaker", "--quiet",
            "--batch-size", "4", "--blocks", "2", "--window", str(WINDOW)]
    ship_argv = argv + ["--ship", "--ship-dest", str(root / "ship")]
    refusals = [_main(ship_argv)]
    runner.run(SPEC, build_parser().parse_args(argv + ["--train-folds", "0"]))
    refusals.append(_main(ship_argv))
    refusals.append((root / "ship").exists())
    runner.run(SPEC, build_parser().parse_args(argv))
    out = runner.run(SPEC, build_parser().parse_args(ship_argv))
    return {"root": root, "corpus": corpus, "argv": argv, "out": out, "refusals": refusals}


def _main(argv) -> tuple[int, str]:
    """The command line's exit code and standard error."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def test_ship_refuses_an_unfinished_run_and_names_the_missing_folds(shipped):
    (code0, err0), (code1, err1), wrote = shipped["refusals"]
    assert code0 == 1 and "0 of 2 folds finished; missing: fold_00, fold_01 " in err0
    assert code1 == 1 and "1 of 2 folds finished; missing: fold_01 " in err1
    assert "without --ship" in err1 and "Traceback" not in err1
    assert wrote is False  # nothing trained or exported before the refusal


def test_ship_record_variants_and_int8_decision(shipped):
    from ser_tf.export.deploy import INT8_MAX_UA_DROP

    root, out = shipped["root"], shipped["out"]
    record = json.loads(Path(out["record"]).read_text())
    folds = [json.loads(p.read_text()) for p in
             sorted(root.glob("results/timnet/EMODB/speaker-*.work/fold_*/tflite.json"))]
    assert len(folds) == 2
    drop = (np.mean([f["variants"]["float32"]["UA"] for f in folds])
            - np.mean([f["variants"]["int8"]["UA"] for f in folds]))
    assert record["int8"]["int8_drop"] == pytest.approx(drop)
    assert record["int8"]["int8"] is bool(drop <= INT8_MAX_UA_DROP)
    # Features-in only (librosa MFCC has no graph layer); full int8 only within reach.
    expected = {"float32", "float16", "dynamic_int8"} | ({"int8"} if drop <= 1 else set())
    assert set(out["shipped"]) == expected
    for variant in expected:
        assert (root / "ship" / f"timnet-emodb-{WINDOW:g}s-mfcc-{variant}.tflite").is_file()
    assert not list((root / "ship").glob("*waveform*"))
    history = json.loads(next(root.glob("results/timnet/EMODB/deploy-*.work/history.json"))
                         .read_text())
    assert len(history["loss"]) == record["cross_validation"]["epochs"]
    assert record["utterances"] == 32


def test_card_and_sidecar_say_what_was_measured_and_heard(shipped):
    root = shipped["root"]
    record = json.loads(Path(shipped["out"]["record"]).read_text())
    results = [json.loads(p.read_text()) for p in
               sorted(root.glob("results/timnet/EMODB/speaker-*.work/fold_*/result.json"))]
    ua = np.mean([r["metrics"]["UA"] for r in results])
    stem = root / "ship" / f"timnet-emodb-{WINDOW:g}s-mfcc-float32"
    sidecar = json.loads(stem.with_suffix(".json").read_text())
    card = stem.with_suffix(".md").read_text()
    # Expected accuracy: the speaker-independent CV's mean test UA, on card and sidecar.
    assert sidecar["expected_accuracy"]["UA"]["mean"] == pytest.approx(ua)
    assert sidecar["expected_accuracy"]["protocol"] == "speaker"
    assert f"| Unweighted accuracy (UA, mean per-class recall) | {ua:.2f} ± " in card
    assert "accuracy to expect on new speakers" in card
    # Temperature on validation speakers, ECE before/after on test speakers.
    cal = record["calibration"]
    assert sidecar["calibration"]["temperature"] == pytest.approx(cal["temperature"])
    assert cal["temperature"] > 0 and cal["folds_used"] == [0, 1]
    assert (f"from {cal['test']['ece_before']:.1f} % to {cal['test']['ece_after']:.1f} %"
            in card)
    # Out-of-domain check: the measured false-alarm rate on held-out speakers.
    ood = record["ood"]
    assert len(ood["false_alarm_test_speakers"]["per_fold"]) == 2
    assert sidecar["ood"]["frontend"] == sidecar["input"]["frontend"]
    assert (f"training corpus: {ood['false_alarm_test_speakers']['mean']:.1f} %" in card)
    # What it has heard and has not, and the window at its sample rate.
    assert "Has heard:" in card and "Has not heard:" in card
    assert "language: German" in card and "acted by 10 professional actors" in card
    lengths = json.loads(next(root.glob("results/timnet/EMODB/speaker-*.work/config.json"))
                         .read_text())["data"]["duration_s"]
    assert (f"recordings: 16 kHz, {lengths['min']:.2f} s to {lengths['max']:.2f} s long"
            in card)
    assert f"Every training recording is shorter than the window (at most {lengths['max']:.2f}"\
        in card
    assert f"each prediction sees {WINDOW:g} s of mono audio at 22050 Hz (22050 samples)" in card
    assert "set with --window 1 (22050 samples at 22050 Hz) instead of TIM-Net's 96000" in card
    assert "has heard nothing above 8 kHz" in card
    assert "Input: features only" in card
    drop = record["int8"]["int8_drop"]
    assert (f"Full int8: shipped (folds' mean UA, float32 minus int8: {drop:+.2f} points"
            if record["int8"]["int8"] else "Full int8: not shipped") in card
    assert sidecar["input"]["frontend"]["kind"] == "librosa_mfcc"
    assert sidecar["input"]["samples"] == 22050 and sidecar["input"]["sample_rate"] == 22050
    assert "in 1 s windows with a 1 s hop" in card


def test_device_features_and_predictions_equal_the_training_pipeline(shipped):
    """The NumPy front-end `ser_tf.lite` runs equals the training features (librosa), and
    the shipped float32 model's `predict_file` equals the Keras model on them."""
    from ser_tf.data.audio import read_audio
    from ser_tf.experiments import runner
    from ser_tf.lite import LiteModel
    from ser_tf.lite.calibration import apply_temperature
    from ser_tf.lite.inputs import check_model_input, model_inputs
    from ser_tf.lite.predict import predict_file

    root = shipped["root"]
    args = build_parser().parse_args(shipped["argv"])
    experiment = SPEC.setup(args, SPEC.config())
    recipe = experiment.recipe
    files = sorted((shipped["corpus"] / "wav").glob("*.wav"))[::5]
    segments = np.stack([recipe.segment_audio(read_audio(f, sr=recipe.sample_rate)[0])
                         for f in files])
    training = recipe.compute(segments)  # librosa: what the run trained on
    lite = LiteModel(root / "ship" / f"timnet-emodb-{WINDOW:g}s-mfcc-float32.tflite")
    device = model_inputs(segments, check_model_input(lite))
    assert device.shape == training.shape
    assert np.abs(device - training).max() < 2e-3  # dB-scale MFCCs reaching hundreds

    model = experiment.build_model(len(experiment.manifest.labels))
    plan = runner.plan(SPEC, args)
    model.load_weights(plan.work_dir.parent / f"deploy-{plan.run_id}.work/final.weights.h5")
    temperature = lite.metadata["calibration"]["temperature"]
    keras = apply_temperature(model.predict(training, verbose=0), temperature)
    for path, expected in zip(files, keras):
        got = predict_file(path, lite)  # one window: the recording is shorter than 1 s
        assert got["windows"] == 1 and got["calibrated"] is True
        probs = np.array(list(got["probabilities"].values()))
        assert np.abs(probs - expected).max() < 1e-4
        assert got["label"] == experiment.manifest.labels[int(np.argmax(expected))]


_NO_TF = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "librosa", "tf_keras"):
            raise ImportError(f"{name} is not installed on the device")
sys.meta_path.insert(0, Block())
from ser_tf.lite.predict import main
codes = [main(["--model", m, "--json", sys.argv[1]]) for m in sys.argv[2:]]
assert not {"tensorflow", "keras", "librosa"} & set(sys.modules), sorted(sys.modules)
print("CODES", json.dumps(codes))
"""


def test_every_shipped_model_predicts_without_tensorflow(shipped, tmp_path):
    """A fresh interpreter where TensorFlow, Keras and librosa cannot be imported runs each
    shipped model on a recording longer than its window (streamed windows, averaged)."""
    from ser_tf.data.synthetic import write_wav

    wav = write_wav(tmp_path / "long.wav", sr=44100, duration=3.3, class_index=1, seed=3)
    models = sorted(str(p) for p in (shipped["root"] / "ship").glob("*.tflite"))
    assert len(models) >= 3
    done = subprocess.run([sys.executable, "-c", _NO_TF, str(wav), *models], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.split("CODES")[-1]) == [0] * len(models)
    documents = [json.loads(chunk) for chunk in _json_documents(done.stdout.split("CODES")[0])]
    assert len(documents) == len(models)
    for document in documents:
        (result,) = document["results"]
        # 3.3 s at a 1 s window and 1 s hop: starts 0, 1, 2 and the tail at 2.3 s.
        assert result["windows"] == 4 and result["calibrated"] is True
        assert "out_of_domain" in result
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    labels = {d["results"][0]["label"] for d in documents}
    float32 = next(d for d in documents if d["model"].endswith("float32.tflite"))
    float16 = next(d for d in documents if d["model"].endswith("float16.tflite"))
    assert float16["results"][0]["label"] == float32["results"][0]["label"] and labels


def _json_documents(text: str) -> list[str]:
    """Split concatenated pretty-printed JSON documents (each starts with '{' at col 0)."""
    chunks, current = [], []
    for line in text.splitlines():
        if line == "{" and current:
            chunks.append("\n".join(current))
            current = []
        current.append(line)
    if current:
        chunks.append("\n".join(current))
    return chunks


def test_ship_and_window_need_the_corpus_audio(capsys):
    for flag in (["--ship"], ["--window", "2.39"]):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(["--features", "EMODB.npy", *flag])
        assert exit_.value.code == 2
        assert f"argument {flag[0]}: needs the corpus audio" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--window", "0"])
    assert "must be seconds in [0.1, 60]" in capsys.readouterr().err
