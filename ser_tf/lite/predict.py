"""Classify audio files with an exported ``.tflite`` model, without TensorFlow.

Only NumPy, soundfile, soxr and a TFLite interpreter are imported (see
:mod:`ser_tf.lite.runtime`), so this runs on a Raspberry Pi::

    python -m ser_tf.lite.predict --model lightsernet-emodb-waveform-float32.tflite a.wav b.mp3
    python -m ser_tf.lite.predict --model lightsernet-emodb-mfcc-int8.tflite a.wav
    ser-tf predict a.wav b.mp3 --json          # same, through the suite's CLI
    ser-tf predict long.flac --timeline out.csv  # plus one row per window
    ser-tf predict --from-mic                   # live, needs the `mic` extra

How a file is classified (:func:`predict_file`): it is streamed block by block
(:func:`ser_tf.data.blocks.read_blocks`: the samples, checks and errors of the suite's one
audio reader :func:`ser_tf.data.audio.read_audio`, i.e. any format, rate and channel
count, averaged to mono and resampled to the model's rate; bad files raise
:class:`AudioError` naming the file), cut on the fly into windows of the model's input
length (the sidecar's ``input.samples`` at its ``sample_rate``: 3 s for the 16 kHz models)
with a 1 s hop, the windows :func:`ser_tf.features.segment.sliding_windows` would cut from
the whole file (each normalised as the sidecar's ``input.normalise`` says, i.e. as the
training segments were; a recording shorter than a window is centre-padded, or, for a
model that also takes its input's lengths, padded at its end and given its length), classified
a few windows at a time, and the window probabilities are averaged as they come
(:mod:`ser_tf.lite.stream`). Peak memory therefore does not grow with the file's length
(under 100 MB for an hour of 48 kHz stereo, see ``ser_tf.bench.stream``). ``--timeline``
writes each window's probabilities as it goes (:mod:`ser_tf.lite.timeline`);
``--from-mic`` classifies the microphone with a rolling window (:mod:`ser_tf.lite.mic`).

Two kinds of model, told apart by the sidecar's ``input.kind``
(:func:`ser_tf.export.tflite.export_variants` writes it):

- **waveform-in** (``"waveform"``, from :func:`ser_tf.export.waveform.build_waveform_model`):
  the MFCC front-end is inside the graph; the (normalised) windows go in as they are.
- **features-in** (``"features"``: the float32 / float16 / int8 exports of the classifier):
  the sidecar's ``frontend`` (the training recipe's front-end config) is computed in NumPy
  by :func:`ser_tf.features.spectral.numpy_features`, the same computation as the TF layer
  (parity tested), and an int8 model's input is quantised by :class:`LiteModel`.

Shipped model naming: ``tflite_models/<model>-<corpus>-<input>-<variant>.tflite`` plus the
sidecar ``<same stem>.json`` and the model card ``<same stem>.md``. Without ``--model``,
:func:`default_model_path` chooses (``$SER_TF_MODEL``, else the best ``--ship`` model, else
:data:`DEFAULT_MODEL_NAME`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ser_tf.data.audio import AudioError
from ser_tf.data.blocks import DEFAULT_BLOCK_FRAMES, read_blocks
# The model-input helpers live in ser_tf.lite.inputs; they are imported here too because
# callers (the demo, the export tests) know them as ser_tf.lite.predict's.
from ser_tf.lite.inputs import (DEFAULT_SAMPLE_RATE, check_model_input, class_labels,  # noqa: F401
                                input_spec, model_inputs, window_geometry,
                                window_normalisation)
from ser_tf.lite.runtime import LiteModel
from ser_tf.lite.stream import DEFAULT_BATCH_SIZE, out_of_domain_reference, predict_blocks
from ser_tf.lite.timeline import TableTimeline, is_timeline_path, open_timeline
from ser_tf.util.argtypes import positive_float, positive_int

#: The shipped default model (its model card says what it is): raw 16 kHz audio in, float32.
DEFAULT_MODEL_NAME = "lightsernet-emodb-waveform-float32.tflite"
MODELS_DIR = Path(__file__).resolve().parents[2] / "tflite_models"
MODEL_ENV = "SER_TF_MODEL"


class ModelNotFoundError(FileNotFoundError):
    """No model where one was expected; the message says how to get one."""


def default_model_path(models_dir=None) -> Path:
    """The model to use when none is given.

    Order: ``models_dir / DEFAULT_MODEL_NAME`` if ``models_dir`` is given; else
    ``$SER_TF_MODEL`` (a ``.tflite`` file, or a folder holding :data:`DEFAULT_MODEL_NAME`);
    else the best model shipped in ``tflite_models/`` by ``--ship`` (highest expected UA
    on new speakers, :func:`ser_tf.lite.catalog.best_shipped_model`); else the shipped
    :data:`DEFAULT_MODEL_NAME`.

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
        from ser_tf.lite.catalog import best_shipped_model

        best = best_shipped_model(MODELS_DIR) if MODELS_DIR.is_dir() else None
        path, source = ((best, "the best shipped model") if best is not None else
                        (MODELS_DIR / DEFAULT_MODEL_NAME, "the shipped default"))
    if not path.is_file():
        raise ModelNotFoundError(
            f"no model at {path} ({source}). The shipped model is made by "
            "`make reproduce-lightsernet`; or pass --model PATH.tflite, or set "
            f"{MODEL_ENV} to a .tflite file")
    return path


