"""Noise robustness: white noise added to the waveform before the features, seeded per
(seed, utterance, SNR); UA / WA per condition for a fold, stored in its result; the run's
summary and the report table."""

import argparse
import json

import numpy as np
import pytest

from ser_tf.data.manifest import Manifest, Utterance
from ser_tf.data.synthetic import write_wav
from ser_tf.features.recipes import FeatureRecipe
from ser_tf.training import robustness
from ser_tf.training.robustness import (evaluate_under_noise, features_under_noise,
                                        fold_noise_evaluation, noise_rng, noise_table,
                                        noisy_waveform, snr_list, summarise_noise)
from ser_tf.training.protocols import Fold

LABELS = ("low", "high")
# A small log-mel recipe: 1 s at 16 kHz, 40 bands (the suite's front-end, quick to compute).
RECIPE = FeatureRecipe("test_logmel", 16000, {"kind": "window", "offset": 0.0, "duration": 1.0},
                       {"kind": "log_mel", "frame_length": 400, "frame_step": 160,
                        "fft_length": 512, "num_mel_bins": 40, "log": "db"})


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise_audio")
    rows = []
    for i in range(6):
        path = write_wav(root / f"u{i}.wav", duration=1.0, class_index=i % 2, seed=i)
        rows.append(Utterance(f"u{i}", str(path), LABELS[i % 2], f"s{i % 3}", "GEN"))
    return rows


def test_snr_list_parses_and_rejects():
    assert snr_list("20,10,0") == [20.0, 10.0, 0.0]
    assert snr_list("-5, 2.5") == [-5.0, 2.5]
    assert snr_list("off") == [] and snr_list("none") == []
    for bad in ("", "20,20", "ten", "inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            snr_list(bad)


def test_noise_at_0_db_changes_the_features_and_is_reproducible(utterances):
    clean = features_under_noise(utterances, RECIPE, None, seed=1)
    noisy = features_under_noise(utterances, RECIPE, 0.0, seed=1)
    again = features_under_noise(utterances, RECIPE, 0.0, seed=1)
    other_seed = features_under_noise(utterances, RECIPE, 0.0, seed=2)
    assert clean.shape == noisy.shape == (6, *RECIPE.feature_shape())
    # At 0 dB the noise is as loud as the signal: the log-mel maps move by several dB.
    assert np.abs(noisy - clean).mean() > 3.0
    np.testing.assert_array_equal(noisy, again)
    assert not np.allclose(noisy, other_seed)
    # Per utterance: the same noise whatever the other utterances or their order.
    reversed_rows = features_under_noise(utterances[::-1][:3], RECIPE, 0.0, seed=1)
    np.testing.assert_array_equal(reversed_rows, noisy[::-1][:3])
    # Louder SNR, smaller change; and the SNR is exact for each draw.
    mild = features_under_noise(utterances, RECIPE, 20.0, seed=1)
    assert np.abs(mild - clean).mean() < np.abs(noisy - clean).mean()
    audio = np.sin(np.linspace(0, 200, 16000)).astype("float32")
    out = noisy_waveform(audio, 0.0, seed=1, utterance_id="u0")
    snr = 10 * np.log10(np.mean(audio.astype(float) ** 2) / np.mean((out - audio) ** 2))
    assert snr == pytest.approx(0.0, abs=1e-3)
    assert not np.array_equal(noise_rng(1, "u0", 0.0).standard_normal(4),
                              noise_rng(1, "u0", 10.0).standard_normal(4))


def test_each_condition_is_scored_on_its_own_features(utterances):
    clean = features_under_noise(utterances, RECIPE, None, seed=3)
    truth = np.array([LABELS.index(u.label) for u in utterances])

    def predict(features):
        # Right for features equal to the clean ones, wrong otherwise.
        right = np.array([np.allclose(f, c) for f, c in zip(features, clean)])
        return np.eye(2)[np.where(right, truth, 1 - truth)]

    result = evaluate_under_noise(predict, utterances, LABELS, RECIPE, [20.0, 0.0], seed=3)
    assert list(result["conditions"]) == ["clean", "20 dB", "0 dB"]
    assert result["conditions"]["clean"]["UA"] == result["conditions"]["clean"]["WA"] == 100.0
    assert result["conditions"]["0 dB"]["WA"] == 0.0 and result["n_utterances"] == 6
    assert result["conditions"]["20 dB"]["WA"] == 0.0
    # And the 20 dB condition is scored on its own noisy features, not another SNR's.
    mild = features_under_noise(utterances, RECIPE, 20.0, seed=3)

    def predict_mild(features):
        right = np.array([np.allclose(f, m) for f, m in zip(features, mild)])
        return np.eye(2)[np.where(right, truth, 1 - truth)]

    result = evaluate_under_noise(predict_mild, utterances, LABELS, RECIPE, [20.0, 0.0], seed=3)
    assert [result["conditions"][c]["WA"] for c in ("clean", "20 dB", "0 dB")] == [0.0, 100.0,
                                                                                   0.0]
    with pytest.raises(ValueError, match="not among"):
        evaluate_under_noise(predict, utterances, ("a", "b"), RECIPE, [0.0], seed=3)


def tiny_model(num_classes):
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(RECIPE.feature_shape()), keras.layers.Flatten(),
                             keras.layers.Dense(num_classes, activation="softmax")])


