"""Per-frame continuous emotion as a task of the shared trainer: ``1 - CCC`` over the real
frames of a batch (padding frames weigh nothing), CCC tracked per epoch on real frames,
fold metrics on every real frame of the test recordings.

The task is the shared :class:`~ser_tf.training.tasks.FrameRegressionTask` (its loss and
metric: :class:`~ser_tf.training.metrics.MaskedCCCLoss`,
:class:`~ser_tf.training.metrics.MaskedConcordanceCorrelation`); this module names it for
the paper. ``weighting="inverse_index"`` reproduces the official code's 1/i weights of
arousal, valence, liking (normalised to sum 1; the code's sum to 1 + 1/2 + 1/3: a constant
factor, the same gradients' directions).
"""

from ser_tf.training.tasks import FrameRegressionTask, real_frame_pairs

__all__ = ["FrameRegressionTask", "real_frame_pairs"]
