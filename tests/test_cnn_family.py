"""The CNN family: published parameter counts (the BatchNorm-axis quirk and the corrected
layer), the moved feature recipes, the pooled 7-class manifest and its label mapping, the
report's stratified 80/10/10 split and the AWGN copies of the training split only."""

import json
from collections import Counter

import numpy as np
import pytest

from ser_tf.data.manifest import Manifest, Utterance
from ser_tf.data.pooled import counts_by_corpus, pooled_manifest
from ser_tf.data.synthetic import write_wav
from ser_tf.models.cnn_family import build_cnn, build_cnn_transformer, build_model, \
    build_parallel_cnns
from ser_tf.papers.cnn_family.corpora import LABEL_MAPPING, SEVEN_CLASSES
from ser_tf.papers.cnn_family.folds import SPLIT, holdout_split, split_sizes
from ser_tf.papers.cnn_family.synthetic import make_pooled_corpora
from ser_tf.training.protocols import make_folds

# --- models ------------------------------------------------------------------------------

PUBLISHED = {"cnn": 27_495, "parallel": 54_983, "transformer": 848_967}
# Per-channel BatchNorm: 4 x (16 + 32 + 64) = 448 per block instead of 4 x (94 + 47 + 11).
CORRECTED = {"cnn": 27_335, "parallel": 54_663, "transformer": 848_647}
# Mel input, 188 frames: BatchNorm over time 4 x (188 + 94 + 23) = 1_220 per block, convs
# 160 + 4_640 + 18_496 = 23_296, flatten 5 x 4 x 64 = 1_280. One CNN: 23_296 + 1_220 +
# 1_280 x 7 + 7; two: 2 x 24_516 + 2_560 x 7 + 7; with the Transformer (793_088 weights,
# independent of the sequence length: 848_967 - 2 x 23_904 - (1_152 x 7 + 7) above):
# 2 x 24_516 + 793_088 + 2_688 x 7 + 7.
MEL = {"cnn": 33_483, "parallel": 66_959, "transformer": 860_943}


@pytest.mark.parametrize("kind", sorted(PUBLISHED))
def test_published_parameter_counts_with_the_time_axis_batchnorm(kind):
    assert build_model(kind, 7, (94, 128)).count_params() == PUBLISHED[kind]
    assert build_model(kind, 7, (94, 128), bn_axis="channels").count_params() == CORRECTED[kind]
    assert build_model(kind, 7, (188, 128)).count_params() == MEL[kind]


def test_the_count_arithmetic_layer_by_layer():
    model = build_cnn()
    counts = {layer.name: layer.count_params() for layer in model.layers}
    assert [counts[f"cnn_conv{i}"] for i in (1, 2, 3)] == [160, 4_640, 18_496]
    assert [counts[f"cnn_bn{i}"] for i in (1, 2, 3)] == [4 * 94, 4 * 47, 4 * 11]
    assert model.get_layer("cnn_flatten").output.shape[-1] == 512
    assert counts["emotion"] == 512 * 7 + 7
    parallel = build_parallel_cnns()
    assert parallel.get_layer("cnn_outputs").output.shape[-1] == 1024
    transformer = build_cnn_transformer()
    assert transformer.get_layer("branches").output.shape[-1] == 1152
    # keras-hub's TransformerEncoder as is: 66,048 attention + 131,712 feed-forward + 512
    # layer-norm parameters per layer.
    encoders = [layer for layer in transformer.layers if "encoder" in layer.name]
    assert [layer.count_params() for layer in encoders] == [198_272] * 4


def _bn_output(model, layer, x, training):
    import keras

    return np.asarray(keras.Model(model.input, model.get_layer(layer).output)(x, training=training))


