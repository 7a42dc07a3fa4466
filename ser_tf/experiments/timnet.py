"""``python -m ser_tf.experiments.timnet``: the command from before papers became packages,
kept working; the paper lives in :mod:`ser_tf.papers.timnet` and ``ser-tf train timnet``
runs the same thing."""

import sys

from ser_tf.papers.timnet.experiment import *  # noqa: F401,F403 - the module's API
from ser_tf.papers.timnet.experiment import main

if __name__ == "__main__":
    sys.exit(main())
