"""Per-fold embeddings of the test utterances and their t-SNE (one panel per fold).

Each fold's model embeds its own test utterances when the fold ends
(``fold_XX/embedding.npz``), so the run's figure needs no weights from earlier sessions.
``embedding_model(model)`` returns the model cut at the layer to show (e.g.
:func:`ser_tf.models.timnet.embedding_model`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ser_tf.training.rundir import EMBEDDING_FILE, WEIGHTS_FILE, fold_dir_name
from ser_tf.util.jsonio import content_hash


def store_fold_embedding(work_dir, fold, feature_set, build_model, embedding_model) -> Path:
    """``fold_XX/embedding.npz``: the embedding (``embedding_model(model)``: the model cut
    at the layer to show) of the fold's test utterances by its chosen weights, with their
    class indices, ids and the weights' sha256. Written when the fold ends, so the run's
    t-SNE does not need the weights to outlive that session."""
    fold_dir = Path(work_dir) / fold_dir_name(fold)
    model = build_model(len(feature_set.label_names))
    model.load_weights(fold_dir / WEIGHTS_FILE)
    embed = embedding_model(model)
    rows = feature_set.index_of(fold.test_ids)
    x = np.asarray(feature_set.features[rows], np.float32)
    # Plain eager calls: predict() would trace a new function for each fold's model.
    embedding = np.concatenate([np.asarray(embed(x[i:i + 64], training=False))
                                for i in range(0, len(x), 64)])
    path = fold_dir / EMBEDDING_FILE
    tmp = path.with_name(f".{EMBEDDING_FILE}.tmp.npz")
    np.savez_compressed(tmp, embedding=embedding, labels=feature_set.labels[rows],
                        ids=np.asarray(fold.test_ids),
                        weights_sha256=np.asarray(content_hash(fold_dir / WEIGHTS_FILE)))
    tmp.replace(path)  # complete or absent, like the fold's result.json
    return path


def ensure_fold_embedding(work_dir, fold, feature_set, build_model, embedding_model, *,
                          quiet: bool = False) -> dict:
    """The fold's ``embedding.npz`` contents, (re)computed from its weights when missing or
    stale (other test ids, or weights on disk with another hash), with a progress line
    unless ``quiet``; idempotent."""
    from ser_tf.util.status import fold_label, step

    path = Path(work_dir) / fold_dir_name(fold) / EMBEDDING_FILE
    weights = path.with_name(WEIGHTS_FILE)
    if path.is_file():
        with np.load(path) as stored:
            data = {key: stored[key] for key in stored.files}
        current = list(data["ids"]) == list(fold.test_ids) and (
            not weights.is_file() or str(data.get("weights_sha256")) == content_hash(weights))
        if current:
            return data
    with step(f"{fold_label(fold)}: embedding the test utterances", quiet=quiet):
        stored_path = store_fold_embedding(work_dir, fold, feature_set, build_model,
                                           embedding_model)
    with np.load(stored_path) as stored:
        return {key: stored[key] for key in stored.files}


def fold_embeddings(work_dir, folds, feature_set, build_model, embedding_model, *,
                    quiet: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fused embedding of every fold's test utterances by that fold's chosen weights,
    stacked over folds, their class indices and their fold numbers (1-based), via
    :func:`ensure_fold_embedding` per fold."""
    stored = [ensure_fold_embedding(work_dir, fold, feature_set, build_model, embedding_model,
                                    quiet=quiet) for fold in folds]
    return (np.concatenate([s["embedding"] for s in stored]),
            np.concatenate([s["labels"] for s in stored]),
            np.concatenate([np.full(len(s["labels"]), number)
                            for number, s in enumerate(stored, start=1)]))


def write_tsne(work_dir, folds, feature_set, build_model, embedding_model, path, *,
               seed: int = 0, title: str | None = None, quiet: bool = False) -> dict:
    """``tsne.png`` of :func:`fold_embeddings`, one panel per fold; returns what the record
    says about it.

    The folds' models are different networks whose embeddings share no coordinate system:
    one t-SNE of all folds together separated the folds (ten islands of mixed classes), so
    each fold's test utterances get their own t-SNE, each showing how well that fold's
    model separates the classes. Unless ``quiet``, a line says while it runs (tens of
    seconds on a busy machine)."""
    from ser_tf.reporting.plots import TSNE_MIN_SAMPLES, plot_tsne

    from threadpoolctl import threadpool_limits

    from ser_tf.util.status import step

    x, y, fold_numbers = fold_embeddings(work_dir, folds, feature_set, build_model,
                                         embedding_model, quiet=quiet)
    # A fold with fewer test utterances than t-SNE accepts (tiny corpora) gets no panel,
    # and the record says so, rather than the finished run losing its record.
    numbers, counts = np.unique(fold_numbers, return_counts=True)
    too_small = [int(n) for n, c in zip(numbers, counts) if c < TSNE_MIN_SAMPLES]
    keep = ~np.isin(fold_numbers, too_small)
    about = {"layer": "fused", "points": int(keep.sum()), "dims": int(x.shape[1]),
             "folds": len(folds), "seed": int(seed), "panels": "one t-SNE per fold",
             **({"folds_without_panel": too_small} if too_small else {})}
    if not keep.any():
        return {"file": None, **about}
    # One OpenMP thread: the embedding does not depend on the thread count, and on a busy
    # machine sklearn's spinning OpenMP workers made a 14-point t-SNE take 5 s, not 0.1 s.
    with step(f"t-SNE of {len(folds)} folds' test embeddings ({int(keep.sum())} points)",
              quiet=quiet), threadpool_limits(1):
        plot_tsne(x[keep], y[keep], list(feature_set.label_names), path, seed=seed,
                  title=title, groups=fold_numbers[keep], group_title="fold {}")
    return {"file": Path(path).name, **about}
