"""Light-SERNet's own splits (Aftab et al., ICASSP 2022; github.com/AryaAftab/LIGHT-SERNET).

* ``paper`` (split ``lightsernet``): random, non-stratified, shuffled 10-fold; the best epoch
  is chosen on the test fold (``BestModelWeights`` / ``ReturnBestEarlyStopping`` monitoring
  ``val_accuracy`` on the test set). Seed :data:`PAPER_SEED` (``hyperparameters.SEED``).
* ``paper-time`` (split ``lightsernet``): the code as it stood when the paper was written
  (October 2021; replaced in January 2022 by speaker splits). The utterances are shuffled
  (the authors used ``tf.random.shuffle`` under global seed 42; here a NumPy permutation with
  the seed, so not their order) and cut into 10 contiguous parts (``KFold(10)`` without
  shuffling); each of ``n_folds`` repetitions tests on the union of two parts (≈ 20 %), the
  pairs being the first ``n_folds`` rows of ``np.random.RandomState(seed).permutation`` of
  the 45 pairs ``itertools.combinations(range(10), 2)`` (as the authors drew them), and
  trains on the rest; no validation split, the best epoch is chosen on the test set. Test
  sets overlap across repetitions (a part can be tested 0 to 4 times) and the published
  figures are of all predictions pooled into one confusion matrix (weighted F1 from
  ``classification_report``): read ``summary.pooled`` of such a run.
* ``paper`` (split ``lightsernet_speaker``): the split of the *released* code
  (``filter_dataset.seperate_speaker_id_emodb`` / ``..._iemocap``): one fold per speaker,
  and for IEMOCAP one fold per dialog prefix (``Ses01F``, ``Ses01M``, ...). The IEMOCAP
  prefix names who leads the dialog, not who speaks, so those folds are *not* speaker
  independent. Caveat: the released code's segmentation step renames every file to the name
  of another file of the same class (an unseeded shuffle), so its "speaker" folds in effect
  held random files, sized like each speaker's share; this split applies the *intended*
  speaker split, which is harder than what that code measured. ``lightsernet`` (random
  folds) is the closer match to the published numbers, which the released code also
  reports pooled over folds.
"""

from __future__ import annotations

import itertools

import numpy as np
from sklearn.model_selection import KFold

from ser_tf.data.manifest import Manifest
from ser_tf.training.protocols import (PaperSplit, group_test_folds, kfold_test_folds,
                                       test_selected_folds)

#: ``hyperparameters.SEED`` of the Light-SERNet code.
PAPER_SEED = 42
#: ``paper-time``: the number of contiguous parts; each repetition tests on two of them.
PAPER_TIME_PARTS = 10


def paper_time_pairs(n_repeats: int = 10, seed: int = PAPER_SEED,
                     n_parts: int = PAPER_TIME_PARTS) -> list[tuple[int, int]]:
    """The pairs of parts tested by each repetition of ``paper-time``: the first
    ``n_repeats`` rows of a seeded permutation of all pairs (distinct pairs; a part may be
    in several or none)."""
    pairs = list(itertools.combinations(range(n_parts), 2))
    if not 1 <= n_repeats <= len(pairs):
        raise ValueError(f"paper-time: {n_repeats} repetitions; there are {len(pairs)} pairs "
                         f"of {n_parts} parts")
    chosen = np.random.RandomState(seed).permutation(pairs)[:n_repeats]
    return [(int(a), int(b)) for a, b in chosen]


def paper_time_folds(manifest: Manifest, n_folds, seed: int) -> list:
    """The ``paper-time`` folds (module docstring)."""
    n_repeats = 10 if n_folds is None else n_folds
    if len(manifest) < 2 * PAPER_TIME_PARTS:
        raise ValueError(f"{manifest.corpus}: paper-time needs at least {2 * PAPER_TIME_PARTS} "
                         f"utterances ({PAPER_TIME_PARTS} parts), the manifest has "
                         f"{len(manifest)}")
    order = np.random.default_rng(seed).permutation(len(manifest))
    parts = [order[test] for _, test in KFold(n_splits=PAPER_TIME_PARTS).split(order)]
    pairs = paper_time_pairs(n_repeats, seed)
    return test_selected_folds(manifest, [np.concatenate([parts[a], parts[b]]) for a, b in pairs],
                               [[f"part{a}", f"part{b}"] for a, b in pairs])


def code_groups(manifest: Manifest) -> np.ndarray:
    """The released code's "speaker" of each utterance (IEMOCAP: the dialog prefix)."""
    if manifest.corpus == "IEMOCAP":
        # seperate_speaker_id_iemocap: basename[:6] = dialog prefix "Ses01F".
        return np.asarray([u.utterance_id[:6] for u in manifest])
    return np.asarray([str(u.speaker) for u in manifest])


SPLIT = PaperSplit(
    name="lightsernet",
    protocols={"paper": kfold_test_folds, "paper-time": paper_time_folds},
    default_seed=lambda manifest, protocol: PAPER_SEED,
    overlapping=("paper-time",))

CODE_SPEAKER_SPLIT = PaperSplit(
    name="lightsernet_speaker",
    protocols={"paper": lambda manifest, n_folds, seed: group_test_folds(
        manifest, code_groups(manifest))},
    default_seed=lambda manifest, protocol: PAPER_SEED)