def test_time_axis_batchnorm_normalises_each_frame_position():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 94, 128)).astype("float32")
    x[:, 10, :] += 50.0  # one loud frame
    for axis, reduce, positions in (("time", (0, 1, 3), 94), ("channels", (0, 1, 2), 16)):
        model = build_cnn(bn_axis=axis)
        assert model.get_layer("cnn_bn1").gamma.shape == (positions,)
        out = _bn_output(model, "cnn_bn1", x, training=True)  # (batch, bins, frames, 16)
        # Training mode: zero mean and unit variance per normalised position.
        np.testing.assert_allclose(out.mean(axis=reduce), 0.0, atol=1e-3)
        np.testing.assert_allclose(out.std(axis=reduce), 1.0, atol=1e-2)
    # Per frame position, the loud frame is brought back in line with the others.
    time_out = _bn_output(build_cnn(bn_axis="time"), "cnn_bn1", x, training=True)
    channel_out = _bn_output(build_cnn(bn_axis="channels"), "cnn_bn1", x, training=True)
    assert np.abs(time_out[:, :, 10]).mean() < 2 * np.abs(time_out[:, :, 20]).mean()
    assert np.abs(channel_out[:, :, 10]).mean() > 5 * np.abs(channel_out[:, :, 20]).mean()


def test_transformer_attends_within_an_utterance_not_across_the_batch():
    rng = np.random.default_rng(1)
    model = build_cnn_transformer(input_shape=(94, 128))
    x = rng.normal(size=(3, 94, 128)).astype("float32")
    alone = model(x[:1], training=False)
    with_others = model(x, training=False)[:1]
    np.testing.assert_allclose(alone, with_others, atol=1e-5)


def test_builders_check_their_arguments():
    with pytest.raises(ValueError, match="bn_axis"):
        build_cnn(bn_axis="frames")
    with pytest.raises(ValueError, match="num_heads"):
        build_cnn_transformer(input_shape=(94, 30))
    with pytest.raises(ValueError, match="model must be"):
        build_model("vgg16")


# --- recipes -----------------------------------------------------------------------------

# The configs the shared module registered before the move, key order included (run
# records and feature-cache keys of these recipes store exactly this).
CNN_MFCC = ('{"name": "cnn_mfcc", "sample_rate": 16000, "segment": {"kind": "window", "offset": '
            '0.5, "duration": 3.0}, "frontend": {"kind": "mfcc", "frame_length": 2048, '
            '"frame_step": 512, "fft_length": 2048, "window": "hann", "power": 2.0, "center": '
            'true, "pad_mode": "constant", "num_mel_bins": 128, "fmin": 0.0, "fmax": null, '
            '"mel_scale": "slaney", "norm": "slaney", "log": "db", "ref": 1.0, "amin": 1e-10, '
            '"top_db": 80.0, "dct_norm": "ortho", "num_mfcc": 128, "dft": "fft"}}')
CNN_LOGMEL = ('{"name": "cnn_logmel", "sample_rate": 16000, "segment": {"kind": "window", '
              '"offset": 0.5, "duration": 3.0}, "frontend": {"kind": "log_mel", '
              '"frame_length": 2048, "frame_step": 256, "fft_length": 2048, "window": "hann", '
              '"power": 2.0, "center": true, "pad_mode": "constant", "num_mel_bins": 128, '
              '"fmin": 0.0, "fmax": null, "mel_scale": "slaney", "norm": "slaney", "log": "db", '
              '"ref": 1.0, "amin": 1e-10, "top_db": 80.0, "dft": "fft"}}')


def test_moved_recipes_keep_their_configs_byte_for_byte():
    from ser_tf.features.recipes import get_recipe

    assert json.dumps(get_recipe("cnn_mfcc").config()) == CNN_MFCC
    assert json.dumps(get_recipe("cnn_logmel").config()) == CNN_LOGMEL
    assert get_recipe("cnn_mfcc").feature_shape() == (94, 128)
    assert get_recipe("cnn_logmel").feature_shape() == (188, 128)


# --- the pooled corpus -------------------------------------------------------------------

@pytest.fixture(scope="module")
def pooled_root(tmp_path_factory):
    return make_pooled_corpora(tmp_path_factory.mktemp("pooled"), per_class=3)


def _dirs(root, corpora=("RAVDESS", "SAVEE", "TESS", "CREMAD")):
    return {c: root / c.lower() for c in corpora}


