"""Attention-based fully convolutional network (Y. Zhang, J. Du, Z. Wang, J. Zhang, APSIPA
ASC 2018) and a student's 1-D reproduction of it.

``experiment.py`` (flags, setup, hooks), ``recipes.py`` (feature recipes, registered on
import), ``folds.py`` (the ``paper`` protocol), ``collapse.py`` (folds predicting one
class), ``export.py`` (TFLite), ``config.yaml``, ``reference.yaml``, ``README.md``. The
models are :mod:`ser_tf.models.attention_fcn`; attention maps are drawn by
:mod:`ser_tf.reporting.attention_maps`.
"""

# Importing the package registers the recipes (recipes.py).
from ser_tf.papers.attention_fcn import recipes  # noqa: F401
from ser_tf.papers.attention_fcn.experiment import SPEC

__all__ = ["SPEC"]
