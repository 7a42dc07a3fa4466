"""Attention maps per class from a finished 2-D Attention-FCN run (the paper's README).

::

    python -m ser_tf.papers.attention_fcn.figures --run-dir RESULTS/attention_fcn/EMODB/<id>.work \\
        --data-dir /path/to/emodb --out docs/attention_fcn-emodb-classes.png

:func:`class_attention_figure` reads a run's work folder (every fold finished) and, for
each class, every test utterance of that class in the folds' own test sets, each explained
by the model of the fold it was tested in (so no model explains an utterance it trained
on). The explaining model is the fold's **explain TFLite** file (float16, outputs
probabilities and α; :func:`ser_tf.reporting.attention_maps.export_explain_tflite`),
exported once from the fold's tested weights into ``fold_XX/explain/`` and reused while
those weights are unchanged (:func:`ensure_explain_model`). It takes the exported models'
input (:func:`export_shape`): for a whole-utterance run, the whole utterance, zero-padded
at its end to the export's frames with its length, which the model masks as in training,
so the probabilities are the run's Keras ones; for a ``--crop S`` run, its S s crop.

The figure: one column per class; on top the chosen utterance's spectrogram with α over
it and α summed over frequency, below the class-average α profile over normalised time
(:func:`ser_tf.reporting.attention_maps.alpha_time_profile`, the audio part of the input
only, 1 = uniform) across all its test utterances. Chosen (``per_class``): ``best``, the
correctly classified test utterance with the highest probability of its class (if none is
correct: the one with the highest probability of the class, marked), or ``median``, the
correctly classified one with the median probability. A JSON beside the PNG names the run,
the folds, the models, the chosen files and their probabilities.

TensorFlow is imported only to export a missing explain model.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_tf.papers.attention_fcn.explain_models import (  # noqa: F401  (re-exported)
    EXPLAIN_DIR, EXPLAIN_VARIANT, FinishedRun, ensure_explain_model, export_shape, load_run,
    stored_explain_model)

PER_CLASS = ("best", "median")
#: Points of the class-average α profile over normalised time.
PROFILE_POINTS = 100


def _manifest(manifest_or_data_dir, corpus: str):
    from ser_tf.data.manifest import Manifest
    from ser_tf.papers.attention_fcn.experiment import load_four_classes

    if isinstance(manifest_or_data_dir, Manifest):
        return manifest_or_data_dir
    return load_four_classes(corpus, manifest_or_data_dir)


def explain_test_sets(run: FinishedRun, manifest, *, threads: int = 1) -> list[dict]:
    """Every fold's test utterances explained by that fold's explain TFLite: one row each
    (``utterance_id``, ``path``, ``label``, ``fold``, ``probabilities``, ``alpha``,
    ``frames``, ``real_frames``)."""
    from ser_tf.reporting.attention_maps import ExplainLiteModel

    by_id = {u.utterance_id: u for u in manifest}
    wanted = [i for f in run.folds for i in f.test_ids]
    absent = [i for i in wanted if i not in by_id]
    if absent:
        raise ValueError(f"the corpus copy read lacks {len(absent)} of the run's "
                         f"{len(wanted)} test utterances (e.g. {absent[0]}): give the "
                         "--data-dir the run was trained on")
    rows = []
    for fold in run.folds:
        lite = ExplainLiteModel(ensure_explain_model(run, fold), num_threads=threads)
        if lite.labels != run.labels:
            raise ValueError(f"{lite.path}: labels {lite.labels}, the run's are {run.labels}")
        trained_on = set(fold.train_ids)
        for utterance_id in fold.test_ids:
            if utterance_id in trained_on:  # folds.json guarantees it; a figure relies on it
                raise ValueError(f"fold {fold.index} trained on its test utterance "
                                 f"{utterance_id}")
            utterance = by_id[utterance_id]
            features, heard, lengths = lite.inputs(utterance.path)
            probabilities, alpha = lite.predict(features[None], None if lengths is None
                                                else [lengths])
            rows.append({"utterance_id": utterance_id, "path": utterance.path,
                         "label": utterance.label, "fold": int(fold.index),
                         "probabilities": probabilities[0], "alpha": alpha[0],
                         "frames": int(features.shape[0]), "real_frames": int(heard),
                         "model": lite.path})
    return rows


def choose(rows: list[dict], label_index: int, per_class: str = "best") -> dict | None:
    """The row drawn for a class (see the module docstring); ``None`` without rows."""
    if per_class not in PER_CLASS:
        raise ValueError(f"per_class must be one of {PER_CLASS}, got {per_class!r}")
    if not rows:
        return None
    score = [float(r["probabilities"][label_index]) for r in rows]
    correct = [r for r in rows if int(np.argmax(r["probabilities"])) == label_index]
    if not correct:
        return rows[int(np.argmax(score))]
    correct.sort(key=lambda r: (-float(r["probabilities"][label_index]), r["utterance_id"]))
    return correct[0] if per_class == "best" else correct[(len(correct) - 1) // 2]


def _keras_probability(run: FinishedRun, row: dict) -> list[float] | None:
    """The run's own (Keras, whole-utterance) test probabilities of the row, if stored."""
    result = run.result(row["fold"])
    ids = result.get("test_ids") or []
    if row["utterance_id"] in ids and result.get("test_probabilities"):
        return [round(float(p), 4) for p in
                result["test_probabilities"][ids.index(row["utterance_id"])]]
    return None


