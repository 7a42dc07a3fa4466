"""ser-tf: faithful Keras 3 / TensorFlow reproductions of speech-emotion-recognition systems.

The package is split by concern (see README "Layout"): ``ser_tf.data`` reads corpora and
audio, ``ser_tf.features`` turns audio into model inputs, ``ser_tf.models`` holds one file
per architecture, ``ser_tf.training`` the protocols and runners, ``ser_tf.export`` and
``ser_tf.lite`` the TFLite side, ``ser_tf.experiments`` one module per paper.

Importing ``ser_tf`` itself does not import TensorFlow, so the on-device runtime
(``ser_tf.lite``) and the data tools stay light.
"""

import os

__version__ = "0.1.0"

#: ``TF_CPP_MIN_LOG_LEVEL`` as the user set it before ``import ser_tf`` (``None``: unset);
#: the command line keeps it whatever its verbosity (:mod:`ser_tf.util.quiet`).
USER_TF_CPP_MIN_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")

# TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) hides the suite's own
# output on CPU machines; users can still ask for it with TF_CPP_MIN_LOG_LEVEL=0 (and the
# command line with -v, see ser_tf.util.quiet).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
