"""A run of an experiment: features (cached) -> folds -> resumable k-fold -> atomic run record.

:func:`plan_experiment` resolves what a run is (its config, whose hash is the run id, its
folds and work folder) without training; :func:`run_experiment` trains the folds not done
yet with :func:`ser_tf.training.classifier.train_fold` and writes the record when all are.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ser_tf.data.manifest import Manifest
from ser_tf.training.classifier import FitConfig, train_fold
from ser_tf.training.rundir import BACKUP_DIR, CONFIG_FILE, RunDir
from ser_tf.util.paths import default_results_dir


@dataclass
class ExperimentPlan:
    """What a run is before it runs: its resolved config (whose hash is the run id), its
    folds and its work folder. Experiments use it to find a run's outputs again."""

    config: dict
    folds: list
    fit: FitConfig
    run_id: str
    work_dir: Path


def plan_experiment(manifest: Manifest, recipe, *, paper: str, protocol: str, fit: FitConfig,
                    results_dir=None, n_folds: int | None = 10,
                    fold_seed: int | None = None, paper_split=None,
                    val_fraction: float = 0.1, config_extra: dict | None = None,
                    fingerprint_data: bool = True) -> ExperimentPlan:
    """Resolve the config, the folds and the work folder of a run (nothing is trained).

    ``results_dir``: default :func:`ser_tf.util.paths.default_results_dir` (the user's
    data folder; the repository's committed records are in ``experiments/results``).

    ``fingerprint_data``: store the corpus copy's fingerprint (:mod:`ser_tf.data.fingerprint`:
    file count, sample rates, durations, release check) in the config, so a run on another
    copy of the corpus gets another run id. Off only for features that come with their own
    digest (e.g. the TIM-Net authors' MFCC file) and manifests without audio files.
    """
    from ser_tf.data.fingerprint import fingerprint
    from ser_tf.reporting.records import run_id
    from ser_tf.training.protocols import TEST_SELECTING, make_folds

    folds = make_folds(manifest, protocol, n_folds=n_folds, seed=fold_seed,
                       val_fraction=val_fraction, paper_split=paper_split)
    if (protocol in TEST_SELECTING and fit.checkpoint == "best-val"
            and any(getattr(f, "selection_on_test", True) for f in folds)):
        # When a paper's folds validate on their test ids, say so in the policy; a paper
        # split with a validation part of its own keeps best-val.
        fit = FitConfig(**{**fit.to_dict(), "checkpoint": "paper"})
    config = {"paper": paper, "corpus": manifest.corpus, "protocol": protocol,
              "recipe": recipe.config(), "fit": fit.to_dict(), "n_folds": len(folds),
              "fold_seed": fold_seed,
              # The paper's split by name: part of what a run is (and of its id).
              "paper_style": paper_split.name if paper_split is not None else None,
              "val_fraction": val_fraction,
              "labels": list(manifest.labels), "n_utterances": len(manifest),
              **(config_extra or {})}
    if fingerprint_data:
        config["data"] = fingerprint(manifest)
    rid = run_id(config)
    if results_dir is None:
        results_dir = default_results_dir()
    work_dir = RunDir.of(results_dir, paper, manifest.corpus, rid).work
    return ExperimentPlan(config, folds, fit, rid, work_dir)


def _catch_up_finished_folds(work_dir, folds, feature_set, on_fold_done) -> None:
    """``on_fold_done`` for finished folds whose weights are still here (see run_experiment)."""
    from ser_tf.util.jsonio import read_json

    for fold in folds:
        fold_dir = RunDir(Path(work_dir)).fold(fold)
        if fold_dir.finished and fold_dir.weights.is_file():
            on_fold_done(work_dir, fold, feature_set, read_json(fold_dir.result))