def test_pooled_manifest_maps_labels_and_prefixes_ids_and_speakers(pooled_root):
    m = pooled_manifest(_dirs(pooled_root), SEVEN_CLASSES, LABEL_MAPPING)
    assert m.corpus == "RAVDESS-SAVEE-TESS-CREMAD" and m.labels == SEVEN_CLASSES
    counts = counts_by_corpus(m)
    assert counts["RAVDESS"]["neutral"] == 6  # neutral and calm
    assert counts["CREMAD"]["surprise"] == 0
    assert sum(sum(c.values()) for c in counts.values()) == len(m) == 8 * 3 + 7 * 3 * 2 + 6 * 3
    by_id = {u.utterance_id: u for u in m}
    calm = by_id["RAVDESS:03-01-02-01-01-01-01"]
    assert (calm.label, calm.extra["source_label"], calm.corpus, calm.speaker) == \
        ("neutral", "calm", "RAVDESS", "RAVDESS:01")
    savee = by_id["SAVEE:DC_sa01"]
    assert (savee.label, savee.speaker, savee.corpus) == ("sadness", "SAVEE:DC", "SAVEE")
    assert by_id["TESS:OAF_back_ps"].label == "surprise"
    assert by_id["CREMAD:1001_DFA_ANG_XX"].speaker == "CREMAD:1001"
    assert all(u.utterance_id.startswith(u.corpus + ":") for u in m)


def test_pooled_manifest_refuses_unmapped_labels_and_can_leave_a_class_out(pooled_root):
    dirs = _dirs(pooled_root, ("RAVDESS", "TESS"))
    with pytest.raises(ValueError, match=r"RAVDESS: labels outside the common set.*calm"):
        pooled_manifest(dirs, SEVEN_CLASSES)
    without_calm = pooled_manifest(dirs, SEVEN_CLASSES, {"ravdess": {"calm": None}})
    assert "calm" not in {u.extra["source_label"] for u in without_calm}
    assert len(without_calm) == 7 * 3 + 7 * 3
    with pytest.raises(ValueError, match="does not have"):
        pooled_manifest(dirs, SEVEN_CLASSES, {"RAVDESS": {"calm": "neutral", "bored": None}})
    with pytest.raises(ValueError, match="not pooled"):
        pooled_manifest(dirs, SEVEN_CLASSES, {**LABEL_MAPPING, "SAVEE": {}})
    with pytest.raises(ValueError, match="named twice"):
        pooled_manifest({"CREMA-D": dirs["RAVDESS"], "cremad": dirs["TESS"]}, SEVEN_CLASSES)


