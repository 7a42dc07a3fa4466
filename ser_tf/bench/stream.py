"""Peak memory and time of ``ser-tf predict`` on long recordings: ``python -m ser_tf.bench.stream``.

::

    python -m ser_tf.bench.stream                       # both float32 models, 1 h, 48 kHz stereo
    python -m ser_tf.bench.stream --model tflite_models/lightsernet-emodb-mfcc-float32.tflite

For each model, a recording of ``--seconds`` (default one hour) of 48 kHz stereo 16-bit
PCM is generated into a temporary folder, written block by block (the generator never
holds it), and :func:`ser_tf.lite.predict.predict_file` classifies it in a fresh Python
process that imports only ``ser_tf.lite`` (the record checks TensorFlow was never
imported). That process reads its own peak resident memory from the kernel at exit
(``VmHWM``, see :func:`peak_rss_bytes`), so it covers everything the process ever held,
from interpreter start-up to exit.

For scale, the same is measured on shorter recordings (``--compare-seconds``, default 60 and
300 s) both streamed and with the whole-file algorithm ``predict_file`` used before it
streamed (``read_audio`` -> ``sliding_windows`` -> every window in one batch): the
streamed peak stays flat while the whole-file one grows with the length.

The record goes to ``experiments/results/bench/stream-predict-<model stem>.json``: peak
RSS, seconds, windows, file duration and size, settings, CPU (:func:`cpu_info`) and package
versions. Times measured on a shared machine include the contention (the load average is
in the record); memory does not depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FORMAT = "ser_tf.bench.stream/1"
DEFAULT_MODELS = ("lightsernet-emodb-mfcc-float32.tflite",
                  "lightsernet-emodb-waveform-float32.tflite")
#: The target: an hour of 48 kHz stereo within this much resident memory on a Pi.
LIMIT_MB = 150
MB = 1 << 20


def write_long_recording(path, seconds: float, *, sr: int = 48000, channels: int = 2,
                         block_seconds: float = 10.0, seed: int = 0) -> Path:
    """Write ``seconds`` of 16-bit PCM WAV block by block (memory: one block).

    The content cycles through :func:`ser_tf.data.synthetic.class_signal`'s seven tones
    with a changing gain, so windows differ from each other as speech would."""
    import soundfile as sf

    from ser_tf.data.synthetic import class_signal

    block = int(round(block_seconds * sr))
    tones = [class_signal(c, block_seconds, sr, seed=seed + c) for c in range(7)]
    total = int(round(seconds * sr))
    gains = np.random.default_rng(seed).uniform(0.3, 1.0, size=(total // block + 1, channels))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=channels, subtype="PCM_16") as out:
        for i, start in enumerate(range(0, total, block)):
            mono = tones[i % 7][:min(block, total - start)]
            out.write(mono[:, None] * gains[i][None, :].astype(np.float32))
    return path


def peak_rss_bytes() -> int:
    """This process's peak resident memory: the kernel's ``VmHWM`` of its own memory map.

    Not ``getrusage``'s ``ru_maxrss``: on Linux a process started by ``fork``/``vfork`` +
    ``exec`` inherits its parent's high-water mark at the ``exec`` (the kernel keeps the
    larger of the two), so a child of a big parent reports the parent's size. ``VmHWM``
    belongs to the new memory map alone. ``ru_maxrss`` only where ``/proc`` is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    # Linux reports ru_maxrss in KiB, macOS in bytes.
    scale = 1 if platform.system() == "Darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


# --- the measured process ---------------------------------------------------------------
def _measure(model_path: str, audio_path: str, whole_file: bool) -> dict:
    """In the child: load the model, classify the file, report what happened."""
    from ser_tf.lite.runtime import LiteModel

    model = LiteModel(model_path)
    loaded_rss = peak_rss_bytes()
    start = time.perf_counter()
    if whole_file:
        result = _predict_whole_file(audio_path, model)
    else:
        from ser_tf.lite.predict import predict_file

        result = predict_file(audio_path, model)
    seconds = time.perf_counter() - start
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    return {"result": result, "predict_seconds": round(seconds, 3),
            "peak_rss_after_model_load_bytes": loaded_rss, "peak_rss_bytes": peak_rss_bytes(),
            "tensorflow_modules": heavy}