def class_attention_figure(work_dir, manifest_or_data_dir, out_png, *, per_class: str = "best",
                           threads: int = 1) -> dict:
    """Draw the attention map per class of a finished 2-D run (module docstring) into
    ``out_png`` and write ``out_png`` with suffix ``.json`` beside it; returns that JSON.

    ``manifest_or_data_dir``: the run's corpus (a :class:`~ser_tf.data.manifest.Manifest`
    of its four classes) or the folder it was read from (``None``: the default location).
    """
    from ser_tf.util.jsonio import content_hash, write_json_atomic

    if per_class not in PER_CLASS:
        raise ValueError(f"per_class must be one of {PER_CLASS}, got {per_class!r}")
    run = load_run(work_dir)
    manifest = _manifest(manifest_or_data_dir, run.corpus)
    rows = explain_test_sets(run, manifest, threads=threads)
    recipe = export_shape(run, run.folds[0])[0]
    seconds = float(recipe.segment["duration"])  # what the exported models hear
    classes = {}
    for k, label in enumerate(run.labels):
        own = [r for r in rows if r["label"] == label]
        chosen = choose(own, k, per_class)
        profiles = [alpha_profile(r) for r in own]
        entry = {"n_test_utterances": len(own),
                 "n_correct": sum(int(np.argmax(r["probabilities"])) == k for r in own),
                 "profile": (np.mean(profiles, axis=0).round(4).tolist() if profiles else None),
                 "alpha_on_padding": (round(float(np.mean([padding_share(r) for r in own])), 4)
                                      if own else None),
                 "chosen": None}
        if chosen is not None:
            entry["chosen"] = {
                "utterance_id": chosen["utterance_id"], "file": Path(chosen["path"]).name,
                "fold": chosen["fold"],
                "correct": bool(int(np.argmax(chosen["probabilities"])) == k),
                "probability": round(float(chosen["probabilities"][k]), 4),
                "probabilities": {lab: round(float(p), 4) for lab, p in
                                  zip(run.labels, chosen["probabilities"])},
                "keras_whole_utterance_probabilities": _keras_probability(run, chosen),
                "seconds_heard": round(min(chosen["real_frames"] * float(
                    recipe.frontend["frame_step"]) / recipe.sample_rate, seconds), 2)}
        classes[label] = (entry, chosen)
    png = _draw(run, classes, rows, recipe, out_png, per_class, seconds)
    models = {int(f.index): sorted({r["model"] for r in rows if r["fold"] == f.index})
              for f in run.folds}
    summary = {
        "png": png.name, "run_id": run.run_id, "paper": "attention_fcn", "variant": "2d",
        "corpus": run.corpus, "protocol": run.config.get("protocol"), "labels": run.labels,
        "per_class": per_class, "input_seconds": round(seconds, 2),
        "model": f"each fold's explain TFLite ({EXPLAIN_VARIANT}), on each fold's own test "
                 "utterances",
        "folds": [{"fold": int(f.index), "test_groups": list(f.test_groups),
                   "n_test": len(f.test_ids),
                   "explain_model": str(models[int(f.index)][0]) if models[int(f.index)] else None,
                   "explain_model_sha256": (content_hash(models[int(f.index)][0])
                                            if models[int(f.index)] else None)}
                  for f in run.folds],
        "profile": {"points": PROFILE_POINTS, "meaning": "α summed over frequency, over the "
                    "audio part of the input, time normalised to [0, 1]; 1 = uniform"},
        "classes": {label: entry for label, (entry, _) in classes.items()}}
    write_json_atomic(Path(png).with_suffix(".json"), summary)
    return summary


def alpha_profile(row: dict) -> np.ndarray:
    """One row's α density over normalised time (the audio part of its input)."""
    from ser_tf.reporting.attention_maps import alpha_time_profile

    return alpha_time_profile(row["alpha"], row["frames"], row["real_frames"], PROFILE_POINTS)