def test_pooled_manifest_reads_other_layouts_and_keeps_skipped_files(tmp_path):
    # SAVEE's flat copy, TESS's varying folder spellings, CREMA-D with demographics.
    for i, name in enumerate(["ALL/DC_a01.wav", "ALL/KL_su02.wav"]):
        write_wav(tmp_path / "savee" / name, duration=0.3, seed=i)
    for i, name in enumerate(["OAF_Pleasant_surprise/OAF_back_ps.wav",
                              "YAF_happy/YAF_Dog_Happy.wav"]):
        write_wav(tmp_path / "tess" / "TESS data" / name, duration=0.3, seed=i)
    write_wav(tmp_path / "cremad" / "AudioWAV" / "1002_IEO_HAP_HI.wav", duration=0.3)
    (tmp_path / "cremad" / "AudioWAV" / "1002_TSI_NEU_XX.wav").write_bytes(b"not audio")
    (tmp_path / "cremad" / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1002,21,Female,Caucasian,Not Hispanic\n")
    m = pooled_manifest({c: tmp_path / c.lower() for c in ("SAVEE", "TESS", "CREMAD")},
                        SEVEN_CLASSES, on_bad_audio="skip")
    assert {u.utterance_id: u.label for u in m} == {
        "SAVEE:DC_a01": "anger", "SAVEE:KL_su02": "surprise", "TESS:OAF_back_ps": "surprise",
        "TESS:YAF_dog_happy": "happiness", "CREMAD:1002_IEO_HAP_HI": "happiness"}
    assert next(u for u in m if u.corpus == "CREMAD").gender == "female"
    assert [(s["corpus"], s["path"].endswith("1002_TSI_NEU_XX.wav")) for s in m.skipped] == \
        [("CREMAD", True)]


def test_corpus_folders_flags_and_clear_errors(pooled_root, tmp_path, monkeypatch, capsys):
    from ser_tf.papers.cnn_family.corpora import corpus_dirs, load_pooled
    from ser_tf.papers.cnn_family.experiment import build_parser
    from ser_tf.util.errors import UserError

    monkeypatch.delenv("SER_TF_DATA", raising=False)
    parse = build_parser().parse_args
    assert list(corpus_dirs(parse(["--data-root", str(pooled_root)]))) == \
        ["RAVDESS", "SAVEE", "TESS", "CREMAD"]
    moved = parse(["--data-root", str(tmp_path), "--corpora", "cremad,tess",
                   "--data-dir-tess", str(pooled_root / "tess"),
                   "--data-dir-cremad", str(pooled_root / "cremad")])
    assert moved.corpora == ["tess", "cremad"]
    manifest = load_pooled(moved)
    assert manifest.corpus == "TESS-CREMAD" and manifest.labels == SEVEN_CLASSES
    cremad_only = load_pooled(parse(["--data-root", str(pooled_root), "--corpora", "cremad"]))
    assert "surprise" not in cremad_only.labels and len(cremad_only.labels) == 6
    with pytest.raises(UserError, match=r"(?s)SAVEE: .*savee is not a folder.*--corpora"):
        corpus_dirs(parse(["--data-root", str(tmp_path)]))
    with pytest.raises(UserError, match="RAVDESS: no folder given"):
        corpus_dirs(parse([]))
    monkeypatch.setenv("SER_TF_DATA", str(pooled_root))
    assert corpus_dirs(parse([]))["SAVEE"] == pooled_root / "savee"
    with pytest.raises(SystemExit):
        parse(["--corpora", "tess", "--data-dir-savee", str(pooled_root / "savee")])
    assert "argument --data-dir-savee: SAVEE is not in --corpora" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--data-root", str(tmp_path), "--data-dir", str(pooled_root)])
    assert "give either --data-root or --data-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--corpora", "emodb"])
    assert "emodb" in capsys.readouterr().err


# --- the report's split ------------------------------------------------------------------

def fake_manifest(n, shares=(0.1, 0.05, 0.15, 0.2, 0.2, 0.2, 0.1)):
    """``n`` utterances (no audio) with the 7 classes in ``shares``."""
    labels = np.repeat(np.arange(7), np.round(np.asarray(shares) * n).astype(int))[:n]
    labels = np.resize(labels, n)
    rows = [Utterance(f"u{i:05d}", f"/nowhere/{i}.wav", SEVEN_CLASSES[c], f"s{i % 50}", "X")
            for i, c in enumerate(np.random.default_rng(0).permutation(labels))]
    return Manifest("X", SEVEN_CLASSES, rows)


def test_paper_split_is_one_stratified_80_10_10_split():
    manifest = fake_manifest(12_160)
    fold, = make_folds(manifest, "paper", n_folds=10, seed=None, paper_split=SPLIT)
    assert (len(fold.train_ids), len(fold.val_ids), len(fold.test_ids)) == (9_728, 1_216, 1_216)
    assert 3 * len(fold.train_ids) == 29_184  # the report's "2-fold" training examples
    assert not fold.selection_on_test and not set(fold.val_ids) & set(fold.test_ids)
    assert len(set(fold.train_ids) | set(fold.val_ids) | set(fold.test_ids)) == 12_160
    by_id = {u.utterance_id: u.label for u in manifest}
    total = Counter(by_id.values())
    for part in (fold.train_ids, fold.val_ids, fold.test_ids):
        counts = Counter(by_id[i] for i in part)
        for label in SEVEN_CLASSES:  # each class in its share, to within one utterance
            assert abs(counts[label] - total[label] * len(part) / 12_160) <= 1
    again, = holdout_split(manifest, None, 42)
    other, = holdout_split(manifest, None, 7)
    assert again.test_ids == fold.test_ids and other.test_ids != fold.test_ids
    assert split_sizes(84) == (68, 8, 8)
    with pytest.raises(ValueError, match="cannot be split"):
        split_sizes(2)