def _predict_whole_file(path, model) -> dict:
    """The algorithm predict_file used before it streamed: the whole file in memory, every
    window in one batch (kept here only as the reference the record compares against)."""
    from ser_tf.data.audio import read_audio
    from ser_tf.features.segment import sliding_windows
    from ser_tf.lite.calibration import apply_temperature
    from ser_tf.lite.inputs import (check_model_input, class_labels, model_inputs,
                                    window_normalisation, window_seconds)
    from ser_tf.lite.stream import calibration_temperature

    spec = check_model_input(model)
    audio, sr = read_audio(path, int(spec["sample_rate"]))
    windows = sliding_windows(audio, sr, window_seconds(model, spec), 1.0,
                              normalize=window_normalisation(model, spec))
    probabilities = model.predict(model_inputs(windows, spec))
    temperature = calibration_temperature(model)  # applied per window, as predict_file does
    if temperature is not None:
        probabilities = apply_temperature(probabilities, temperature)
    probabilities = probabilities.mean(axis=0)
    labels = class_labels(model)
    return {"label": labels[int(np.argmax(probabilities))], "windows": len(windows),
            "duration_s": round(audio.size / sr, 3)}


def measure_predict(model_path, audio_path, *, whole_file: bool = False) -> dict:
    """Classify ``audio_path`` in a fresh process; its report (result, seconds, peak RSS
    read by the child itself at exit, see :func:`peak_rss_bytes`) and the wall time."""
    argv = [sys.executable, "-m", "ser_tf.bench.stream", "--child", str(model_path),
            str(audio_path)] + (["--whole-file"] if whole_file else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    start = time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"measuring {audio_path} with {model_path} failed:\n{run.stderr}")
    report = json.loads(run.stdout.strip().splitlines()[-1])
    return {**report, "peak_rss_mb": round(report["peak_rss_bytes"] / MB, 1),
            "wall_seconds": round(wall, 2)}


