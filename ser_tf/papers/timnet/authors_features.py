"""The TIM-Net authors' pre-extracted MFCC files (``Code/MFCC/<CORPUS>.npy`` of
github.com/Jiaxin-Ye/TIM-Net_SER) as a ser_tf :class:`~ser_tf.features.cache.FeatureSet`.

Such a file is a NumPy ``.npy`` holding one pickled ``dict``:

- ``"x"``: float array ``(N, frames, 39)``, the MFCC sequences (librosa at 22 050 Hz, the
  same front-end as our ``timnet-<CORPUS>`` recipes);
- ``"y"``: one-hot array ``(N, classes)``; column ``j`` is the ``j``-th class of the
  authors' label list for that corpus.

No audio, speakers or file names come with it, so the utterances get synthetic ids
``"0000"``, ``"0001"``, … in file order (the order the authors' KFold splits), speaker
``"unknown"`` (no speaker-independent protocol is possible), and the ``.npy`` as their path.

Class order. The authors' code lists each corpus's classes in alphabetical order of its
English names (``angry, boredom, disgust, fear, happy, neutral, sad`` for EMO-DB). This
is :data:`AUTHORS_CLASS_ORDER`, written in our label names; the loader maps the columns
onto the corpus's label order of :mod:`ser_tf.data.corpora` (which differs for EMO-DB and
RAVDESS), so class indices mean the same as in a run from audio. Pass ``column_labels``
when a file follows another order.

Security: ``allow_pickle=True`` can execute code stored in the file. Load only files from
a source you trust (the authors' release, your own exports).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ser_tf.data.manifest import Manifest, Utterance, natural_key
from ser_tf.util.errors import UserError
from ser_tf.util.jsonio import content_hash

#: The one-hot column order of the authors' files, in ser_tf label names.
AUTHORS_CLASS_ORDER = {
    "CASIA": ("anger", "fear", "happiness", "neutral", "sadness", "surprise"),
    "EMODB": ("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"),
    "EMOVO": ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"),
    "IEMOCAP": ("anger", "happiness", "neutral", "sadness"),
    "RAVDESS": ("anger", "calm", "disgust", "fear", "happiness", "neutral", "sadness",
                "surprise"),
    "SAVEE": ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"),
}
MFCC_COEFFICIENTS = 39


class TimnetFeaturesError(UserError, ValueError):
    """The file is not a TIM-Net feature file; the message names the file and the problem."""


def read_timnet_npy(path) -> tuple[np.ndarray, np.ndarray]:
    """``(x float32 (N, frames, 39), y float32 (N, classes))`` of one authors' ``.npy``,
    validated: a dict with ``x`` and ``y``, matching lengths, finite MFCCs, one-hot rows."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such TIM-Net feature file")
    try:
        loaded = np.load(path, allow_pickle=True)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as err:
        raise TimnetFeaturesError(f"{path}: not a readable .npy file ({err})") from err
    data = loaded.item() if isinstance(loaded, np.ndarray) and loaded.shape == () else loaded
    if not isinstance(data, dict):
        raise TimnetFeaturesError(f"{path}: expected a pickled dict with keys 'x' and 'y' "
                                  f"(the authors' format), got {type(data).__name__} "
                                  f"{getattr(data, 'shape', '')}")
    missing = [k for k in ("x", "y") if k not in data]
    if missing:
        raise TimnetFeaturesError(f"{path}: the dict lacks {missing} (has {sorted(data)})")
    try:
        x = np.asarray(data["x"], dtype=np.float32)
        y = np.asarray(data["y"], dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise TimnetFeaturesError(f"{path}: 'x' and 'y' must be numeric arrays ({err})") from err
    if x.ndim != 3 or x.shape[-1] != MFCC_COEFFICIENTS or 0 in x.shape:
        raise TimnetFeaturesError(f"{path}: 'x' must have shape (N, frames, "
                                  f"{MFCC_COEFFICIENTS}), got {x.shape}")
    if y.ndim != 2 or len(y) != len(x) or y.shape[1] < 2:
        raise TimnetFeaturesError(f"{path}: 'y' must be one-hot of shape ({len(x)}, classes "
                                  f">= 2), got {y.shape}")
    if not np.all(np.isfinite(x)):
        raise TimnetFeaturesError(f"{path}: 'x' contains NaN or infinite values")
    if not (np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)):
        bad = int(np.flatnonzero(~(((y == 0) | (y == 1)).all(1) & (y.sum(1) == 1)))[0])
        raise TimnetFeaturesError(f"{path}: 'y' is not one-hot (row {bad}: {y[bad].tolist()})")
    return x, y


