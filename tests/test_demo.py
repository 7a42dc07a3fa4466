"""``make demo`` (ser_tf.demo): synthesised sentence + EMO-DB examples with a tiny model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import ser_tf.demo as demo
import ser_tf.lite.predict as predict
from ser_tf.data.synthetic import make_emodb_like
from test_lite_predict import LABELS, MODEL_NAME, export_tiny_waveform_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path, _ = export_tiny_waveform_model(tmp_path_factory.mktemp("models"))
    return path.parent


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_demo_labels_the_synthesised_sentence(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SER_TF_MODEL", str(model_dir))  # a folder holding the default name
    code = demo.main(["--emodb", str(tmp_path / "no-corpus")])
    out = capsys.readouterr().out
    assert code == 0
    assert f"model: {MODEL_NAME}" in out and demo.SENTENCE in out
    headline = out.split("synthesised sentence: ")[1].split("\n")[0]
    assert headline.split(" (")[0] in LABELS and "window" in headline
    assert "EMO-DB" not in out and "done in" in out


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_demo_shows_true_and_predicted_emodb_labels(model_dir, tmp_path, capsys):
    root = make_emodb_like(tmp_path / "emodb", per_class=2, duration=1.0)
    code = demo.run_demo(model_dir / MODEL_NAME, root)
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if "true " in line]
    assert [row.split("true ")[1].split()[0] for row in rows] == ["anger", "sadness", "happiness"]
    assert all(row.split("predicted ")[1].split()[0] in LABELS for row in rows)


def test_no_shipped_model_is_a_message_and_exit_0(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SER_TF_MODEL", raising=False)
    monkeypatch.setattr(predict, "MODELS_DIR", tmp_path)
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "no shipped model yet: run `make reproduce-lightsernet`" in out


def test_missing_espeak_says_how_to_install(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "espeak_path", lambda: None)
    code = demo.run_demo(model_dir / MODEL_NAME, tmp_path)
    out = capsys.readouterr().out
    assert code == 1  # nothing could be classified
    assert "sudo apt-get install espeak-ng" in out


def test_explicit_missing_model_is_an_error(tmp_path, capsys):
    assert demo.main(["--model", str(tmp_path / "nope.tflite")]) == 1
    assert "nope.tflite" in capsys.readouterr().err
