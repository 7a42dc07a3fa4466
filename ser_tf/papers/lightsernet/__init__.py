"""Light-SERNet (A. Aftab, A. Morsali, S. Ghaemmaghami, B. Champagne, ICASSP 2022): a
lightweight fully convolutional network for speech emotion recognition.

``experiment.py`` (the run: flags, setup, shipping), ``recipes.py`` (segment kind and
feature recipe, registered on import), ``folds.py`` (the authors' splits,
incl. ``paper-time``), ``config.yaml``, ``reference.yaml``, ``README.md`` (results). The
model is :mod:`ser_tf.models.lightsernet`.
"""

# Importing the package registers the segment kind and recipe (recipes.py).
from ser_tf.papers.lightsernet import recipes  # noqa: F401
from ser_tf.papers.lightsernet.experiment import SPEC

__all__ = ["SPEC"]
