"""Does this audio look like what the model was trained on? A feature-statistics check.

A model trained on ten German actors answers confidently on anything; the answer means
little for audio unlike its training data (another language, a phone line, noise). This
check summarises each window's features (the recipe's front-end: mean and standard
deviation of every coefficient over the frames) and measures how far the summary lies from
the training utterances' summaries: a Mahalanobis distance (standardised per dimension,
then whitened with the training summaries' correlation, shrunk towards the identity by the
Ledoit-Wolf estimate so that ~80 dimensions from a few hundred utterances give a stable
inverse), divided by the number of dimensions under the root so that typical training audio
sits near 1.

Why not the simpler per-dimension distance: languages and corpora differ less in any one
coefficient's level than in how the coefficients move together. Measured with the shipped
TIM-Net EMO-DB model (:mod:`ser_tf.bench.ood`, record
``experiments/results/bench/ood-detectors-timnet-emodb.json``), the per-dimension RMS
distance told held-out EMO-DB speakers from RAVDESS with an AUC of 0.67, the whitened one
with 0.92. The model's own calibrated top probability did no better than chance (AUC 0.47):
it is as sure on RAVDESS as on new EMO-DB speakers.

The threshold is a quantile (default 95 %) of distances of utterances the reference did not
see: with ``groups`` (speakers), each speaker is scored by a reference fitted on the others,
so about 5 % of *new* speakers' recordings like the training data are flagged on average,
unevenly over speakers (a threshold from the training utterances' own distances would flag
far more of them). The
shipped record states the false-alarm rate measured on held-out speakers of the training
corpus and the detection rate on other corpora.

References from before this check (per-dimension only: no ``precision`` key) still work.

NumPy only: it runs in the TF-free runtime.
"""

from __future__ import annotations

import numpy as np

DEFAULT_QUANTILE = 0.95
KINDS = ("mahalanobis", "per-dimension")


