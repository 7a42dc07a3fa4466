"""The ``paper`` protocol of the semantic model: SEWA's AVEC 2017 partitions, as the paper
and its code used them: train on ``Train``, evaluate on ``Devel`` (the test labels were
never released). The code chose its checkpoint on Devel too, so Devel is both the
validation and the test split here (selection on the test split, reported as such).
Other corpora have no such partition: use ``--protocol speaker`` for them.
"""

from __future__ import annotations

from ser_tf.data.manifest import Manifest
from ser_tf.training.protocols import Fold, PaperSplit


def avec_partition_fold(manifest: Manifest, n_folds, seed: int) -> list[Fold]:
    """One fold: Train recordings train, Devel recordings validate and test."""
    if manifest.corpus != "SEWA":
        raise ValueError(f"{manifest.corpus}: protocol 'paper' is SEWA's Train/Devel split; "
                         "use --protocol speaker for the proxy corpora")
    part = {u.utterance_id: u.extra.get("partition") for u in manifest}
    train = [i for i, p in part.items() if p == "Train"]
    devel = [i for i, p in part.items() if p == "Devel"]
    if not train or not devel:
        raise ValueError(f"SEWA: protocol 'paper' needs Train and Devel recordings, found "
                         f"{len(train)} Train and {len(devel)} Devel")
    return [Fold(index=0, train_ids=train, val_ids=list(devel), test_ids=devel,
                 selection_on_test=True, test_groups=["Devel"], val_groups=["Devel"])]


# "overlapping": the one test set (Devel) does not partition the corpus (Train is never
# tested), which the shared fold check would otherwise refuse.
SPLIT = PaperSplit(name="semantic", protocols={"paper": avec_partition_fold},
                   default_seed=lambda manifest, protocol: 0, overlapping=("paper",))
