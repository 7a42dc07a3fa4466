"""Hyperparameter search for any paper, with keras-tuner: a shared layer that names no paper.

- :mod:`ser_tf.tuning.search`: the ``build(hp)`` hook (:func:`~ser_tf.tuning.search.hypermodel`)
  and :func:`~ser_tf.tuning.search.tune_fold`, a Hyperband, random, Bayesian or grid search on one
  fold's training and validation ids (never its test ids), resumable, one TensorBoard log
  per trial, and keras-tuner's own chief/worker distribution.
- :mod:`ser_tf.tuning.hparams`: the best values as a JSON file that a training run reads
  back with ``--hparams FILE`` (and records where they came from).
- :mod:`ser_tf.tuning.distributed`: the ``KERASTUNER_*`` environment, checked.
- :mod:`ser_tf.tuning.cli`: the shared ``--tune``, ``--tuner``, ``--hparams`` flags.

Importing this package (or :mod:`.cli`, :mod:`.hparams`, :mod:`.distributed`) imports
neither TensorFlow nor keras-tuner, so a paper's ``--help`` stays quick. keras-tuner is the
``tuning`` extra (``pip install 'ser-tf[tuning]'``). How to run a search: ``docs/tuning.md``.
"""

#: ``--tuner`` names: keras-tuner's Hyperband, RandomSearch, BayesianOptimization and
#: GridSearch (every combination of a discrete space, each for the full epoch budget).
TUNERS = ("hyperband", "random", "bayesian", "grid")

__all__ = ["TUNERS"]
