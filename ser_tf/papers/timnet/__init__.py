"""TIM-Net (J. Ye, X.-C. Wen, Y. Wei, Y. Xu, K. Liu, H. Shan, ICASSP 2023): temporal-aware
bi-direction multi-scale network for speech emotion recognition.

``experiment.py`` (the run), ``recipes.py`` (segment kind and recipes, registered on
import), ``folds.py`` (the authors' KFold and seeds),
``authors_features.py`` (the authors' pre-extracted MFCC files), ``config.yaml``,
``reference.yaml``, ``README.md`` (results). The model is :mod:`ser_tf.models.timnet`.
"""

# Importing the package registers the segment kind and timnet-<CORPUS> recipes (recipes.py).
from ser_tf.papers.timnet import recipes  # noqa: F401
from ser_tf.papers.timnet.experiment import SPEC

__all__ = ["SPEC"]
