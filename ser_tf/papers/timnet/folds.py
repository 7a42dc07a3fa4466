"""TIM-Net's own split (Ye et al., ICASSP 2023, ``Code/Model.py`` of
github.com/Jiaxin-Ye/TIM-Net_SER).

``paper``: ``sklearn.model_selection.KFold(n_splits=10, shuffle=True, random_state=seed)``
over the utterances in the order of the authors' feature file
(:func:`~ser_tf.papers.timnet.authors_features.authors_file_order`: class by class, file
names in natural order inside a class); the checkpoint with the best ``val_accuracy`` on the
test fold is kept. Seeds per corpus from the README: :data:`PAPER_SEEDS`.
"""

from __future__ import annotations

from ser_tf.data.manifest import Manifest
from ser_tf.papers.timnet.authors_features import authors_file_order
from ser_tf.training.protocols import PaperSplit, kfold_test_folds

#: ``--random_seed`` of the TIM-Net README per corpus (keys are ser_tf corpus names;
#: TIM-Net calls RAVDESS ``RAVDE``).
PAPER_SEEDS = {"CASIA": 32, "EMODB": 46, "EMOVO": 1, "IEMOCAP": 16, "RAVDESS": 46, "SAVEE": 44}


def paper_seed(manifest: Manifest, protocol: str = "paper") -> int:
    if manifest.corpus not in PAPER_SEEDS:
        raise ValueError(f"TIM-Net has no paper seed for {manifest.corpus}; pass seed= "
                         f"(known: {PAPER_SEEDS})")
    return PAPER_SEEDS[manifest.corpus]


def paper_folds(manifest: Manifest, n_folds, seed: int) -> list:
    """The authors' folds: their KFold over their feature file's order."""
    return kfold_test_folds(manifest, n_folds, seed, order=authors_file_order(manifest))


SPLIT = PaperSplit(name="timnet", protocols={"paper": paper_folds}, default_seed=paper_seed)
