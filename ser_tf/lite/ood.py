"""Does this audio look like what the model was trained on? A feature-statistics check.

A model trained on ten German actors answers confidently on anything; the answer means
little for audio unlike its training data (another language, a phone line, noise). This
check summarises each window's features (the recipe's front-end: mean and standard
deviation of every coefficient over the frames), standardises the summary with the
training utterances' mean and spread, and takes the root-mean-square of the result: a
distance that is about 1 for typical training audio and grows as audio departs from it.
The threshold is a high quantile (default 99 %) of the training utterances' distances, so
about 1 % of audio like the training data is flagged by construction; the shipped record
states the false-alarm rate measured on held-out speakers of the training corpus and the
detection rate on other corpora.

NumPy only: it runs in the TF-free runtime.
"""

from __future__ import annotations

import numpy as np

DEFAULT_QUANTILE = 0.99


def feature_summary(features) -> np.ndarray:
    """``(n, frames, coefficients)`` features -> ``(n, 2 * coefficients)``: the mean and
    the standard deviation of each coefficient over the frames."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] < 1:
        raise ValueError(f"features must be (n, frames, coefficients), got shape {x.shape}")
    return np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1)


def fit_reference(summaries, quantile: float = DEFAULT_QUANTILE) -> dict:
    """The training data's reference: per-dimension mean and spread of the summaries, and
    the ``quantile`` of the training summaries' own distances as the threshold."""
    s = np.asarray(summaries, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 2:
        raise ValueError(f"need at least 2 summaries (n, dims), got shape {s.shape}")
    if not 0.5 <= quantile < 1.0:
        raise ValueError(f"quantile must be in [0.5, 1), got {quantile}")
    mean = s.mean(axis=0)
    # A floor on the spread: a coefficient constant in training would make any change in
    # it an infinite distance.
    scale = np.maximum(s.std(axis=0), 1e-3 * (np.abs(mean).mean() + 1e-6))
    reference = {"mean": mean.tolist(), "scale": scale.tolist(), "quantile": float(quantile)}
    reference["threshold"] = float(np.quantile(distances(s, reference), quantile))
    return reference


def distances(summaries, reference: dict) -> np.ndarray:
    """RMS standardised distance of each summary from the reference."""
    s = np.asarray(summaries, dtype=np.float64)
    mean = np.asarray(reference["mean"], dtype=np.float64)
    scale = np.asarray(reference["scale"], dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != mean.size:
        raise ValueError(f"summaries must be (n, {mean.size}), got shape {s.shape}")
    return np.sqrt(np.mean(((s - mean) / scale) ** 2, axis=1))


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
