"""keras-tuner's own distribution, checked: one *chief* runs the oracle (a gRPC server),
*workers* ask it for trials and train them.

keras-tuner reads three environment variables (``docs/tuning.md``):

- ``KERASTUNER_TUNER_ID``: ``chief`` for the oracle's process, any other unique name
  (``tuner0``, ``tuner1``, ...) for a worker;
- ``KERASTUNER_ORACLE_IP``: the chief's address (the chief listens on it);
- ``KERASTUNER_ORACLE_PORT``: the chief's port.

Without ``KERASTUNER_ORACLE_IP`` a search runs alone in its process. Every process runs the
same command with the same tuner directory (a shared folder): the chief keeps the oracle's
state there, so a distributed search resumes like a single one. This module only reads the
variables, so a mistake (a port without an address, a worker without an id) is a clear
error before any model is built rather than keras-tuner's ``RuntimeError`` mid-setup.
Imports no TensorFlow.
"""

from __future__ import annotations

import os
from typing import Mapping

TUNER_ID = "KERASTUNER_TUNER_ID"
ORACLE_IP = "KERASTUNER_ORACLE_IP"
ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
ROLES = ("single", "chief", "worker")


def role(environ: Mapping[str, str] | None = None) -> str:
    """``single`` (no oracle address set), ``chief`` (the tuner id contains ``chief``, as
    keras-tuner decides) or ``worker``. Raises ``ValueError`` for an incomplete or invalid
    setting, naming the variable to fix."""
    env = os.environ if environ is None else environ
    address, port, tuner_id = env.get(ORACLE_IP), env.get(ORACLE_PORT), env.get(TUNER_ID)
    if not address:
        if port:
            raise ValueError(f"{ORACLE_PORT} is set ({port}) but {ORACLE_IP} is not: set both "
                             "for a distributed search, or neither")
        return "single"
    if not port:
        raise ValueError(f"{ORACLE_IP} is set ({address}) but {ORACLE_PORT} is not: give the "
                         "chief's port")
    try:
        number = int(port)
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise ValueError(f"{ORACLE_PORT} must be a port number 1-65535, got {port!r}")
    if not tuner_id:
        raise ValueError(f"{ORACLE_IP} is set but {TUNER_ID} is not: 'chief' for the oracle's "
                         "process, a unique name such as 'tuner0' for each worker")
    return "chief" if "chief" in tuner_id else "worker"


def describe(environ: Mapping[str, str] | None = None) -> dict:
    """What a search record says about its process: ``{"role", "tuner_id", "oracle"}``
    (``oracle`` is ``"ip:port"`` in a distributed search, else ``None``)."""
    env = os.environ if environ is None else environ
    which = role(env)
    if which == "single":
        return {"role": which, "tuner_id": env.get(TUNER_ID) or "tuner0", "oracle": None}
    return {"role": which, "tuner_id": env[TUNER_ID],
            "oracle": f"{env[ORACLE_IP]}:{env[ORACLE_PORT]}"}


def environment(tuner_id: str, address: str, port: int) -> dict[str, str]:
    """The variables of one process of a distributed search (for launching it)."""
    if not tuner_id:
        raise ValueError("tuner_id must be 'chief' or a worker's unique name")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be 1-65535, got {port}")
    return {TUNER_ID: str(tuner_id), ORACLE_IP: str(address), ORACLE_PORT: str(int(port))}