def predict_file(path, model: LiteModel, *, window: float | None = None, hop: float = 1.0,
                 batch_size: int = DEFAULT_BATCH_SIZE, on_window=None,
                 block_frames: int = DEFAULT_BLOCK_FRAMES, keep_summaries: bool = False) -> dict:
    """Classify one audio file, streaming it: memory does not grow with its length.

    The result is the one of reading the whole file (:func:`read_audio`), cutting it with
    :func:`sliding_windows` and classifying every window in one batch: the same windows,
    bit for bit (block-wise resampling with ``soxr.ResampleStream`` equals whole-file
    ``soxr.resample``), and the same probabilities to float32 rounding (tested). Formats
    libsndfile reads are read block by block; the others (mp3, m4a, ...) are streamed from
    an ``ffmpeg`` pipe; only a file ``ffprobe`` cannot describe goes through ``read_audio``
    whole (which then reports why it is not audio). See :mod:`ser_tf.data.blocks`.

    Args:
        path: any length, sample rate, channel count and format :func:`read_audio` reads.
        model: a waveform-in or features-in :class:`LiteModel` (see the module docstring).
        window: seconds per window; must match the model's input length (default: the
            model's own, from its sidecar: 3 s for a 48000-sample 16 kHz model).
        hop: seconds between window starts.
        batch_size: windows per interpreter call (the result does not depend on it).
        on_window: called with each window's prediction, in order (see
            :func:`predict_blocks`); for a timeline written as it goes.
        block_frames: frames read from the file at a time.
        keep_summaries: also return the windows' out-of-domain feature summaries (see
            :func:`predict_blocks`).

    Returns:
        ``{"file", "label", "probabilities": {label: p} (model label order),
        "windows": n, "duration_s"}``; probabilities are the mean over windows.

    Raises:
        AudioError: the file is missing, empty, not audio, silent, ... (message names it).
            NaN samples are found when read, "silent" and "too short" at the end, so
            ``on_window`` may have seen windows of a file that then fails.
        ValueError: a model this predictor cannot run, or ``window`` not matching the
            model's input.
    """
    sr, _, _ = window_geometry(model, check_model_input(model), window, hop)  # fail early
    result = predict_blocks(read_blocks(path, sr, block_frames=block_frames), model,
                            window=window, hop=hop, batch_size=batch_size,
                            on_window=on_window, keep_summaries=keep_summaries)
    return {"file": str(path), **result}


def format_result(result: dict) -> str:
    """Plain text: ``file: label (n windows, d s)`` then one line per class, most likely first."""
    ranked = sorted(result["probabilities"].items(), key=lambda item: -item[1])
    width = max(len(label) for label, _ in ranked)
    lines = [f"{result['file']}: {result['label']} "
             f"({result['windows']} window{'s' * (result['windows'] != 1)}, "
             f"{result['duration_s']:.2f} s)"]
    lines += [f"  {label:<{width}}  {p:.3f}" for label, p in ranked]
    unfamiliar = result.get("out_of_domain") or {}
    if unfamiliar.get("flagged"):
        rate = unfamiliar.get("false_alarm_rate")
        lines.append(
            f"  warning: this recording does not sound like the model's training data "
            f"(feature distance {unfamiliar['distance']:.2f} > {unfamiliar['threshold']:.2f}); "
            "treat the label with caution"
            + (f" (the check also flags {rate:.1f} % of the recordings of new speakers of "
               "the training corpus, on average)"
               if isinstance(rate, (int, float)) else ""))
    return "\n".join(lines)