def run_experiment(manifest: Manifest, recipe, build_model: Callable, *, paper: str,
                   protocol: str, fit: FitConfig, results_dir=None,
                   cache_dir=None, n_folds: int | None = 10, fold_seed: int | None = None,
                   paper_split=None, val_fraction: float = 0.1,
                   config_extra: dict | None = None, fingerprint_data: bool = True,
                   strategy=None, quiet: bool = False,
                   after_folds: Callable | None = None, on_fold_done: Callable | None = None,
                   feature_set=None, train_only=None, source=None, task=None) -> dict:
    """Features -> folds -> resumable k-fold training -> run record.

    The work folder ``<results_dir>/<paper>/<corpus>/<run-id>.work/`` holds each finished
    fold's ``result.json`` (and, mid-fold, the Keras backup): the same call after a kill
    resumes at the first unfinished fold. When every fold is done, the record is written
    atomically to ``<results_dir>/<paper>/<corpus>/<run-id>/``.

    ``after_folds(work_dir, folds, feature_set, results) -> (details, extra_files)`` runs
    once all folds are done (e.g. TFLite export of every fold's model); ``details`` become
    sections of ``record.json`` and ``extra_files`` ({name: path}) are copied into the record.
    It is not part of the config, so adding it does not change the run id.

    ``on_fold_done(work_dir, fold, feature_set, result)`` runs right after each fold that
    trains in this call has stored its result (e.g. score that fold's TFLite variants or
    store its test embeddings while its weights are on disk), and, when a run resumes, for
    every finished fold whose weights file is on this machine: it must be idempotent (skip
    what is already done), and it makes what an earlier session left undone while the
    weights still exist. ``after_folds`` should still cope with folds lacking its outputs.

    ``feature_set``: features computed elsewhere (e.g. the TIM-Net authors' MFCC files,
    :mod:`ser_tf.papers.timnet.authors_features`) instead of extracting them from the manifest's audio;
    its ids must be the manifest's. Say where they came from in ``config_extra``.

    ``source``: where the folds' examples come from (:mod:`ser_tf.training.sources`: a
    waveform or TFRecord source; or a function ``(cache_dir, quiet) -> source``, called
    once the run is locked), instead of features extracted from the manifest with ``recipe``;
    its ids must be the manifest's. The hooks then get the source where they would get the
    feature set. ``task`` (:mod:`ser_tf.training.tasks`): classification over the
    manifest's labels by default; it also summarises the record. A task other than
    classification is part of the config (``config_extra``), so say it there.

    ``train_only``: train just these fold indices in this call (the others wait); the
    record is written only once every fold has finished, so until then ``record`` is None.

    Returns ``{"run_id", "work_dir", "record" (its folder or None), "n_folds",
    "folds_done" (indices), "feature_stats"}``.
    """
    from ser_tf.features.cache import extract_features
    from ser_tf.reporting.records import write_run_record
    from ser_tf.training.kfold import run_kfold, run_lock
    from ser_tf.util.jsonio import write_json_atomic
    from ser_tf.training.protocols import paper_protocol_warning

    if results_dir is None:
        results_dir = default_results_dir()
    plan = plan_experiment(manifest, recipe, paper=paper, protocol=protocol, fit=fit,
                           results_dir=results_dir, n_folds=n_folds, fold_seed=fold_seed,
                           paper_split=paper_split, val_fraction=val_fraction,
                           config_extra=config_extra, fingerprint_data=fingerprint_data)
    folds, work_dir = plan.folds, plan.work_dir
    warning = paper_protocol_warning(protocol, plan.fit.checkpoint, plan.fit.patience,
                                     selection_on_test=any(f.selection_on_test
                                                           for f in plan.folds))
    if warning and not quiet:
        print(f"NOTE: {warning}")
    work_dir.mkdir(parents=True, exist_ok=True)
    # One process per run: a second one (another terminal, a make reaching this run) stops
    # here, before it writes anything the first is writing.
    with run_lock(work_dir):
        # config.json tells a later session what this run is
        write_json_atomic(work_dir / CONFIG_FILE, plan.config)
        if source is not None:
            if callable(source) and not hasattr(source, "dataset"):
                source = source(cache_dir, quiet)
            feature_set = source  # what the hooks get
            if sorted(source.ids) != sorted(u.utterance_id for u in manifest):
                raise ValueError("the data source's ids differ from the manifest's utterance ids")
        elif feature_set is None:
            feature_set = extract_features(manifest, recipe, cache_dir, progress=not quiet)
        elif list(feature_set.ids) != [u.utterance_id for u in manifest]:
            raise ValueError("feature_set ids differ from the manifest's utterance ids")
        if source is None:
            from ser_tf.training.sources import CachedFeatureSource

            source = CachedFeatureSource(feature_set)
        if task is None:
            from ser_tf.training.tasks import ClassificationTask

            task = ClassificationTask(tuple(manifest.labels))
        from ser_tf.reporting.records import git_info

        # The code this process runs: commits landing during a long run do not change it.
        git = git_info()
        from ser_tf.util.status import run_clock

        trained = []
        clock = _run_clock(work_dir, folds, plan.fit, train_only)

        def train(fold, fold_dir):
            trained.append(fold.index)
            # A fold resuming from its backup takes part of a fold's time: not an estimate.
            clock.fold_started(resumed=(Path(fold_dir) / BACKUP_DIR).is_dir())
            return train_fold(fold, fold_dir, source=source, task=task, build_model=build_model,
                              fit=plan.fit, strategy=strategy, n_folds=len(folds), quiet=quiet)

        # The clock: the epoch lines' estimate of the time the run has left, "fold i/n" in
        # the hooks' progress lines.
        with run_clock(clock):
            if on_fold_done is not None:
                _catch_up_finished_folds(work_dir, folds, feature_set, on_fold_done)
            start = time.perf_counter()
            results = run_kfold(work_dir, folds, train, train_only=train_only, quiet=quiet,
                on_fold_done=None if on_fold_done is None else
                lambda fold, result: on_fold_done(work_dir, fold, feature_set, result))
            if len(results) == len(folds) and after_folds is not None:
                details, extra_files = after_folds(work_dir, folds, feature_set, results)
                _check_tflite_inputs(details, results)
            else:
                details, extra_files = {}, None
        done = [int(r["fold"]) for r in results]
        if len(results) < len(folds):
            return {"run_id": plan.run_id, "work_dir": work_dir, "record": None,
                    "n_folds": len(folds), "folds_done": done,
                    "feature_stats": source.stats}
        wall = sum(float(r.get("seconds", 0.0)) for r in results) or time.perf_counter() - start
        if manifest.skipped:
            details = {**details, "skipped_audio": list(manifest.skipped)}
        provenance = {"git": git}
        previous = plan.work_dir.parent / plan.run_id / "record.json"
        if not trained and previous.is_file():
            # Nothing trained in this call (a rerun of a finished run, e.g. by make): the
            # record is rebuilt from the same fold results, and keeps naming the commit, time,
            # machine and package versions of the process that trained them, not this one's.
            from ser_tf.util.jsonio import read_json

            old = read_json(previous)
            provenance = {"git": old.get("git", git), "created": old.get("created"),
                          "machine": old.get("machine"), "versions": old.get("versions")}
        record = write_run_record(results_dir, config=plan.config, protocol=protocol, folds=folds,
                                  fold_results=results, wall_time=wall, labels=manifest.labels,
                                  extra_files=extra_files, details=details, overwrite=True,
                                  summarize=task.summarize, **provenance)
    return {"run_id": plan.run_id, "work_dir": work_dir, "record": record,
            "n_folds": len(folds), "folds_done": done, "feature_stats": source.stats}


