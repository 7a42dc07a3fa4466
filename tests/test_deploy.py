"""The deployable model: epochs and expected accuracy from the finished speaker-independent
run, a temperature fitted on its validation speakers, a final model on every speaker,
shipped with sidecars and cards that say so."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from ser_tf.data.synthetic import make_emodb_like
from ser_tf.experiments import runner
from ser_tf.experiments.deploy import deploy
from ser_tf.export.deploy import CrossValidationNotFinished, cv_summary
from ser_tf.lite import LiteModel
from ser_tf.papers.lightsernet.experiment import SPEC, build_parser


@pytest.mark.slow
def test_deploy_from_a_finished_speaker_run(tmp_path):
    corpus = make_emodb_like(tmp_path / "emodb", per_class=8, duration=0.6, classes="WLNT",
                             speakers=("03", "08", "09", "10", "11", "12", "13", "14"))
    argv = ["--data-dir", str(corpus), "--results-dir", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--epochs", "4", "--folds", "2",
            "--protocol", "speaker", "--no-export", "--quiet", "--batch-size", "4"]
    args = build_parser().parse_args(argv)
    with pytest.raises(CrossValidationNotFinished, match="0 of 2 folds"):
        deploy(SPEC, args, prefix="toy", title="Toy", dest=tmp_path / "ship")
    runner.run(SPEC, args)
    cv = cv_summary(runner.plan(SPEC, args))
    results = sorted((tmp_path / "results").glob("lightsernet/EMODB/*.work/fold_*/result.json"))
    chosen = [json.loads(p.read_text())["chosen_epoch"] for p in results]
    assert cv["chosen_epochs"] == chosen and cv["epochs"] == int(np.floor(np.median(chosen) + .5))
    uas = [json.loads(p.read_text())["metrics"]["UA"] for p in results]
    assert cv["expected"]["UA"]["mean"] == pytest.approx(np.mean(uas))

    # The paper's own flag: the same command with --ship.
    out = runner.run(SPEC, build_parser().parse_args(
        argv + ["--ship", "--ship-dest", str(tmp_path / "ship")]))
    record = json.loads(out["record"].read_text())
    assert record["utterances"] == 32
    assert record["int8"]["int8"] is False  # no fold TFLite scores (--no-export): not shipped
    assert set(out["shipped"]) == {"float32", "float16", "dynamic_int8", "waveform-float32"}
    sidecar = json.loads((tmp_path / "ship" / "lightsernet-emodb-mfcc-float32.json").read_text())
    assert sidecar["calibration"]["temperature"] == pytest.approx(
        record["calibration"]["temperature"])
    assert sidecar["expected_accuracy"]["UA"]["mean"] == pytest.approx(np.mean(uas))
    assert sidecar["ood"]["threshold"] == pytest.approx(record["ood"]["reference"]["threshold"])
    assert len(record["ood"]["false_alarm_test_speakers"]["per_fold"]) == 2
    card = (tmp_path / "ship" / "lightsernet-emodb-mfcc-float32.md").read_text()
    assert "Out-of-domain warning" in card
    assert f"for {cv['epochs']} epochs" in card and "German" in card
    assert "Has not heard" in card and "new speakers" in card
    history = json.loads(next((tmp_path / "results").glob(
        "lightsernet/EMODB/deploy-*.work/history.json")).read_text())
    assert len(history["loss"]) == cv["epochs"]  # trained exactly the chosen epoch count
    lite = LiteModel(tmp_path / "ship" / "lightsernet-emodb-waveform-float32.tflite")
    assert lite.predict(np.zeros((1, 48000), np.float32)).shape == (1, 7)

    # Shipping again (e.g. after a card change) reuses the trained weights: same model,
    # no training, and no warning about the optimizer state the weights file holds.
    before = lite.predict(np.zeros((1, 48000), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        runner.run(SPEC, build_parser().parse_args(
            argv + ["--ship", "--ship-dest", str(tmp_path / "ship")]))
    again = LiteModel(tmp_path / "ship" / "lightsernet-emodb-waveform-float32.tflite")
    np.testing.assert_allclose(again.predict(np.zeros((1, 48000), np.float32)), before,
                               atol=1e-6)

    # --refresh-ood measures the check again and rewrites its parts only: the model files,
    # the calibration and the rest of the card stay; the reference is set for new speakers.
    models = {p.name: p.read_bytes() for p in (tmp_path / "ship").glob("*.tflite")}
    card_before = (tmp_path / "ship" / "lightsernet-emodb-mfcc-float32.md").read_text()
    quiet_corpus = make_emodb_like(tmp_path / "other", per_class=2, duration=0.6,
                                   classes="WLNT", speakers=("03", "08"), sr=8000)
    refreshed = runner.run(SPEC, build_parser().parse_args(
        argv + ["--ship", "--refresh-ood", "--ood-corpus", f"EMODB={quiet_corpus}",
                "--ship-dest", str(tmp_path / "ship")]))
    assert len(refreshed["refreshed"]) == 2 * len(models) + 1
    assert models == {p.name: p.read_bytes() for p in (tmp_path / "ship").glob("*.tflite")}
    sidecar = json.loads((tmp_path / "ship" / "lightsernet-emodb-mfcc-float32.json").read_text())
    record_after = json.loads(out["record"].read_text())
    assert sidecar["ood"]["kind"] == "mahalanobis"
    assert sidecar["ood"]["threshold_from"].startswith("held-out 8 groups")
    assert set(sidecar["ood"]["detection"]) == {"EMODB"}
    assert record_after["ood"]["detection"] == sidecar["ood"]["detection"]
    assert record_after["calibration"] == record["calibration"]
    card = (tmp_path / "ship" / "lightsernet-emodb-mfcc-float32.md").read_text()
    assert card.count("Out-of-domain warning:") == 1 and "detection on EMODB:" in card
    assert "other corpora: not measured" in card_before
    assert "other corpora: not measured" not in card
    rest = [b for b in card.split("\n\n") if not b.startswith("Out-of-domain")]
    assert rest == [b for b in card_before.split("\n\n") if not b.startswith("Out-of-domain")]


def test_predict_applies_the_shipped_temperature_and_flags_unfamiliar_audio(tmp_path):
    """A shipped sidecar's calibration and out-of-domain reference reach `ser-tf predict`."""
    import shutil

    from ser_tf.data.synthetic import write_wav
    from ser_tf.lite.calibration import apply_temperature
    from ser_tf.lite.predict import format_result, predict_file

    shipped = "tflite_models/lightsernet-emodb-waveform-float32"
    shutil.copy(shipped + ".tflite", tmp_path / "m.tflite")
    # The model without a calibration or an out-of-domain reference (a --ship model has
    # both: taken out here, then set to values whose effect is known).
    sidecar = json.loads(Path(shipped + ".json").read_text())
    sidecar.pop("calibration", None)
    sidecar.pop("ood", None)
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    speech = write_wav(tmp_path / "a.wav", duration=4.0, class_index=2)
    plain = predict_file(speech, LiteModel(tmp_path / "m.tflite"))
    assert plain["calibrated"] is False and "out_of_domain" not in plain
    short = write_wav(tmp_path / "b.wav", duration=2.0, class_index=1)
    raw = np.array(list(predict_file(short, LiteModel(tmp_path / "m.tflite"))["probabilities"]
                        .values()))

    frontend = {"kind": "mfcc", "frame_length": 1024, "frame_step": 256, "fft_length": 1024,
                "window": "hann", "power": 1.0, "center": False, "pad_mode": "constant",
                "num_mel_bins": 128, "fmin": 80.0, "fmax": 7600.0, "mel_scale": "htk",
                "norm": None, "log": "log", "log_offset": 1e-6, "num_mfcc": 40,
                "dct_norm": "tf", "clip": 10.0, "dft": "fft"}
    # A reference no real audio is near: every recording is flagged.
    sidecar["ood"] = {"mean": [50.0] * 80, "scale": [0.1] * 80, "threshold": 1.5,
                      "quantile": 0.99, "frontend": frontend, "sample_rate": 16000,
                      "false_alarm_test_speakers": 1.2}
    sidecar["calibration"] = {"temperature": 2.0}
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    result = predict_file(speech, LiteModel(tmp_path / "m.tflite"))
    assert result["calibrated"] is True and result["out_of_domain"]["flagged"] is True
    # Windows are calibrated one by one, then averaged: for a single window the mean is
    # the window's calibrated probabilities.
    calibrated = np.array(list(predict_file(short, LiteModel(tmp_path / "m.tflite"))
                               ["probabilities"].values()))
    assert np.allclose(calibrated, apply_temperature(raw[None], 2.0)[0], atol=1e-5)
    assert "does not sound like the model's training data" in format_result(result)


