"""Light-SERNet (A. Aftab, A. Morsali, S. Ghaemmaghami, B. Champagne, ICASSP 2022): a
lightweight fully convolutional network for speech emotion recognition.

``experiment.py`` (the run: flags, setup, shipping), ``folds.py`` (the authors' splits,
incl. ``paper-time``), ``config.yaml``, ``reference.yaml``, ``README.md`` (results). The
model is :mod:`ser_tf.models.lightsernet`.
"""

from ser_tf.papers.lightsernet.experiment import SPEC

__all__ = ["SPEC"]