# --- the benchmark -----------------------------------------------------------------------
def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("ser-tf", "numpy", "soundfile", "soxr", "ai-edge-litert", "tflite-runtime"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def _row(measured: dict, seconds: float, path: Path) -> dict:
    result = measured["result"]
    return {"file_seconds": seconds, "file_bytes": path.stat().st_size,
            "windows": result["windows"], "duration_s": result["duration_s"],
            "label": result["label"], "peak_rss_mb": measured["peak_rss_mb"],
            "peak_rss_bytes": measured["peak_rss_bytes"],
            "peak_rss_after_model_load_mb": round(
                measured["peak_rss_after_model_load_bytes"] / MB, 1),
            "predict_seconds": measured["predict_seconds"],
            "wall_seconds": measured["wall_seconds"],
            "tensorflow_imported": bool(measured["tensorflow_modules"])}


def _window_s(model_path) -> float:
    """The model's own window in seconds (what predict_file cuts the recording into)."""
    from ser_tf.lite.inputs import check_model_input, window_seconds
    from ser_tf.lite.runtime import LiteModel

    model = LiteModel(model_path)
    return window_seconds(model, check_model_input(model))


def benchmark(model_path, *, seconds: float = 3600.0, compare_seconds=(60.0, 300.0),
              sr: int = 48000, channels: int = 2, workdir=None, say=print) -> dict:
    """Measure one model (see the module docstring); returns the record."""
    from ser_tf.data.blocks import DEFAULT_BLOCK_FRAMES
    from ser_tf.lite.stream import DEFAULT_BATCH_SIZE
    from ser_tf.util.machine import cpu_info

    model_path = Path(model_path)
    record = {"format": FORMAT, "kind": "stream_predict_benchmark",
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "model": model_path.name,
              "recording": {"sample_rate": sr, "channels": channels, "subtype": "PCM_16",
                            "content": "class_signal tones, 10 s blocks, random gains"},
              "settings": {"window_s": round(_window_s(model_path), 4), "hop_s": 1.0,
                           "batch_size": DEFAULT_BATCH_SIZE,
                           "block_frames": DEFAULT_BLOCK_FRAMES, "interpreter_threads": 1},
              "limit_mb": LIMIT_MB,
              "cpu": cpu_info(), "versions": _versions()}
    with tempfile.TemporaryDirectory(prefix="ser-tf-bench-stream-", dir=workdir) as tmp:
        streamed, whole = [], []
        for length in sorted({*compare_seconds, seconds}):
            path = write_long_recording(Path(tmp) / f"{int(length)}s.wav", length, sr=sr,
                                        channels=channels)
            say(f"{model_path.name}: {length:g} s streamed ...")
            streamed.append(_row(measure_predict(model_path, path), length, path))
            say(f"  peak {streamed[-1]['peak_rss_mb']} MB, {streamed[-1]['wall_seconds']} s")
            if length in compare_seconds:
                say(f"{model_path.name}: {length:g} s whole file ...")
                whole.append(_row(measure_predict(model_path, path, whole_file=True),
                                  length, path))
                say(f"  peak {whole[-1]['peak_rss_mb']} MB, {whole[-1]['wall_seconds']} s")
            path.unlink()
    target = next(row for row in streamed if row["file_seconds"] == seconds)
    record["streamed"] = streamed
    record["whole_file_reference"] = whole
    record["summary"] = {
        "file_seconds": seconds, "windows": target["windows"],
        "peak_rss_mb": target["peak_rss_mb"], "predict_seconds": target["predict_seconds"],
        "realtime_factor": round(seconds / max(target["predict_seconds"], 1e-9), 1),
        "within_limit": target["peak_rss_mb"] <= LIMIT_MB,
        "streamed_growth_mb": round(streamed[-1]["peak_rss_mb"] - streamed[0]["peak_rss_mb"], 1),
        "tensorflow_imported": any(row["tensorflow_imported"] for row in streamed + whole)}
    if len(whole) > 1:
        span = whole[-1]["file_seconds"] - whole[0]["file_seconds"]
        record["summary"]["whole_file_mb_per_audio_second"] = round(
            (whole[-1]["peak_rss_mb"] - whole[0]["peak_rss_mb"]) / span, 2)
    record["cpu"]["load_average_before"] = record["cpu"].pop("load_average")
    record["cpu"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return record


def default_out(results_dir, model_path) -> Path:
    return Path(results_dir) / "bench" / f"stream-predict-{Path(model_path).stem}.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ser_tf.bench.stream",
        description="Peak memory and time of streamed `ser-tf predict` on a long recording.")
    parser.add_argument("--model", action="append", type=Path, metavar="PATH",
                        help="a .tflite model (repeatable; default: the float32 mfcc and "
                             "waveform models in tflite_models/)")
    parser.add_argument("--seconds", type=float, default=3600.0,
                        help="recording length (default 3600)")
    parser.add_argument("--compare-seconds", type=float, nargs="*", default=[60.0, 300.0],
                        help="shorter lengths measured streamed and whole-file (default 60 300)")
    parser.add_argument("--results-dir", default=str(REPO / "experiments" / "results"))
    parser.add_argument("--workdir", help="where the temporary recording goes (default: "
                                          "the system's temporary folder)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "AUDIO"), help=argparse.SUPPRESS)
    parser.add_argument("--whole-file", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # the measured process: one JSON line on stdout
        print(json.dumps(_measure(*args.child, whole_file=args.whole_file)))
        return 0

    from ser_tf.util.jsonio import write_json_atomic

    models = args.model or [REPO / "tflite_models" / name for name in DEFAULT_MODELS]
    for model in models:
        record = benchmark(model, seconds=args.seconds, compare_seconds=args.compare_seconds,
                           workdir=args.workdir)
        out = write_json_atomic(default_out(args.results_dir, model), record)
        summary = record["summary"]
        print(f"{model.name}: {summary['file_seconds']:g} s of 48 kHz stereo, "
              f"{summary['windows']} windows, peak RSS {summary['peak_rss_mb']} MB "
              f"(limit {LIMIT_MB}), {summary['predict_seconds']} s; record: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