def test_card_says_when_the_ood_warning_missed_another_corpus():
    from ser_tf.export.ood import _missed_text

    text = _missed_text({"RAVDESS": 0.2, "EMOVO": 97.0})
    assert "most of RAVDESS through" in text and "EMOVO" not in text
    assert "No warning does not mean" in text
    assert _missed_text({"EMOVO": 97.0}) == "" and _missed_text({}) == ""


def test_card_names_the_folds_a_temperature_was_fitted_on():
    """Folds whose weights were not on the shipping machine are left out of the
    temperature fit; the card says which folds it rests on, and says nothing when all do."""
    from ser_tf.export.deploy import calibration_scope

    assert calibration_scope({"folds_used": list(range(10))}, 10) == \
        "the folds' validation speakers"
    partial = calibration_scope({"folds_used": [8, 4, 5, 7, 9]}, 10)
    assert partial.startswith("the validation speakers of 5 of the 10 folds (folds 5, 6, 8, "
                              "9, 10;")
    assert "weights were not on the machine" in partial


def test_refresh_refuses_before_anything_is_shipped_and_writes_nothing_on_a_bad_card(tmp_path):
    from types import SimpleNamespace

    from ser_tf.export.ood import refresh_shipped_ood
    from ser_tf.util.errors import UserError

    recipe = SimpleNamespace(frontend={"kind": "mfcc"}, sample_rate=16000)
    ood = {"reference": {"kind": "mahalanobis", "mean": [0.0], "scale": [1.0],
                         "precision": [[1.0]], "quantile": 0.95, "threshold": 2.0,
                         "threshold_from": "held-out 4 groups (leave one out)"},
           "false_alarm_test_speakers": {"mean": 4.0, "per_fold": [4.0]}, "detection": {}}
    with pytest.raises(UserError, match="no deploy record"):
        refresh_shipped_ood(tmp_path / "deploy-x.json", ood, recipe, tmp_path)
    record = tmp_path / "deploy-x.json"
    record.write_text(json.dumps({"variants": ["float32", "float16"], "shipped": {
        "float32": "elsewhere/m-float32.tflite", "float16": "elsewhere/m-float16.tflite"}}))
    with pytest.raises(UserError, match="m-float32.tflite: missing"):
        refresh_shipped_ood(record, ood, recipe, tmp_path)
    for variant, card in (("float32", "# M\n\nOut-of-domain warning: old.\n\nWindow: 3 s."),
                          ("float16", "# M\n\nWindow: 3 s.")):  # the second has none
        (tmp_path / f"m-{variant}.tflite").write_bytes(b"x")
        (tmp_path / f"m-{variant}.json").write_text(json.dumps({"ood": {"old": True}}))
        (tmp_path / f"m-{variant}.md").write_text(card)
    with pytest.raises(UserError, match="m-float16.md: expected one paragraph"):
        refresh_shipped_ood(record, ood, recipe, tmp_path)
    # Checked before writing: the first model's files are untouched too.
    assert json.loads((tmp_path / "m-float32.json").read_text()) == {"ood": {"old": True}}
    assert "old." in (tmp_path / "m-float32.md").read_text()
    (tmp_path / "m-float16.md").write_text("# M\n\nOut-of-domain warning: old.\n\nEnd.")
    # A refresh must not drop a rate the shipped check was measured with, nor put a check
    # measured on other data into models trained on different utterances.
    shipped = json.loads(record.read_text())
    record.write_text(json.dumps({**shipped, "utterances": 32,
                                  "ood": {"detection": {"RAVDESS": 51.0}}}))
    with pytest.raises(UserError, match="measured on RAVDESS; pass --ood-corpus RAVDESS=DIR"):
        refresh_shipped_ood(record, ood, recipe, tmp_path)
    with pytest.raises(UserError, match="trained on 32 utterances, the corpus now has 30"):
        refresh_shipped_ood(record, {**ood, "detection": {"RAVDESS": 40.0}}, recipe, tmp_path,
                            utterances=30)
    # Corpus names count as the loaders read them: `--ood-corpus crema-d=DIR` is CREMAD.
    from ser_tf.export.ood import check_refresh

    record.write_text(json.dumps({**shipped, "ood": {"detection": {"CREMAD": 20.0}}}))
    assert check_refresh(record, tmp_path, ["crema-d"])["models"]  # accepted
    with pytest.raises(UserError, match="measured on CREMAD; pass --ood-corpus CREMAD=DIR"):
        check_refresh(record, tmp_path, ["RAVDESS"])
    record.write_text(json.dumps(shipped))
    written = refresh_shipped_ood(record, ood, recipe, tmp_path, utterances=32)
    assert len(written) == 5
    card = (tmp_path / "m-float16.md").read_text()
    assert card.startswith("# M\n\nOut-of-domain warning: `predict` warns") and \
        card.endswith("\n\nEnd.")
    assert "held-out speakers' distances" in card and "4.0 %" in card
    assert json.loads((tmp_path / "m-float16.json").read_text())["ood"]["sample_rate"] == 16000


