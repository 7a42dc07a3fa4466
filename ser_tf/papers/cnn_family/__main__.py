"""``python -m ser_tf.papers.cnn_family``: the same as ``ser-tf train cnn_family``."""

from ser_tf.papers.cnn_family.experiment import main

raise SystemExit(main())
