"""``python -m ser_tf.experiments.attention_fcn``: Attention FCN (Zhang et al., APSIPA 2018)
and its 1-D RAVDESS variant under the suite's experiment commands; the paper lives in
:mod:`ser_tf.papers.attention_fcn` and ``ser-tf train attention_fcn`` runs the same thing.

    python -m ser_tf.experiments.attention_fcn --dataset RAVDESS --variant 1d --protocol paper
    python -m ser_tf.experiments.attention_fcn --dataset EMODB --variant 2d --protocol speaker
"""

import sys

from ser_tf.papers.attention_fcn.experiment import *  # noqa: F401,F403 - the module's API
from ser_tf.papers.attention_fcn.experiment import main

if __name__ == "__main__":
    sys.exit(main())
