"""``python -m ser_tf.papers.attention_fcn``: the same as ``ser-tf train attention_fcn``."""

from ser_tf.papers.attention_fcn.experiment import main

raise SystemExit(main())
