"""The feature-statistics check for audio unlike the training data."""

import warnings

import numpy as np
import pytest

from ser_tf.lite.ood import distances, feature_summary, fit_reference, rates, unfamiliar


def corpus(n, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 1, 6)) * 0.3 + shift
    return base + rng.normal(size=(n, 40, 6))  # (utterances, frames, coefficients)


def test_summary_is_mean_and_std_over_frames():
    x = np.arange(24, dtype=float).reshape(1, 4, 6)
    s = feature_summary(x)
    assert s.shape == (1, 12)
    assert np.allclose(s[0, :6], x[0].mean(0)) and np.allclose(s[0, 6:], x[0].std(0))
    with pytest.raises(ValueError, match="frames, coefficients"):
        feature_summary(np.zeros((3, 4)))


def test_threshold_flags_the_quantile_of_training_and_catches_shifted_audio():
    train = feature_summary(corpus(500))
    reference = fit_reference(train, quantile=0.95)
    assert np.mean(distances(train, reference) > reference["threshold"]) == pytest.approx(0.05, abs=0.01)
    measured = rates(feature_summary(corpus(400, seed=1)), feature_summary(corpus(400, 2.0, 2)),
                     reference)
    assert measured["false_alarm"] < 12 and measured["detection"] > 95
    # Detection alone: no in-domain set, no NaN and no NumPy empty-mean warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alone = rates(None, feature_summary(corpus(400, 2.0, 2)), reference)
    assert alone["false_alarm"] is None and alone["n_in_domain"] == 0
    assert alone["detection"] == measured["detection"]
    flagged, d = unfamiliar(feature_summary(corpus(5, 2.0, 3)), reference)
    assert flagged and d > reference["threshold"]
    assert not unfamiliar(feature_summary(corpus(5, seed=4)), reference)[0]


def test_reference_needs_data_and_a_sane_quantile():
    with pytest.raises(ValueError, match="at least 2"):
        fit_reference(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="quantile"):
        fit_reference(np.zeros((3, 4)), quantile=1.0)


def correlated(n, flip=False, seed=0):
    """Summaries whose dimensions move together (as MFCC statistics do); ``flip`` breaks the
    correlation without changing any dimension's mean or spread."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, 1))
    own = rng.normal(size=(n, 8)) * 0.1
    x = shared + own
    if flip:
        x[:, 4:] = -shared + own[:, 4:]
    return x


def test_whitened_distance_catches_what_per_dimension_statistics_cannot():
    train, other = correlated(600), correlated(300, flip=True, seed=1)
    # Same per-dimension means and spreads: the old per-dimension distance is blind ...
    diag = fit_reference(train, 0.95, kind="per-dimension")
    assert "precision" not in diag
    blind = rates(None, other, diag)["detection"]
    assert blind < 20
    # ... the whitened one is not, and keeps its false alarms on new data of the same kind.
    reference = fit_reference(train, 0.95)
    assert reference["kind"] == "mahalanobis" and 0 <= reference["shrinkage"] <= 1
    measured = rates(correlated(400, seed=2), other, reference)
    # (a flipped summary whose shared part is near 0 looks like training: not 100 %)
    assert measured["detection"] > 75 > 3 * blind and measured["false_alarm"] < 10


def test_ledoit_wolf_shrinks_more_with_fewer_samples():
    from ser_tf.lite.ood import ledoit_wolf_shrinkage

    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(30, 30))  # a covariance far from a multiple of the identity
    few, many = rng.normal(size=(10, 30)) @ mixing, rng.normal(size=(5000, 30)) @ mixing
    assert ledoit_wolf_shrinkage(few) > 2 * ledoit_wolf_shrinkage(many)
    assert ledoit_wolf_shrinkage(many) < 0.1
    # Data whose covariance IS a multiple of the identity: shrink all the way.
    assert ledoit_wolf_shrinkage(rng.normal(size=(5000, 30))) > 0.9
    assert 0.0 <= ledoit_wolf_shrinkage(few) <= 1.0


def test_held_out_threshold_is_set_for_new_speakers():
    """Each speaker has its own offset: a threshold from the training utterances' own
    distances flags far more of a new speaker than its quantile promises; the
    leave-one-speaker-out threshold does not."""
    def speakers(n_speakers, per, seed):
        r = np.random.default_rng(seed)
        offsets = r.normal(size=(n_speakers, 1, 8)) * 0.8
        x = offsets + r.normal(size=(n_speakers, per, 8))
        return x.reshape(-1, 8), np.repeat(np.arange(n_speakers), per)

    train, groups = speakers(10, 40, 4)
    new, _ = speakers(40, 40, 5)
    own = fit_reference(train, 0.95)
    held = fit_reference(train, 0.95, groups=groups)
    assert held["threshold"] > own["threshold"]
    assert held["threshold_from"].startswith("held-out 10")
    assert rates(new, None, own)["false_alarm"] > 10
    assert rates(new, None, held)["false_alarm"] < 10
    with pytest.raises(ValueError, match="one group per summary"):
        fit_reference(train, groups=groups[:-1])
    with pytest.raises(ValueError, match="at least 2 different"):
        fit_reference(train, groups=np.zeros(len(train)))
    with pytest.raises(ValueError, match="kind must be one of"):
        fit_reference(train, kind="cosine")


def test_references_from_before_the_whitened_distance_still_work():
    s = np.array([[0.0, 1.0], [2.0, 3.0], [1.0, 2.5]])
    old = {"mean": [1.0, 2.0], "scale": [1.0, 1.0], "threshold": 0.8, "quantile": 0.99}
    # per-dimension RMS: sqrt(((0-1)^2 + (1-2)^2) / 2) = 1; sqrt((0 + 0.25) / 2)
    assert np.allclose(distances(s, old), [1.0, 1.0, np.sqrt(0.125)])
    assert unfamiliar(s, old) == (True, 1.0)
    assert unfamiliar(s[2:], old)[0] is False


def test_unusable_references_are_refused_not_scored_another_way():
    from ser_tf.lite.ood import prepare_reference

    good = fit_reference(correlated(100), 0.95)
    no_precision = {k: v for k, v in good.items() if k != "precision"}
    with pytest.raises(ValueError, match="'mahalanobis' without its precision"):
        distances(correlated(3), no_precision)
    with pytest.raises(ValueError, match=r"precision must be \(8, 8\)"):
        prepare_reference({**good, "precision": [[1.0]]})
    with pytest.raises(ValueError, match="unusable"):
        prepare_reference({**good, "precision": [[1.0], [1.0, 2.0]]})
    with pytest.raises(ValueError, match="unusable"):
        prepare_reference({k: v for k, v in good.items() if k != "threshold"})
    # A NaN anywhere would make every distance NaN and silently flag nothing (a NaN or
    # non-positive scale is refused as not positive already).
    for name, value in (("mean", np.nan), ("scale", np.inf), ("precision", np.nan)):
        broken = np.array(good[name], dtype=float)
        broken.flat[0] = value
        with pytest.raises(ValueError, match=f"{name} holds values that are not finite"):
            prepare_reference({**good, name: broken.tolist()})


def test_constant_training_summaries_still_flag_any_departure():
    train = np.tile([[100.0, -50.0, 7.0]], (20, 1))
    reference = fit_reference(train, 0.95)
    assert distances(train[:1], reference)[0] == pytest.approx(0.0)
    assert distances(np.array([[100.0, -50.0, 8.0]]), reference)[0] > reference["threshold"]