def load_timnet_features(path, corpus: str, *, column_labels=None):
    """The authors' feature file as ``(manifest, feature_set)`` for ``run_experiment``.

    Args:
        path: the ``.npy`` file (see the module docstring; only trusted files).
        corpus: ser_tf corpus name (``EMODB``, ``RAVDESS``, ...); names the run's results
            folder and gives the label order of the FeatureSet.
        column_labels: the class of each one-hot column, in ser_tf names; default
            ``AUTHORS_CLASS_ORDER[corpus]``. When they are the corpus's labels (in any
            order) the classes are re-indexed to the corpus's order; otherwise these names,
            in this order, are the label set.

    Returns:
        ``Manifest`` (ids ``"0000"``…, speaker ``"unknown"``, path = the file) and a
        :class:`~ser_tf.features.cache.FeatureSet` with the MFCCs in memory; its ``stats``
        name the file and its sha256.
    """
    from ser_tf.data import get_corpus
    from ser_tf.features.cache import FeatureSet

    path = Path(path)
    corpus = corpus.upper()
    x, y = read_timnet_npy(path)
    if column_labels is None:
        if corpus not in AUTHORS_CLASS_ORDER:
            raise ValueError(f"no known TIM-Net class order for {corpus}; pass column_labels")
        column_labels = AUTHORS_CLASS_ORDER[corpus]
    column_labels = tuple(str(c).strip() for c in column_labels)
    if len(set(column_labels)) != len(column_labels) or "" in column_labels:
        raise ValueError(f"column labels must be distinct non-empty names, got {column_labels}")
    if len(column_labels) != y.shape[1]:
        raise TimnetFeaturesError(f"{path}: 'y' has {y.shape[1]} columns but {len(column_labels)}"
                                  f" class names were given ({', '.join(column_labels)})")
    try:
        corpus_labels = tuple(get_corpus(corpus).labels)
    except KeyError:
        corpus_labels = ()
    label_names = corpus_labels if set(corpus_labels) == set(column_labels) else column_labels
    remap = np.asarray([label_names.index(c) for c in column_labels], dtype=np.int64)
    labels = remap[y.argmax(axis=1)]

    width = max(4, len(str(len(x) - 1)))
    ids = [f"{i:0{width}d}" for i in range(len(x))]
    manifest = Manifest(corpus, label_names, [
        Utterance(uid, str(path), label_names[k], "unknown", corpus,
                  extra={"source": "timnet_npy", "row": i})
        for i, (uid, k) in enumerate(zip(ids, labels))])
    stats = {"computed": 0, "cached": 0, "seconds": 0.0, "skipped": [],
             "source": str(path), "sha256": content_hash(path), "rows": len(x),
             "column_labels": list(column_labels)}
    feature_set = FeatureSet(features=x, labels=labels, ids=ids, label_names=label_names,
                             paths=[path] * len(x), stats=stats)
    return manifest, feature_set


def authors_file_order(manifest: Manifest) -> np.ndarray:
    """Manifest indices in the row order of the authors' feature file for these utterances.

    ``Code/extract_feature.py`` stacks the rows class by class, in the corpus's
    :data:`AUTHORS_CLASS_ORDER`, and inside a class by the natural order of the file names,
    whatever folder a file came from. (Alphabetical label names instead when the corpus is
    not listed there or has a label outside its list.) Their ``KFold(shuffle=True)`` splits
    positions in that order, so the same utterances in another order (ours lists files by
    path) would get other folds. File names are unique inside a class for EMO-DB and
    RAVDESS, so there the order is the authors'; corpora whose names repeat across speaker
    folders (CASIA, SAVEE) were renamed by the authors in a way not published, and ties are
    broken by the full path. A manifest read from an authors' file is already in that
    order and is returned as it is.
    """
    if all(u.extra.get("source") == "timnet_npy" for u in manifest):
        return np.arange(len(manifest))
    classes = AUTHORS_CLASS_ORDER.get(manifest.corpus, ())
    if not set(manifest.labels) <= set(classes):
        classes = tuple(sorted(str(label) for label in manifest.labels))
    rank = {label: i for i, label in enumerate(classes)}
    # Unlabelled rows (continuous-only corpora) go last; the authors' files have none.
    keys = [(rank.get(u.label, len(rank)), natural_key(Path(u.path).stem),
             natural_key(u.path), i) for i, u in enumerate(manifest)]
    return np.asarray([key[-1] for key in sorted(keys)], dtype=np.int64)
