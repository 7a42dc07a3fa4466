"""Semantic SER: P. Tzirakis, A. Nguyen, S. Zafeiriou, B. W. Schuller, "Speech Emotion
Recognition using Semantic Information", ICASSP 2021 (arXiv:2103.02993).

``experiment.py`` (flags, setup, export hook), ``corpora.py`` (SEWA and the EMO-DB /
RAVDESS proxy framed into sequence records, words aligned), ``task.py`` (masked per-frame
``1 - CCC``), ``folds.py`` (protocol ``paper``: SEWA Train -> Devel), ``export.py``
(TFLite streaming and whole-sequence models, TF-free chunked inference), ``synthetic.py``
(a tiny SEWA-layout corpus), ``config.yaml``, ``reference.yaml``, ``README.md``. The model
is :mod:`ser_tf.models.semantic_fusion`.
"""

from ser_tf.papers.semantic.experiment import SPEC

__all__ = ["SPEC"]