def test_tiny_corpora_fall_back_to_a_plain_random_split():
    fold, = holdout_split(fake_manifest(20), None, 0)  # 2 test utterances for 7 classes
    assert (len(fold.train_ids), len(fold.val_ids), len(fold.test_ids)) == (16, 2, 2)


# --- AWGN copies -------------------------------------------------------------------------

def test_awgn_copies_exactly_n_per_training_utterance_and_never_held_out(pooled_root, tmp_path):
    from ser_tf.papers.cnn_family.recipes import MFCC
    from ser_tf.papers.cnn_family.source import NoisyCopiesSource
    from ser_tf.training.tasks import ClassificationTask

    manifest = pooled_manifest(_dirs(pooled_root), SEVEN_CLASSES, LABEL_MAPPING)
    folds = make_folds(manifest, "paper", n_folds=None, seed=None, paper_split=SPLIT)
    fold = folds[0]
    source = NoisyCopiesSource(manifest, MFCC, tmp_path / "cache", copies=2, folds=folds,
                               snr_db=(15, 30), seed=3, quiet=True)
    assert sorted(source.ids) == sorted(u.utterance_id for u in manifest)
    rows = source.training_rows(fold)
    copies = [i for i in rows.ids if "+awgn" in i]
    assert len(rows) == 3 * len(fold.train_ids) and len(copies) == 2 * len(fold.train_ids)
    per_source = Counter(s for i, s in zip(rows.ids, rows.source_ids) if "+awgn" in i)
    assert set(per_source) == set(fold.train_ids) and set(per_source.values()) == {2}
    assert not {s for s in rows.source_ids} & (set(fold.val_ids) | set(fold.test_ids))
    first = rows.index_of([fold.train_ids[0], f"{fold.train_ids[0]}+awgn0",
                           f"{fold.train_ids[0]}+awgn1"])
    a, b, c = rows.features[first]
    assert not np.allclose(a, b) and not np.allclose(b, c)  # two different noises

    task = ClassificationTask(manifest.labels)
    train = source.dataset(fold.train_ids, task=task, training=True, batch_size=16, seed=0)
    assert sum(int(x.shape[0]) for x, _ in train) == 3 * len(fold.train_ids)
    test = source.dataset(fold.test_ids, task=task, training=False, batch_size=16)
    assert sum(int(x.shape[0]) for x, _ in test) == len(fold.test_ids)
    with pytest.raises(ValueError, match="not the training ids of any fold"):
        source.dataset(fold.val_ids, task=task, training=True, batch_size=16, seed=0)
    # A resumed fold: two epochs done = two passes over originals and copies.
    resumed = source.dataset(fold.train_ids, task=task, training=True, batch_size=16, seed=0,
                             consumed=2 * len(fold.train_ids))
    assert sum(int(x.shape[0]) for x, _ in resumed) == 3 * len(fold.train_ids)


# --- the noise table in the README ---------------------------------------------------------

