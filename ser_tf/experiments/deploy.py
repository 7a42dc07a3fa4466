"""``--ship``: a paper's deployable model, from its finished speaker-independent run.

The same flags as the run, with ``--ship``: the speaker-protocol run of that configuration
must be finished (its folds choose the epoch count, give the expected accuracy and fit
the temperature, see :mod:`ser_tf.export.deploy`); then the final model trains on every
utterance (resumable, in ``<results>/<paper>/<corpus>/deploy-<run-id>.work/``), is
exported with cards into ``--ship-dest``, and a record ``deploy-<run-id>.json`` beside the
run says what was measured. An unfinished run is refused before anything trains, naming
its missing folds (:class:`~ser_tf.export.deploy.CrossValidationNotFinished`, a user
error: the command prints it and exits 1).
"""

from __future__ import annotations

import copy

from ser_tf.experiments.deploy_flags import DEPLOY_PROTOCOL


def _other_features(pairs, recipe, cache_dir, quiet) -> dict:
    from ser_tf.data import load_manifest
    from ser_tf.features.cache import extract_features
    from ser_tf.util.errors import UserError

    others = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--ood-corpus takes NAME=DIR, got {pair!r}")
        manifest = load_manifest(name.upper(), folder, on_bad_audio="skip")
        if manifest.corpus in others:  # e.g. two FOLDER corpora: one rate would replace the other
            raise UserError(f"--ood-corpus: two corpora named {manifest.corpus} ({pair!r}); "
                            "measure one per command")
        others[manifest.corpus] = extract_features(manifest, recipe, cache_dir,
                                                   progress=not quiet).features
    return others


def deploy(spec, args, *, prefix: str, title: str, dest, notes=()) -> dict:
    """Train and ship the deployable model of the run ``args`` describe (module docstring);
    ``notes``: lines the paper adds to the cards (e.g. why its window has its length)."""
    from ser_tf.data import get_corpus
    from ser_tf.experiments import runner
    from ser_tf.export.deploy import (cv_summary, int8_within_reach, scope_lines, ship_final,
                                      train_final, validation_temperature)
    from ser_tf.export.ood import ood_check
    from ser_tf.features.cache import extract_features
    from ser_tf.training.protocols import holdout_groups
    from ser_tf.training.sources import CachedFeatureSource
    from ser_tf.training.tasks import ClassificationTask
    from ser_tf.util.jsonio import write_json_atomic

    cv_args = copy.copy(args)
    cv_args.protocol = DEPLOY_PROTOCOL
    experiment = spec.setup(cv_args, spec.config())
    plan = runner.plan(spec, cv_args)
    cv = cv_summary(plan)  # first: fails fast when the cross-validation is not finished
    quiet = bool(getattr(args, "quiet", False))
    manifest = experiment.manifest
    feature_set = extract_features(manifest, experiment.recipe, args.cache_dir,
                                   progress=not quiet)
    source = CachedFeatureSource(feature_set)
    task = ClassificationTask(tuple(manifest.labels))
    record = plan.work_dir.parent / f"deploy-{plan.run_id}.json"
    refresh = bool(getattr(args, "refresh_ood", False))
    if refresh:  # before the measurement: a refresh that cannot be written fails at once
        from ser_tf.export.ood import check_refresh, refresh_shipped_ood

        check_refresh(record, dest, [pair.partition("=")[0] for pair in args.ood_corpus],
                      utterances=len(feature_set.ids))
    ood = ood_check(plan, feature_set, _other_features(getattr(args, "ood_corpus", []),
                                                       experiment.recipe, args.cache_dir, quiet),
                    speakers=dict(zip((u.utterance_id for u in manifest),
                                      holdout_groups(manifest))))
    if refresh:
        written = refresh_shipped_ood(record, ood, experiment.recipe, dest,
                                      utterances=len(feature_set.ids))
        if not quiet:
            print(f"deploy: out-of-domain check refreshed in {len(written)} files "
                  f"(false alarms {ood['false_alarm_test_speakers']['mean']:.1f} %, "
                  f"detection {ood['detection'] or 'not measured'})")
        return {"run_id": plan.run_id, "record": record, "refreshed": [str(w) for w in written]}
    calibration = validation_temperature(plan, source=source, task=task,
                                         build_model=experiment.build_model)
    int8 = int8_within_reach(plan)
    if not quiet:
        print(f"deploy: {cv['epochs']} epochs (median of {cv['chosen_epochs']}), expected UA "
              f"{cv['expected']['UA']['mean']:.2f} ± {cv['expected']['UA']['std']:.2f} on new "
              f"speakers; temperature {calibration['temperature']:.3f}")
    work_dir = plan.work_dir.parent / f"deploy-{plan.run_id}.work"
    model = train_final(work_dir, source=source, task=task, build_model=experiment.build_model,
                        fit=experiment.fit, epochs=cv["epochs"], quiet=quiet)
    corpus = get_corpus(manifest.corpus)
    shipped = ship_final(model, out_dir=dest, prefix=prefix, title=title,
                         recipe=experiment.recipe, feature_set=feature_set,
                         labels=manifest.labels, cv=cv, calibration=calibration, int8=int8,
                         scope=scope_lines(corpus, manifest, plan.config.get("data")),
                         ood=ood, data=plan.config.get("data"), notes=tuple(notes))
    write_json_atomic(record, {"cross_validation": cv, "calibration": calibration,
                               "int8": int8, "ood": ood, "utterances": len(feature_set.ids),
                               **shipped})
    return {"run_id": plan.run_id, "record": record, "shipped": shipped["shipped"]}
