"""Seeds and distribution strategies.

Both papers seed their frameworks once per run (Light-SERNet: ``tf.random.set_seed`` and
``np.random.seed`` with ``SEED = 42``; TIM-Net seeds only the fold split). ``set_seed`` seeds
everything a run touches, and optionally makes TF ops deterministic.
"""

from __future__ import annotations

import json
import os
import random

import keras
import numpy as np
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi-worker")


def set_seed(seed: int, deterministic: bool = False) -> dict:
    """Seed Python ``random``, NumPy and TensorFlow/Keras; with ``deterministic=True`` also call
    ``tf.config.experimental.enable_op_determinism()``.

    Op determinism is process-wide and cannot be switched off again; it slows some GPU ops
    and makes ops without a deterministic kernel raise. ``PYTHONHASHSEED`` only affects
    processes started later, so it is not set here.

    Returns ``{"seed": seed, "deterministic": deterministic}`` for the run record.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    # Also seeds Python/NumPy again and TF's global generator and Keras' SeedGenerator state.
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return {"seed": seed, "deterministic": bool(deterministic)}


def get_strategy(name: str = "default") -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy: ``default`` (one device), ``mirrored`` (all local GPUs)
    or ``multi-worker`` (``MultiWorkerMirroredStrategy``; needs ``TF_CONFIG``)."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise RuntimeError("strategy 'multi-worker' needs the TF_CONFIG environment variable, "
                           'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
                           '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\' '
                           "set on every worker")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise RuntimeError(f"TF_CONFIG is not valid JSON: {err}") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise RuntimeError("TF_CONFIG must be a JSON object with 'cluster' and 'task' keys")
    return tf.distribute.MultiWorkerMirroredStrategy()