def _check_tflite_inputs(details: dict, results: list[dict]) -> None:
    """Record (``tflite.run_check``) whether the TFLite rows' Keras scores are the run's,
    and warn when they are not (:func:`ser_tf.export.evaluate.compare_with_run`)."""
    if not isinstance(details.get("tflite"), dict):
        return
    from ser_tf.export.evaluate import compare_with_run

    check = compare_with_run(details["tflite"], {
        int(r["fold"]): (r.get("metrics") or {}).get("UA") for r in results})
    if check is None:
        return
    details["tflite"]["run_check"] = check
    if not check["keras_matches_run"]:
        print(f"WARNING: the TFLite exports were scored on other inputs than the run: the "
              f"Keras model's UA differs from the run's by up to "
              f"{check['max_keras_UA_difference']:.2f} points on the same fold, so the "
              "TFLite scores are not comparable with the run's", file=sys.stderr)


def _run_clock(work_dir, folds, fit: FitConfig, train_only):
    """The :class:`~ser_tf.util.status.RunClock` of this call: the folds it will train
    (unfinished, and in ``train_only`` if given) and the training times of those finished."""
    from ser_tf.util.jsonio import read_json
    from ser_tf.util.status import RunClock

    run_dir, pending, past = RunDir(Path(work_dir)), 0, []
    for fold in folds:
        fold_dir = run_dir.fold(fold)
        if fold_dir.finished:
            try:
                past.append(float(read_json(fold_dir.result).get("seconds") or 0.0))
            except (OSError, ValueError):
                pass
        elif train_only is None or int(fold.index) in {int(i) for i in train_only}:
            pending += 1
    return RunClock(len(folds), pending, epochs=fit.epochs, finished_fold_seconds=past)