def test_ship_only_flags_are_refused_without_ship(tmp_path, capsys):
    from ser_tf.experiments.deploy_flags import check_deploy_usage
    from ser_tf.papers.lightsernet.experiment import main

    # Through the command itself: usage error before anything loads or trains.
    with pytest.raises(SystemExit) as stop:
        main(["--data-dir", str(tmp_path), "--results-dir", str(tmp_path / "r"),
              "--refresh-ood"])
    assert stop.value.code == 2
    assert "--refresh-ood only work with --ship" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    parser = build_parser()
    for extra in (["--refresh-ood"], ["--ood-corpus", "RAVDESS=/x"]):
        args = parser.parse_args(["--data-dir", "/x", *extra])
        with pytest.raises(SystemExit) as stop:
            check_deploy_usage(parser, args)
        assert stop.value.code == 2
    check_deploy_usage(parser, parser.parse_args(["--data-dir", "/x", "--ship",
                                                  "--refresh-ood"]))


def test_predict_scores_windows_with_the_shipped_whitened_reference(tmp_path):
    """The shipped sidecar's Mahalanobis reference reaches `predict`: the recording's
    distance is the median of its windows' distances, the windows' summaries come back with
    keep_summaries, and a broken reference is refused naming the sidecar."""
    import shutil

    from ser_tf.data.synthetic import write_wav
    from ser_tf.lite.ood import distances
    from ser_tf.lite.predict import predict_file, predict_files

    shipped = "tflite_models/lightsernet-emodb-waveform-float32"
    shutil.copy(shipped + ".tflite", tmp_path / "m.tflite")
    sidecar = json.loads(Path(shipped + ".json").read_text())
    assert sidecar["ood"]["kind"] == "mahalanobis"
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    speech = write_wav(tmp_path / "a.wav", duration=5.0, class_index=2)
    result = predict_file(speech, LiteModel(tmp_path / "m.tflite"), keep_summaries=True)
    summaries = result["ood_summaries"]
    assert summaries.shape == (result["windows"], len(sidecar["ood"]["mean"])) and \
        result["windows"] == 3
    expected = float(np.median(distances(summaries, sidecar["ood"])))
    assert result["out_of_domain"]["distance"] == pytest.approx(expected, abs=1e-3)
    assert result["out_of_domain"]["flagged"] == (expected > sidecar["ood"]["threshold"])
    assert "ood_summaries" not in predict_file(speech, LiteModel(tmp_path / "m.tflite"))

    good = dict(sidecar["ood"])
    for change, message in (({"precision": [[1.0, 2.0]]}, r"precision must be"),
                            ({"sample_rate": None}, r"sample_rate must be a positive whole"),
                            ({"sample_rate": float("nan")},
                             r"sample_rate must be a positive whole"),
                            ({"frontend": {**good["frontend"], "kind": "nonsense"}},
                             r"nonsense"),
                            ({"frontend": {**good["frontend"],
                                           "num_mfcc": good["frontend"]["num_mfcc"] - 1}},
                             r"front-end gives \d+ statistics per window, its reference "
                             r"holds \d+")):
        sidecar["ood"] = {**good, **change}
        (tmp_path / "m.json").write_text(json.dumps(sidecar))
        # Refused when the model is read for prediction, before any audio, naming the sidecar.
        with pytest.raises(ValueError, match=r"m\.json: sidecar `ood`: .*" + message):
            predict_file(speech, LiteModel(tmp_path / "m.tflite"))
    # Once for a run over many files, before the first (not once under each file).
    with pytest.raises(ValueError, match=r"m\.json: sidecar `ood`"):
        predict_files([speech, speech], LiteModel(tmp_path / "m.tflite"))


