"""Model cards: one Markdown page beside every shipped ``.tflite`` file.

A card states what the model was trained on, how it was evaluated, what was *measured*
(never a number that was not passed in: anything missing reads "not measured"), the label
order of its output, its input, its size and latency, and the three commands that run it on
a Raspberry Pi. :func:`write_model_card` writes ``<model>.md`` next to the model, e.g.
``tflite_models/lightsernet-emodb-waveform-float32.md``.

Pure Python (no TensorFlow), so a card can be re-rendered anywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ser_tf.lite.runtime import sidecar_path

#: Metrics every card lists (names as in :mod:`ser_tf.training.metrics`, values in %), so
#: a card without them says so instead of silently leaving them out.
STANDARD_METRICS = {"UA": "Unweighted accuracy (UA, mean per-class recall)",
                    "WA": "Weighted accuracy (WA, plain accuracy)",
                    "macro_F1": "Macro F1"}

#: Latencies every card lists: milliseconds per ``predict`` call on one 3 s window (a
#: model with another input length gets its own length in the row's text).
STANDARD_LATENCY = {"host_ms": "Development machine CPU, 1 thread, one 3 s window",
                    "raspberry_pi_ms": "Raspberry Pi, 1 thread, one 3 s window"}

NOT_MEASURED = "not measured"

#: What the on-device predictor (``ser_tf.lite``) imports: the LiteRT interpreter, NumPy,
#: soundfile (decoding) and soxr (resampling). No TensorFlow, no librosa.
PI_REQUIREMENTS = ("ai-edge-litert", "numpy", "soundfile", "soxr")

PI_HOST = "pi@raspberrypi.local"


def write_model_card(model_path, *, title: str, training_data: str, protocol: str,
                     metrics: dict | None, labels, input_spec: dict | None,
                     size_bytes: int | None = None, latency: dict | None = None,
                     notes: str = "") -> Path:
    """Write ``<model>.md`` beside ``model_path`` and return its path.

    Args:
        model_path: the ``.tflite`` file the card describes (need not exist yet).
        title: the card's heading.
        training_data: corpus, size and any filtering, in a sentence or two.
        protocol: how the numbers below were obtained (folds, speaker independence, ...).
        metrics: measured values in %: a number, ``(mean, std)`` or ``{"mean", "std"}``;
            ``None`` or a missing :data:`STANDARD_METRICS` key renders as "not measured".
        labels: the output order: index ``i`` of the probability vector is ``labels[i]``.
        input_spec: the sidecar's ``input_spec`` (``kind``, ``sample_rate``, ``samples``,
            ``shape``); ``None`` renders as "not specified".
        size_bytes: file size; default: measured from ``model_path`` if it exists.
        latency: milliseconds: a number, ``(mean, std)``, ``{"mean", "std"}`` or a string;
            missing :data:`STANDARD_LATENCY` keys render as "not measured".
        notes: free text (caveats, quantization, known limits).
    """
    model_path = Path(model_path)
    if not title or not str(title).strip():
        raise ValueError("title must be a non-empty string")
    labels = [str(label) for label in (labels or [])]
    if not labels:
        raise ValueError("labels must list the output classes in order")
    for name, value in (("metrics", metrics), ("latency", latency), ("input_spec", input_spec)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict or None, got {type(value).__name__}")
    if size_bytes is None and model_path.is_file():
        size_bytes = model_path.stat().st_size

    text = render_model_card(model_path.name, title=title, training_data=training_data,
                             protocol=protocol, metrics=metrics or {}, labels=labels,
                             input_spec=input_spec, size_bytes=size_bytes,
                             latency=latency or {}, notes=notes,
                             sidecar_name=_sidecar_name(model_path))
    card = model_path.with_suffix(".md")
    card.parent.mkdir(parents=True, exist_ok=True)
    # Written atomically: a card is committed next to the model and must never be half a file.
    tmp = card.with_name(f".{card.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, card)
    return card


def render_model_card(model_name: str, *, title, training_data, protocol, metrics: dict,
                      labels: list[str], input_spec: dict | None, size_bytes: int | None,
                      latency: dict, notes: str, sidecar_name: str) -> str:
    """The card's Markdown text (see :func:`write_model_card` for the arguments)."""
    lines = [f"# {title}", "", f"File: `{model_name}` (labels and input spec in "
             f"`{sidecar_name}`)", "",
             "## Training data", "", str(training_data).strip() or "not specified", "",
             "## Evaluation protocol", "", str(protocol).strip() or "not specified", "",
             "## Measured metrics", "", "| metric | value (%) |", "|---|---|"]
    lines += [f"| {desc} | {_fmt(metrics.get(key))} |" for key, desc in STANDARD_METRICS.items()]
    lines += [f"| {key} | {_fmt(value)} |" for key, value in metrics.items()
              if key not in STANDARD_METRICS]
    lines += ["", "## Output: label order", "",
              "The model outputs one probability per class, in this order:", ""]
    lines += [f"{i}. {label}" for i, label in enumerate(labels)]
    lines += ["", "## Input", ""] + _input_lines(input_spec)
    lines += ["", "## Size", "", _fmt_size(size_bytes), "",
              "## Latency", "", "| setting | ms |", "|---|---|"]
    window = _window_text(window_seconds(input_spec) or 3.0)
    lines += [f"| {desc.replace('3 s', window)} | {_fmt(latency.get(key))} |"
              for key, desc in STANDARD_LATENCY.items()]
    lines += [f"| {key} | {_fmt(value)} |" for key, value in latency.items()
              if key not in STANDARD_LATENCY]
    lines += ["", "## Run it on a Raspberry Pi", "",
              *pi_commands(model_name, sidecar_name, window_s=window_seconds(input_spec))]
    if notes and notes.strip():
        lines += ["", "## Notes", "", notes.strip()]
    return "\n".join(lines) + "\n"