def predict_files(files, model: LiteModel, *, as_json: bool = False, out=None, err=None,
                  prog: str = "ser-tf predict", timeline=None) -> int:
    """Classify every file, printing as it goes; 1 if any file failed, else 0.

    A bad file is reported on ``err`` (one line naming it) and the rest are still done:
    plain results are printed the moment they exist, and ``--json`` prints one document
    holding the results and the errors after the last file. ``timeline`` (a sink from
    :func:`ser_tf.lite.timeline.open_timeline`) gets every window as it is classified.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    check_model_input(model)  # once, before any file: the same error for every file
    out_of_domain_reference(model)  # likewise a sidecar's unusable out-of-domain reference
    results, errors = [], []
    for path in files:
        on_window = None if timeline is None else (
            lambda prediction, path=path: timeline.add(path, prediction))
        try:
            result = predict_file(path, model, on_window=on_window)
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
        document = {"model": str(model.path), "labels": class_labels(model),
                    "results": results, "errors": errors}
        print(json.dumps(document, indent=2), file=out, flush=True)
    return 1 if errors else 0


def predict_microphone(model: LiteModel, *, seconds=None, timeline=None, out=None, err=None,
                       prog: str = "ser-tf predict", open_stream=None) -> int:
    """``--from-mic``: a table row per window as it is heard (and on ``timeline``), then
    the session's mean; 1 if the microphone cannot be used, 130 after Ctrl-C during a
    classification (Ctrl-C while listening ends the session normally)."""
    from ser_tf.lite.mic import MicrophoneUnavailable, classify_microphone, open_default_input

    out = out or sys.stdout
    err = err or sys.stderr
    table = TableTimeline(class_labels(model), out)

    def show(prediction):
        table.add("microphone", prediction)
        if timeline is not None:
            timeline.add("microphone", prediction)

    try:
        result = classify_microphone(model, seconds=seconds, on_window=show, err=err,
                                     open_stream=open_stream or open_default_input)
    except (MicrophoneUnavailable, ValueError) as error:
        print(f"{prog}: error: {error}", file=err, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: stopped", file=err, flush=True)
        return 130
    print(format_result({"file": "microphone", **result}), file=out, flush=True)
    return 0


# --- command line ----------------------------------------------------------------------
def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE", help="audio files (any format, "
                        "rate, channels and length)")
    parser.add_argument("--model", type=Path, default=None, metavar="PATH",
                        help=f".tflite model, waveform- or features-in (default: ${MODEL_ENV}, else "
                             "the shipped model with the highest cross-validated UA on new "
                             f"speakers, else tflite_models/{DEFAULT_MODEL_NAME})")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--threads", type=positive_int, default=1, metavar="N",
                        help="interpreter CPU threads (default 1)")
    parser.add_argument("--timeline", nargs="?", const="-", default=None, metavar="OUT",
                        help="one row per window (start_s, end_s, label, each class's "
                             "probability), written as it goes to OUT.csv or OUT.json; "
                             "without OUT, printed as a table")
    parser.add_argument("--from-mic", action="store_true",
                        help="classify the default input device live, a row per window "
                             "(Ctrl-C stops; needs the `mic` extra: pip install 'ser-tf[mic]')")
    parser.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                        help="with --from-mic: stop after S seconds of audio")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the TFLite runtime's own messages (delegate notes)")


def add_cli(subparsers) -> None:
    """Register ``ser-tf predict`` (argparse only: importing this module needs no TF)."""
    parser = subparsers.add_parser(
        "predict", help="classify audio files with a .tflite model (no TensorFlow needed)",
        description="Classify audio files with a .tflite model: windows of the "
                    "model's input length (e.g. 3 s), 1 s hop, probabilities averaged. "
                    "Exit code 1 if any file failed.")
    _add_arguments(parser)
    parser.set_defaults(handler=run, predict_parser=parser)


def _check_usage(args) -> tuple[list, str | None]:
    """(files, timeline target) from the parsed arguments; usage errors exit with 2."""
    files, target = list(args.files), args.timeline

    def usage(message):
        parser = getattr(args, "predict_parser", None)
        if parser is None:
            raise ValueError(message)
        parser.error(message)  # exits 2 with the usage line, as argparse's own errors do

    # `--timeline a.wav b.wav`: argparse gives the optional value to --timeline; a value
    # that is not a .csv / .json path is the first audio file, and the table is meant.
    if target not in (None, "-") and not is_timeline_path(target):
        files, target = [target, *files], "-"
    if args.from_mic and files:
        usage("--from-mic takes no FILE")
    if not args.from_mic and not files:
        usage("give at least one FILE (or --from-mic)")
    if args.seconds is not None and not args.from_mic:
        usage("--seconds goes with --from-mic")
    if args.json and (args.from_mic or target == "-"):
        usage("--json prints one document: it cannot go with --from-mic or a --timeline "
              "table (give --timeline OUT.csv or OUT.json)")
    return files, target


def run(args) -> int:
    """The CLI handler. Model problems raise (FileNotFoundError / ValueError: one line from
    the caller); file problems are reported per file by :func:`predict_files`."""
    from ser_tf.util.quiet import command_line_output

    with command_line_output(verbose=getattr(args, "verbose", False)):
        return _run(args)


def _run(args) -> int:
    files, target = _check_usage(args)
    prog = getattr(args, "prog", "ser-tf predict")
    path = args.model if args.model is not None else default_model_path()
    model = LiteModel(path, num_threads=args.threads)
    check_model_input(model)
    if args.from_mic:
        # The live table is always printed; a timeline path gets the rows too.
        timeline = None if target in (None, "-") else open_timeline(target,
                                                                    class_labels(model))
        try:
            return predict_microphone(model, seconds=args.seconds, timeline=timeline,
                                      prog=prog)
        finally:
            if timeline is not None:
                timeline.close()
    timeline = None if target is None else open_timeline(target, class_labels(model))
    try:
        return predict_files(files, model, as_json=args.json, prog=prog, timeline=timeline)
    finally:
        if timeline is not None:
            timeline.close()


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m ser_tf.lite.predict`` (no ``ser_tf.cli``)."""
    parser = argparse.ArgumentParser(prog="python -m ser_tf.lite.predict",
                                     description=__doc__.split("\n\n")[0])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    args.prog, args.predict_parser = "predict", parser
    try:
        return run(args)
    except (OSError, ValueError, ImportError) as error:
        print(f"predict: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
