"""``python -m ser_tf.experiments.cnn_family``: the CNN family (issue 29) under the suite's
experiment commands, as ``python -m ser_tf.experiments.timnet`` is for TIM-Net; the paper
lives in :mod:`ser_tf.papers.cnn_family` and ``ser-tf train cnn_family`` runs the same
thing. E.g. ``--model 2cnn_transformer --input mfcc --awgn 2 --protocol paper --dataset
RAVDESS [--tune --tuner hyperband | --hparams FILE]``; the report's pretrained systems:
``--model vgg16_mel [--weights imagenet|PATH|none]`` and ``--model wav2vec2 [--pretrained
HUB-NAME|PATH|none]``."""

import sys

from ser_tf.papers.cnn_family.experiment import *  # noqa: F401,F403 - the module's API
from ser_tf.papers.cnn_family.experiment import main

if __name__ == "__main__":
    sys.exit(main())