def test_card_gives_the_spread_of_false_alarms_over_folds():
    from ser_tf.export.ood import ood_card_text

    reference = {"kind": "mahalanobis", "precision": [[1.0]], "quantile": 0.95,
                 "threshold_from": "held-out 10 groups (leave one out)"}
    text = ood_card_text({"reference": reference, "detection": {"RAVDESS": 51.0},
                          "false_alarm_test_speakers": {"mean": 3.9,
                                                        "per_fold": [0.0, 18.3, 3.4]}})
    assert "training corpus: 3.9 % on average over folds, 0.0 to 18.3 % by fold; " \
           "detection on RAVDESS: 51.0 %." in text
    pooled = ood_card_text({"reference": reference, "detection": {"RAVDESS": 51.0},
                            "false_alarm_test_speakers": {"mean": 3.9, "per_fold": [0.0, 18.3],
                                                          "pooled": 4.5, "recordings": 535}})
    assert "3.9 % on average over folds (4.5 % of all 535 test recordings), 0.0 to 18.3 % " \
           "by fold;" in pooled
    one = ood_card_text({"reference": reference, "detection": {},
                         "false_alarm_test_speakers": {"mean": 3.9, "per_fold": [3.9]}})
    assert "corpus: 3.9 %; detection on other corpora: not measured." in one


