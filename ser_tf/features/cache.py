"""On-disk feature cache: every recording's features are computed once per recipe.

A cache entry is keyed by what determines its content and nothing else::

    key = sha256(canonical JSON of {"format": FORMAT_VERSION, "audio": sha256(file bytes),
                                    "recipe": recipe.config(), "augmentation": descriptor})

and stored as ``cache_dir/<key[:2]>/<key>.npy``. Renaming or moving a corpus keeps its
cache; editing a file or any recipe parameter (sample rate, segment, front-end) gives a new
key. Entries are written to a temporary file and renamed into place (``os.replace``), so
an interrupted run or two runs sharing a cache never leave a half-written entry; an entry
that cannot be read anyway is treated as missing and recomputed.

Caveat: the key covers the recipe's *configuration*, not the front-end's code. A change to
a front-end that alters its output for the same configuration must bump
:data:`FORMAT_VERSION` (or the recipe's config) so old entries are not reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ser_tf.data.audio import AudioError, read_audio
from ser_tf.data.manifest import Manifest
from ser_tf.features import augment as aug
from ser_tf.util.jsonio import content_hash  # noqa: F401 - part of this module's API

#: Environment variable overriding the default cache folder.
CACHE_ENV = "SER_TF_CACHE"
#: Bump when cached features computed by older code must not be reused.
FORMAT_VERSION = 1
ON_BAD_AUDIO = ("fail", "skip")


def default_cache_dir() -> Path:
    """``$SER_TF_CACHE``, else ``~/.cache/ser-tf/features``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ser-tf" / "features"


def canonical_json(obj) -> str:
    """Key-sorted, whitespace-free JSON; NaN/inf are rejected (no canonical form).

    Note ``3`` and ``3.0`` serialise differently, so they key differently: at worst a
    needless recomputation, never a wrong cache hit."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def cache_key(audio_hash: str, recipe_config: dict, augmentation: dict | None = None) -> str:
    """The cache key of one (recording, recipe, augmentation) triple."""
    payload = {"format": FORMAT_VERSION, "audio": str(audio_hash),
               "recipe": recipe_config, "augmentation": augmentation}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def cache_path(cache_dir, key: str) -> Path:
    """``cache_dir/<key[:2]>/<key>.npy`` (256 subfolders keep directories small)."""
    return Path(cache_dir) / key[:2] / f"{key}.npy"


def save_atomic(path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` via a temporary file in the same folder + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cached(path) -> np.ndarray | None:
    """A cached array, or ``None`` when absent or unreadable (then it gets recomputed)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None


@dataclass
class FeatureSet:
    """Features of a list of utterances, rows in manifest order.

    ``labels`` are class indices into ``label_names`` (-1 for an utterance without a
    categorical label). ``paths`` are the cache files, for :func:`ser_tf.features.pipeline.
    stream_dataset`; ``features`` is ``None`` when extraction was run with ``load=False``.
    ``source_ids`` is the original utterance of each row (differs from ``ids`` for
    augmented copies). ``stats``: computed, cached, seconds, files_per_second, skipped.
    """

    features: np.ndarray | None
    labels: np.ndarray
    ids: list[str]
    label_names: tuple[str, ...]
    paths: list[Path]
    source_ids: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.source_ids:
            self.source_ids = list(self.ids)
        n = len(self.ids)
        if len(self.labels) != n or len(self.paths) != n or len(self.source_ids) != n or (
                self.features is not None and len(self.features) != n):
            raise ValueError("FeatureSet fields differ in length")

    def __len__(self) -> int:
        return len(self.ids)

    def concat(self, other: "FeatureSet") -> "FeatureSet":
        """Rows of both sets (e.g. originals + their AWGN copies); stats are not merged."""
        if tuple(other.label_names) != tuple(self.label_names):
            raise ValueError("cannot concatenate feature sets with different label sets")
        clash = set(self.ids) & set(other.ids)
        if clash:
            raise ValueError(f"ids in both feature sets, e.g. {sorted(clash)[:3]}")
        both_loaded = self.features is not None and other.features is not None
        features = np.concatenate([self.features, other.features]) if both_loaded else None
        return FeatureSet(features, np.concatenate([self.labels, other.labels]),
                          self.ids + other.ids, self.label_names, self.paths + other.paths,
                          self.source_ids + other.source_ids, {})

    def index_of(self, ids: Iterable[str]) -> np.ndarray:
        """Row positions of these ids (KeyError for an unknown id)."""
        where = {uid: i for i, uid in enumerate(self.ids)}
        ids = list(ids)
        missing = [i for i in ids if i not in where]
        if missing:
            raise KeyError(f"ids not in this feature set: {missing[:5]}")
        return np.asarray([where[i] for i in ids], dtype=np.int64)