# --- the command line every paper shares --------------------------------------------------

def build_parser(spec, prog: str | None = None):
    """The paper's flags (``spec.add_arguments``), then the shared ones
    (:func:`~ser_tf.experiments.common.add_common_arguments`). Neither TensorFlow nor
    scikit-learn is imported, so ``--help`` is quick; the paper's ``add_arguments`` gets an
    :class:`~ser_tf.experiments.common.ExperimentParser`, whose ``add_check`` validates
    values against each other once parsed."""
    from ser_tf.experiments.common import ExperimentParser, add_common_arguments

    config = spec.config()
    parser = ExperimentParser(prog=prog or f"ser-tf train {spec.name}",
                              description=spec.description or spec.title)
    spec.add_arguments(parser, config)
    add_common_arguments(parser, default_protocol=spec.default_protocol,
                         default_seed=spec.default_seed, protocols=spec.protocols)
    parser.set_defaults(**spec.parser_defaults(config))
    return parser


def _settings(spec, args, experiment) -> dict:
    """``plan_experiment`` keywords of ``experiment`` under ``args``."""
    config_extra = dict(experiment.config_extra)
    task_config = experiment.task.config() if experiment.task is not None else None
    if task_config is not None:  # classification adds nothing: old run ids stay
        config_extra["task"] = task_config
    return dict(paper=spec.name, protocol=args.protocol, fit=experiment.fit,
                results_dir=args.results_dir, n_folds=args.folds, fold_seed=args.fold_seed,
                paper_split=experiment.paper_split, config_extra=config_extra,
                fingerprint_data=experiment.fingerprint_data)


def plan(spec, args) -> ExperimentPlan:
    """The plan (run id, folds, work folder) of the run ``args`` describe; nothing trains."""
    experiment = spec.setup(args, spec.config())
    return plan_experiment(experiment.manifest, experiment.recipe,
                           **_settings(spec, args, experiment))


def run(spec, args) -> dict:
    """Train (or resume) the run ``args`` describe; returns :func:`run_experiment`'s dict,
    or the paper's ``intercept`` result when it replaces training (e.g. ``--ship-fold``)."""
    from ser_tf.experiments.common import verbosity
    from ser_tf.training.seeding import get_strategy

    args.quiet = verbosity(args) == 0  # --quiet or --verbose 0: the paper's hooks see it too
    experiment = spec.setup(args, spec.config())
    settings = _settings(spec, args, experiment)
    if getattr(args, "print_run_dir", False):
        # For scripts that act on a run's folder (figures, shipping): stdout is the path only.
        work_dir = plan_experiment(experiment.manifest, experiment.recipe, **settings).work_dir
        print(work_dir)
        return {"work_dir": work_dir, "printed": True}
    if spec.intercept is not None:
        result = spec.intercept(args, experiment,
                                plan_experiment(experiment.manifest, experiment.recipe,
                                                **settings))
        if result is not None:
            return result
    quiet = bool(getattr(args, "quiet", False))
    for note in experiment.notes:
        if not quiet:
            print(f"NOTE: {note}")
    return run_experiment(experiment.manifest, experiment.recipe, experiment.build_model,
                          cache_dir=args.cache_dir, strategy=get_strategy(args.strategy),
                          quiet=quiet, after_folds=experiment.after_folds,
                          on_fold_done=experiment.on_fold_done, train_only=args.train_folds,
                          feature_set=experiment.feature_set, source=experiment.source,
                          task=experiment.task, **settings)


