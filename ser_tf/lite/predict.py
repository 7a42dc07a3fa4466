"""Classify audio files with an exported ``.tflite`` model, without TensorFlow.

Only NumPy, soundfile, soxr and a TFLite interpreter are imported (see
:mod:`ser_tf.lite.runtime`), so this runs on a Raspberry Pi::

    python -m ser_tf.lite.predict --model lightsernet-emodb-waveform-float32.tflite a.wav b.mp3
    python -m ser_tf.lite.predict --model lightsernet-emodb-mfcc-int8.tflite a.wav
    ser-tf predict a.wav b.mp3 --json          # same, through the suite's CLI

How a file is classified (:func:`predict_file`): it is read with the suite's one audio
reader (:func:`ser_tf.data.audio.read_audio`: any format, rate and channel count;
resampled to the model's rate, averaged to mono; bad files raise :class:`AudioError`
naming the file), cut into 3 s windows with a 1 s hop
(:func:`ser_tf.features.segment.sliding_windows`, each window normalised as the sidecar's
``input.normalise`` says, i.e. as the training segments were), every window is classified,
and the window probabilities are averaged.

Two kinds of model, told apart by the sidecar's ``input.kind``
(:func:`ser_tf.export.tflite.export_variants` writes it):

- **waveform-in** (``"waveform"``, from :func:`ser_tf.export.waveform.build_waveform_model`):
  the MFCC front-end is inside the graph; the (normalised) windows go in as they are.
- **features-in** (``"features"``: the float32 / float16 / int8 exports of the classifier):
  the sidecar's ``frontend`` (the training recipe's front-end config) is computed in NumPy
  by :func:`ser_tf.features.spectral.numpy_features`, the same computation as the TF layer
  (parity tested), and an int8 model's input is quantised by :class:`LiteModel`.

Shipped model naming: ``tflite_models/<model>-<corpus>-<input>-<variant>.tflite`` plus the
sidecar ``<same stem>.json`` and the model card ``<same stem>.md``; the default model is
:data:`DEFAULT_MODEL_NAME`. ``$SER_TF_MODEL`` (a ``.tflite`` file, or a folder holding the
default name) overrides it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from ser_tf.data.audio import AudioError, read_audio
from ser_tf.features.segment import check_window_normalisation, sliding_windows
from ser_tf.features.spectral import check_frontend_config, numpy_features
from ser_tf.lite.runtime import LiteModel, sidecar_path

#: The shipped default model (its model card says what it is): raw 16 kHz audio in, float32.
DEFAULT_MODEL_NAME = "lightsernet-emodb-waveform-float32.tflite"
MODELS_DIR = Path(__file__).resolve().parents[2] / "tflite_models"
MODEL_ENV = "SER_TF_MODEL"
DEFAULT_SAMPLE_RATE = 16000


class ModelNotFoundError(FileNotFoundError):
    """No model where one was expected; the message says how to get one."""


def default_model_path(models_dir=None) -> Path:
    """The model to use when none is given.

    Order: ``models_dir / DEFAULT_MODEL_NAME`` if ``models_dir`` is given; else
    ``$SER_TF_MODEL`` (a ``.tflite`` file, or a folder holding :data:`DEFAULT_MODEL_NAME`);
    else the shipped ``tflite_models/`` :data:`DEFAULT_MODEL_NAME`.

    Raises:
        ModelNotFoundError: the file does not exist (the message says how to make it).
    """
    if models_dir is not None:
        path, source = Path(models_dir) / DEFAULT_MODEL_NAME, "models_dir"
    elif os.environ.get(MODEL_ENV):
        path, source = Path(os.environ[MODEL_ENV]).expanduser(), f"${MODEL_ENV}"
        if path.is_dir():
            path = path / DEFAULT_MODEL_NAME
    else:
        path, source = MODELS_DIR / DEFAULT_MODEL_NAME, "the shipped default"
    if not path.is_file():
        raise ModelNotFoundError(
            f"no model at {path} ({source}). The shipped model is made by "
            "`make reproduce-lightsernet`; or pass --model PATH.tflite, or set "
            f"{MODEL_ENV} to a .tflite file")
    return path


def input_spec(model: LiteModel) -> dict:
    """The model's input description: its sidecar's ``input`` entry, or, without one, what
    its input shape implies (1-D = 16 kHz waveform, otherwise features), with windows fed
    as they are (``normalise`` null: nothing says otherwise)."""
    meta = getattr(model, "metadata", None) or {}
    spec = meta.get("input") or meta.get("input_spec")
    entries = meta.get("inputs")
    if spec is None and isinstance(entries, list) and len(entries) == 1:
        spec = entries[0]
    if isinstance(spec, dict) and spec.get("kind"):
        return spec
    shape = tuple(model.input_shape)
    if len(shape) == 1:
        return {"kind": "waveform", "sample_rate": DEFAULT_SAMPLE_RATE, "samples": shape[0],
                "normalise": None}
    return {"kind": "features", "shape": list(shape), "normalise": None}


def window_normalisation(model: LiteModel, spec: dict) -> dict | None:
    """What to do to each audio window before the model: the input spec's ``normalise``
    (written by the exporter from the training recipe), validated. A sidecar from before
    that key existed is refused rather than guessed at."""
    if "normalise" not in spec:
        raise ValueError(
            f"{sidecar_path(model.path)}: the input entry has no 'normalise' key, so how "
            "the training segments were normalised is unknown. Re-export the model with "
            "ser-tf, or add \"normalise\": {\"method\": \"percentile\", \"percentile\": "
            "99.9, \"clip\": 1.0} (or null for none) to the sidecar's input entry")
    try:
        return check_window_normalisation(spec["normalise"])
    except ValueError as error:
        raise ValueError(f"{sidecar_path(model.path)}: {error}") from None


def check_model_input(model: LiteModel) -> dict:
    """The input spec of a model this TF-free predictor can run; ``ValueError`` otherwise.

    One input. Waveform-in: a 1-D input. Features-in: the sidecar must describe the
    front-end (``frontend``, ``sample_rate``, ``samples``) and the front-end's output shape
    must be the model's input shape. Either way the spec must say how windows are
    normalised (``normalise``, see :func:`window_normalisation`).
    """
    if model.num_inputs != 1:
        raise ValueError(f"{model.path}: {model.num_inputs} inputs {model.input_names}; the "
                         "audio predictor runs models with one (waveform or features) input")
    spec = input_spec(model)
    kind = spec.get("kind")
    if kind == "waveform":
        if len(model.input_shape) != 1:
            raise ValueError(f"{model.path}: a waveform model must take (batch, samples), "
                             f"got input shape {model.input_shape}")
        window_normalisation(model, spec)
        return spec
    if kind != "features":
        raise ValueError(f"{model.path}: unknown input kind {kind!r} (sidecar input.kind "
                         "must be 'waveform' or 'features')")
    missing = [key for key in ("frontend", "sample_rate", "samples") if not spec.get(key)]
    if missing:
        raise ValueError(
            f"{model.path}: features-in model whose sidecar lacks {missing}, so the "
            "features it was trained on are unknown. Re-export it with ser-tf (the sidecar "
            "records the recipe), or use a waveform-in model (`*-waveform-*.tflite`)")
    try:
        check_frontend_config(spec["frontend"])
        shape = numpy_features(np.zeros((1, int(spec["samples"])), np.float32),
                               int(spec["sample_rate"]), spec["frontend"]).shape[1:]
    except ValueError as error:
        raise ValueError(f"{model.path}: {error}") from None
    if tuple(shape) != tuple(model.input_shape):
        raise ValueError(f"{model.path}: its front-end gives features of shape {shape} but "
                         f"the model takes {model.input_shape}")
    window_normalisation(model, spec)
    return spec


def model_inputs(windows: np.ndarray, spec: dict) -> np.ndarray:
    """Audio windows ``(n, samples)`` -> what the model takes (features for features-in)."""
    if spec.get("kind") == "features":
        return numpy_features(windows, int(spec["sample_rate"]), spec["frontend"])
    return windows


def _labels(model: LiteModel) -> list[str]:
    # Without a sidecar the class names are unknown; indices still identify the outputs.
    return model.labels or [f"class_{i}" for i in range(model.num_classes)]


def predict_file(path, model: LiteModel, *, window: float = 3.0, hop: float = 1.0) -> dict:
    """Classify one audio file.

    Args:
        path: any length, sample rate, channel count and format :func:`read_audio` reads.
        model: a waveform-in or features-in :class:`LiteModel` (see the module docstring).
        window: seconds per window; must match the model's input length.
        hop: seconds between window starts.

    Returns:
        ``{"file", "label", "probabilities": {label: p} (model label order),
        "windows": n, "duration_s"}``; probabilities are the mean over windows.

    Raises:
        AudioError: the file is missing, empty, not audio, silent, ... (message names it).
        ValueError: a model this predictor cannot run, or ``window`` not matching the
            model's input.
    """
    spec = check_model_input(model)
    if not (window > 0 and hop > 0):
        raise ValueError(f"window and hop must be positive seconds, got {window}, {hop}")
    sr = int(spec.get("sample_rate") or DEFAULT_SAMPLE_RATE)
    samples = int(spec.get("samples") or model.input_shape[0])
    if int(round(window * sr)) != samples:
        raise ValueError(f"{model.path.name} takes {samples} samples ({samples / sr:g} s at "
                         f"{sr} Hz); window={window} s does not match")
    audio, sr = read_audio(path, sr)
    windows = sliding_windows(audio, sr, window, hop,
                              normalize=window_normalisation(model, spec))
    probabilities = model.predict(model_inputs(windows, spec)).mean(axis=0)
    labels = _labels(model)
    return {"file": str(path), "label": labels[int(np.argmax(probabilities))],
            "probabilities": {label: float(p) for label, p in zip(labels, probabilities)},
            "windows": int(len(windows)), "duration_s": round(audio.size / sr, 3)}


def format_result(result: dict) -> str:
    """Plain text: ``file: label (n windows, d s)`` then one line per class, most likely first."""
    ranked = sorted(result["probabilities"].items(), key=lambda item: -item[1])
    width = max(len(label) for label, _ in ranked)
    lines = [f"{result['file']}: {result['label']} "
             f"({result['windows']} window{'s' * (result['windows'] != 1)}, "
             f"{result['duration_s']:.2f} s)"]
    lines += [f"  {label:<{width}}  {p:.3f}" for label, p in ranked]
    return "\n".join(lines)


def predict_files(files, model: LiteModel, *, as_json: bool = False, out=None, err=None,
                  prog: str = "ser-tf predict") -> int:
    """Classify every file, printing as it goes; 1 if any file failed, else 0.

    A bad file is reported on ``err`` (one line naming it) and the rest are still done:
    plain results are printed the moment they exist, and ``--json`` prints one document
    holding the results and the errors after the last file.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    check_model_input(model)  # once, before any file: the same error for every file
    results, errors = [], []
    for path in files:
        try:
            result = predict_file(path, model)
        except (AudioError, ValueError, OSError) as error:
            # AudioError already reads "<path>: <reason>"; other errors get the path added.
            message = str(error) if isinstance(error, AudioError) else f"{path}: {error}"
            errors.append({"file": str(path), "error": message})
            print(f"{prog}: error: {message}", file=err, flush=True)
            continue
        results.append(result)
        if not as_json:
            print(format_result(result), file=out, flush=True)
    if as_json:
        document = {"model": str(model.path), "labels": _labels(model),
                    "results": results, "errors": errors}
        print(json.dumps(document, indent=2), file=out, flush=True)
    return 1 if errors else 0