@dataclass
class _Job:
    """One cache entry to produce: which file, which label, which waveform transform."""

    uid: str
    source_id: str
    path: str
    label: int
    augmentation: dict | None = None
    transform: Callable[[np.ndarray, str], np.ndarray] | None = None  # (audio, audio_hash)


def _label_indices(manifest: Manifest) -> dict[str, int]:
    index = {name: i for i, name in enumerate(manifest.labels)}
    return {u.utterance_id: index[u.label] if u.label is not None else -1 for u in manifest}


def _run(jobs: list[_Job], manifest: Manifest, recipe, cache_dir, batch_size: int,
         on_bad_audio: str, progress: bool, load: bool) -> FeatureSet:
    """Produce every job's entry (cached or computed) and assemble the FeatureSet."""
    if on_bad_audio not in ON_BAD_AUDIO:
        raise ValueError(f"on_bad_audio must be one of {ON_BAD_AUDIO}, got {on_bad_audio!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    config = recipe.config()
    canonical_json(config)  # fail early on a recipe whose config is not JSON-able
    start = time.perf_counter()
    results: dict[str, np.ndarray | None] = {}
    paths: dict[str, Path] = {}
    skipped: list[dict] = []
    pending: list[tuple[str, np.ndarray]] = []
    counts = {"computed": 0, "cached": 0}

    def flush():
        # Equal-length segments are computed together; a recipe without segmentation can
        # give several lengths, each its own sub-batch.
        groups = defaultdict(list)
        for uid, segment in pending:
            groups[segment.shape].append((uid, segment))
        for group in groups.values():
            features = np.asarray(recipe.compute(np.stack([s for _, s in group])))
            if len(features) != len(group):
                raise ValueError(f"recipe {config.get('name')}: compute returned "
                                 f"{len(features)} rows for {len(group)} segments")
            for (uid, _), row in zip(group, features):
                save_atomic(paths[uid], row)
                results[uid] = row if load else None
                counts["computed"] += 1
        pending.clear()

    by_path: dict[str, list[_Job]] = defaultdict(list)
    for job in jobs:
        by_path[job.path].append(job)
    bar = progress_bar(len(by_path), progress, config.get("name", "features"))
    bad: list[str] = []
    for path, path_jobs in by_path.items():
        bar.update(1)
        try:
            audio_hash = content_hash(path)
        except OSError as err:
            error = AudioError(path, f"cannot be read: {err.strerror or err}")
            if _bad(error, on_bad_audio, skipped, bad, path_jobs, flush):
                continue
        todo = []
        for job in path_jobs:
            paths[job.uid] = cache_path(cache_dir, cache_key(audio_hash, config, job.augmentation))
            cached = load_cached(paths[job.uid])
            if cached is not None:
                results[job.uid] = cached if load else None
                counts["cached"] += 1
            else:
                todo.append(job)
        if not todo:
            continue
        try:
            audio, _ = read_audio(path, sr=recipe.sample_rate)
        except AudioError as error:
            _bad(error, on_bad_audio, skipped, bad, todo, flush)
            continue
        for job in todo:
            wave = job.transform(audio, audio_hash) if job.transform else audio
            pending.append((job.uid, np.asarray(recipe.segment_audio(wave), dtype=np.float32)))
        if len(pending) >= batch_size:
            flush()
    flush()
    bar.close()

    bad_ids = set(bad)
    kept = [job for job in jobs if job.uid not in bad_ids]
    seconds = time.perf_counter() - start
    processed = counts["computed"] + counts["cached"]
    stats = {**counts, "seconds": seconds,
             "files_per_second": processed / seconds if seconds > 0 else float("inf"),
             "skipped": skipped}
    features = None
    if load:
        rows = [results[j.uid] for j in kept]
        if len({r.shape for r in rows}) > 1:
            raise ValueError(f"recipe {config.get('name')}: feature shapes differ between files "
                             "(no fixed-length segmentation); use load=False and stream them")
        features = np.stack(rows) if rows else np.zeros((0,), dtype=np.float32)
    return FeatureSet(features=features, labels=np.asarray([j.label for j in kept], dtype=np.int64),
                      ids=[j.uid for j in kept], label_names=tuple(manifest.labels),
                      paths=[paths[j.uid] for j in kept], source_ids=[j.source_id for j in kept],
                      stats=stats)


def _bad(error: AudioError, on_bad_audio: str, skipped: list, bad: list, jobs: list[_Job],
         flush: Callable[[], None]) -> bool:
    """Handle an unusable file: skip it, or save the pending batch and re-raise.

    Saving first means everything computed before the bad file stays in the cache, so the
    run after the fix computes only what is still missing."""
    if on_bad_audio == "fail":
        flush()
        raise error
    skipped.append({"path": error.path, "reason": error.reason})
    bad.extend(job.uid for job in jobs)
    return True


def progress_bar(total: int, enabled: bool, name: str):
    """A tqdm bar of ``total`` files (or an object doing nothing when not ``enabled``)."""
    if enabled:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, desc=f"features {name}", unit="file")
        except ImportError:  # tqdm is a dependency, but a bar is never worth a crash
            pass

    class _Silent:
        def update(self, n):
            pass

        def close(self):
            pass

    return _Silent()


