"""Each fold's explain model of a finished 2-D Attention-FCN run: the TFLite file with
probabilities and α as outputs, exported from the fold's tested weights, and kept so it can
stand in for them once they are gone (a session's checkout keeps no fold weights).

- :func:`load_run`: a finished 2-D run (:class:`FinishedRun`), every fold with its weights
  or a kept explain model made from them;
- :func:`export_shape`: the recipe and inputs the fold's exported models take;
- :func:`ensure_explain_model` / :func:`stored_explain_model`: the fold's explain model.

Used by the per-class figure (:mod:`~ser_tf.papers.attention_fcn.figures`), the ship
(:mod:`~ser_tf.papers.attention_fcn.ship`) and the experiment's fold hook; imports none of
them. TensorFlow is imported only to export a missing explain model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: A fold's explain model lives in ``fold_XX/<EXPLAIN_DIR>/``.
EXPLAIN_DIR = "explain"
#: float16 weights: half the size of float32 (7.6 MB for the 2-D model, small enough to
#: keep per fold), the same answers within ~2e-4 (each fold's tflite.json measures it).
EXPLAIN_VARIANT = "float16"


@dataclass(frozen=True)
class FinishedRun:
    """A 2-D Attention-FCN run whose folds have all finished."""

    work: Path
    run_id: str
    config: dict
    folds: list  # ser_tf.training.protocols.Fold

    @property
    def corpus(self) -> str:
        return str(self.config["corpus"])

    @property
    def labels(self) -> list[str]:
        return [str(label) for label in self.config["labels"]]

    def fold_dir(self, fold):
        from ser_tf.training.rundir import RunDir

        return RunDir(self.work).fold(fold)

    def result(self, fold) -> dict:
        from ser_tf.util.jsonio import read_json

        return read_json(self.fold_dir(fold).result)


def load_run(work_dir) -> FinishedRun:
    """The run in ``work_dir`` (``<run-id>.work``, or the record folder beside it); a
    clear error when it is not an Attention-FCN 2-D run or a fold has not finished."""
    from ser_tf.training.protocols import load_folds
    from ser_tf.training.rundir import WORK_SUFFIX, RunDir
    from ser_tf.util.jsonio import read_json

    work = Path(work_dir)
    if not work.name.endswith(WORK_SUFFIX) and work.with_name(work.name + WORK_SUFFIX).is_dir():
        work = work.with_name(work.name + WORK_SUFFIX)  # the record folder was given
    run = RunDir(work)
    if not work.is_dir():
        raise FileNotFoundError(f"{work}: no such folder")
    if not run.config.is_file() or not run.folds.is_file():
        raise ValueError(f"{work} is not a run's work folder (no {run.config.name} and "
                         f"{run.folds.name}); give <results>/attention_fcn/<corpus>/<run-id>.work")
    config = read_json(run.config)
    if config.get("paper") != "attention_fcn" or config.get("variant") != "2d":
        raise ValueError(f"{work}: a run of {config.get('paper')} (variant "
                         f"{config.get('variant')}); the attention maps per class are drawn "
                         "for attention_fcn --variant 2d runs")
    folds = load_folds(run.folds)
    missing = [f.index for f in folds if not run.fold(f).finished or
               not (run.fold(f).weights.is_file() or stored_explain_model(run.fold(f), config))]
    if missing:
        raise ValueError(f"run {run.run_id} is unfinished: fold(s) {missing} of {len(folds)} "
                         "have no result, or neither final weights nor an explain model made "
                         "from them (still training, or stopped; resume it with the same "
                         "`ser-tf train` command)")
    return FinishedRun(work, run.run_id, config, folds)


def _explain_path(fold_dir, corpus: str) -> Path:
    name = f"attention_fcn-{str(corpus).lower()}-explain"
    return fold_dir.path / EXPLAIN_DIR / f"{name}-{EXPLAIN_VARIANT}.tflite"


def _weights_hash(fold_dir) -> str | None:
    """sha256 of the fold's tested weights: of the file while it is on this machine, else
    the one its TFLite export recorded when the fold ended (``tflite.json``)."""
    from ser_tf.util.jsonio import content_hash, read_json

    if fold_dir.weights.is_file():
        return content_hash(fold_dir.weights)
    if fold_dir.tflite.is_file():
        return read_json(fold_dir.tflite).get("weights_sha256")
    return None


def stored_explain_model(fold_dir, config: dict) -> Path | None:
    """The fold's explain model if it was made from the fold's tested weights (its
    sidecar's ``source.weights_sha256`` is theirs), else ``None``. Kept (committed) for
    runs whose fold weights do not outlive the machine that trained them."""
    from ser_tf.util.jsonio import read_json

    path = _explain_path(fold_dir, config["corpus"])
    expected = _weights_hash(fold_dir)
    if expected is None or not (path.is_file() and path.with_suffix(".json").is_file()):
        return None
    source = read_json(path.with_suffix(".json")).get("source") or {}
    return path if source.get("weights_sha256") == expected else None


def export_shape(run: "FinishedRun", fold) -> tuple:
    """``(recipe, takes_lengths)`` of the fold's exported models: a ``--crop`` run's crop
    recipe (no lengths); a whole-utterance run's window of the frames its TFLite export
    used (``fold_XX/tflite.json``; a ``--no-export`` run: those the export would use, from
    the data fingerprint's longest recording), with lengths. A run exported before
    lengths existed (its TFLite rows name no input shapes) took the first 3 s without."""
    from ser_tf.papers.attention_fcn import recipes
    from ser_tf.papers.attention_fcn.export import export_frames, longest_frames
    from ser_tf.util.jsonio import read_json

    if run.config.get("crop_seconds") is not None:
        return recipes.crop_recipe(run.config["crop_seconds"]), False
    row = run.fold_dir(fold).tflite
    if row.is_file():
        shapes = read_json(row).get("input_shapes")
        if not shapes:
            return recipes.crop_recipe(None), False
        frames = int(shapes["features"][0])
    else:
        longest = (run.config.get("data") or {}).get("duration_s", {}).get("max")
        if longest is None:
            raise ValueError(f"run {run.run_id}: no TFLite rows and no data fingerprint, so "
                             "the length its export takes is unknown")
        frames = export_frames(longest_frames(longest, run.config.get("max_frames")))
    return recipes.crop_recipe(frames / 100), True


def ensure_explain_model(run: FinishedRun, fold) -> Path:
    """The fold's explain TFLite (:data:`EXPLAIN_VARIANT`) in ``fold_XX/explain/``: exported
    from the fold's tested weights (``final.weights.h5``) unless a file made from these very
    weights (sha256 in its sidecar; without the weights file, the sha256 its TFLite export
    recorded) is there."""
    fold_dir = run.fold_dir(fold)
    name = f"attention_fcn-{run.corpus.lower()}-explain"
    stored = stored_explain_model(fold_dir, run.config)
    if stored is not None:
        return stored
    if not fold_dir.weights.is_file():
        raise FileNotFoundError(f"{fold_dir.weights}: the fold's weights are gone and no "
                                "explain model made from them is kept")
    from ser_tf.util.jsonio import content_hash
    from ser_tf.util.quiet import filtered_native_stderr, import_tensorflow

    path = _explain_path(fold_dir, run.corpus)
    weights_hash = content_hash(fold_dir.weights)

    import_tensorflow()  # quiet on the command line: TensorFlow's start-up lines held back
    from ser_tf.models.attention_fcn import build_attention_fcn_2d
    from ser_tf.reporting.attention_maps import export_explain_tflite

    recipe, lengths = export_shape(run, fold)
    model = build_attention_fcn_2d(len(run.labels), recipe.feature_shape(),
                                   lam=float(run.config["lam"]),
                                   dropout=float(run.config.get("dropout", 0.5)),
                                   lengths_input=lengths)
    model.load_weights(fold_dir.weights)
    source = {"run_id": run.run_id, "fold": int(fold.index), "corpus": run.corpus,
              "protocol": run.config.get("protocol"), "weights": fold_dir.weights.name,
              "weights_sha256": weights_hash}
    with filtered_native_stderr():
        paths = export_explain_tflite(model, path.parent, labels=run.labels, recipe=recipe,
                                      name=name, variants=(EXPLAIN_VARIANT,),
                                      extra={"source": source})
    return paths[EXPLAIN_VARIANT]
