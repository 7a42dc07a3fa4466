"""Hyperparameter search with keras-tuner: moved to :mod:`ser_tf.tuning` (search, best
values as a ``--hparams`` file, distributed search, shared flags). This module keeps the
names it had, so code written against it keeps working."""

from ser_tf.tuning import TUNERS
from ser_tf.tuning.search import hypermodel, resolve, space_values, tune_fold

__all__ = ["TUNERS", "hypermodel", "resolve", "space_values", "tune_fold"]