def extract_features(manifest: Manifest, recipe, cache_dir=None, *, batch_size: int = 64,
                     on_bad_audio: str = "fail", progress: bool = False,
                     load: bool = True) -> FeatureSet:
    """Features of every utterance in ``manifest``, computed once and then read from cache.

    Each file is read with :func:`read_audio` at ``recipe.sample_rate``, cut by
    ``recipe.segment_audio`` and computed in batches of ``batch_size`` by
    ``recipe.compute``; each row is saved to the cache as soon as its batch is done.

    Args:
        manifest: the utterances (rows of the result keep its order).
        recipe: a :class:`ser_tf.features.recipes.FeatureRecipe`.
        cache_dir: default :func:`default_cache_dir`.
        on_bad_audio: ``"fail"`` raises the :class:`AudioError` naming the file (features
            computed before it are kept in the cache); ``"skip"`` leaves it out and lists
            it in ``stats["skipped"]``.
        progress: show a tqdm bar.
        load: keep the features in memory (``FeatureSet.features``); ``False`` only
            fills the cache and ``paths``, for streaming corpora too large for memory.
    """
    if not isinstance(manifest, Manifest):
        raise TypeError(f"manifest must be a Manifest, got {type(manifest).__name__}")
    labels = _label_indices(manifest)
    jobs = [_Job(u.utterance_id, u.utterance_id, u.path, labels[u.utterance_id])
            for u in manifest]
    return _run(jobs, manifest, recipe, cache_dir, batch_size, on_bad_audio, progress, load)


def extract_augmented_features(manifest: Manifest, recipe, cache_dir=None, *,
                               train_ids: Iterable[str], test_ids: Iterable[str],
                               val_ids: Iterable[str] = (), k: int = 1,
                               snr_range: tuple[float, float] = (15.0, 30.0), seed: int = 0,
                               batch_size: int = 64, on_bad_audio: str = "fail",
                               progress: bool = False, load: bool = True) -> FeatureSet:
    """Features of ``k`` AWGN copies of each *training* utterance of one fold (cached).

    The noise is added to the audio at the recipe's sample rate, before segmentation. Like
    :func:`ser_tf.features.augment.augment_training_split`, it requires the fold's held-out
    ids and raises :class:`~ser_tf.features.augment.LeakageError` if a train id is among
    them. Copy ``j`` of a file depends only on (file content, ``seed``, ``j``,
    ``snr_range``), which is also its cache descriptor. Rows carry ids
    ``"<id>+awgn<j>"`` and ``source_ids`` naming the original utterance; the originals
    themselves come from :func:`extract_features`.
    """
    train = aug.check_train_only(train_ids, test_ids, val_ids)
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    low, high = aug._check_snr_range(snr_range)
    train_manifest = manifest.subset(train)
    labels = _label_indices(train_manifest)

    def noisy(copy):
        def transform(audio, audio_hash):
            rng = aug.copy_rng(seed, audio_hash, copy)
            return aug.add_awgn(audio, float(rng.uniform(low, high)), rng)
        return transform

    jobs = [_Job(aug.copy_id(u.utterance_id, j), u.utterance_id, u.path, labels[u.utterance_id],
                 {"kind": "awgn", "snr_range": [low, high], "seed": int(seed), "copy": j},
                 noisy(j))
            for u in train_manifest for j in range(int(k))]
    return _run(jobs, manifest, recipe, cache_dir, batch_size, on_bad_audio, progress, load)