def padding_share(row: dict) -> float:
    """The share of a row's α on rows of the map lying wholly in zero padding."""
    alpha = np.asarray(row["alpha"]).reshape(np.shape(row["alpha"])[0], -1).sum(axis=1)
    first_padded = -(-row["real_frames"] * alpha.size // row["frames"])  # ceil
    return float(alpha[first_padded:].sum())


def audio_part(features, alpha, real_frames: int):
    """``(features, α)`` cut to the α time cells that cover the recording's frames (the
    rest of a model's padded window is masked: α there is 0). Cell ``i`` covers frames
    ``[i T / cells, (i + 1) T / cells)`` as :func:`ser_tf.reporting.attention_maps.stretch`
    draws them."""
    frames, cells = features.shape[0], alpha.shape[0]
    keep = min(cells, max(1, -(-int(real_frames) * cells // frames)))
    return features[:min(frames, -(-keep * frames // cells))], alpha[:keep]


def _draw(run, classes, rows, recipe, out_png, per_class, seconds) -> Path:
    from matplotlib.figure import Figure

    from ser_tf.reporting.attention_maps import ExplainLiteModel, _save, draw_attention_panel

    n = len(run.labels)
    fig = Figure(figsize=(4.2 * n, 8.6), layout="constrained")
    grid = fig.add_gridspec(3, n, height_ratios=(3, 1, 1.4))
    vmax = max([float(np.max(c["alpha"])) for _, c in classes.values() if c is not None] + [1e-12])
    front = recipe.frontend
    overlay, profile_axes = None, []
    for k, (label, (entry, chosen)) in enumerate(classes.items()):
        ax_map = fig.add_subplot(grid[0, k])
        ax_time = fig.add_subplot(grid[1, k], sharex=ax_map)
        ax_profile = fig.add_subplot(grid[2, k], sharey=profile_axes[0] if profile_axes else None)
        profile_axes.append(ax_profile)
        if chosen is None:
            for ax in (ax_map, ax_time):
                ax.text(0.5, 0.5, "no test utterance", ha="center", transform=ax.transAxes)
            ax_map.set_title(label)
        else:
            lite = ExplainLiteModel(chosen["model"])
            features, _ = lite.features(chosen["path"])
            alpha = chosen["alpha"]
            if lite.input.get("lengths_input"):  # a long padded window: draw the audio part
                features, alpha = audio_part(features, alpha, chosen["real_frames"])
            info = entry["chosen"]
            mark = "" if info["correct"] else ", NOT correctly classified"
            title = (f"{label}: {info['file']}\nfold {info['fold']}, p({label}) = "
                     f"{info['probability']:.2f}{mark}")
            overlay = draw_attention_panel(
                ax_map, ax_time, features, alpha, max_hz=front.get("max_hz"),
                frame_seconds=float(front["frame_step"]) / recipe.sample_rate, title=title,
                real_frames=chosen["real_frames"], vmax=vmax, time_label=k == 0)
        if entry["profile"] is not None:
            x = (np.arange(PROFILE_POINTS) + 0.5) / PROFILE_POINTS
            ax_profile.plot(x, entry["profile"], color="tab:red")
        ax_profile.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        ax_profile.set(xlim=(0, 1), xlabel="time, normalised (audio part)",
                       title=f"mean over its {entry['n_test_utterances']} test utterances "
                             f"({entry['n_correct']} correct)")
        if k == 0:
            ax_profile.set_ylabel("α density over time\n(1 = uniform)")
    if overlay is not None:
        fig.colorbar(overlay, ax=[a for a in fig.axes if a not in profile_axes], pad=0.01,
                     shrink=0.6, label="α per map position")
    rule = ("the correctly classified test utterance with the highest probability of its "
            "class" if per_class == "best" else
            "the correctly classified test utterance with the median probability of its class")
    fig.suptitle(f"Attention FCN (2-D), {run.corpus}, {run.config.get('protocol')} protocol, "
                 f"run {run.run_id}: α from each fold's explain TFLite model "
                 f"({EXPLAIN_VARIANT}) on that fold's own test utterances\n"
                 f"panel: {rule} (first {seconds:.2f} s of the recording, as the TFLite model "
                 f"takes it); bottom: class-average α over time, {len(rows)} test utterances "
                 f"of {len(run.folds)} folds", fontsize="medium")
    return _save(fig, out_png)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ser_tf.papers.attention_fcn.figures",
        description="Attention maps per class of a finished Attention-FCN 2-D run, drawn "
                    "from each fold's explain TFLite model on its own test utterances.")
    parser.add_argument("--run-dir", required=True,
                        help="the run's work folder, <results>/attention_fcn/<corpus>/<id>.work")
    parser.add_argument("--data-dir", help="the corpus folder the run was trained on "
                                           "(default: the corpus's default location)")
    parser.add_argument("--out", required=True, help="the PNG (a JSON is written beside it)")
    parser.add_argument("--per-class", choices=PER_CLASS, default="best",
                        help="which correctly classified test utterance each panel shows: "
                             "the highest or the median probability of its class (default best)")
    parser.add_argument("--threads", type=int, default=1, help="TFLite threads (default 1)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's own messages (quiet by default)")
    return parser


def main(argv=None) -> int:
    from ser_tf.util.quiet import command_line_output, filtered_native_stderr

    args = build_parser().parse_args(argv)
    try:
        with command_line_output(args.verbose), filtered_native_stderr():
            summary = class_attention_figure(args.run_dir, args.data_dir, args.out,
                                             per_class=args.per_class, threads=args.threads)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for label, entry in summary["classes"].items():
        chosen = entry["chosen"]
        print(f"{label}: " + (f"{chosen['file']} (fold {chosen['fold']}, p = "
                              f"{chosen['probability']:.2f})" if chosen else "no test utterance"))
    print(f"figure: {args.out} (and {Path(args.out).with_suffix('.json')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
