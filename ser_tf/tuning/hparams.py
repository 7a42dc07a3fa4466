"""The best hyperparameters of a search as a file a training run reads back (``--hparams``).

A file (``best_hparams.json``, written by a search) holds::

    {"format": "ser-tf-hparams/1",
     "values": {"learning_rate": 0.01},            # the tuner's names and values
     "fit":    {"learning_rate": 0.01},            # FitConfig fields they set
     "model":  {},                                 # keyword arguments of build_model
     "source": {"search": ".../result.json", "tuner": "hyperband", "objective": "val_loss",
                "score": 0.93, "trial_id": "0007", ...}}

``fit`` and ``model`` are the search space's sections resolved with the best values, so
reading a file needs no keras-tuner: :func:`apply_fit` puts ``fit`` into a
:class:`~ser_tf.training.classifier.FitConfig`, ``model`` goes to the paper's builder, and
:func:`provenance` is what the run record stores (the file, its SHA-256 and the search it
came from). A hand-written file works too (``values`` and ``source`` may then be empty).
Imports no TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ser_tf.util.errors import UserError

FORMAT = "ser-tf-hparams/1"
FILE_NAME = "best_hparams.json"


class HParamsError(UserError):
    """A ``--hparams`` file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class HParams:
    """A read hyperparameter file: the values and the sections they set."""

    values: dict
    fit: dict
    model: dict
    source: dict = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None


def _fit_fields() -> set[str]:
    from dataclasses import fields

    from ser_tf.training.classifier import FitConfig

    return {f.name for f in fields(FitConfig)}


def check_sections(fit: dict, model: dict, where: str = "hyperparameters") -> None:
    """``fit`` names FitConfig fields only and both sections are JSON objects."""
    if not isinstance(fit, dict) or not isinstance(model, dict):
        raise HParamsError(f"{where}: 'fit' and 'model' must be JSON objects")
    unknown = sorted(set(fit) - _fit_fields())
    if unknown:
        raise HParamsError(f"{where}: 'fit' sets unknown FitConfig fields {unknown}; known: "
                           f"{sorted(_fit_fields())}")


def write_hparams(path, *, values: dict, fit: dict, model: dict, source: dict) -> Path:
    """Write a hyperparameter file (atomically); returns its path."""
    from ser_tf.util.jsonio import write_json_atomic

    check_sections(fit, model)
    return write_json_atomic(Path(path), {"format": FORMAT, "values": dict(values),
                                          "fit": dict(fit), "model": dict(model),
                                          "source": dict(source)})


def read_hparams(path) -> HParams:
    """Read and check a hyperparameter file; :class:`HParamsError` says what is wrong."""
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise HParamsError(f"--hparams {path}: no such file (a search writes "
                           f"<results>/<paper>/<corpus>/<run-id>.tuning/<tuner>/{FILE_NAME})") \
            from None
    except OSError as error:
        raise HParamsError(f"--hparams {path}: cannot be read: {error}") from None
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise HParamsError(f"--hparams {path}: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise HParamsError(f"--hparams {path}: expected a JSON object")
    if data.get("format", FORMAT) != FORMAT:
        raise HParamsError(f"--hparams {path}: format {data.get('format')!r}, expected {FORMAT!r}")
    if "fit" not in data and "model" not in data:
        raise HParamsError(f"--hparams {path}: neither a 'fit' nor a 'model' section; e.g. "
                           '{"fit": {"learning_rate": 0.001}, "model": {}}')
    fit, model = data.get("fit") or {}, data.get("model") or {}
    check_sections(fit, model, where=f"--hparams {path}")
    values = data.get("values") or {}
    source = data.get("source") or {}
    if not isinstance(values, dict) or not isinstance(source, dict):
        raise HParamsError(f"--hparams {path}: 'values' and 'source' must be JSON objects")
    return HParams(values=dict(values), fit=dict(fit), model=dict(model), source=dict(source),
                   path=path.resolve(), sha256=hashlib.sha256(raw).hexdigest())


def apply_fit(fit, hparams: HParams):
    """``fit`` (a FitConfig) with the file's ``fit`` section in place of its values."""
    from ser_tf.training.classifier import FitConfig

    if not hparams.fit:
        return fit
    try:
        return FitConfig(**{**fit.to_dict(), **hparams.fit})
    except (TypeError, ValueError) as error:
        raise HParamsError(f"--hparams {hparams.path}: {error}") from None


def provenance(hparams: HParams) -> dict:
    """What a run record says about the values it trained with and where they came from."""
    return {"file": str(hparams.path) if hparams.path else None, "sha256": hparams.sha256,
            "values": hparams.values, "fit": hparams.fit, "model": hparams.model,
            "source": hparams.source}
