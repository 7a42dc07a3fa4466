"""ser_tf.export.model_card: every field rendered, unmeasured values say so."""

from __future__ import annotations

import pytest

from ser_tf.export.model_card import NOT_MEASURED, write_model_card

LABELS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
SPEC = {"kind": "waveform", "sample_rate": 16000, "samples": 48000, "shape": [48000]}


def card(tmp_path, **changes):
    model = tmp_path / "lightsernet-emodb-waveform-float32.tflite"
    model.write_bytes(b"\0" * 2048)
    fields = dict(title="Light-SERNet, EMO-DB, waveform in, float32",
                  training_data="EMO-DB, all 535 utterances (10 speakers).",
                  protocol="Speaker-independent 10-fold cross-validation.",
                  metrics={"UA": (84.3, 1.9), "extra_metric": 12.345}, labels=LABELS,
                  input_spec=SPEC, latency={"host_ms": 7.25, "pi 5, 4 threads": "3.1 ms"},
                  notes="Trained on acted German speech.")
    fields.update(changes)
    return write_model_card(model, **fields)


def test_card_renders_every_field(tmp_path):
    path = card(tmp_path)
    assert path == tmp_path / "lightsernet-emodb-waveform-float32.md"
    text = path.read_text()
    assert text.startswith("# Light-SERNet, EMO-DB, waveform in, float32\n")
    assert "EMO-DB, all 535 utterances" in text and "Speaker-independent 10-fold" in text
    # Measured values only; the standard metrics not passed in say "not measured".
    assert "| Unweighted accuracy (UA, mean per-class recall) | 84.30 ± 1.90 |" in text
    assert f"| Weighted accuracy (WA, plain accuracy) | {NOT_MEASURED} |" in text
    assert f"| Macro F1 | {NOT_MEASURED} |" in text
    assert "| extra_metric | 12.35 |" in text
    # Label order is the output order, numbered from 0.
    assert "\n".join(f"{i}. {label}" for i, label in enumerate(LABELS)) in text
    assert "kind: `waveform`" in text and "sample_rate: 16000" in text
    assert "samples: 48000" in text and "shape: [48000]" in text
    assert "2,048 bytes (2.0 KiB)" in text  # measured from the file
    assert "| Development machine CPU, 1 thread, one 3 s window | 7.25 |" in text
    assert f"| Raspberry Pi, 1 thread, one 3 s window | {NOT_MEASURED} |" in text
    assert "| pi 5, 4 threads | 3.1 ms |" in text
    # The three Pi commands: install the lite runtime's dependencies, copy, predict.
    assert "pip install ai-edge-litert numpy soundfile soxr" in text
    assert ("scp -r ser_tf tflite_models/lightsernet-emodb-waveform-float32.tflite "
            "tflite_models/lightsernet-emodb-waveform-float32.json") in text
    assert ("python -m ser_tf.lite.predict --model lightsernet-emodb-waveform-float32.tflite "
            "speech.wav") in text
    assert "## Notes\n\nTrained on acted German speech." in text
    assert "tensorflow" not in text.split("## Run it on a Raspberry Pi")[1].lower()


def test_nothing_measured(tmp_path):
    text = card(tmp_path, metrics=None, latency=None, size_bytes=None, input_spec=None,
                notes="").read_text()
    metric_rows = text.split("## Measured metrics")[1].split("##")[0]
    assert metric_rows.count(NOT_MEASURED) == 3
    assert text.split("## Latency")[1].split("##")[0].count(NOT_MEASURED) == 2
    assert "## Input\n\nnot specified" in text and "## Notes" not in text
    assert "2,048 bytes" in text  # size still measured from the file itself


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="labels"):
        card(tmp_path, labels=[])
    with pytest.raises(TypeError, match="metrics"):
        card(tmp_path, metrics=[("UA", 80.0)])
    with pytest.raises(ValueError, match="title"):
        card(tmp_path, title=" ")