def test_full_int8_ships_only_within_one_point_and_the_card_says_why(tmp_path):
    """The int8 decision from the folds' `tflite.json` scores, on hand-written scores:
    a 0.5-point mean loss ships, a 1.5-point loss or a fold without scores does not, and
    the card's sentence names the measured loss or the missing folds."""
    from types import SimpleNamespace

    from ser_tf.export.deploy import INT8_MAX_UA_DROP, _final_notes, int8_within_reach

    assert INT8_MAX_UA_DROP == 1.0

    def decide(per_fold_ua):
        work = tmp_path / f"run{len(list(tmp_path.iterdir()))}.work"
        for fold, variants in enumerate(per_fold_ua):
            if variants is not None:
                (work / f"fold_{fold:02d}").mkdir(parents=True)
                (work / f"fold_{fold:02d}" / "tflite.json").write_text(json.dumps(
                    {"variants": {name: {"UA": ua} for name, ua in variants.items()}}))
        return int8_within_reach(SimpleNamespace(work_dir=work, folds=[0, 1]))

    def card(int8):
        calibration = {"temperature": 1.0, "validation_utterances": 10, "folds_used": [0, 1],
                       "test": {"ece_before": 5.0, "ece_after": 4.0, "bins": 15}}
        return _final_notes({"chosen_epochs": [3, 3]}, calibration, int8, None, [], [], [],
                            True, None)

    # Fold losses 0 and 1 points: mean 0.5.
    ships = decide([{"float32": 80.0, "int8": 80.0}, {"float32": 70.0, "int8": 69.0}])
    assert ships["int8"] is True and ships["int8_drop"] == pytest.approx(0.5)
    assert "Full int8: shipped (folds' mean UA, float32 minus int8: +0.50 points" in card(ships)
    # Fold losses 1 and 2 points: mean 1.5.
    refused = decide([{"float32": 80.0, "int8": 79.0}, {"float32": 70.0, "int8": 68.0}])
    assert refused["int8"] is False and refused["int8_drop"] == pytest.approx(1.5)
    assert "Full int8: not shipped (folds lose 1.50 points UA; the limit is 1 point)" \
        in card(refused)
    # A fold that never exported: no decision on half the evidence.
    partial = decide([{"float32": 80.0, "int8": 80.0}, None])
    assert partial == {"folds": 1, "int8": False,
                       "reason": "only 1 of 2 folds have TFLite scores"}
    assert "not shipped (only 1 of 2 folds have TFLite scores;" in card(partial)
    # Folds exported without a full-int8 variant: nothing to ship.
    assert decide([{"float32": 80.0}, {"float32": 70.0}])["int8"] is False


