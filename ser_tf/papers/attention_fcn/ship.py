"""Ship one fold's 2-D explain model: ``tflite_models/attention_fcn-<corpus>-explain.tflite``.

::

    python -m ser_tf.papers.attention_fcn.ship --run-dir RESULTS/attention_fcn/EMODB/<id>.work
    ser-tf explain speech.wav --model tflite_models/attention_fcn-emodb-explain.tflite

:func:`ship_explain_model` copies a finished 2-D run's fold explain TFLite (float16,
outputs probabilities and α; exported from the fold's tested weights when missing, see
:func:`ser_tf.papers.attention_fcn.figures.ensure_explain_model`) with its sidecar and a
short model card into ``dest``. The file is for **explanation** (`ser-tf explain`, the
attention maps), not the suite's best classifier.

Which fold (default): the one with the **median test UA** in the run record (the folds
sorted by UA, then by index; with an even count the lower of the two middle ones), so the
shipped maps come from a typical fold, neither the luckiest nor the worst.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from ser_tf.papers.attention_fcn.explain_models import EXPLAIN_VARIANT

#: What the card says the file is for.
PURPOSE = ("For explanation (`ser-tf explain`, attention maps), not the best classifier of "
           "this suite: one fold of a 2-D Attention-FCN run, chosen as the fold with the "
           "median test UA, exported with α as a second output.")


def median_fold(per_fold: list[dict]) -> int:
    """The index of the fold with the median test UA (lower median; ties by index)."""
    if not per_fold:
        raise ValueError("the run record lists no folds")
    ranked = sorted(per_fold, key=lambda f: (float(f["metrics"]["UA"]), int(f["fold"])))
    return int(ranked[(len(ranked) - 1) // 2]["fold"])


def _record(run) -> dict:
    from ser_tf.training.rundir import RunDir
    from ser_tf.util.jsonio import read_json

    path = RunDir(run.work).record / "record.json"
    if not path.is_file():
        raise ValueError(f"run {run.run_id} has no run record yet ({path}); it is written "
                         "when every fold has finished")
    return read_json(path)


def ship_explain_model(work_dir, fold: int | None = None, dest="tflite_models") -> dict:
    """Write ``<dest>/attention_fcn-<corpus>-explain.tflite`` with its sidecar (``.json``:
    labels, input recipe, outputs, and where it came from) and model card (``.md``) from
    fold ``fold`` (default: the median-UA fold, module docstring) of the finished 2-D run
    in ``work_dir``. Returns ``{"tflite", "sidecar", "card", "fold", "test_UA", ...}``."""
    from ser_tf.papers.attention_fcn.explain_models import ensure_explain_model, load_run
    from ser_tf.util.jsonio import content_hash, read_json, write_json_atomic

    run = load_run(work_dir)
    record = _record(run)
    per_fold = {int(f["fold"]): f for f in record["per_fold"]}
    chosen_by = "given" if fold is not None else "median test UA"
    fold = median_fold(record["per_fold"]) if fold is None else int(fold)
    if fold not in per_fold:
        raise ValueError(f"run {run.run_id} has folds {sorted(per_fold)}, not {fold}")
    the_fold = next(f for f in run.folds if int(f.index) == fold)
    source = ensure_explain_model(run, the_fold)
    name = f"attention_fcn-{run.corpus.lower()}-explain"
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{name}.tflite"
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    sidecar = read_json(source.with_suffix(".json"))
    tflite_row = run.fold_dir(the_fold).tflite
    lite_ua = None
    if tflite_row.is_file():
        lite_ua = read_json(tflite_row).get("variants", {}).get(EXPLAIN_VARIANT, {}).get("UA")
    metrics = per_fold[fold]["metrics"]
    sidecar.update(name=name, source={**sidecar.get("source", {}), "chosen_by": chosen_by,
                                      "test_UA": float(metrics["UA"]),
                                      "test_WA": float(metrics["WA"]),
                                      "test_groups": list(the_fold.test_groups)},
                   size_bytes=target.stat().st_size, sha256=content_hash(target))
    write_json_atomic(target.with_suffix(".json"), sidecar)
    card = _write_card(target, run, record, the_fold, metrics, lite_ua, chosen_by, sidecar)
    return {"tflite": target, "sidecar": target.with_suffix(".json"), "card": card,
            "fold": fold, "chosen_by": chosen_by, "run_id": run.run_id,
            "test_UA": float(metrics["UA"]), "tflite_UA": lite_ua}


def _write_card(target: Path, run, record, fold, metrics, lite_ua, chosen_by, sidecar) -> Path:
    from ser_tf.data import get_corpus

    try:
        corpus = get_corpus(run.corpus)
        heard = f"{run.corpus}: {corpus.language}, {corpus.speech}."
    except (KeyError, ValueError):
        heard = f"{run.corpus}."
    protocol = run.config.get("protocol")
    independence = {"speaker": "speaker-independent: none of the test speakers was heard in "
                               "training",
                    "clean": "stratified folds: the test speakers were also heard in training",
                    "paper": "the original code's random folds: the test speakers were also "
                             "heard in training"}.get(protocol, f"protocol {protocol}")
    groups = ", ".join(fold.test_groups) or "not recorded"
    validation = ("" if fold.selection_on_test or not fold.val_ids else
                  f" (plus {len(fold.val_ids)} held out to choose the epoch)")
    spec = sidecar["input"]
    pct = (lambda v: f"{float(v):.2f}")
    seconds = spec["segment"].get("duration")
    if spec.get("lengths_input"):
        heard_as = "whole utterances, padded, with lengths"
        input_line = (f"- input: `{spec['name']}`, {spec['shape'][0]} x {spec['shape'][1]} log "
                      f"magnitude spectrogram (recipe `{spec.get('recipe')}`) of up to "
                      f"{seconds} s at {spec['sample_rate']} Hz, zero-padded at the end, and "
                      f"`{spec['lengths_input']}`: the frames that hold the recording (the "
                      "model masks the rest, as in training); a longer recording is cut")
    else:
        heard_as = f"the first {seconds} s, no lengths"
        input_line = (f"- input: {spec['shape'][0]} x {spec['shape'][1]} log magnitude "
                      f"spectrogram (recipe `{spec.get('recipe')}`): the first {seconds} s "
                      f"of the recording at {spec['sample_rate']} Hz, zero-padded when shorter")
    lines = [
        f"# Attention FCN (2-D), {run.corpus}: explain model ({EXPLAIN_VARIANT})", "",
        f"File: `{target.name}` (labels, input and outputs in "
        f"`{target.with_suffix('.json').name}`)",
        "", PURPOSE, "",
        "## What it heard", "",
        heard,
        f"Four classes, in output order: {', '.join(sidecar['labels'])}. "
        f"Trained on {len(fold.train_ids)} utterances{validation} of fold "
        f"{int(fold.index)} (0-based, of {len(run.folds)}), run `{run.run_id}`; {independence} "
        f"(test groups: {groups}).", "",
        "## Measured on its fold's test utterances", "",
        "| metric | value (%) |", "|---|---|",
        f"| UA, Keras, whole utterances (run record) | {pct(metrics['UA'])} |",
        f"| WA, Keras, whole utterances (run record) | {pct(metrics['WA'])} |",
        f"| UA, TFLite {EXPLAIN_VARIANT} classifier, {heard_as} (tflite.json) | "
        f"{pct(lite_ua) if lite_ua is not None else 'not measured'} |", "",
        f"Fold chosen by: {chosen_by}"
        + (" (folds' UA, 0-based: " + ", ".join(f"{int(f['fold'])}: {float(f['metrics']['UA']):.1f}"
                                         for f in record["per_fold"]) + ")"), "",
        "## Input and outputs", "",
        input_line,
        "- outputs: `probabilities` (one per class) and `attention` (α, "
        f"{' x '.join(str(d) for d in sidecar['attention_shape'])}: time x frequency "
        "positions of the last feature map)",
        f"- size: {target.stat().st_size:,} bytes", "",
        "## Use", "", "```bash",
        f"ser-tf explain speech.wav --model {target.parent.name}/{target.name} --out map.png",
        "```", "",
        "Without TensorFlow: `ser_tf.reporting.attention_maps.ExplainLiteModel(path)` "
        "(`.inputs(audio_path)` -> features, frames heard, lengths; `.predict(features, "
        "lengths)` -> probabilities, α). The audio "
        "predictor `ser_tf.lite.predict` takes single-output classifiers, not this file.", ""]
    card = target.with_suffix(".md")
    tmp = card.with_name(f".{card.name}.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(card)
    return card


def main(argv=None) -> int:
    from ser_tf.util.quiet import command_line_output, filtered_native_stderr

    parser = argparse.ArgumentParser(
        prog="python -m ser_tf.papers.attention_fcn.ship",
        description="Ship a finished 2-D Attention-FCN run's explain TFLite model (one fold).")
    parser.add_argument("--run-dir", required=True,
                        help="<results>/attention_fcn/<corpus>/<id>.work")
    parser.add_argument("--fold", type=int, help="fold index (default: the median-UA fold)")
    parser.add_argument("--dest", default="tflite_models", help="(default: tflite_models)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        with command_line_output(args.verbose), filtered_native_stderr():
            out = ship_explain_model(args.run_dir, args.fold, args.dest)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in out.items()},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
