"""``make demo``: classify a synthesised German sentence with the shipped model.

Works on a fresh clone with no corpus and no TensorFlow import (it uses the TF-free
predictor, :mod:`ser_tf.lite.predict`), so it answers in about a second:

1. ``espeak-ng -v de`` speaks :data:`SENTENCE` into a temporary wav file;
2. the best shipped model (the ``--ship`` model with the highest expected UA on new
   speakers, :mod:`ser_tf.lite.catalog`; else ``tflite_models/`` +
   :data:`DEFAULT_MODEL_NAME`), or ``$SER_TF_MODEL``, or ``--model``, classifies it:
   windows of the model's length, 1 s hop, averaged;
3. if EMO-DB is on this machine (``$SER_TF_DATA/emodb`` or ``../shared/data/emodb`` next
   to the repository), one real recording each of anger, sadness and happiness is
   classified too, with the true label beside the prediction.

A robot voice reading a neutral sentence is not acted emotional speech: the label for it
says little about accuracy; the model card (``<model>.md``) has the measured numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ser_tf.data.audio import AudioError
from ser_tf.lite.predict import (DEFAULT_MODEL_NAME, MODEL_ENV, ModelNotFoundError,
                                 check_model_input, default_model_path, format_result,
                                 predict_file)

REPO = Path(__file__).resolve().parents[1]
SENTENCE = "Ich habe dir doch schon dreimal gesagt, dass du das Fenster zumachen sollst!"
#: EMO-DB emotion letters shown by the demo: three clearly different emotions.
EMODB_LETTERS = ("W", "T", "F")


def espeak_path() -> str | None:
    """The espeak-ng executable, or None."""
    return shutil.which("espeak-ng")


def synthesize(text: str, out_path, voice: str = "de") -> Path:
    """Speak ``text`` with espeak-ng into a wav file (22 050 Hz mono); RuntimeError if it fails."""
    exe = espeak_path()
    if exe is None:
        raise RuntimeError("espeak-ng is not installed: `sudo apt-get install espeak-ng` "
                           "(or `make system-deps`)")
    out_path = Path(out_path)
    proc = subprocess.run([exe, "-v", voice, "-w", str(out_path), text],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out_path.is_file():
        raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {proc.stderr.strip()}")
    return out_path


def find_emodb() -> Path | None:
    """EMO-DB's folder if present: ``$SER_TF_DATA/emodb``, ``data/emodb``, ``../shared/data/emodb``."""
    candidates = []
    if os.environ.get("SER_TF_DATA"):
        candidates.append(Path(os.environ["SER_TF_DATA"]).expanduser() / "emodb")
    candidates.append(REPO / "data" / "emodb")  # where `make reproduce-lightsernet` downloads it
    candidates.append(REPO.parent / "shared" / "data" / "emodb")
    for root in candidates:
        if (root / "wav").is_dir():
            return root
    return None


def emodb_examples(root, letters=EMODB_LETTERS) -> list[tuple[Path, str]]:
    """``[(file, true label)]``: the first recording (sorted by name) of each emotion letter."""
    from ser_tf.data.corpora.emodb import EMOTIONS

    files = sorted(Path(root, "wav").glob("*.wav"))
    picked = []
    for letter in letters:
        match = next((f for f in files if len(f.stem) >= 7 and f.stem[5] == letter), None)
        if match is not None:
            picked.append((match, EMOTIONS[letter]))
    return picked


def _resolve_model(model_path) -> Path | None:
    """The model to use; None (after the message) when no model is shipped yet."""
    if model_path is not None or os.environ.get(MODEL_ENV):
        # Asked for explicitly: a missing file is the user's error, reported by the caller.
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise ModelNotFoundError(f"no model at {path}")
        return path
    try:
        return default_model_path()
    except ModelNotFoundError:
        print(f"ser-tf demo: no shipped model yet: run `make reproduce-lightsernet` "
              f"(expected tflite_models/{DEFAULT_MODEL_NAME}).\n"
              "Meanwhile: `ser-tf data check EMODB --data-dir PATH` validates a corpus copy, "
              "and `make test` runs the suite.")
        return None


def run_demo(model_path=None, emodb_dir=None, *, out=None) -> int:
    """The demo; returns the exit code.

    Args:
        model_path: a ``.tflite`` (waveform- or features-in); default ``$SER_TF_MODEL`` or the shipped one.
        emodb_dir: EMO-DB folder (``wav/`` inside); default :func:`find_emodb`. A folder
            without ``wav/`` skips the EMO-DB part.
    """
    from ser_tf.lite.runtime import LiteModel

    out = out or sys.stdout
    start = time.perf_counter()
    path = _resolve_model(model_path)
    if path is None:
        return 0
    model = LiteModel(path)
    check_model_input(model)
    print(f"model: {path.name} ({', '.join(model.labels or [])})\n", file=out)

    shown = 0
    if espeak_path() is None:
        print("espeak-ng is not installed, so there is no synthesised sentence: "
              "`sudo apt-get install espeak-ng` (or `make system-deps`).\n", file=out)
    else:
        with tempfile.TemporaryDirectory(prefix="ser-tf-demo-") as tmp:
            wav = synthesize(SENTENCE, Path(tmp) / "sentence.wav")
            result = predict_file(wav, model)
        result["file"] = "synthesised sentence"
        print(f'espeak-ng -v de: "{SENTENCE}"', file=out)
        print(format_result(result) + "\n", file=out)
        shown += 1

    root = Path(emodb_dir) if emodb_dir is not None else find_emodb()
    examples = emodb_examples(root) if root is not None and (root / "wav").is_dir() else []
    if examples:
        print(f"EMO-DB recordings from {root} (they may have been in the training data; "
              "the model card has held-out scores):", file=out)
        for wav, truth in examples:
            try:
                result = predict_file(wav, model)
            except AudioError as error:
                print(f"  {error}", file=out)
                continue
            p = result["probabilities"][result["label"]]
            mark = "correct" if result["label"] == truth else "wrong"
            print(f"  {wav.name}: true {truth:<10} predicted {result['label']:<10} "
                  f"p={p:.2f}  {mark}", file=out)
            shown += 1
        print(file=out)
    print(f"done in {time.perf_counter() - start:.1f} s", file=out)
    return 0 if shown else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_tf.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None,
                        help=f".tflite model (default ${MODEL_ENV}, else "
                             f"tflite_models/{DEFAULT_MODEL_NAME})")
    parser.add_argument("--emodb", type=Path, default=None, help="EMO-DB folder "
                        "(default $SER_TF_DATA/emodb, else ../shared/data/emodb)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the TFLite runtime's own messages (delegate notes)")
    args = parser.parse_args(argv)
    from ser_tf.util.quiet import command_line_output

    try:
        with command_line_output(verbose=args.verbose):
            return run_demo(args.model, args.emodb)
    except (FileNotFoundError, ValueError, RuntimeError, ImportError) as error:
        print(f"ser-tf demo: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