def window_seconds(spec: dict | None) -> float | None:
    """Seconds of audio one prediction sees (``samples / sample_rate`` of an input spec),
    or None when the spec does not say."""
    if not spec or not spec.get("samples") or not spec.get("sample_rate"):
        return None
    return int(spec["samples"]) / int(spec["sample_rate"])


def pi_commands(model_name: str, sidecar_name: str, host: str = PI_HOST,
                window_s: float | None = 3.0) -> list[str]:
    """The three commands (Markdown) that run the model on a Pi with only the lite runtime.

    The whole ``ser_tf`` source folder is copied (a few hundred kB of Python): the lite path
    imports only ``ser_tf.lite``, ``ser_tf.data.audio`` and ``ser_tf.features.segment``, and
    none of them imports TensorFlow, so the Pi never needs it. A virtual environment because
    Raspberry Pi OS (Bookworm) refuses a system-wide ``pip install`` (PEP 668).
    """
    return [
        "1. on the Pi, 2. from a clone of this repository, 3. on the Pi again "
        "(64-bit Raspberry Pi OS: `ai-edge-litert` has aarch64 wheels for Python 3.10-3.13, "
        "none for 32-bit armv7l):", "",
        "```bash",
        f"python3 -m venv ~/ser-env && ~/ser-env/bin/pip install {' '.join(PI_REQUIREMENTS)}",
        f"scp -r ser_tf tflite_models/{model_name} tflite_models/{sidecar_name} {host}:",
        f"~/ser-env/bin/python -m ser_tf.lite.predict --model {model_name} speech.wav",
        "```", "",
        "Any length, sample rate or channel count works (wav/flac/ogg; mp3/m4a need "
        "`sudo apt install ffmpeg`): the audio is resampled, averaged to mono and classified "
        f"in {_window_text(window_s)} windows with a 1 s hop whose probabilities are averaged "
        "(a shorter recording is one window, centre-padded with silence). Add `--json` for "
        "machine-readable output, `--threads 4` to use all cores.",
    ]


def _window_text(window_s: float | None) -> str:
    return "fixed-length" if window_s is None else f"{window_s:.3g} s"


def _sidecar_name(model_path: Path) -> str:
    """The JSON sidecar's file name, as the runtime looks for it (``<stem>.json``)."""
    return sidecar_path(model_path).name