# --- command line ----------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files (any format, "
                        "rate, channels and length)")
    parser.add_argument("--model", type=Path, default=None, metavar="PATH",
                        help=f".tflite model, waveform- or features-in (default: ${MODEL_ENV}, else "
                             f"tflite_models/{DEFAULT_MODEL_NAME})")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                        help="interpreter CPU threads (default 1)")


def add_cli(subparsers) -> None:
    """Register ``ser-tf predict`` (argparse only: importing this module needs no TF)."""
    parser = subparsers.add_parser(
        "predict", help="classify audio files with a .tflite model (no TensorFlow needed)",
        description="Classify audio files with a .tflite model: 3 s windows, "
                    "1 s hop, probabilities averaged. Exit code 1 if any file failed.")
    _add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    """The CLI handler. Model problems raise (FileNotFoundError / ValueError: one line from
    the caller); file problems are reported per file by :func:`predict_files`."""
    path = args.model if args.model is not None else default_model_path()
    model = LiteModel(path, num_threads=args.threads)
    return predict_files(args.files, model, as_json=args.json,
                         prog=getattr(args, "prog", "ser-tf predict"))


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m ser_tf.lite.predict`` (no ``ser_tf.cli``)."""
    parser = argparse.ArgumentParser(prog="python -m ser_tf.lite.predict",
                                     description=__doc__.split("\n\n")[0])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    args.prog = "predict"
    try:
        return run(args)
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"predict: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
