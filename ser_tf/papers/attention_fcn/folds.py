"""The ``paper`` protocol of Attention-FCN runs: stratified random 5-fold cross-validation,
as the student reproduction ran it (the paper's own IEMOCAP split could not be read).

Each fold tests on one fifth of the utterances, drawn per class
(``StratifiedKFold(5, shuffle=True)``), and trains on the rest; the test fold is also
the validation data the curves show, and the experiment keeps the last epoch, so nothing
is chosen on it. Utterances, not speakers, are split: the same speakers are on both sides.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold

from ser_tf.data.manifest import Manifest
from ser_tf.training.protocols import PaperSplit, check_n_folds, test_selected_folds

#: The student's seed is not known; this one is ours.
PAPER_SEED = 42
PAPER_FOLDS = 5


def stratified_test_folds(manifest: Manifest, n_folds, seed: int) -> list:
    """``StratifiedKFold(n_folds, shuffle=True, random_state=seed)`` test folds (module
    docstring); ``n_folds`` ``None`` means :data:`PAPER_FOLDS`."""
    n_folds = check_n_folds(manifest, PAPER_FOLDS if n_folds is None else n_folds)
    labels = np.asarray(manifest.label_indices)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return test_selected_folds(manifest, [test for _, test in
                                          splitter.split(np.zeros(len(labels)), labels)])


SPLIT = PaperSplit(name="attention_fcn", protocols={"paper": stratified_test_folds},
                   default_seed=lambda manifest, protocol: PAPER_SEED)
