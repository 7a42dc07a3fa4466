"""Evaluation protocols: which utterances train, select and test each fold.

Every experiment names its protocol and every run record stores it, because the same model
scores very differently under each:

``paper``
    What the original code did. Both papers pick the best epoch *on the test fold*
    (validation = test), which is optimistic; :func:`paper_protocol_warning` gives the
    sentence every output must print.

    * ``paper_style="timnet"`` (Ye et al., ICASSP 2023, ``Code/Model.py`` of
      github.com/Jiaxin-Ye/TIM-Net_SER): ``sklearn.model_selection.KFold(n_splits=10,
      shuffle=True, random_state=seed)`` over the utterances in the order of the authors'
      feature file (:func:`~ser_tf.data.timnet_features.authors_file_order`: class by
      class, file names in natural order inside a class); the checkpoint with the best
      ``val_accuracy`` on the test fold is kept. Seeds per corpus from the README:
      :data:`TIMNET_PAPER_SEEDS`.
    * ``paper_style="lightsernet"`` (Aftab et al., ICASSP 2022): random, non-stratified,
      shuffled 10-fold; the best epoch is chosen on the test fold (``BestModelWeights`` /
      ``ReturnBestEarlyStopping`` monitoring ``val_accuracy`` on the test set). Seed
      :data:`LIGHTSERNET_PAPER_SEED` (``hyperparameters.SEED``).
    * ``paper_style="lightsernet_speaker"``: the split of the *released* Light-SERNet code
      (``filter_dataset.seperate_speaker_id_emodb`` / ``..._iemocap``): one fold per speaker,
      and for IEMOCAP one fold per dialog prefix (``Ses01F``, ``Ses01M``, ...). The IEMOCAP
      prefix names who leads the dialog, not who speaks, so those folds are *not* speaker
      independent. Test-fold selection as above. Caveat: the released code's segmentation
      step renames every file to the name of another file of the same class (an unseeded
      shuffle), so its "speaker" folds in effect held random files, sized like each
      speaker's share; this style applies the *intended* speaker split, which is harder
      than what that code measured. ``"lightsernet"`` (random folds) is the closer match
      to the published numbers, which the released code also reports pooled over folds
      (``summary.pooled`` in our records) rather than as a mean of per-fold scores.

``paper-time``
    Light-SERNet's code as it stood when the paper was written (October 2021; replaced in
    January 2022 by speaker splits): the utterances are shuffled (the authors used
    ``tf.random.shuffle`` under global seed 42; here a NumPy permutation with the seed, so
    not their order) and cut into 10 contiguous parts (``KFold(10)`` without shuffling);
    each of ``n_folds`` repetitions tests on the union of two parts (≈ 20 %), the pairs
    being the first ``n_folds`` rows of ``np.random.RandomState(seed).permutation`` of the
    45 pairs ``itertools.combinations(range(10), 2)`` (as the authors drew them), and
    trains on the rest; no validation split, the best epoch is chosen on the test set.
    Test sets overlap across repetitions (a part can be tested 0 to 4 times) and the
    published figures are of all predictions pooled into one confusion matrix (weighted
    F1 from ``classification_report``): read ``summary.pooled`` of such a run.

``clean``
    ``StratifiedKFold(n_folds, shuffle=True, random_state=seed)``; a stratified validation
    split (``val_fraction`` of the training folds) chooses the epoch; the test fold is used
    once.

``speaker``
    Speaker-independent: leave-one-speaker-out (or grouped k-fold by speaker with
    ``StratifiedGroupKFold`` when ``n_folds`` < number of speakers); IEMOCAP is
    leave-one-session-out. Validation holds out whole *training speakers*, so it is speaker
    independent too.

Folds are deterministic functions of (manifest order, protocol, n_folds, seed).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.model_selection import train_test_split

from ser_tf.data.manifest import Manifest
from ser_tf.data.manifest import natural_key as _natural_key
from ser_tf.data.timnet_features import authors_file_order

PROTOCOLS = ("paper", "paper-time", "clean", "speaker")
#: Protocols whose epoch is chosen on the test set (validation = test), as original code did.
TEST_SELECTING = ("paper", "paper-time")
#: ``paper-time``: the number of contiguous parts; each repetition tests on two of them.
PAPER_TIME_PARTS = 10
PAPER_STYLES = ("lightsernet", "timnet", "lightsernet_speaker")

#: ``--random_seed`` of the TIM-Net README per corpus (keys are ser_tf corpus names;
#: TIM-Net calls RAVDESS ``RAVDE``).
TIMNET_PAPER_SEEDS = {"CASIA": 32, "EMODB": 46, "EMOVO": 1, "IEMOCAP": 16, "RAVDESS": 46,
                      "SAVEE": 44}
#: ``hyperparameters.SEED`` of the Light-SERNet code.
LIGHTSERNET_PAPER_SEED = 42
#: Seed of the ``clean`` and ``speaker`` protocols when none is given.
DEFAULT_SEED = 0

FOLDS_FORMAT = "ser_tf.folds/1"

_PAPER_WARNING = ("Protocol 'paper': the best epoch was chosen on the test fold itself "
                  "(validation = test), as in the original code; these scores are optimistic "
                  "and not comparable with the 'clean' or 'speaker' protocols.")
_PAPER_TIME_WARNING = ("Protocol 'paper-time' (Light-SERNet's code of October 2021): the best "
                       "epoch was chosen on the test set itself, and the test sets are pairs "
                       "of random parts that overlap across repetitions, pooled into one "
                       "confusion matrix; these scores are optimistic and not comparable "
                       "with the 'clean' or 'speaker' protocols.")
_PAPER_LAST_WARNING = ("Protocol 'paper' with the last epoch's weights: nothing was chosen on "
                       "the test fold, but the folds are the original code's (utterances, not "
                       "speakers, split at random), so these scores are not comparable with "
                       "the 'speaker' protocol.")


@dataclass
class Fold:
    """One fold: utterance ids to train on, to choose the epoch on, and to test on.

    ``selection_on_test`` is true when ``val_ids`` are the test ids (paper protocol).
    ``test_groups`` / ``val_groups`` name the held-out speakers or sessions (speaker-grouped
    folds only; empty otherwise) so records can say "fold 3 = speaker 08".
    """

    index: int
    train_ids: list[str]
    val_ids: list[str]
    test_ids: list[str]
    selection_on_test: bool
    test_groups: list[str] = field(default_factory=list)
    val_groups: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"index": self.index, "train_ids": list(self.train_ids),
                "val_ids": list(self.val_ids), "test_ids": list(self.test_ids),
                "selection_on_test": bool(self.selection_on_test),
                "test_groups": list(self.test_groups), "val_groups": list(self.val_groups)}

    @classmethod
    def from_dict(cls, data: dict) -> "Fold":
        missing = {"index", "train_ids", "val_ids", "test_ids", "selection_on_test"} - set(data)
        if missing:
            raise ValueError(f"fold record lacks {sorted(missing)}")
        return cls(index=int(data["index"]), train_ids=[str(i) for i in data["train_ids"]],
                   val_ids=[str(i) for i in data["val_ids"]],
                   test_ids=[str(i) for i in data["test_ids"]],
                   selection_on_test=bool(data["selection_on_test"]),
                   test_groups=[str(g) for g in data.get("test_groups", [])],
                   val_groups=[str(g) for g in data.get("val_groups", [])])


def make_folds(manifest: Manifest, protocol: str, *, n_folds: int | None = 10,
               seed: int | None = None, val_fraction: float = 0.1,
               paper_style: str = "lightsernet") -> list[Fold]:
    """Split a manifest into folds under an evaluation protocol (see the module docstring).

    Args:
        manifest: the corpus; ids are listed in manifest order inside every fold.
        protocol: ``"paper"``, ``"paper-time"``, ``"clean"`` or ``"speaker"``.
        n_folds: number of folds (``paper-time``: repetitions, at most 45). ``speaker``: ``None`` or ≥ the number of speakers
            (sessions for IEMOCAP) means leave-one-out. Ignored by ``lightsernet_speaker``.
        seed: shuffling seed. ``None`` = the paper's seed for ``paper`` (per corpus for
            TIM-Net), :data:`DEFAULT_SEED` otherwise.
        val_fraction: share of the training part held out for validation (``clean``,
            ``speaker``; for ``speaker`` whole speakers are added until it is reached).
        paper_style: ``"lightsernet"``, ``"timnet"`` or ``"lightsernet_speaker"``.

    Returns:
        Folds with disjoint train/val/test ids (val = test for ``paper`` and ``paper-time``),
        checked by :func:`check_folds`; only ``paper-time`` test sets overlap across folds.
    """
    if not isinstance(manifest, Manifest):
        raise TypeError(f"manifest must be a Manifest, got {type(manifest).__name__}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if paper_style not in PAPER_STYLES:
        raise ValueError(f"paper_style must be one of {PAPER_STYLES}, got {paper_style!r}")
    if len(manifest) == 0:
        raise ValueError(f"{manifest.corpus}: empty manifest, nothing to split")
    if n_folds is not None and (isinstance(n_folds, bool) or not isinstance(n_folds, int)
                                or n_folds < 2):
        raise ValueError(f"n_folds must be an integer >= 2 (or None), got {n_folds!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    seed = _resolve_seed(manifest, protocol, paper_style, seed)

    if protocol == "paper":
        folds = _paper_folds(manifest, n_folds, seed, paper_style)
    elif protocol == "paper-time":
        folds = _paper_time_folds(manifest, n_folds, seed)
    elif protocol == "clean":
        folds = _clean_folds(manifest, n_folds, seed, val_fraction)
    else:
        folds = _speaker_folds(manifest, n_folds, seed, val_fraction)
    overlapping = protocol == "paper-time"
    check_folds(folds, manifest, speaker_independent=protocol == "speaker",
                partition=not overlapping, disjoint_tests=not overlapping)
    return folds


def _resolve_seed(manifest: Manifest, protocol: str, paper_style: str, seed) -> int:
    if seed is None:
        if protocol == "paper-time":
            return LIGHTSERNET_PAPER_SEED
        if protocol != "paper":
            return DEFAULT_SEED
        if paper_style == "timnet":
            if manifest.corpus not in TIMNET_PAPER_SEEDS:
                raise ValueError(f"TIM-Net has no paper seed for {manifest.corpus}; pass seed= "
                                 f"(known: {TIMNET_PAPER_SEEDS})")
            return TIMNET_PAPER_SEEDS[manifest.corpus]
        return LIGHTSERNET_PAPER_SEED
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def _labels_or_none(manifest: Manifest):
    # Continuous-only corpora (SEWA) have no class labels: fall back to unstratified splits.
    if any(u.label is None for u in manifest):
        return None
    return np.asarray(manifest.label_indices)


def _ids(manifest: Manifest, indices) -> list[str]:
    return [manifest[i].utterance_id for i in sorted(int(i) for i in indices)]


def _check_n_folds(manifest: Manifest, n_folds) -> int:
    n_folds = 10 if n_folds is None else n_folds
    if n_folds > len(manifest):
        raise ValueError(f"{manifest.corpus}: {n_folds} folds need at least {n_folds} "
                         f"utterances, the manifest has {len(manifest)}")
    return n_folds


def _paper_folds(manifest: Manifest, n_folds, seed: int, style: str) -> list[Fold]:
    if style == "lightsernet_speaker":
        groups = _lightsernet_code_groups(manifest)
        order = sorted({str(g) for g in groups}, key=_natural_key)
        splits = [np.flatnonzero(groups == g) for g in order]
        names = [[g] for g in order]
    else:
        # Both papers: plain KFold(shuffle) over the utterance order, no stratification;
        # for TIM-Net the order of the authors' feature file, so the folds are theirs.
        n_folds = _check_n_folds(manifest, n_folds)
        order = (authors_file_order(manifest) if style == "timnet"
                 else np.arange(len(manifest)))
        kfold = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = [order[test] for _, test in kfold.split(np.zeros(len(manifest)))]
        names = [[] for _ in splits]
    everything = np.arange(len(manifest))
    folds = []
    for i, test in enumerate(splits):
        test_ids = _ids(manifest, test)
        folds.append(Fold(index=i, train_ids=_ids(manifest, np.setdiff1d(everything, test)),
                          val_ids=list(test_ids), test_ids=test_ids, selection_on_test=True,
                          test_groups=names[i], val_groups=list(names[i])))
    return folds


def paper_time_pairs(n_repeats: int = 10, seed: int = LIGHTSERNET_PAPER_SEED,
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


def _paper_time_folds(manifest: Manifest, n_folds, seed: int) -> list[Fold]:
    n_repeats = 10 if n_folds is None else n_folds
    if len(manifest) < 2 * PAPER_TIME_PARTS:
        raise ValueError(f"{manifest.corpus}: paper-time needs at least {2 * PAPER_TIME_PARTS} "
                         f"utterances ({PAPER_TIME_PARTS} parts), the manifest has "
                         f"{len(manifest)}")
    order = np.random.default_rng(seed).permutation(len(manifest))
    parts = [order[test] for _, test in KFold(n_splits=PAPER_TIME_PARTS).split(order)]
    everything = np.arange(len(manifest))
    folds = []
    for i, (a, b) in enumerate(paper_time_pairs(n_repeats, seed)):
        test = np.concatenate([parts[a], parts[b]])
        test_ids = _ids(manifest, test)
        names = [f"part{a}", f"part{b}"]
        folds.append(Fold(index=i, train_ids=_ids(manifest, np.setdiff1d(everything, test)),
                          val_ids=list(test_ids), test_ids=test_ids, selection_on_test=True,
                          test_groups=names, val_groups=list(names)))
    return folds


def _lightsernet_code_groups(manifest: Manifest) -> np.ndarray:
    if manifest.corpus == "IEMOCAP":
        # seperate_speaker_id_iemocap: basename[:6] = dialog prefix "Ses01F".
        return np.asarray([u.utterance_id[:6] for u in manifest])
    return np.asarray([str(u.speaker) for u in manifest])


def _clean_folds(manifest: Manifest, n_folds, seed: int, val_fraction: float) -> list[Fold]:
    n_folds = _check_n_folds(manifest, n_folds)
    y = _labels_or_none(manifest)
    x = np.zeros(len(manifest))
    if y is None:
        splits = KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(x)
    else:
        splits = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(x, y)
    folds = []
    for i, (pool, test) in enumerate(splits):
        n_val = max(1, int(round(val_fraction * len(pool))))
        if n_val >= len(pool):
            raise ValueError(f"{manifest.corpus}: fold {i} has {len(pool)} training "
                             "utterances, too few to hold out a validation split")
        stratify = None
        if y is not None:
            counts = np.bincount(y[pool])
            present = counts[counts > 0]
            # train_test_split can only stratify when every class can give one utterance to
            # each side; tiny manifests fall back to a random split.
            if present.min() >= 2 and len(present) <= n_val <= len(pool) - len(present):
                stratify = y[pool]
        train, val = train_test_split(pool, test_size=n_val, stratify=stratify,
                                      random_state=_fold_seed(seed, i))
        folds.append(Fold(index=i, train_ids=_ids(manifest, train), val_ids=_ids(manifest, val),
                          test_ids=_ids(manifest, test), selection_on_test=False))
    return folds


def _fold_seed(seed: int, index: int) -> int:
    # One independent, reproducible stream per fold (changing one fold never shifts others).
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def holdout_groups(manifest: Manifest) -> np.ndarray:
    """The unit a ``speaker`` test fold holds out: the speaker, or the session for IEMOCAP."""
    if manifest.corpus == "IEMOCAP":
        missing = [u.utterance_id for u in manifest if "session" not in u.extra]
        if missing:
            raise ValueError(f"IEMOCAP utterances without extra['session'], e.g. {missing[:3]}")
        return np.asarray([f"Session{u.extra['session']}" for u in manifest])
    return np.asarray([str(u.speaker) for u in manifest])


def _speaker_folds(manifest: Manifest, n_folds, seed: int, val_fraction: float) -> list[Fold]:
    groups = holdout_groups(manifest)
    speakers = np.asarray([str(u.speaker) for u in manifest])
    names = sorted({str(g) for g in groups}, key=_natural_key)
    if len(set(speakers)) < 3:
        raise ValueError(f"{manifest.corpus}: speaker-independent folds need at least 3 "
                         f"speakers (test, validation, training), found {len(set(speakers))}")
    x = np.zeros(len(manifest))
    if n_folds is None or n_folds >= len(names):
        splits = [np.flatnonzero(groups == g) for g in names]
    else:
        y = _labels_or_none(manifest)
        if y is None:
            splitter = GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        else:
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = [test for _, test in splitter.split(x, y, groups)]
    everything = np.arange(len(manifest))
    folds = []
    for i, test in enumerate(splits):
        pool = np.setdiff1d(everything, test)
        val, val_speakers = _hold_out_speakers(speakers, pool, val_fraction, _fold_seed(seed, i))
        train = np.setdiff1d(pool, val)
        folds.append(Fold(index=i, train_ids=_ids(manifest, train), val_ids=_ids(manifest, val),
                          test_ids=_ids(manifest, test), selection_on_test=False,
                          test_groups=sorted({str(g) for g in groups[test]}, key=_natural_key),
                          val_groups=val_speakers))
    return folds


def _hold_out_speakers(speakers: np.ndarray, pool: np.ndarray, val_fraction: float,
                       seed: int) -> tuple[np.ndarray, list[str]]:
    """Whole training speakers, in a seeded random order, until ``val_fraction`` is reached.

    The unit is the speaker even for IEMOCAP: one held-out speaker of the training sessions
    is ~12 % of the pool, a whole session ~25 %."""
    candidates = sorted({str(s) for s in speakers[pool]}, key=_natural_key)
    if len(candidates) < 2:
        raise ValueError("a fold's training part has fewer than 2 speakers; cannot hold out a "
                         "speaker-independent validation set")
    order = np.random.default_rng(seed).permutation(len(candidates))
    target = val_fraction * len(pool)
    chosen, size = [], 0
    for k in order[:-1]:  # always leave at least one speaker to train on
        chosen.append(candidates[k])
        size += int(np.sum(speakers[pool] == candidates[k]))
        if size >= target:
            break
    val = pool[np.isin(speakers[pool], chosen)]
    return val, sorted(chosen, key=_natural_key)


def check_folds(folds: list[Fold], manifest: Manifest | None = None, *,
                partition: bool = True, speaker_independent: bool = False,
                disjoint_tests: bool = True) -> None:
    """Raise ``AssertionError`` on leakage: overlapping train/val/test ids in a fold, val ≠ test
    while ``selection_on_test``, unknown ids, test folds that do not partition the corpus
    (``partition``), a speaker shared across train/val/test (``speaker_independent``), or
    an utterance tested in two folds (``disjoint_tests``; off only for ``paper-time``)."""
    if not folds:
        raise AssertionError("no folds")
    by_id = {u.utterance_id: u for u in manifest} if manifest is not None else None
    seen_test: set[str] = set()
    for fold in folds:
        train, val, test = set(fold.train_ids), set(fold.val_ids), set(fold.test_ids)
        name = f"fold {fold.index}"
        for part, ids in (("train", fold.train_ids), ("val", fold.val_ids),
                          ("test", fold.test_ids)):
            if len(set(ids)) != len(ids):
                raise AssertionError(f"{name}: duplicate ids in {part}")
            if not ids:
                raise AssertionError(f"{name}: empty {part} split")
        if train & test or train & val:
            raise AssertionError(f"{name}: training ids leak into validation or test")
        if fold.selection_on_test:
            if val != test:
                raise AssertionError(f"{name}: selection_on_test but val_ids != test_ids")
        elif val & test:
            raise AssertionError(f"{name}: validation and test share ids")
        if disjoint_tests and seen_test & test:
            raise AssertionError(f"{name}: test ids already tested in an earlier fold")
        seen_test |= test
        if by_id is not None:
            unknown = (train | val | test) - set(by_id)
            if unknown:
                raise AssertionError(f"{name}: ids not in the manifest, e.g. {sorted(unknown)[:3]}")
            if speaker_independent:
                spk = {part: {by_id[i].speaker for i in ids}
                       for part, ids in (("train", train), ("val", val), ("test", test))}
                if spk["train"] & spk["val"] or spk["train"] & spk["test"] \
                        or spk["val"] & spk["test"]:
                    raise AssertionError(f"{name}: a speaker appears in two of train/val/test")
    if partition and by_id is not None and seen_test != set(by_id):
        raise AssertionError(f"test folds cover {len(seen_test)} of {len(by_id)} utterances")


def folds_digest(folds: list[Fold]) -> str:
    """SHA-256 (hex) of the fold assignment: index, ids per split and ``selection_on_test``.

    Two runs with the same digest trained and tested on exactly the same utterances."""
    payload = [{k: v for k, v in f.to_dict().items() if k not in ("test_groups", "val_groups")}
               for f in folds]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_folds(folds: list[Fold], path, *, metadata: dict | None = None) -> Path:
    """Write folds as JSON (``{"format", "digest", "metadata", "folds": [...]}``)."""
    if not folds or not all(isinstance(f, Fold) for f in folds):
        raise ValueError("folds must be a non-empty list of Fold")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"format": FOLDS_FORMAT, "digest": folds_digest(folds),
              "metadata": dict(metadata or {}), "folds": [f.to_dict() for f in folds]}
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def load_folds(path) -> list[Fold]:
    """Read folds written by :func:`save_folds`; the stored digest must match the contents."""
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    if record.get("format") != FOLDS_FORMAT:
        raise ValueError(f"{path}: not a folds file (format {record.get('format')!r}, "
                         f"expected {FOLDS_FORMAT!r})")
    folds = [Fold.from_dict(d) for d in record["folds"]]
    if record.get("digest") and record["digest"] != folds_digest(folds):
        raise ValueError(f"{path}: fold contents do not match the stored digest (edited?)")
    return folds


def paper_protocol_warning(protocol: str, checkpoint: str | None = None,
                           patience: int | None = None) -> str | None:
    """The sentence to print with every result of the ``paper`` protocol; ``None`` otherwise.

    With ``checkpoint="last"`` and no early stopping (``patience`` None) nothing is chosen
    on the test fold, so the sentence says only what remains: the original random folds.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "paper-time":
        return _PAPER_TIME_WARNING
    if protocol != "paper":
        return None
    return _PAPER_LAST_WARNING if checkpoint == "last" and patience is None else _PAPER_WARNING
