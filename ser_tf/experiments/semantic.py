"""``python -m ser_tf.experiments.semantic``: the semantic-SER paper's command (the paper
lives in :mod:`ser_tf.papers.semantic`; ``ser-tf train semantic`` runs the same thing).

    python -m ser_tf.experiments.semantic --dataset SEWA --data-dir D --variant fusion
"""

import sys

from ser_tf.papers.semantic.experiment import *  # noqa: F401,F403 - the module's API
from ser_tf.papers.semantic.experiment import main

if __name__ == "__main__":
    sys.exit(main())