def test_noise_table_fills_planned_rows_from_records_and_keeps_not_run(tmp_path):
    from ser_tf.papers.cnn_family import noise_report

    def record(run_id, created, model, noisy_ua, **fit):
        folder = tmp_path / "cnn_family" / "RAVDESS" / run_id
        folder.mkdir(parents=True)
        fit = {"learning_rate": 1e-2, "epochs": 100, "seed": 42, "patience": 20, **fit}
        noise = {"conditions": {name: {"UA": {"mean": ua}, "WA": {"mean": ua + 1}}
                                for name, ua in (("clean", 60.0), ("20 dB", 50.0),
                                                 ("10 dB", 40.0), ("0 dB", noisy_ua))}}
        (folder / "record.json").write_text(json.dumps({
            "run_id": run_id, "created": created, "corpus": "RAVDESS", "protocol": "paper",
            "config": {"model": model, "features": "mfcc", "awgn_copies": 0, "bn_axis": "time",
                       "fit": fit},
            "noise_robustness": noise}))

    record("paper-old", "2026-01-01", "cnn", 10.0)
    record("paper-new", "2026-02-01", "cnn", 20.0)  # the newest of a setting is shown
    record("paper-wide", "2026-01-01", "cnn_wide", 5.0)  # not planned: listed below the plan
    # The planned model trained otherwise (a tuned rate, a 2-epoch smoke run), newer still:
    # listed below with what it changed, never in the planned row.
    record("paper-tuned", "2026-03-01", "cnn", 30.0, learning_rate=1e-3)
    record("paper-smoke", "2026-03-02", "cnn", 35.0, epochs=2)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{noise_report.START}\nold\n{noise_report.END}\noutro\n")
    assert noise_report.rewrite_readme(readme, tmp_path)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "\nold\n" not in text
    rows = [line for line in text.splitlines() if line.startswith("| RAVDESS")]
    n_planned = len(noise_report.planned(tmp_path, "RAVDESS"))
    assert n_planned == len(noise_report.PAPER_PLAN) + 1  # + "speaker: not chosen yet"
    assert len(rows) == 2 * n_planned + 3  # paper-old: an older planned run
    assert rows[0] == ("| RAVDESS: model=cnn, features=mfcc, awgn_copies=0 | paper | 60.00 / 61.00 "
                       "| 50.00 / 51.00 | 40.00 / 41.00 | 20.00 / 21.00 | paper-new |")
    assert rows[1].count("not run") == 4
    assert rows[len(noise_report.PAPER_PLAN)].startswith(
        "| RAVDESS: the two `paper` settings of lowest validation loss")
    below = rows[2 * n_planned:]
    assert below[0].startswith("| RAVDESS: model=cnn_wide") and below[0].endswith("paper-wide |")
    assert below[1].startswith("| RAVDESS: model=cnn, features=mfcc, awgn_copies=0, "
                               "learning_rate=0.001 |") and below[1].endswith("paper-tuned |")
    assert ", epochs=2 |" in below[2] and below[2].endswith("paper-smoke |")
    assert not noise_report.rewrite_readme(readme, tmp_path)  # unchanged the second time
    readme.write_text("no block")
    with pytest.raises(ValueError, match="needs the markers <!-- noise"):
        noise_report.rewrite_readme(readme, tmp_path)
    # Once the speaker runs are chosen on validation, the plan names them.
    (tmp_path / "cnn_family" / "RAVDESS" / "speaker-choice.json").write_text(json.dumps(
        {"speaker_runs": ["cnn:mfcc:0", "2cnn_transformer:mel:2"]}))
    assert noise_report.planned(tmp_path, "RAVDESS")[-2:] == [
        ("speaker", "cnn", "mfcc", 0), ("speaker", "transformer", "mel", 2)]
    assert noise_report.planned(tmp_path, "RAVDESS-SAVEE-TESS-CREMAD")[-1] == (
        "speaker", None, None, None)


def test_training_refuses_a_plan_that_would_choose_on_test_ids():
    """The guard behind the README's "refuses to start": a fold validating on its test ids,
    or the checkpoint policy the runner gives such folds, stops the run."""
    from types import SimpleNamespace

    from ser_tf.papers.cnn_family.experiment import RUNNER_SELECTS_ON_TEST, refuse_test_selection
    from ser_tf.util.errors import UserError

    def plan(checkpoint, on_test):
        return SimpleNamespace(fit=SimpleNamespace(checkpoint=checkpoint),
                               folds=[SimpleNamespace(selection_on_test=on_test)])

    refuse_test_selection(plan("best-val", False))  # the package's own split: trains
    for checkpoint, on_test in (("paper", False), ("best-val", True), ("paper", True)):
        with pytest.raises(UserError, match="Refusing to choose on the test split"):
            refuse_test_selection(plan(checkpoint, on_test))
    assert "Refusing" in RUNNER_SELECTS_ON_TEST
