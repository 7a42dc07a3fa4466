"""A model card's Raspberry Pi commands, run as written in a fresh venv:
``python -m ser_tf.bench.device_install``.

Every card in ``tflite_models/`` ends with three commands: create a venv and ``pip install``
the four packages the TF-free runtime needs, copy ``ser_tf/`` and the model with its sidecar
to the device (``scp``), run ``python -m ser_tf.lite.predict`` there. This runs them here,
on a machine that is not a Pi but starts from nothing in the same way: the venv is new
(``python3 -m venv``, then the card's ``pip install`` line from the package index), ``~`` is
a temporary home, the ``scp`` becomes a copy into a temporary "device" folder, and
``speech.wav`` is an espeak-ng German sentence converted to 44.1 kHz stereo (real speech
gives probabilities below 1, so a difference would show). For each card the record keeps the command's
exit status, its output, whether TensorFlow could be imported in that venv (it must not),
and the largest difference between the probabilities the venv printed (``--json``) and
those of this repository's own predictor on the same file.

What it does not show: the Pi's CPU (aarch64 wheels, speed). The record goes to
``experiments/results/bench/device-install-<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
#: What ``speech.wav`` says (an EMO-DB sentence, German like the shipped models' corpus).
SENTENCE = "Der Lappen liegt auf dem Eisschrank."
FENCE = re.compile(r"```bash\n(.*?)```", re.S)

__all__ = ["card_commands", "run_card", "main"]


def card_commands(card: Path) -> dict:
    """``{"install", "copy", "run"}``: the three commands of ``card``'s Pi section.
    ValueError naming the card if it has no such block or the block has another shape."""
    for block in FENCE.findall(card.read_text(encoding="utf-8")):
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        if lines and lines[0].startswith("python3 -m venv"):
            if len(lines) != 3 or not lines[1].startswith("scp ") or \
                    "ser_tf.lite.predict" not in lines[2]:
                raise ValueError(f"{card}: the Pi block is not venv + scp + predict: {lines}")
            return {"install": lines[0], "copy": lines[1], "run": lines[2]}
    raise ValueError(f"{card}: no ```bash block starting with `python3 -m venv`")


def _copy_like_scp(command: str, device: Path) -> list[str]:
    """``scp -r A B host:`` -> copy A and B (paths in this repository) into ``device``."""
    words = shlex.split(command)
    if words[:2] != ["scp", "-r"] or not words[-1].endswith(":"):
        raise ValueError(f"expected `scp -r SOURCES host:`, got {command!r}")
    copied = []
    for source in words[2:-1]:
        path = REPO / source
        if path.is_dir():
            shutil.copytree(path, device / path.name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        elif path.is_file():
            shutil.copy2(path, device / path.name)
        else:
            raise FileNotFoundError(f"{source}: named by the card's scp line, not in the repository")
        copied.append(source)
    return copied


def _shell(command: str, *, cwd: Path, home: Path, timeout: int = 900) -> dict:
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "LANG": "C.UTF-8"}
    start = time.perf_counter()
    out = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    return {"command": command, "returncode": out.returncode,
            "seconds": round(time.perf_counter() - start, 2),
            "stdout": out.stdout, "stderr": out.stderr}


def _kept(step: dict) -> dict:
    """A step as the record keeps it: the ends of its output only."""
    return {**step, "stdout": step["stdout"][-2000:], "stderr": step["stderr"][-2000:]}


def venv_of(install: str, home: Path) -> Path:
    """The venv folder an install line creates (``python3 -m venv ~/ser-env ...``)."""
    match = re.match(r"python3 -m venv (\S+)", install)
    if match is None:
        raise ValueError(f"install line without `python3 -m venv DIR`: {install!r}")
    return Path(match.group(1).replace("~", str(home), 1))


def run_card(card: Path, *, home: Path, speech: Path) -> dict:
    """Copy and predict as ``card`` says (the venv of its install line must exist under
    ``home``); the repository's predictor on the same file for comparison."""
    from ser_tf.lite.predict import predict_file
    from ser_tf.lite.runtime import LiteModel

    commands = card_commands(card)
    device = home / f"device-{card.stem}"
    device.mkdir()
    shutil.copy2(speech, device / "speech.wav")
    try:
        copied = _copy_like_scp(commands["copy"], device)
    except (OSError, ValueError) as error:
        raise ValueError(f"{card}: {error}") from error
    as_written = _shell(commands["run"], cwd=device, home=home)
    as_json = _shell(commands["run"] + " --json", cwd=device, home=home)
    entry = {"card": card.name, "copied": copied, "run": _kept(as_written)}
    try:
        # predict_files prints one document: {"model", "labels", "results", "errors"}.
        result = json.loads(as_json["stdout"])["results"][0]
    except (json.JSONDecodeError, KeyError, IndexError):
        entry["json_error"] = as_json["stderr"][-500:] or as_json["stdout"][-500:]
        return entry
    model_name = re.search(r"--model (\S+)", commands["run"]).group(1)
    from ser_tf.util.quiet import command_line_output

    with command_line_output(verbose=False):
        ours = predict_file(str(speech), LiteModel(REPO / "tflite_models" / model_name))
    labels = list(ours["probabilities"])
    theirs = np.array([result["probabilities"][k] for k in labels])
    entry.update({"label": result["label"], "repository_label": ours["label"],
                  "max_abs_probability_difference": float(np.max(np.abs(
                      theirs - np.array([ours["probabilities"][k] for k in labels]))))})
    return entry


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ser_tf.bench.device_install",
        description="Run each model card's Raspberry Pi commands in a fresh venv.")
    parser.add_argument("--out", type=Path, default=None,
                        help="record (default experiments/results/bench/device-install-<date>.json)")
    args = parser.parse_args(argv)
    import soundfile as sf

    from ser_tf.data.audio import read_audio
    from ser_tf.demo import synthesize

    models_dir = REPO / "tflite_models"
    cards = sorted(p for p in models_dir.glob("*.md")
                   if "python3 -m venv" in p.read_text(encoding="utf-8"))
    if not cards:
        print(f"device_install: no model card with Pi commands in {models_dir}",
              file=sys.stderr)
        return 1
    installs = {card_commands(c)["install"] for c in cards}
    with tempfile.TemporaryDirectory(prefix="ser-device-") as tmp:
        home = Path(tmp)
        synthesize(SENTENCE, home / "sentence.wav", voice="de")
        mono, _ = read_audio(home / "sentence.wav", 44100)
        speech = home / "speech-source.wav"
        sf.write(str(speech), np.stack([mono, 0.9 * mono], axis=1), 44100, subtype="PCM_16")
        install = [_shell(line, cwd=home, home=home) for line in sorted(installs)]
        if any(step["returncode"] for step in install):
            print(f"device_install: the install line failed: {[_kept(s) for s in install]}",
                  file=sys.stderr)
            return 1
        venvs = {venv_of(line, home) for line in installs}
        if len(venvs) != 1 or not (next(iter(venvs)) / "bin" / "python").is_file():
            print(f"device_install: the cards' venvs {sorted(map(str, venvs))} are not one "
                  "existing venv", file=sys.stderr)
            return 1
        venv_python = next(iter(venvs)) / "bin" / "python"
        freeze = _shell(f"{venv_python} -m pip freeze", cwd=home, home=home)["stdout"]
        tf_probe = _shell(f"{venv_python} -c 'import tensorflow'", cwd=home, home=home)
        # Absent means the import itself failed for want of the module, nothing else.
        tf_absent = (tf_probe["returncode"] != 0
                     and "No module named 'tensorflow'" in tf_probe["stderr"])
        entries = [run_card(card, home=home, speech=speech) for card in cards]
    record = {"format": "ser-tf-device-install/1",
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "host": {"python": platform.python_version(), "machine": platform.machine(),
                       "system": platform.platform()},
              "install": [_kept(s) for s in install], "venv_packages": freeze.split(),
              "tensorflow_absent_in_venv": tf_absent,
              "speech": f"espeak-ng (voice de): {SENTENCE!r}, as 44.1 kHz stereo",
              "cards": entries}
    ok = (tf_absent and bool(freeze.split()) and all(
        e["run"]["returncode"] == 0 and e.get("label") == e.get("repository_label")
        and e.get("max_abs_probability_difference", 1.0) < 1e-5 for e in entries))
    record["all_passed"] = ok
    out = args.out or (REPO / "experiments" / "results" / "bench" /
                       f"device-install-{datetime.now(timezone.utc):%Y-%m-%d}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    for e in entries:
        print(f"{e['card']}: exit {e['run']['returncode']}, label {e.get('label')} "
              f"(repository {e.get('repository_label')}), max |Δp| "
              f"{e.get('max_abs_probability_difference', float('nan')):.2e}")
    print(f"TensorFlow absent from the venv: {tf_absent}; "
          f"all passed: {ok}\nwritten: {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