def summary_lines(out: dict) -> list[str]:
    """What a finished run prints last: its scores (UA and WA, mean ± std over folds; the
    last epoch's too when the record has them; pooled for overlapping repetitions), its
    training time, the protocol's warning and where the record is. Empty when ``out`` has
    no run record folder (e.g. ``--ship-fold``)."""
    from ser_tf.util.jsonio import read_json
    from ser_tf.util.status import format_duration

    folder = out.get("record")
    if folder is None or not (Path(folder) / "record.json").is_file():
        return []
    record = read_json(Path(folder) / "record.json")
    summary = record.get("summary") or {}
    n_folds = summary.get("n_folds") or len(record.get("per_fold") or ()) or out.get("n_folds")
    head = (f"run {out.get('run_id', record.get('run_id'))} ({record.get('paper')} "
            f"{record.get('corpus')}, protocol {record.get('protocol')}): {n_folds} folds")
    wall = record.get("wall_time_seconds")
    if wall:
        head += f", {format_duration(wall)} of training"
    lines = [head]
    scores = _scores(summary)
    if scores:
        lines.append(f"  {scores}  (mean ± std over folds)")
    last = _scores(record.get("summary_last_epoch") or {})
    if last:
        lines.append(f"  last epoch: {last}")
    pooled = summary.get("pooled")
    if isinstance(pooled, dict) and record.get("protocol") == "paper-time" and "UA" in pooled:
        lines.append("  pooled over repetitions (as the paper's figures): "
                     + ", ".join(f"{k} {float(pooled[k]):.2f}" for k in ("UA", "WA")
                                 if isinstance(pooled.get(k), (int, float))))
    if record.get("protocol_warning"):
        lines.append(f"  NOTE: {record['protocol_warning']}")
    lines.append(f"  record: {folder}")
    return lines


def _scores(summary: dict) -> str:
    """``UA 70.52 ± 8.95, WA 72.22 ± 7.97`` (classification), else every ``mean``/``std``
    entry of a run summary."""
    import math

    entries = {k: v for k, v in summary.items() if isinstance(v, dict) and "mean" in v}
    names = [k for k in ("UA", "WA") if k in entries] or list(entries)
    parts = []
    for name in names:
        mean, std = entries[name].get("mean"), entries[name].get("std")
        if not isinstance(mean, (int, float)):
            continue
        text = f"{name} {mean:.2f}"
        if isinstance(std, (int, float)) and not math.isnan(std):
            text += f" ± {std:.2f}"
        parts.append(text)
    return ", ".join(parts)


def _command_line_output(stack):
    """``before_run`` of :func:`main`: TensorFlow quiet unless ``--verbose 2`` (or ``-v``),
    set before it is imported (:mod:`ser_tf.util.quiet`), then imported."""

    def before_run(args) -> None:
        from ser_tf.experiments.common import verbosity
        from ser_tf.util import quiet

        stack.enter_context(quiet.command_line_output(verbose=verbosity(args) >= 2))
        quiet.import_tensorflow()

    return before_run


def main(spec, argv=None, prog: str | None = None) -> int:
    """``ser-tf train NAME ...`` (and the papers' ``python -m`` commands): parse, keep
    TensorFlow's start-up quiet (unless ``-v``), train or resume, then print the scores and
    where the record is (:func:`summary_lines`)."""
    import contextlib

    from ser_tf.experiments.common import run_cli

    parser = build_parser(spec, prog)
    with contextlib.ExitStack() as stack:
        return run_cli(parser, lambda args: run(spec, args), argv,
                       before_run=_command_line_output(stack), summarize=summary_lines)


def commands(spec, prog: str):
    """``(build_parser(), plan(args), run(args), main(argv=None))`` bound to ``spec``: a
    paper module's public entry points (``python -m`` commands, notebooks, tests)."""

    def build_parser_():
        return build_parser(spec, prog=prog)

    def plan_(args):
        """The plan (run id, folds, work folder) of the run ``args`` describe."""
        return plan(spec, args)

    def run_(args):
        """Train (or resume) the run ``args`` describe; :func:`run`'s dict."""
        return run(spec, args)

    def main_(argv=None) -> int:
        return main(spec, argv, prog=prog)

    return build_parser_, plan_, run_, main_
