"""The out-of-domain detector comparison (ser_tf.bench.ood) on generated summaries."""

import numpy as np
import pytest

from ser_tf.bench.ood import auc, compare, confidence_detector


def recordings(n_speakers, per, *, flip=False, seed=0):
    """Window summaries whose dimensions move together; ``flip`` breaks that (same
    per-dimension statistics), the way another corpus differs."""
    rng = np.random.default_rng(seed)
    summaries, speakers = [], []
    for speaker in range(n_speakers):
        for _ in range(per):
            shared = rng.normal(size=(int(rng.integers(1, 3)), 1))
            x = shared + rng.normal(size=(len(shared), 8)) * 0.1
            if flip:
                x[:, 4:] = -shared + rng.normal(size=(len(shared), 4)) * 0.1
            summaries.append(x)
            speakers.append(f"s{speaker}")
    return {"summaries": summaries, "speakers": speakers,
            "max_probability": rng.uniform(0.3, 1.0, size=len(summaries))}


def test_auc_counts_pairs_and_ties():
    assert auc([0, 1], [2, 3]) == 1.0 and auc([2, 3], [0, 1]) == 0.0
    assert auc([1, 1], [1, 1]) == 0.5
    with pytest.raises(ValueError, match="auc needs scores on both sides"):
        auc([], [1])


def test_whitened_features_beat_per_dimension_and_chance_confidence_is_reported_as_chance():
    own, other = recordings(8, 30), recordings(4, 30, flip=True, seed=1)
    rows = compare(own, {"OTHER": other}, own_top=own["max_probability"])
    by = {(r["detector"], r["threshold_from"], r["quantile"]): r for r in rows}
    maha = by[("features, mahalanobis", "held-out", 0.95)]
    diag = by[("features, per-dimension", "held-out", 0.95)]
    assert maha["auc"]["OTHER"] > 0.8 > 0.65 > diag["auc"]["OTHER"]
    assert maha["detection"]["OTHER"] > 2 * diag["detection"]["OTHER"]
    # Held-out thresholds keep false alarms on new speakers near their promise.
    assert maha["false_alarm_new_speakers"] < 12
    # Top probabilities drawn alike on both sides: detection ~ false alarms, AUC ~ 0.5.
    conf = by[("calibrated top probability", "held-out", 0.95)]
    assert abs(conf["auc"]["OTHER"] - 0.5) < 0.1
    assert abs(conf["detection"]["OTHER"] - conf["false_alarm_new_speakers"]) < 6
    assert len(rows) == 2 * 2 * 2 + 2


def test_confidence_threshold_never_sees_the_speaker_it_judges():
    # Speaker s1 is far less sure than s0: a threshold fitted with s1 inside would flag
    # only part of it; without it (s0 only), all of it.
    top = np.r_[np.linspace(0.8, 1.0, 20), np.full(20, 0.4)]
    speakers = ["s0"] * 20 + ["s1"] * 20
    row = confidence_detector(top, speakers, {}, quantile=0.95)
    assert row["false_alarm_worst_speaker"] == 100.0


def test_feature_false_alarms_never_use_the_judged_speaker():
    """One speaker unlike all others: judged by a reference of the others it is flagged
    almost entirely; a reference that had seen it would flag far less of it."""
    from ser_tf.bench.ood import feature_detector

    own = recordings(6, 25)
    odd = recordings(1, 25, flip=True, seed=9)
    own["summaries"] += odd["summaries"]
    own["speakers"] += ["odd"] * len(odd["summaries"])
    row = feature_detector(own, {}, kind="mahalanobis", threshold="held-out", quantile=0.95)
    assert row["false_alarm_worst_speaker"] > 70


def test_shipped_row_scores_with_the_sidecar_reference():
    from ser_tf.bench.ood import shipped_detector
    from ser_tf.lite.ood import fit_reference

    own, other = recordings(8, 30), recordings(4, 30, flip=True, seed=1)
    reference = fit_reference(np.concatenate(own["summaries"]), 0.95)
    row = shipped_detector(own, {"OTHER": other}, reference)
    assert row["flagged_own_corpus_seen_speakers"] < 10 < row["detection"]["OTHER"]
    assert row["detector"] == "shipped sidecar (mahalanobis)"
