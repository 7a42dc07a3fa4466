"""The CNN family's run plan: which settings ``make reproduce-cnn-family`` trains, how
they are named, and how a record is matched to them.

Shared by :mod:`~ser_tf.papers.cnn_family.noise_report` (the README's noise table) and
:mod:`~ser_tf.papers.cnn_family.speaker_choice` (which settings get the ``speaker`` runs).
"""

from __future__ import annotations

from pathlib import Path

PAPER = "cnn_family"

#: (model, features, awgn copies) of the report's six configurations, trained under ``paper``.
REPORTED = (("cnn", "mfcc", 0), ("parallel", "mfcc", 2), ("transformer", "mfcc", 0),
            ("transformer", "mfcc", 2), ("transformer", "mel", 0), ("transformer", "mel", 2))
#: The experiment's own spelling of the models (``--model``).
CLI_MODEL = {"cnn": "cnn", "parallel": "2cnn", "transformer": "2cnn_transformer"}
#: Where ``make reproduce-cnn-family`` keeps the choice: ``<results>/cnn_family/<corpus>/``.
CHOICE_FILE = "speaker-choice.json"


def setting_name(model: str, features: str, awgn: int) -> str:
    """``2cnn_transformer:mfcc:2``: a setting as ``--model``, ``--input`` and ``--awgn``."""
    return f"{CLI_MODEL[model]}:{features}:{int(awgn)}"


def parse_setting(name: str) -> tuple[str, str, int]:
    """``("transformer", "mfcc", 2)`` from ``2cnn_transformer:mfcc:2`` (the inverse of
    :func:`setting_name`)."""
    model, features, awgn = name.split(":")
    record_model = {cli: model for model, cli in CLI_MODEL.items()}
    return record_model[model], features, int(awgn)


#: (model, features, awgn copies) of the reproduce target's ``paper`` runs: the report's
#: six, and the two that give every model a run with and without AWGN (the noise table).
PAPER_PLAN = (("cnn", "mfcc", 0), ("parallel", "mfcc", 2), ("transformer", "mfcc", 0),
              ("transformer", "mfcc", 2), ("transformer", "mel", 0), ("transformer", "mel", 2),
              ("cnn", "mfcc", 2), ("parallel", "mfcc", 0))


#: Folds of the planned ``speaker`` runs (the reproduce target's ``--folds 5``).
SPEAKER_FOLDS = 5


def planned(results_dir, corpus: str) -> list[tuple]:
    """``(protocol, model, features, awgn)`` of the reproduce target's runs on ``corpus``:
    the ``paper`` plan, then the ``speaker`` runs its validation choice named
    (:mod:`~ser_tf.papers.cnn_family.speaker_choice`, its ``speaker-choice.json``), or one
    ``("speaker", None, None, None)`` placeholder while nothing is chosen."""
    from ser_tf.util.jsonio import read_json

    rows = [("paper", *plan) for plan in PAPER_PLAN]
    choice = Path(results_dir) / PAPER / corpus / CHOICE_FILE
    if not choice.is_file():
        return rows + [("speaker", None, None, None)]
    return rows + [("speaker", *parse_setting(name)) for name in read_json(choice)["speaker_runs"]]


def record_key(record: dict) -> tuple:
    """``(corpus, protocol, model, features, awgn copies)`` of a run record."""
    config = record.get("config", {})
    return (record.get("corpus"), record.get("protocol"), config.get("model"),
            config.get("features"), config.get("awgn_copies"))



def departures(record: dict, cfg: dict) -> dict:
    """The settings in which ``record``'s run differs from the planned run of its model:
    the package's learning rate, epochs, patience and seed, no model settings or
    ``--hparams`` file, 5 folds under ``speaker``. Empty: the run is the planned one."""
    config = record.get("config", {})
    fit = config.get("fit", {})
    planned = {"learning_rate": cfg["learning_rate"].get(config.get("model")),
               "epochs": cfg["epochs"], "seed": cfg["seed"],
               "patience": cfg["patience"]["awgn" if config.get("awgn_copies") else "plain"]}
    found = {key: fit.get(key) for key, value in planned.items() if fit.get(key) != value}
    if config.get("model_kwargs"):
        found["model"] = config["model_kwargs"]
    if record.get("hparams"):
        found["hparams"] = Path(str(record["hparams"].get("file") or "file")).name
    if record.get("protocol") == "speaker" and config.get("n_folds") != SPEAKER_FOLDS:
        found["folds"] = config.get("n_folds")
    return found


def load_records(results_dir) -> list[dict]:
    """The CNN family's run records under ``results_dir`` (BatchNorm over time, as
    published), oldest first."""
    from ser_tf.util.jsonio import read_json

    records = [read_json(p) for p in sorted(Path(results_dir).glob(f"{PAPER}/*/*/record.json"))]
    records = [r for r in records if r.get("config", {}).get("bn_axis", "time") == "time"]
    return sorted(records, key=lambda r: str(r.get("created") or ""))