def test_ood_check_pools_false_alarms_over_all_test_recordings():
    """Folds of unequal size: the mean over folds and the share of all test recordings
    differ, and both are stored (on generated statistics: 6 speakers, 3 folds)."""
    from types import SimpleNamespace

    from ser_tf.export.ood import ood_check
    from ser_tf.features.cache import FeatureSet
    from ser_tf.lite.ood import distances, feature_summary, fit_reference

    rng = np.random.default_rng(0)
    sizes = {"a": 4, "b": 4, "c": 10, "d": 10, "e": 6, "f": 6}
    ids = [f"{s}{i}" for s, n in sizes.items() for i in range(n)]
    features = rng.normal(size=(len(ids), 5, 3))
    features[ids.index("c0")] += 6.0  # far from everyone: flagged in its fold
    speakers = {i: i[0] for i in ids}
    feature_set = FeatureSet(features, np.zeros(len(ids), int), ids, ("x",),
                             [Path(i) for i in ids])
    folds = [SimpleNamespace(train_ids=[i for i in ids if i[0] not in test], test_ids=[
        i for i in ids if i[0] in test]) for test in ("ab", "cd", "ef")]
    ood = ood_check(SimpleNamespace(folds=folds), feature_set, None, speakers=speakers)
    false_alarms = ood["false_alarm_test_speakers"]
    # Each fold's rate, recomputed independently from its own training speakers.
    summaries = feature_summary(features)
    expected, flagged = [], 0
    for fold in folds:
        train = [ids.index(i) for i in fold.train_ids]
        test = [ids.index(i) for i in fold.test_ids]
        reference = fit_reference(summaries[train], groups=[ids[i][0] for i in train])
        hits = int(np.sum(distances(summaries[test], reference) > reference["threshold"]))
        expected.append(100.0 * hits / len(test))
        flagged += hits
    assert false_alarms["per_fold"] == pytest.approx(expected)
    assert false_alarms["mean"] == pytest.approx(np.mean(expected))
    assert false_alarms["recordings"] == 40
    assert false_alarms["pooled"] == pytest.approx(100.0 * flagged / 40)
    assert flagged >= 1 and false_alarms["pooled"] != pytest.approx(false_alarms["mean"])
    # A fold trained on one speaker has no speaker to hold out: the error names the fold.
    one = [SimpleNamespace(train_ids=[i for i in ids if i[0] == "a"], test_ids=ids[4:])]
    with pytest.raises(ValueError, match=r"out-of-domain check, fold 1 of 1 .*groups"):
        ood_check(SimpleNamespace(folds=one), feature_set, None, speakers=speakers)