def test_fold_scores_are_stored_in_its_result_and_not_recomputed(utterances, tmp_path,
                                                                  monkeypatch):
    manifest = Manifest("GEN", LABELS, list(utterances))
    fold = Fold(0, ["u0", "u1"], ["u2"], ["u3", "u4", "u5"], selection_on_test=False)
    fold_dir = tmp_path / "fold_00"
    fold_dir.mkdir()
    tiny_model(2).save_weights(fold_dir / "final.weights.h5")
    (fold_dir / "result.json").write_text(json.dumps({"fold": 0, "metrics": {"UA": 50.0}}))

    row = fold_noise_evaluation(tmp_path, fold, manifest, RECIPE, tiny_model,
                                snrs_db=[10.0, 0.0], seed=5)
    assert set(row["conditions"]) == {"clean", "10 dB", "0 dB"}
    assert row["n_utterances"] == 3 and row["seed"] == 5 and row["fold"] == 0
    stored = json.loads((fold_dir / "result.json").read_text())
    assert stored["noise"] == row and stored["metrics"] == {"UA": 50.0}
    assert json.loads((fold_dir / "noise.json").read_text()) == row

    def must_not_run(*args, **kwargs):
        raise AssertionError("scored again")

    monkeypatch.setattr(robustness, "evaluate_under_noise", must_not_run)
    assert fold_noise_evaluation(tmp_path, fold, manifest, RECIPE, tiny_model,
                                 snrs_db=[0.0], seed=5) == row  # a subset: stored
    with pytest.raises(AssertionError, match="scored again"):  # another seed: scored
        fold_noise_evaluation(tmp_path, fold, manifest, RECIPE, tiny_model, snrs_db=[0.0],
                              seed=6)
    # Weights are machine-local: a fold trained in an earlier session keeps its stored
    # scores (the run record's summary is made of them), and nothing else.
    (fold_dir / "final.weights.h5").unlink()
    (fold_dir / "result.json").write_text(json.dumps({"fold": 0, "metrics": {"UA": 50.0}}))
    assert fold_noise_evaluation(tmp_path, fold, manifest, RECIPE, tiny_model,
                                 snrs_db=[0.0], seed=5) == row
    assert json.loads((fold_dir / "result.json").read_text())["noise"] == row
    assert fold_noise_evaluation(tmp_path, fold, manifest, RECIPE, tiny_model,
                                 snrs_db=[0.0], seed=6) is None  # not what was stored
    assert fold_noise_evaluation(tmp_path, fold, manifest, RECIPE, tiny_model,
                                 snrs_db=[5.0], seed=5) is None  # an SNR never scored
    (fold_dir / "noise.json").unlink()
    assert fold_noise_evaluation(tmp_path, fold, manifest, RECIPE, tiny_model,
                                 snrs_db=[0.0], seed=5) is None  # nothing stored, no weights


def _row(fold, clean, noisy):
    return {"fold": fold, "seed": 1, "snr_db": [0.0],
            "conditions": {"clean": {"UA": clean, "WA": clean + 1},
                           "0 dB": {"UA": noisy, "WA": noisy + 1}}}


def test_summary_over_folds_and_the_report_table():
    summary = summarise_noise([_row(0, 60.0, 30.0), _row(1, 70.0, 40.0)])
    clean, noisy = summary["conditions"]["clean"], summary["conditions"]["0 dB"]
    assert clean["UA"]["mean"] == 65.0 and clean["UA"]["std"] == pytest.approx(7.0711, 1e-4)
    assert noisy["drop_vs_clean"] == {"UA": 30.0, "WA": 30.0}
    assert summary["n_folds"] == 2 and summary["folds"] == [0, 1]
    assert "folds_without_scores" not in summary
    assert summarise_noise([_row(0, 60.0, 30.0), None])["folds_without_scores"] == [1]
    assert summarise_noise([_row(0, 60.0, 30.0)])["conditions"]["clean"]["UA"]["std"] == 0.0
    with pytest.raises(ValueError, match="no fold"):
        summarise_noise([None])
    table = noise_table([{"setting": "model=cnn", "protocol": "paper", "noise": summary,
                          "run_id": "paper-abc"},
                         {"setting": "model=transformer", "protocol": "speaker", "noise": None}],
                        snrs_db=[0.0])
    lines = table.splitlines()
    assert lines[0] == "| setting | protocol | clean UA / WA | 0 dB UA / WA | run id |"
    assert lines[2] == "| model=cnn | paper | 65.00 / 66.00 | 35.00 / 36.00 | paper-abc |"
    assert lines[3] == "| model=transformer | speaker | not run | not run |  |"


def test_run_summary_over_fewer_folds_than_the_run_says_so(utterances, tmp_path, capsys):
    # Fold 1 was scored in an earlier session (its weights are gone, its row stayed);
    # fold 2 has neither: the record's summary is of one fold, and the table and the
    # command's output say so instead of passing it off as the run's.
    from ser_tf.papers.cnn_family.hooks import make_after_folds

    manifest = Manifest("GEN", LABELS, list(utterances))
    folds = [Fold(0, ["u0", "u1"], ["u2"], ["u3"], selection_on_test=False),
             Fold(1, ["u3", "u4"], ["u5"], ["u0"], selection_on_test=False)]
    for fold in folds:
        (tmp_path / f"fold_{fold.index:02d}").mkdir()
    (tmp_path / "fold_00" / "noise.json").write_text(json.dumps(_row(0, 60.0, 30.0)))
    after_folds = make_after_folds(build=tiny_model, recipe=RECIPE, manifest=manifest,
                                   export_name=None, snrs_db=[0.0], seed=1,
                                   hparams_provenance=None, quiet=True)
    details, _ = after_folds(tmp_path, folds, None, [{}, {}])
    summary = details["noise_robustness"]
    assert summary["n_folds"] == 1 and summary["folds_without_scores"] == [1]
    assert "fold(s) 2" in capsys.readouterr().err
    row = noise_table([{"setting": "model=cnn", "protocol": "speaker", "noise": summary}],
                      snrs_db=[0.0]).splitlines()[2]
    assert row.startswith("| model=cnn (1 of 2 folds) | speaker | 60.00 / 61.00 |")
