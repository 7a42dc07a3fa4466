"""Evaluation protocols: which utterances train, select and test each fold.

Every experiment names its protocol and every run record stores it, because the same model
scores very differently under each:

``paper`` (and other protocols of a paper's own code, such as ``paper-time``)
    What the original code did, as the paper's :class:`PaperSplit` (in
    ``ser_tf/papers/<name>/folds.py``) defines it. Original code typically picks the best
    epoch *on the test fold* (validation = test), which is optimistic;
    :func:`paper_protocol_warning` gives the sentence every output must print. Shared
    building blocks: :func:`kfold_test_folds` (shuffled ``KFold`` over an utterance order)
    and :func:`group_test_folds` (one fold per group).

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
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.model_selection import train_test_split

from ser_tf.data.manifest import Manifest
from ser_tf.data.manifest import natural_key as _natural_key

PROTOCOLS = ("paper", "paper-time", "clean", "speaker")
#: Protocols every corpus has; the others come from a paper's :class:`PaperSplit`.
SHARED_PROTOCOLS = ("clean", "speaker")
#: Protocols whose epoch is chosen on the test set (validation = test), as original code did.
TEST_SELECTING = ("paper", "paper-time")
#: Seed of the ``clean`` and ``speaker`` protocols when none is given.
DEFAULT_SEED = 0

FOLDS_FORMAT = "ser_tf.folds/1"

_PAPER_WARNING = ("Protocol 'paper': the best epoch was chosen on the test fold itself "
                  "(validation = test), as in the original code; these scores are optimistic "
                  "and not comparable with the 'clean' or 'speaker' protocols.")
_PAPER_TIME_WARNING = ("Protocol 'paper-time' (the original code as the paper was written): the "
                       "best epoch was chosen on the test set itself, and the test sets are pairs "
                       "of random parts that overlap across repetitions, pooled into one "
                       "confusion matrix; these scores are optimistic and not comparable "
                       "with the 'clean' or 'speaker' protocols.")
_PAPER_VALIDATED_WARNING = ("Protocol 'paper' with a validation split of its own: nothing was "
                            "chosen on the test data, but utterances, not speakers, were split "
                            "at random as in the original code, so these scores are not "
                            "comparable with the 'speaker' protocol.")
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


@dataclass(frozen=True)
class PaperSplit:
    """How a paper's original code split a corpus: its own protocols and seed.

    ``name`` is stored in run configs (as ``paper_style``) and so in run ids;
    ``protocols`` maps each protocol of that code (``paper``, ``paper-time``, ...) to
    ``folds(manifest, n_folds, seed) -> list[Fold]``; ``default_seed(manifest, protocol)``
    is the code's seed; test sets of the protocols in ``overlapping`` may overlap across
    folds (repetitions of a random split), those of the others partition the corpus.
    """

    name: str
    protocols: Mapping[str, Callable[[Manifest, int | None, int], list]]
    default_seed: Callable[[Manifest, str], int]
    overlapping: tuple[str, ...] = ()


def make_folds(manifest: Manifest, protocol: str, *, n_folds: int | None = 10,
               seed: int | None = None, val_fraction: float = 0.1,
               paper_split: PaperSplit | None = None) -> list[Fold]:
    """Split a manifest into folds under an evaluation protocol (see the module docstring).

    Args:
        manifest: the corpus; ids are listed in manifest order inside every fold.
        protocol: ``"clean"``, ``"speaker"``, or a protocol of ``paper_split``.
        n_folds: number of folds (repetitions for a repeated random split). ``speaker``:
            ``None`` or ≥ the number of speakers (sessions for IEMOCAP) means leave-one-out.
        seed: shuffling seed. ``None`` = the paper's seed for its own protocols,
            :data:`DEFAULT_SEED` otherwise.
        val_fraction: share of the training part held out for validation (``clean``,
            ``speaker``; for ``speaker`` whole speakers are added until it is reached).
        paper_split: the paper's :class:`PaperSplit`, needed for its protocols.

    Returns:
        Folds with disjoint train/val/test ids (val = test for ``paper`` and ``paper-time``),
        checked by :func:`check_folds`; only ``paper-time`` test sets overlap across folds.
    """
    if not isinstance(manifest, Manifest):
        raise TypeError(f"manifest must be a Manifest, got {type(manifest).__name__}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol not in SHARED_PROTOCOLS and (paper_split is None
                                             or protocol not in paper_split.protocols):
        offered = sorted(paper_split.protocols) if paper_split is not None else []
        raise ValueError(f"protocol {protocol!r} is a paper's own split: pass the paper's "
                         f"PaperSplit (this one offers {offered or 'none'})")
    if len(manifest) == 0:
        raise ValueError(f"{manifest.corpus}: empty manifest, nothing to split")
    if n_folds is not None and (isinstance(n_folds, bool) or not isinstance(n_folds, int)
                                or n_folds < 2):
        raise ValueError(f"n_folds must be an integer >= 2 (or None), got {n_folds!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    seed = _resolve_seed(manifest, protocol, paper_split, seed)

    if protocol == "clean":
        folds = _clean_folds(manifest, n_folds, seed, val_fraction)
    elif protocol == "speaker":
        folds = _speaker_folds(manifest, n_folds, seed, val_fraction)
    else:
        folds = paper_split.protocols[protocol](manifest, n_folds, seed)
    overlapping = paper_split is not None and protocol in paper_split.overlapping
    check_folds(folds, manifest, speaker_independent=protocol == "speaker",
                partition=not overlapping, disjoint_tests=not overlapping)
    return folds


def _resolve_seed(manifest: Manifest, protocol: str, paper_split, seed) -> int:
    if seed is None:
        if protocol in SHARED_PROTOCOLS:
            return DEFAULT_SEED
        return int(paper_split.default_seed(manifest, protocol))
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


def check_n_folds(manifest: Manifest, n_folds) -> int:
    """``n_folds`` (10 when ``None``), checked against the corpus size."""
    return _check_n_folds(manifest, n_folds)


def ids_of(manifest: Manifest, indices) -> list[str]:
    """Utterance ids of manifest positions ``indices``, in manifest order."""
    return _ids(manifest, indices)


def test_selected_folds(manifest: Manifest, tests, names=None) -> list[Fold]:
    """Folds that test (and choose the epoch) on each of ``tests`` (arrays of manifest
    positions) and train on everything else: how original code without a validation split
    evaluated. ``names``: the held-out groups of each fold (e.g. a speaker)."""
    everything = np.arange(len(manifest))
    folds = []
    for i, test in enumerate(tests):
        test_ids = _ids(manifest, test)
        held = list(names[i]) if names is not None else []
        folds.append(Fold(index=i, train_ids=_ids(manifest, np.setdiff1d(everything, test)),
                          val_ids=list(test_ids), test_ids=test_ids, selection_on_test=True,
                          test_groups=held, val_groups=list(held)))
    return folds


def kfold_test_folds(manifest: Manifest, n_folds, seed: int, order=None) -> list[Fold]:
    """``KFold(n_folds, shuffle=True, random_state=seed)`` over the utterances in ``order``
    (manifest positions; default the manifest order), no stratification, the epoch chosen
    on the test fold: the split of much original SER code."""
    n_folds = _check_n_folds(manifest, n_folds)
    order = np.arange(len(manifest)) if order is None else np.asarray(order)
    kfold = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return test_selected_folds(manifest, [order[test] for _, test in
                                          kfold.split(np.zeros(len(manifest)))])


def group_test_folds(manifest: Manifest, groups) -> list[Fold]:
    """One fold per value of ``groups`` (one per utterance), in natural order, the epoch
    chosen on the test fold."""
    groups = np.asarray(groups)
    order = sorted({str(g) for g in groups}, key=_natural_key)
    return test_selected_folds(manifest, [np.flatnonzero(groups == g) for g in order],
                               [[g] for g in order])


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
                           patience: int | None = None, *,
                           selection_on_test: bool = True) -> str | None:
    """The sentence to print with every result of the ``paper`` protocol; ``None`` otherwise.

    With ``checkpoint="last"`` and no early stopping (``patience`` None), or folds whose
    validation ids are not their test ids (``selection_on_test=False``: a paper split with
    its own validation part), nothing is chosen on the test data, so the sentence says only
    what remains: the original random, not speaker-independent, split.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "paper-time":
        return _PAPER_TIME_WARNING
    if protocol != "paper":
        return None
    if not selection_on_test:  # the paper's split validates on ids apart from the test ids
        return _PAPER_VALIDATED_WARNING
    return _PAPER_LAST_WARNING if checkpoint == "last" and patience is None else _PAPER_WARNING
