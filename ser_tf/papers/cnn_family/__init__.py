"""The CNN family: a student report ("Speech Emotion Recognition", January 2023) built on
J. L. Bautista, Y. K. Lee, H. S. Shin, "Speech emotion recognition based on parallel
CNN-attention networks with multi-fold data augmentation", Electronics 11(23), 2022.

``experiment.py`` (flags, setup, ``--tune``, ``--hparams``), ``hooks.py`` (per-fold TFLite
export and noise-robustness scores, the record's sections), ``recipes.py`` (feature
recipes ``cnn_mfcc`` / ``cnn_logmel`` / ``cnn_waveform``, registered on import),
``pretrained.py`` (``--model vgg16_mel`` and ``--model wav2vec2``: their weights and
builders), ``corpora.py`` (the pooled
7-class corpus and where its corpora are), ``folds.py`` (protocol ``paper``: one
stratified 80/10/10 split), ``source.py`` (AWGN copies of the training utterances),
``tune.py`` (the learning-rate search, through :mod:`ser_tf.tuning`), ``noise_report.py``
(the README's noise table), ``synthetic.py`` (a tiny generated pooled
corpus for tests and the notebook), ``config.yaml``, ``reference.yaml``, ``README.md``.
The models are :mod:`ser_tf.models.cnn_family`, :mod:`ser_tf.models.vgg16_mel` and
:mod:`ser_tf.models.wav2vec2_classifier`; the pooled manifest
:mod:`ser_tf.data.pooled`.
"""

# Importing the package registers the recipes (recipes.py).
from ser_tf.papers.cnn_family import recipes  # noqa: F401
from ser_tf.papers.cnn_family.experiment import SPEC

__all__ = ["SPEC"]
