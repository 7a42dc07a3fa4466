"""``python -m ser_tf.experiments.lightsernet``: the command from before papers became
packages, kept working; the paper lives in :mod:`ser_tf.papers.lightsernet` and
``ser-tf train lightsernet`` runs the same thing."""

import sys

from ser_tf.papers.lightsernet.experiment import *  # noqa: F401,F403 - the module's API
from ser_tf.papers.lightsernet.experiment import main

if __name__ == "__main__":
    sys.exit(main())
