"""``python -m ser_tf.papers.semantic``: the same as ``ser-tf train semantic``."""

from ser_tf.papers.semantic.experiment import main

raise SystemExit(main())