def _fmt(value) -> str:
    """A measured value as text; ``None`` and empty values are "not measured"."""
    if value is None or value == "" or value == {} or value == ():
        return NOT_MEASURED
    if isinstance(value, dict) and "mean" in value:
        return _fmt_mean_std(value["mean"], value.get("std"))
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _fmt_mean_std(*value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _fmt_mean_std(mean, std) -> str:
    if mean is None:
        return NOT_MEASURED
    return f"{float(mean):.2f}" + ("" if std is None else f" ± {float(std):.2f}")


def _input_lines(spec: dict | None) -> list[str]:
    if not spec:
        return ["not specified"]
    kind = spec.get("kind")
    what = {"waveform": "raw mono audio (features are computed inside the model)",
            "features": "features computed from the audio by the front-end below (ser_tf.lite "
                        "computes it in NumPy, no TensorFlow)"}
    lines = [f"- kind: `{kind}` - {what.get(kind, 'unknown kind')}"]
    seconds = window_seconds(spec)
    if seconds is not None:
        lines.append(f"- window: {seconds:.3g} s of mono audio at {int(spec['sample_rate'])} Hz "
                     f"per prediction ({int(spec['samples'])} samples)")
    for key in ("sample_rate", "samples", "shape"):
        lines.append(f"- {key}: {spec[key] if spec.get(key) is not None else 'not specified'}")
    lines += [f"- {key}: {value}" for key, value in spec.items()
              if key not in ("kind", "sample_rate", "samples", "shape")]
    return lines


def _fmt_size(size_bytes) -> str:
    if size_bytes is None:
        return NOT_MEASURED
    size_bytes = int(size_bytes)
    if size_bytes < 0:
        raise ValueError(f"size_bytes must be >= 0, got {size_bytes}")
    return f"{size_bytes:,} bytes ({size_bytes / 1024:.1f} KiB)"


# --- what a deployable model has heard ---------------------------------------------------
def _seconds(value) -> str:
    return f"{float(value):.2f} s"


def recordings_line(data: dict | None) -> str | None:
    """The training recordings' rates, lengths and copy, from a run's data fingerprint
    (:func:`ser_tf.data.fingerprint.fingerprint`); None without one."""
    if not data or not data.get("duration_s"):
        return None
    rates = " and ".join(f"{int(r) / 1000:g} kHz" for r in (data.get("sample_rates") or {}))
    lengths = data["duration_s"]
    span = (f"all {_seconds(lengths['max'])} long" if data.get("same_duration") else
            f"{_seconds(lengths['min'])} to {_seconds(lengths['max'])} long (median "
            f"{_seconds(lengths['median'])})")
    copy = f"; copy: {data['release']}" if data.get("release") else ""
    return f"recordings: {rates or 'rate not recorded'}, {span}{copy}"


def window_lines(spec: dict, data: dict | None = None) -> list[str]:
    """What one prediction sees, and how that compares with the training recordings:
    the window (the model's input length at its rate), how a recording is cut into windows,
    and, from the data fingerprint, whether the window is the recordings' length, crops
    them or pads them, and whether the model has heard anything above the recordings'
    Nyquist frequency."""
    seconds = window_seconds(spec)
    if seconds is None:
        raise ValueError(f"input spec without samples and sample_rate: {spec}")
    rate = int(spec["sample_rate"])
    lines = [f"Window: each prediction sees {seconds:.3g} s of mono audio at {rate} Hz "
             f"({int(spec['samples'])} samples), the model's input length. A longer recording "
             "is cut into such windows every 1 s and their probabilities averaged; a shorter "
             "one is one window, centre-padded with silence."]
    if not data or not data.get("duration_s"):
        return lines
    lengths = data["duration_s"]
    if data.get("same_duration") and abs(float(lengths["max"]) - seconds) < 0.02:
        lines.append(f"The window is the length of every training recording "
                     f"({_seconds(lengths['max'])}): the model was trained and evaluated on "
                     "whole recordings of exactly this length, as it sees a user's windows.")
    elif float(lengths["max"]) < seconds:
        lines.append(f"Every training recording is shorter than the window (at most "
                     f"{_seconds(lengths['max'])}) and was centre-padded with silence: a "
                     "window of continuous speech is unlike anything it heard.")
    else:
        lines.append(f"Training recordings ({_seconds(lengths['min'])} to "
                     f"{_seconds(lengths['max'])}) were centre-cropped or centre-padded to the "
                     "window, so it has heard both whole short utterances in silence and "
                     "windows from inside longer ones.")
    rates = [int(r) for r in (data.get("sample_rates") or {})]
    if rates and max(rates) < rate:
        lines.append(f"The training recordings were {max(rates) / 1000:g} kHz, resampled to "
                     f"{rate / 1000:g} kHz: the model has heard nothing above "
                     f"{max(rates) / 2000:g} kHz. Recordings with content there (most 44.1 / "
                     "48 kHz audio) are unlike its training data.")
    return lines