def feature_summary(features) -> np.ndarray:
    """``(n, frames, coefficients)`` features -> ``(n, 2 * coefficients)``: the mean and
    the standard deviation of each coefficient over the frames."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] < 1:
        raise ValueError(f"features must be (n, frames, coefficients), got shape {x.shape}")
    return np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1)


def ledoit_wolf_shrinkage(x) -> float:
    """The Ledoit-Wolf (2004) weight of the scaled identity in the shrunk covariance of the
    rows of ``x`` (``(n, p)``), in [0, 1]: ``min(b², d²) / d²`` with ``d²`` the squared
    distance of the sample covariance from ``μI`` and ``b²`` the estimated error of the
    sample covariance."""
    x = np.asarray(x, dtype=np.float64)
    n, p = x.shape
    centred = x - x.mean(axis=0)
    covariance = centred.T @ centred / n
    mu = np.trace(covariance) / p
    d2 = float(np.sum((covariance - mu * np.eye(p)) ** 2))
    if d2 <= 0:
        return 1.0
    norms = np.sum(centred ** 2, axis=1)
    # sum_i ||x_i x_i^T - S||_F^2 = sum_i ||x_i||^4 - n ||S||_F^2 (the cross terms sum to
    # 2 n ||S||_F^2 since S = sum_i x_i x_i^T / n)
    b2 = float(np.sum(norms ** 2) - n * np.sum(covariance ** 2)) / n ** 2
    return float(min(max(b2, 0.0), d2) / d2)


def _statistics(s: np.ndarray, kind: str = KINDS[0]) -> dict:
    mean = s.mean(axis=0)
    # A floor on the spread: a coefficient constant in training would make any change in
    # it an infinite distance.
    scale = np.maximum(s.std(axis=0), 1e-3 * (np.abs(mean).mean() + 1e-6))
    if kind == "per-dimension":
        return {"mean": mean, "scale": scale, "precision": None, "shrinkage": None}
    z = (s - mean) / scale
    shrinkage = ledoit_wolf_shrinkage(z)
    centred = z - z.mean(axis=0)
    covariance = centred.T @ centred / len(z)
    # Training summaries all alike (trace 0): the identity, so that any departure counts.
    level = np.trace(covariance) / covariance.shape[0]
    target = (level if level > 0 else 1.0) * np.eye(covariance.shape[0])
    shrunk = (1.0 - shrinkage) * covariance + shrinkage * target
    # pinv: a summary dimension that is a linear function of others leaves the shrunk
    # matrix invertible in theory but ill-conditioned in float64. Rounded to 6 significant
    # digits (the sidecar carries it as text; the distance changes by ~1e-6 relative), and
    # the threshold is computed with the rounded matrix.
    precision = np.linalg.pinv(shrunk, hermitian=True)
    precision = np.asarray([[float(f"{v:.6g}") for v in row] for row in precision])
    return {"mean": mean, "scale": scale, "precision": precision, "shrinkage": shrinkage}


def _check_groups(groups, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must give one group per summary ({n}), got shape {g.shape}")
    if len(np.unique(g)) < 2:
        raise ValueError("groups must hold at least 2 different groups (speakers)")
    return g


def held_out_distances(summaries, groups, kind: str = KINDS[0]) -> np.ndarray:
    """Each summary's distance from a reference fitted on the other groups' summaries
    (leave one group, e.g. speaker, out)."""
    s = np.asarray(summaries, dtype=np.float64)
    g = _check_groups(groups, len(s))
    out = np.empty(len(s))
    for group in np.unique(g):
        inside = g == group
        out[inside] = distances(s[inside], _statistics(s[~inside], kind))
    return out


def fit_reference(summaries, quantile: float = DEFAULT_QUANTILE, *, groups=None,
                  kind: str = KINDS[0]) -> dict:
    """The training data's reference: the summaries' mean, spread and (``kind``
    ``"mahalanobis"``) shrunk precision, and as the threshold the ``quantile`` of held-out
    distances (``groups``: one speaker per summary; each speaker scored by a reference of
    the others) or, without ``groups``, of the training summaries' own distances (flags
    more new speakers than ``1 - quantile``). ``"per-dimension"``: the RMS standardised
    distance, blind to how dimensions move together (kept for comparison)."""
    s = np.asarray(summaries, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 2:
        raise ValueError(f"need at least 2 summaries (n, dims), got shape {s.shape}")
    if not 0.5 <= quantile < 1.0:
        raise ValueError(f"quantile must be in [0.5, 1), got {quantile}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    g = _check_groups(groups, len(s))
    stats = _statistics(s, kind)
    reference = {"kind": kind, "mean": stats["mean"].tolist(), "scale": stats["scale"].tolist(),
                 "quantile": float(quantile)}
    if stats["precision"] is not None:
        reference.update(precision=stats["precision"].tolist(),
                         shrinkage=float(stats["shrinkage"]))
    scored = distances(s, stats) if g is None else held_out_distances(s, g, kind)
    reference["threshold"] = float(np.quantile(scored, quantile))
    reference["threshold_from"] = "training utterances" if g is None else \
        f"held-out {len(np.unique(g))} groups (leave one out)"
    return reference


def prepare_reference(reference: dict) -> dict:
    """``reference`` checked and with its vectors and matrix as float64 arrays (done once,
    e.g. when a model's sidecar is read, not per window). Raises ValueError for a
    reference that cannot be used: missing or non-numeric parts, shapes that disagree, a
    ``"mahalanobis"`` reference without its precision, a threshold that is not a number."""
    try:
        mean = np.asarray(reference["mean"], dtype=np.float64)
        scale = np.asarray(reference["scale"], dtype=np.float64)
        threshold = float(reference["threshold"])
        precision = reference.get("precision")
        precision = None if precision is None else np.asarray(precision, dtype=np.float64)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"out-of-domain reference unusable: {error!r}") from None
    if mean.ndim != 1 or scale.shape != mean.shape or not np.all(scale > 0):
        raise ValueError(f"out-of-domain reference: mean and scale must be vectors of one "
                         f"length, scale positive; got {mean.shape}, {scale.shape}")
    # A NaN would make every distance NaN, and NaN > threshold is False: nothing would ever
    # be flagged, silently.
    for name, values in (("mean", mean), ("scale", scale), ("precision", precision)):
        if values is not None and not np.all(np.isfinite(values)):
            raise ValueError(f"out-of-domain reference: {name} holds values that are not "
                             "finite numbers (NaN or infinity)")
    if precision is None and reference.get("kind") == "mahalanobis":
        raise ValueError("out-of-domain reference: kind 'mahalanobis' without its precision")
    if precision is not None and precision.shape != (mean.size, mean.size):
        raise ValueError(f"out-of-domain reference: precision must be ({mean.size}, "
                         f"{mean.size}), got {precision.shape}")
    if not np.isfinite(threshold):
        raise ValueError(f"out-of-domain reference: threshold must be a number, got {threshold}")
    return {**reference, "mean": mean, "scale": scale, "precision": precision,
            "threshold": threshold}


def distances(summaries, reference: dict) -> np.ndarray:
    """Distance of each summary from the reference: Mahalanobis per dimension (with a
    ``precision``), else the RMS standardised distance (references from before it).
    ``reference``: as fitted or read from a sidecar; :func:`prepare_reference` it once when
    it serves many calls."""
    if not isinstance(reference.get("mean"), np.ndarray):
        reference = prepare_reference(reference)
    s = np.asarray(summaries, dtype=np.float64)
    mean, scale, precision = reference["mean"], reference["scale"], reference["precision"]
    if s.ndim != 2 or s.shape[1] != mean.size:
        raise ValueError(f"summaries must be (n, {mean.size}), got shape {s.shape}")
    z = (s - mean) / scale
    if precision is None:
        return np.sqrt(np.mean(z ** 2, axis=1))
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", z, precision, z), 0.0) / mean.size)


def unfamiliar(summaries, reference: dict) -> tuple[bool, float]:
    """For one recording's windows: ``(flagged, distance)``, the distance being the median
    over its windows (a single odd window, e.g. a cough, does not flag a recording)."""
    d = float(np.median(distances(summaries, reference)))
    return d > float(reference["threshold"]), d


def rates(in_domain, other, reference: dict) -> dict:
    """False-alarm rate (in %) on in-domain summaries and detection rate on ``other``.

    A rate of no summaries is ``None`` (not a NaN with NumPy's empty-mean warning): pass
    ``in_domain=None`` (or an empty array) to measure detection alone."""
    def flagged(summaries):
        if summaries is None or not len(summaries):
            return None
        return float(100.0 * np.mean(distances(summaries, reference) > reference["threshold"]))

    n_in = 0 if in_domain is None else int(len(in_domain))
    result = {"false_alarm": flagged(in_domain), "n_in_domain": n_in}
    if other is not None and len(other):
        result.update(detection=flagged(other), n_other=int(len(other)))
    return result
