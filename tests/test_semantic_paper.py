"""The semantic-SER paper package: corpus framing (SEWA layout, EMO-DB proxy), the masked
per-frame CCC task, its protocol, the command line, end-to-end runs through the shared
runner and the TFLite export."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ser_tf.data import load_manifest
from ser_tf.data.dimensions import dimensional_targets
from ser_tf.data.synthetic import make_emodb_like
from ser_tf.papers.semantic.corpora import (FRAME_LEN, HALF, build_vocabulary, proxy_item,
                                            sewa_item)
from ser_tf.papers.semantic.synthetic import POSITIVE, make_sewa_like
from ser_tf.papers.semantic.task import FrameRegressionTask, real_frame_pairs

WIDTH = ["--width", "0.05"]


@pytest.fixture(scope="module")
def sewa(tmp_path_factory):
    return make_sewa_like(tmp_path_factory.mktemp("sewa") / "sewa", train=3, devel=2,
                          seconds=6.0)


def test_sewa_recording_becomes_frames_words_and_targets(sewa):
    manifest = load_manifest("SEWA", sewa)
    vocabulary = build_vocabulary(manifest)
    utterance = next(u for u in manifest if u.utterance_id == "Train_01")
    item = sewa_item(utterance, vocabulary, alignment="uniform")
    labels = np.loadtxt(utterance.extra["labels_csv"], delimiter=";", usecols=(1, 2, 3, 4))
    assert item.audio.shape == (len(labels), FRAME_LEN)
    np.testing.assert_allclose(item.targets, labels[:, 1:], atol=1e-4)
    turns = np.loadtxt(utterance.extra["turns_csv"], delimiter=";", ndmin=2)
    centres = labels[:, 0] + 0.05
    in_turn = np.array([((c >= turns[:, 0]) & (c < turns[:, 1])).any() for c in centres])
    subject = np.abs(item.audio[:, :HALF]).sum(1) > 0
    partner = np.abs(item.audio[:, HALF:]).sum(1) > 0
    # One half per frame: the subject's inside a turn, the partner's outside.
    np.testing.assert_array_equal(subject, in_turn)
    np.testing.assert_array_equal(partner, ~in_turn)
    # Words only inside transcribed segments, and every segment's words show up.
    assert (item.words[~in_turn] == 0).all() and (item.words[in_turn] > 0).mean() > 0.8
    assert item.metadata["alignment"] == "uniform"
    spoken = {vocabulary.word(int(i)) for i in item.words if i}
    text = utterance.text.lower().split()
    assert spoken <= set(text) and len(spoken) >= 2


def test_proxy_utterance_has_its_sentence_and_constant_category_targets(tmp_path):
    root = make_emodb_like(tmp_path / "emodb", per_class=1, duration=1.0, classes="WT")
    manifest = load_manifest("EMODB", root)
    vocabulary = build_vocabulary(manifest)
    for utterance in manifest:
        item = proxy_item(utterance, vocabulary, corpus="EMODB", alignment="uniform")
        # The subject's samples only: a proxy corpus has no partner half to carry.
        assert item.audio.shape[1] == HALF and np.abs(item.audio).sum(1).min() > 0
        np.testing.assert_array_equal(item.targets,
                                      np.tile(dimensional_targets(utterance.label), (len(item.targets), 1)))
        words = [vocabulary.word(int(i)) for i in item.words if i]
        assert words[0] == utterance.text.split()[0].lower() and (item.words > 1).all()


def test_masked_ccc_ignores_padding_frames_and_weights_outputs():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 6, 3)).astype("float32")
    p = (0.5 * y + 0.3 * rng.standard_normal(y.shape)).astype("float32")
    mask = np.ones((2, 6), "float32")
    mask[1, 4:] = 0
    garbage_y, garbage_p = y.copy(), p.copy()
    garbage_y[1, 4:], garbage_p[1, 4:] = 50.0, -50.0  # padding frames: must not matter
    task = FrameRegressionTask(("arousal", "valence", "liking"))
    loss = task.loss()
    real = mask.reshape(-1) > 0
    t, q = y.reshape(-1, 3)[real], p.reshape(-1, 3)[real]
    from ser_tf.training.metrics import ccc

    expected = np.mean(1 - ccc(t, q))
    got = float(loss(tf.constant(garbage_y), tf.constant(garbage_p), tf.constant(mask)))
    assert got == pytest.approx(expected, abs=1e-4)
    inverse = FrameRegressionTask(("a", "v", "l"), weighting="inverse_index").loss()
    weights = np.array([1, 1 / 2, 1 / 3]) / (11 / 6)
    assert float(inverse(tf.constant(garbage_y), tf.constant(garbage_p), tf.constant(mask))) \
        == pytest.approx(float(np.sum(weights * (1 - ccc(t, q)))), abs=1e-4)
    metric = task.metrics()[0]
    metric.update_state(garbage_y, garbage_p, sample_weight=mask)
    assert float(metric.result()) == pytest.approx(float(np.mean(ccc(t, q))), abs=1e-4)
    # Fold metrics: NaN marks padding in the source's targets.
    nan_y = y.copy()
    nan_y[1, 4:] = np.nan
    metrics = task.evaluate(nan_y, garbage_p)
    assert metrics["n"] == 10
    assert metrics["ccc"]["valence"] == pytest.approx(float(ccc(t, q)[1]), abs=1e-6)
    with pytest.raises(ValueError, match="no real frame"):
        real_frame_pairs(np.full((1, 2, 3), np.nan), np.zeros((1, 2, 3)))


def test_help_does_not_import_tensorflow_and_bad_flags_are_usage_errors(sewa, capsys):
    probe = ("import sys; from ser_tf.experiments import semantic; "
             "p = semantic.build_parser(); p.format_help(); "
             "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr[-500:]
    from ser_tf.experiments.semantic import build_parser

    parser = build_parser()
    assert parser.parse_args(["--dataset", "SEWA"]).protocol == "paper"
    assert parser.parse_args(["--dataset", "emodb"]).protocol == "speaker"
    for argv, rule in ((["--dataset", "EMODB", "--protocol", "paper"],
                        "'paper' is SEWA's Train/Devel split"),
                       (["--freeze-embeddings"], "--freeze-embeddings: needs --word-vectors"),
                       (["--word-vectors", str(sewa / "missing.vec")], "missing.vec: no such file"),
                       (["--width", "0"], "--width: expected a number > 0")):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert rule in capsys.readouterr().err, argv


def _word_vectors(path, vocabulary_words, dim=8):
    rng = np.random.default_rng(1)
    lines = [f"{len(vocabulary_words)} {dim}"]
    lines += [w + " " + " ".join(f"{v:.4f}" for v in rng.standard_normal(dim))
              for w in vocabulary_words]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_sewa_runs_end_to_end_and_exports_tflite(sewa, tmp_path):
    from ser_tf.experiments.semantic import main

    vectors = _word_vectors(tmp_path / "vectors.vec", list(POSITIVE) + ["ja"])
    results = tmp_path / "results"
    argv = ["--dataset", "SEWA", "--data-dir", str(sewa), "--results-dir", str(results),
            "--cache-dir", str(tmp_path / "cache"), "--epochs", "2", "--batch-size", "4",
            "--chunk-frames", "20", "--align", "uniform", "--word-vectors", str(vectors),
            "--quiet", *WIDTH]
    assert main(argv) == 0
    record_path, = results.glob("semantic/SEWA/*/record.json")
    record = json.loads(record_path.read_text())
    assert record["protocol"] == "paper" and record["config"]["task"]["kind"] == "frame_regression"
    assert record["config"]["word_vectors"]["file"] == "vectors.vec"
    fold = record["per_fold"][0]
    devel_frames = sum(len(np.loadtxt(sewa / "labels" / f"Devel_0{i}.csv", delimiter=";",
                                      usecols=1)) for i in (1, 2))
    assert fold["metrics"]["n"] == devel_frames
    assert set(fold["metrics"]["ccc"]) == {"arousal", "valence", "liking"}
    assert all(np.isfinite(v) for v in fold["metrics"]["ccc"].values())
    assert {"ccc_arousal", "ccc_valence", "ccc_liking", "mean_ccc"} <= set(record["summary"])

    # The exported streaming model, run without TensorFlow chunk by chunk, gives what the
    # Keras model gives for the whole recording.
    from ser_tf.data.sequence_records import read_sequence_records
    from ser_tf.models.semantic_fusion import predict_recording
    from ser_tf.papers.semantic.export import predict_recording_lite, predict_sequence_lite
    from ser_tf.papers.semantic.experiment import SPEC, model_builder, model_settings
    from ser_tf.features.word_vectors import Vocabulary

    sidecar, = results.glob("semantic/SEWA/*.work/fold_00/semantic_tflite/semantic-sewa-fusion.json")
    info = json.loads(sidecar.read_text())
    assert info["chunk_frames"] == 20 and info["outputs"] == ["arousal", "valence", "liking"]
    vocabulary = Vocabulary.from_json(sidecar.parent / info["vocabulary"])
    records, = (tmp_path / "cache" / "semantic").glob("SEWA-*")
    example = next(iter(read_sequence_records(records, keys=["Devel_01"])))
    from ser_tf.experiments.semantic import build_parser

    args = build_parser().parse_args(argv)
    model = model_builder(model_settings(args, SPEC.config()), vocabulary, SPEC.config(),
                          str(vectors))(3)
    from ser_tf.training.rundir import WEIGHTS_FILE

    model.load_weights(sidecar.parents[1] / WEIGHTS_FILE)
    audio, words = example["audio"].numpy(), example["words"].numpy()
    keras_out = predict_recording(model, audio, words, chunk_frames=7)
    lite_out = predict_recording_lite(sidecar, audio, words)
    assert lite_out.shape == (len(words), 3)
    np.testing.assert_allclose(lite_out, keras_out, atol=1e-4)
    np.testing.assert_allclose(predict_sequence_lite(sidecar, audio, words), keras_out,
                               atol=1e-4)


@pytest.mark.slow
def test_emodb_proxy_runs_speaker_independent_folds(tmp_path):
    from ser_tf import cli

    corpus = make_emodb_like(tmp_path / "emodb", per_class=4, duration=0.8, classes="WTN")
    results = tmp_path / "results"
    argv = ["train", "semantic", "--dataset", "EMODB", "--data-dir", str(corpus),
            "--results-dir", str(results), "--cache-dir", str(tmp_path / "cache"),
            "--epochs", "1", "--batch-size", "4", "--chunk-frames", "10", "--folds", "2",
            "--align", "uniform", "--variant", "audio", "--no-export", "--quiet", *WIDTH]
    assert cli.main(argv) == 0
    record = json.loads(next(results.glob("semantic/EMODB/*/record.json")).read_text())
    assert record["protocol"] == "speaker" and record["config"]["model"]["variant"] == "audio"
    assert record["config"]["task"]["outputs"] == ["arousal", "valence"]
    assert len(record["per_fold"]) == 2
    tested = [set(fold["test_groups"]) for fold in record["folds"]["sizes"]]
    assert all(tested) and not tested[0] & tested[1]  # each speaker tested once
    assert {"ccc_arousal", "ccc_valence"} <= set(record["summary"])
    # Subject-only frames, and how every recording's words were timed, in the record.
    assert record["config"]["recipe"]["frame_len"] == record["config"]["model"]["frame_len"]
    assert record["config"]["recipe"]["frame_len"] == 2205
    prepared = record["sequence_records"]
    assert prepared["alignments"] == {"uniform": 12} and prepared["frame_len"] == 2205


def test_alignment_failures_are_named_and_fall_back_to_uniform_timing(tmp_path, monkeypatch,
                                                                     capsys):
    """A recording aeneas cannot align keeps uniform word times, and is named (with the
    aligner's reason) on stderr and in preparation.json, which the run record copies."""
    import ser_tf.align
    from ser_tf.align import AlignmentError
    from ser_tf.papers.semantic.corpora import prepare_records

    def refuse(path, text, **kwargs):
        raise AlignmentError(f"{path}: audio shorter than its text ({len(text)} letters)")

    monkeypatch.setattr(ser_tf.align, "align_words", refuse)
    root = make_emodb_like(tmp_path / "emodb", per_class=1, duration=1.0, classes="WT")
    manifest = load_manifest("EMODB", root)
    folder = prepare_records(manifest, tmp_path / "records", alignment="aeneas")
    preparation = json.loads((folder / "preparation.json").read_text())
    assert preparation["alignments"] == {"uniform": 2}
    fallbacks = preparation["alignment_fallbacks"]
    assert [f["recording"] for f in fallbacks] == [u.utterance_id for u in manifest]
    first = manifest[0].utterance_id
    # The reason names the corpus's recording, not the aligner's temporary copy.
    assert fallbacks[0]["reason"].startswith(f"{first}.wav: audio shorter than its text")
    err = capsys.readouterr().err
    assert "aeneas could not align 2 recording(s)" in err and f"{first}.wav" in err
    assert "tmp" not in fallbacks[0]["reason"].split(":")[0]


def test_alignment_choice_is_resolved_and_checked():
    from ser_tf.papers.semantic.corpora import resolve_alignment

    assert resolve_alignment("uniform") == "uniform"
    assert resolve_alignment("auto") in ("aeneas", "uniform")
    with pytest.raises(ValueError, match="alignment must be one of"):
        resolve_alignment("whisper")


@pytest.mark.slow
def test_proxy_words_are_force_aligned_on_synthesised_speech(tmp_path):
    # An EMO-DB-named file whose audio is eSpeak NG saying the file's sentence: aeneas
    # must time its words (not the uniform fallback), in order, inside the recording.
    import shutil
    from importlib.util import find_spec

    if shutil.which("espeak-ng") is None or find_spec("aeneas") is None:
        pytest.skip("espeak-ng or aeneas is not installed")
    from ser_tf.data.corpora.emodb import TEXTS
    from ser_tf.demo import synthesize

    (tmp_path / "emodb" / "wav").mkdir(parents=True)
    synthesize(TEXTS["a05"], tmp_path / "emodb" / "wav" / "03a05Wa.wav", voice="de")
    manifest = load_manifest("EMODB", tmp_path / "emodb")
    vocabulary = build_vocabulary(manifest)
    item = proxy_item(manifest[0], vocabulary, corpus="EMODB", alignment="aeneas",
                      align_cache=tmp_path / "align")
    assert item.metadata["alignment"] == "aeneas"
    order = [int(i) for k, i in enumerate(item.words) if i and (k == 0 or i != item.words[k - 1])]
    spoken = [vocabulary.word(i) for i in order]
    expected = [w.lower() for w in TEXTS["a05"].rstrip(".").split()]
    # Every word seen is the sentence's, in the sentence's order (a very short word may
    # cover no frame centre and be missing).
    positions = [expected.index(w) for w in spoken]
    assert positions == sorted(positions) and len(spoken) >= len(expected) - 3


def test_targets_that_never_vary_are_refused_before_training(tmp_path):
    """The student run trained on all-zero labels (its label files were missing) and the
    loss never moved: a corpus whose targets are one constant for an output is refused,
    naming the output and where its labels come from, and its records are not reused."""
    from ser_tf.papers.semantic.corpora import prepare_records
    from ser_tf.util.errors import UserError

    root = make_sewa_like(tmp_path / "sewa", train=2, devel=1, seconds=3.0)
    for labels in (root / "labels").glob("*.csv"):  # arousal read as 0 everywhere
        rows = [line.split(";") for line in labels.read_text().splitlines()]
        labels.write_text("".join(";".join([*r[:2], "0.0000", *r[3:]]) + "\n" for r in rows))
    manifest = load_manifest("SEWA", root)
    with pytest.raises(UserError, match=r"SEWA: arousal \(always 0\) over every frame of all "
                                        r"3 recordings.*label files under .*labels"):
        prepare_records(manifest, tmp_path / "records")
    assert not list((tmp_path / "records").glob("*/preparation.json"))  # not complete
    # The same corpus with its labels varying prepares normally.
    fine = make_sewa_like(tmp_path / "sewa_ok", train=2, devel=1, seconds=3.0)
    assert (prepare_records(load_manifest("SEWA", fine), tmp_path / "records")
            / "preparation.json").is_file()
