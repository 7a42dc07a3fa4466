"""Figures for run records and papers: confusion matrix, training curves, t-SNE.

Headless by construction: figures are built with matplotlib's object API
(``matplotlib.figure.Figure``, saved through the Agg canvas), never ``pyplot``, so nothing
needs a display and the process-wide backend is left alone.

* :func:`plot_confusion_matrix`: row-normalised percentages (recall per class on the
  diagonal) with the counts, the way SER papers print them (e.g. Light-SERNet's pooled
  "TotalConfusionMatrix").
* :func:`plot_training_curves`: loss and accuracy, train and validation, mean ± std over
  folds (TIM-Net's README shows such curves per corpus).
* :func:`plot_tsne`: 2-D t-SNE of learned features coloured by class (TIM-Net, Fig. 3),
  one panel per fold model when the features come from several (:func:`tsne_by_group`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

#: Fewest points t-SNE accepts (perplexity must stay below the sample count).
TSNE_MIN_SAMPLES = 4

ACCURACY_KEYS = ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy")


def _save(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def plot_confusion_matrix(cm, labels: Sequence[str], path: str | os.PathLike, *,
                          title: str | None = None) -> Path:
    """Confusion matrix (rows: true class, columns: predicted) as a labelled PNG.

    Colours and the first number of each cell are row percentages (so the diagonal is each
    class's recall, whose mean is UA); the count is printed below. Rows without samples
    stay 0.
    """
    cm = np.asarray(cm, dtype=float)
    k = len(labels)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {k} labels")
    totals = cm.sum(axis=1, keepdims=True)
    pct = np.divide(100 * cm, totals, out=np.zeros_like(cm), where=totals > 0)
    size = max(4.0, 0.9 * k + 2)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot()
    image = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of true class")
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            dark = pct[i, j] > 60  # white text on dark cells
            ax.text(j, i, f"{pct[i, j]:.1f}\n({int(round(cm[i, j]))})", ha="center", va="center",
                    fontsize=8, color="white" if dark else "black")
    ax.set_title(title or f"confusion matrix (n = {int(cm.sum())})")
    return _save(fig, path)


def curve_stats(histories: Sequence[Mapping], key: str):
    """Per-epoch mean, std and number of folds for ``key`` over folds of different lengths.

    Folds that stopped early simply stop contributing: epoch ``e`` is averaged over the
    folds that ran it (NaN-padding, no extrapolation, no truncation to the shortest fold,
    which would hide the late epochs of the others). ``None`` entries (epochs a resumed fit
    could not log) count as missing. Population std (ddof=0), like ``np.std``. Returns
    ``None`` when no fold has ``key``.
    """
    series = [np.array([np.nan if v is None else v for v in h[key]], dtype=float)
              for h in histories if h.get(key)]
    if not series:
        return None
    grid = np.full((len(series), max(len(s) for s in series)), np.nan)
    for row, s in zip(grid, series):
        row[: len(s)] = s
    present = ~np.isnan(grid)
    count = present.sum(axis=0)
    filled = np.where(present, grid, 0.0)
    mean = np.divide(filled.sum(axis=0), count, out=np.full(count.shape, np.nan), where=count > 0)
    dev = np.where(present, (grid - mean) ** 2, 0.0)
    std = np.sqrt(np.divide(dev.sum(axis=0), count, out=np.full(count.shape, np.nan),
                            where=count > 0))
    return mean, std, count


def accuracy_key(histories: Sequence[Mapping]) -> str | None:
    """The training-accuracy key these histories use (Keras names it several ways)."""
    keys = {k for h in histories for k in h}
    for key in ACCURACY_KEYS:
        if key in keys:
            return key
    return next((k for k in sorted(keys) if "acc" in k and not k.startswith("val_")), None)


def plot_training_curves(histories: Sequence[Mapping], path: str | os.PathLike, *,
                         title: str | None = None, val_label: str = "validation") -> Path:
    """Loss and accuracy per epoch, train and validation, mean ± std band over folds.

    ``histories`` are per-fold dicts of per-epoch lists (Keras ``History.history`` or
    :class:`ser_tf.training.progress.HistoryLog`). Folds may have different lengths
    (early stopping); see :func:`curve_stats`. Dotted vertical lines mark epochs after which
    fewer folds contribute. Pass ``val_label="test fold (selection)"`` for the ``paper``
    protocol, where the "validation" data is the test fold.
    """
    if not histories:
        raise ValueError("no histories to plot")
    acc = accuracy_key(histories)
    panels = [("loss", "loss")] + ([(acc, "accuracy")] if acc else [])
    fig = Figure(figsize=(5.5 * len(panels), 4))
    for i, (key, name) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        drops = set()
        for k, label, colour in ((key, "train", "tab:blue"), (f"val_{key}", val_label, "tab:orange")):
            stats = curve_stats(histories, k)
            if stats is None:
                continue
            mean, std, count = stats
            epochs = np.arange(1, len(mean) + 1)
            ax.plot(epochs, mean, color=colour, label=f"{label} (mean of {count.max()} folds)")
            ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.25, linewidth=0)
            drops.update(int(e) for e in epochs[1:][np.diff(count) < 0])
        for epoch in sorted(drops):
            ax.axvline(epoch + 0.5, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def tsne_embedding(features, *, seed: int = 0, perplexity: float = 30.0,
                   max_iter: int = 1000) -> np.ndarray:
    """2-D t-SNE (scikit-learn) of ``features`` (n × d; extra axes are flattened): n × 2.
    ``perplexity`` is lowered to ``(n - 1) / 3`` for small sets (t-SNE needs it below n);
    ``seed`` fixes the embedding; ``max_iter`` (sklearn's, ≥ 250)."""
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    if len(x) < TSNE_MIN_SAMPLES:
        raise ValueError(f"t-SNE needs at least {TSNE_MIN_SAMPLES} samples (got {len(x)})")
    perplexity = _effective_perplexity(perplexity, len(x))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                max_iter=max_iter, random_state=seed).fit_transform(x)


def _effective_perplexity(perplexity: float, n: int) -> float:
    return min(perplexity, (n - 1) / 3)


def tsne_by_group(features, groups, **tsne_options) -> dict:
    """One :func:`tsne_embedding` per group (``groups[i]`` names sample i's group), in
    sorted group order: ``{group: (sample indices, n × 2 coordinates)}``. For features
    from different networks (one model per fold), whose coordinates are not comparable:
    pooled into one t-SNE they separate by model, not by class."""
    groups = np.asarray(groups)
    if len(groups) != len(features):
        raise ValueError(f"{len(groups)} group labels for {len(features)} samples")
    out = {}
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        if len(rows) < TSNE_MIN_SAMPLES:
            raise ValueError(f"group {group.item()}: t-SNE needs at least "
                             f"{TSNE_MIN_SAMPLES} samples (got {len(rows)})")
        out[group.item()] = (rows, tsne_embedding(np.asarray(features)[rows], **tsne_options))
    return out


def plot_tsne(features, labels, label_names: Sequence[str], path: str | os.PathLike,
              seed: int = 0, *, groups=None, group_title: str = "fold {}",
              perplexity: float = 30.0, max_iter: int = 1000,
              title: str | None = None) -> Path:
    """t-SNE of ``features`` coloured by class (``labels``: indices into ``label_names``).

    Without ``groups``: one panel, one t-SNE of all samples. With ``groups`` (one per
    sample): one panel and one t-SNE per group (:func:`tsne_by_group`), titled
    ``group_title.format(group)``, and one legend for all."""
    x = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    y = np.asarray(labels)
    if len(x) != len(y):
        raise ValueError(f"t-SNE needs one label per sample (got {len(x)} features, "
                         f"{len(y)} labels)")
    options = {"seed": seed, "perplexity": perplexity, "max_iter": max_iter}
    if groups is None:
        panels = {None: (np.arange(len(x)), tsne_embedding(x, **options))}
    else:
        panels = tsne_by_group(x, groups, **options)
    columns = min(5, len(panels))
    rows = -(-len(panels) // columns)
    size = 5.5 if groups is None else 2.6
    fig = Figure(figsize=(size * columns + (0.5 if groups is None else 0), size * rows + 0.6))
    palette = colormaps["tab10" if len(label_names) <= 10 else "tab20"]
    for position, (group, (indices, embedded)) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, columns, position + 1)
        for index, name in enumerate(label_names):
            mask = y[indices] == index
            if mask.any():
                ax.scatter(embedded[mask, 0], embedded[mask, 1], s=10 if groups is None else 6,
                           color=palette(index % palette.N), label=name, alpha=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
        if group is not None:
            ax.set_title(f"{group_title.format(group)} ({len(indices)})", fontsize=9)
    if groups is None:
        ax.legend(fontsize=8, markerscale=1.5, loc="best")
        ax.set_title(title or f"t-SNE (perplexity {_effective_perplexity(perplexity, len(x)):g}, "
                              f"seed {seed})")
    else:
        present = [i for i in range(len(label_names)) if (y == i).any()]
        handles = [Line2D([], [], marker="o", linestyle="", color=palette(i % palette.N))
                   for i in present]
        fig.legend(handles, [label_names[i] for i in present], loc="lower center",
                   ncol=min(len(present), 8), fontsize=8)
        fig.suptitle(title or f"t-SNE per group (seed {seed})")
        fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(fig, path)
