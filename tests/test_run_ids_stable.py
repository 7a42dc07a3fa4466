"""Every committed run keeps its id: its config, rebuilt by today's code from the flags of
the command that made it, hashes to the id it was stored under.

The corpus is not read (the manifest, the folds and the data fingerprint are the stored
ones): the test pins the code path from flags to config (paper settings, FitConfig fields,
feature recipes, run-id hashing), so a refactor or a new setting that would rename a
finished run, and strand its folds, fails here.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest

from ser_tf.reporting.records import run_id
from ser_tf.util.jsonio import read_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"
OWN_VALIDATION = {"cnn_family"}  # papers whose `paper` split has a validation part


def committed_configs():
    """``(run id, stored config)`` of every run folder and work folder under results."""
    found = {}
    for path in sorted(RESULTS.glob("*/*/*.work/config.json")):
        found[path.parent.name[: -len(".work")]] = read_json(path)
    for path in sorted(RESULTS.glob("*/*/*/record.json")):
        record = read_json(path)
        if "config" in record:  # benchmark records (alignment, bench/) are not runs
            found.setdefault(path.parent.name, record["config"])
    return sorted(found.items())


def lightsernet_argv(config):
    fit = config["fit"]
    argv = ["--dataset", config["corpus"], "--protocol", config["protocol"],
            "--loss", config["loss"], "--duration", str(config["duration"]),
            "--input", config["input"], "--epochs", str(fit["epochs"]),
            "--batch-size", str(fit["batch_size"]), "--seed", str(fit["seed"]),
            "--folds", str(config["n_folds"])]
    if config.get("audio_type"):
        argv += ["--audio-type", config["audio_type"]]
    if not fit.get("full_batches", False):
        argv.append("--partial-batches")
    return argv


def timnet_argv(config):
    fit = config["fit"]
    checkpoint = config["checkpoint"]
    if config["protocol"] == "paper" and checkpoint == "paper":
        checkpoint = "best-val"  # what the command said; the paper protocol makes it `paper`
    argv = ["--dataset", config["corpus"], "--protocol", config["protocol"],
            "--checkpoint", checkpoint, "--epochs", str(fit["epochs"]),
            "--batch-size", str(fit["batch_size"]), "--seed", str(fit["seed"]),
            "--folds", str(config["n_folds"]), "--check-every", str(fit["check_every"]),
            "--min-epochs", str(fit["min_epochs"]), "--blocks", str(config["n_blocks"])]
    if fit.get("patience") is not None:
        argv += ["--patience", str(fit["patience"])]
    segment = config["recipe"]["segment"]
    if segment.get("kind") == "pad_or_crop":  # --window SECONDS
        argv += ["--window", str(segment["length"] / config["recipe"]["sample_rate"])]
    if config.get("compounded_smoothing") is not None:  # the ablation's flag (0.1 = config's)
        argv += ["--compounded-smoothing"]
    return argv


def attention_fcn_argv(config):
    fit = config["fit"]
    argv = ["--variant", config["variant"], "--dataset", config["corpus"],
            "--protocol", config["protocol"], "--epochs", str(fit["epochs"]),
            "--batch-size", str(fit["batch_size"]), "--seed", str(fit["seed"]),
            "--folds", str(config["n_folds"]), "--lam", str(config["lam"])]
    for key, flag in (("crop", "--crop"), ("max_seconds", "--max-seconds")):
        if config.get(key) is not None:
            argv += [flag, str(config[key])]
    if config["recipe"]["name"] == "attention_fcn_1d_db":
        argv += ["--input-scale", "db"]
    return argv


def cnn_family_argv(config):
    fit = config["fit"]
    argv = ["--model", config["model"], "--input", config["features"],
            "--dataset", config["corpus"], "--protocol", config["protocol"],
            "--awgn", str(config["awgn_copies"]), "--epochs", str(fit["epochs"]),
            "--batch-size", str(fit["batch_size"]), "--patience", str(fit["patience"]),
            "--learning-rate", str(fit["learning_rate"]), "--seed", str(fit["seed"]),
            "--data-dir-ravdess", "unused"]
    if config["paper_style"] is None:  # the paper's one 80/10/10 split ignores --folds
        argv += ["--folds", str(config["n_folds"])]
    if "bn_axis" in config:
        argv += ["--bn-axis", config["bn_axis"]]
    return argv


def semantic_argv(config):
    fit, model = config["fit"], config["model"]
    argv = ["--dataset", config["corpus"], "--protocol", config["protocol"],
            "--variant", model["variant"], "--epochs", str(fit["epochs"]),
            "--batch-size", str(fit["batch_size"]), "--learning-rate", str(fit["learning_rate"]),
            "--seed", str(fit["seed"]), "--folds", str(config["n_folds"]),
            "--chunk-frames", str(config["chunk_frames"]), "--align", config["alignment"],
            "--weighting", config["task"]["weighting"],
            # --width w scales the filters and units: the first conv's 50 filters tell it.
            "--width", str(model["conv_filters"][0] / 50)]
    return argv  # runs with --word-vectors would also need the vectors file


class StoredManifest:
    """What plan_experiment reads of a manifest, from a stored config."""

    def __init__(self, config):
        self.corpus, self.labels = config["corpus"], tuple(config["labels"])
        self.n = config["n_utterances"]
        self.skipped = ()

    def __len__(self):
        return self.n


def rebuild(config, monkeypatch):
    import ser_tf.data
    import ser_tf.data.fingerprint
    import ser_tf.training.protocols
    from ser_tf.experiments import lightsernet, timnet
    from ser_tf.papers.attention_fcn import experiment as attention_fcn
    from ser_tf.papers.cnn_family import corpora as cnn_family_corpora
    from ser_tf.papers.cnn_family import experiment as cnn_family
    from ser_tf.papers.semantic import corpora as semantic_corpora
    from ser_tf.papers.semantic import experiment as semantic

    monkeypatch.setattr(ser_tf.data, "load_manifest",
                        lambda *a, **k: StoredManifest(config))
    monkeypatch.setattr(ser_tf.data.fingerprint, "fingerprint",
                        lambda manifest, **k: config.get("data"))
    # Attention FCN keeps four classes of the corpus: the stored manifest has them already.
    monkeypatch.setattr(attention_fcn, "load_four_classes",
                        lambda *a, **k: StoredManifest(config))
    # The semantic model's vocabulary comes from the transcripts: its stored size.
    monkeypatch.setattr(semantic_corpora, "build_vocabulary",
                        lambda manifest: [None] * config.get("vocabulary_size", 0))
    # The CNN family pools corpora: the stored manifest is the pooled one.
    monkeypatch.setattr(cnn_family_corpora, "load_pooled",
                        lambda *a, **k: StoredManifest(config))
    # Only whether a fold chooses its epoch on the test ids reaches the config; the CNN
    # family's paper split holds out a validation tenth of its own.
    on_test = (config["protocol"] not in ("speaker", "clean")
               and config["paper"] not in OWN_VALIDATION)
    monkeypatch.setattr(ser_tf.training.protocols, "make_folds",
                        lambda *a, **k: [SimpleNamespace(selection_on_test=on_test)]
                        * config["n_folds"])
    module, argv = {"lightsernet": (lightsernet, lightsernet_argv),
                    "timnet": (timnet, timnet_argv),
                    "attention_fcn": (attention_fcn, attention_fcn_argv),
                    "cnn_family": (cnn_family, cnn_family_argv),
                    "semantic": (semantic, semantic_argv)}[config["paper"]]
    plan = module.plan(module.build_parser().parse_args(argv(config)))
    rebuilt = dict(plan.config)
    if "data" not in config:  # recorded before runs stored a fingerprint
        rebuilt.pop("data", None)
    return rebuilt


RUNS = committed_configs()
#: Runs whose id today's code does not rebuild on purpose, with the config keys a later
#: change added and why (the change gave new runs a new id instead of reusing theirs).
RENAMED_ON_PURPOSE = {
    "speaker-58d11fc9da": ({"tflite_input"}, "2026-12-05: the 2-D export takes lengths; "
                           "whole-utterance runs record it, so its rerun is a new run"),
}


def test_there_are_committed_runs_to_check():
    papers = {config["paper"] for _, config in RUNS}
    assert {"lightsernet", "timnet"} <= papers and len(RUNS) >= 10


@pytest.mark.parametrize("rid,config", RUNS, ids=[rid for rid, _ in RUNS])
def test_committed_run_id_is_rebuilt_from_its_command(rid, config, monkeypatch):
    assert run_id(config) == rid  # the stored config is the one its id was made from
    rebuilt = rebuild(config, monkeypatch)
    if rid in RENAMED_ON_PURPOSE:
        added, _ = RENAMED_ON_PURPOSE[rid]
        assert set(rebuilt) - set(config) == added and run_id(rebuilt) != rid
        rebuilt = {k: v for k, v in rebuilt.items() if k not in added}
    assert rebuilt == config
    assert run_id(rebuilt) == rid
