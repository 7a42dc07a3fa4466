"""The report's split (protocol ``paper``): one random, stratified 80 / 10 / 10 hold-out.

The pooled utterances are split once: a tenth for testing, a tenth for validation (early
stopping and the restored best weights), the rest for training, each class in the same
proportion on every side (``train_test_split(..., stratify=labels)``, twice). Utterances,
not speakers, are split: the same speakers are on all sides (TESS has two speakers, so a
speaker-independent split of it is no split at all; ``--protocol speaker`` is the
speaker-independent alternative). With 12,160 utterances: 9,728 / 1,216 / 1,216.

The test tenth is never used for selection: it is scored once, with the weights the
validation tenth chose (the fold's ``selection_on_test`` is false). ``--folds`` does not
apply: there is one split. The report's seed is not known; :data:`PAPER_SEED` is ours.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from ser_tf.data.manifest import Manifest
from ser_tf.training.protocols import Fold, PaperSplit, ids_of

PAPER_SEED = 42
VAL_SHARE = 0.1
TEST_SHARE = 0.1


def split_sizes(n: int, val_share: float = VAL_SHARE,
                test_share: float = TEST_SHARE) -> tuple[int, int, int]:
    """(train, validation, test) sizes of ``n`` utterances, each part at least one."""
    n_test, n_val = max(1, round(test_share * n)), max(1, round(val_share * n))
    if n - n_test - n_val < 1:
        raise ValueError(f"{n} utterances cannot be split into training, validation and test")
    return n - n_test - n_val, n_val, n_test


def _stratify(labels: np.ndarray, size: int):
    """``labels`` when ``train_test_split`` can stratify a draw of ``size`` from them (every
    class with 2 or more utterances, room for each class on both sides), else ``None``:
    tiny generated corpora fall back to a plain random draw."""
    counts = np.bincount(labels)
    present = counts[counts > 0]
    if present.min() >= 2 and len(present) <= size <= len(labels) - len(present):
        return labels
    return None


def holdout_split(manifest: Manifest, n_folds, seed: int, *, val_share: float = VAL_SHARE,
                  test_share: float = TEST_SHARE) -> list[Fold]:
    """The one fold of protocol ``paper`` (module docstring); ``n_folds`` is ignored."""
    labels = np.asarray(manifest.label_indices)
    _, n_val, n_test = split_sizes(len(manifest), val_share, test_share)
    everything = np.arange(len(manifest))
    rest, test = train_test_split(everything, test_size=n_test, random_state=seed,
                                  stratify=_stratify(labels, n_test))
    train, val = train_test_split(rest, test_size=n_val, random_state=seed,
                                  stratify=_stratify(labels[rest], n_val))
    return [Fold(index=0, train_ids=ids_of(manifest, train), val_ids=ids_of(manifest, val),
                 test_ids=ids_of(manifest, test), selection_on_test=False)]


# "overlapping": the shared fold check otherwise demands that the test folds cover the
# whole corpus (k-fold); one hold-out split tests a tenth of it.
SPLIT = PaperSplit(name="cnn_family", protocols={"paper": holdout_split},
                   default_seed=lambda manifest, protocol: PAPER_SEED,
                   overlapping=("paper",))
