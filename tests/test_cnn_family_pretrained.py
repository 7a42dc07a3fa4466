"""The CNN family's pretrained systems through ``ser-tf train cnn_family``: ``--model
vgg16_mel`` (VGG16 on the mel image) and ``--model wav2vec2`` (a tiny save_pretrained
wav2vec2 standing in for facebook/wav2vec2-base, on the 16 kHz waveform), their flags and
checks, one clear message when the pretrained weights cannot be had offline, and the three
CNN models' run ids unchanged by them."""

import json

import numpy as np
import pytest

from ser_tf import cli
from ser_tf.papers.cnn_family.synthetic import make_pooled_corpora


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_pooled_corpora(tmp_path_factory.mktemp("pooled"), per_class=3, duration=1.0)


def train(data_root, tmp_path, *flags):
    argv = ["train", "cnn_family", "--data-root", str(data_root), "--results-dir",
            str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--quiet",
            "--epochs", "1", "--batch-size", "16", *flags]
    return cli.main(argv)


def only_record(tmp_path):
    path, = (tmp_path / "results").glob("cnn_family/*/*/record.json")
    return json.loads(path.read_text())


# Run ids of the three CNN models on the generated corpus, computed with the package as
# it was before the pretrained models joined it: adding them renames no run. (They change
# if synthetic.py's corpus changes; recompute them from that commit then.)
CNN_RUN_IDS = {("--model", "cnn"): "paper-ada81e05c4",
               ("--model", "2cnn", "--awgn", "2"): "paper-03f628f500",
               ("--input", "mel"): "paper-991380febd",
               ("--model", "cnn", "--bn-axis", "channels", "--protocol", "clean",
                "--folds", "2"): "clean-31b9f0c73a"}


@pytest.mark.parametrize("flags", list(CNN_RUN_IDS), ids=lambda f: " ".join(f))
def test_the_cnn_models_keep_their_run_ids(data_root, tmp_path, flags):
    from ser_tf.papers.cnn_family.experiment import build_parser, plan
    from ser_tf.reporting.records import run_id

    planned = plan(build_parser().parse_args(["--data-root", str(data_root), "--results-dir",
                                              str(tmp_path), *flags]))
    assert run_id(planned.config) == CNN_RUN_IDS[flags]
    assert not {"weights", "pretrained", "trainable_blocks"} & set(planned.config)


def test_flags_belong_to_their_model(capsys):
    from ser_tf.papers.cnn_family.experiment import build_parser

    parse = build_parser().parse_args
    assert parse([]).features == "mfcc" and parse(["--input", "mel"]).features == "mel"
    assert parse(["--model", "vgg16"]).model == "vgg16_mel"
    assert parse(["--model", "vgg16_mel"]).features == "mel"
    args = parse(["--model", "wav2vec2", "--pretrained", "x", "--train-feature-encoder",
                  "--awgn", "1"])
    assert (args.features, args.pretrained, args.train_feature_encoder) == \
        ("waveform", "x", True)
    for argv, rule in ((["--model", "cnn", "--weights", "none"],
                        "--weights: for --model vgg16_mel only"),
                       (["--model", "transformer", "--pretrained", "x"],
                        "--pretrained: for --model wav2vec2 only"),
                       (["--model", "vgg16_mel", "--pretrained", "x"],
                        "--pretrained: for --model wav2vec2 only"),
                       (["--model", "wav2vec2", "--trainable-blocks", "2"],
                        "--trainable-blocks: for --model vgg16_mel only"),
                       (["--model", "vgg16_mel", "--input", "mfcc"],
                        "--model vgg16_mel reads the mel image"),
                       (["--model", "wav2vec2", "--input", "mel"],
                        "--model wav2vec2 reads the 16 kHz waveform"),
                       (["--model", "wav2vec2", "--awgn", "2"],
                        "--awgn: wav2vec2 adds the noise on the fly"),
                       (["--model", "vgg16_mel", "--trainable-blocks", "6"],
                        "--trainable-blocks: VGG16 has 5 blocks"),
                       (["--model", "vgg16_mel", "--tune"],
                        "--tune: the learning-rate search is for the CNN models")):
        with pytest.raises(SystemExit):
            parse(argv)
        assert rule in capsys.readouterr().err, argv


def test_vgg16_mel_trains_from_random_init_on_the_mel_image(data_root, tmp_path):
    hparams = tmp_path / "small.json"  # 32 x 32 images keep the test short
    hparams.write_text(json.dumps({"fit": {}, "model": {"image_size": [32, 32]}}))
    assert train(data_root, tmp_path, "--model", "vgg16_mel", "--weights", "none",
                 "--trainable-blocks", "3", "--hparams", str(hparams), "--no-export",
                 "--noise-eval", "10") == 0
    record = only_record(tmp_path)
    config = record["config"]
    assert (config["model"], config["features"], config["recipe"]["name"]) == \
        ("vgg16_mel", "mel", "cnn_logmel")
    assert (config["weights"], config["trainable_blocks"]) == ("none", 3)
    assert config["model_kwargs"] == {"image_size": [32, 32]}
    assert "bn_axis" not in config and config["fit"]["learning_rate"] == 1e-4
    assert list(record["noise_robustness"]["conditions"]) == ["clean", "10 dB"]


def test_vgg16_imagenet_weights_offline_is_one_message(data_root, tmp_path, monkeypatch,
                                                       capsys):
    from urllib.error import URLError

    import ser_tf.data.download as download

    def no_network(request, timeout=None):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "urlopen", no_network)
    monkeypatch.setenv("HOME", str(tmp_path))  # Keras' cache ~/.keras/models: empty here
    assert train(data_root, tmp_path, "--model", "vgg16_mel") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in err[0]
    assert "place it at" in err[0] and "--weights" in err[0]
    assert not (tmp_path / "results").exists() or \
        not list((tmp_path / "results").glob("cnn_family/*/*/record.json"))


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    pytest.importorskip("transformers", reason="the wav2vec2 extra is not installed")
    pytest.importorskip("tf_keras", reason="the wav2vec2 extra is not installed")
    from ser_tf.models.wav2vec2_classifier import TINY_CONFIG, load_pretrained

    folder = tmp_path_factory.mktemp("w2v") / "tiny-wav2vec2"
    load_pretrained(None, TINY_CONFIG).save_pretrained(str(folder))
    return folder


def test_wav2vec2_fine_tunes_a_local_copy_on_the_waveform(data_root, tmp_path, tiny_wav2vec2):
    assert train(data_root, tmp_path, "--model", "wav2vec2", "--pretrained",
                 str(tiny_wav2vec2), "--awgn", "1", "--noise-eval", "10") == 0
    record = only_record(tmp_path)
    config = record["config"]
    assert (config["model"], config["features"], config["recipe"]["name"]) == \
        ("wav2vec2", "waveform", "cnn_waveform")
    assert config["pretrained"]["folder"] == "tiny-wav2vec2"
    assert len(config["pretrained"]["sha256"]) == 64  # what was loaded, not where it lay
    assert config["freeze_feature_encoder"] is True and config["awgn_copies"] == 1
    assert config["fit"]["learning_rate"] == 5e-5
    assert record["per_fold"][0]["checkpoint"]["policy"] == "best-val"
    assert "tflite" not in record  # no per-fold export for wav2vec2 (README)
    conditions = record["per_fold"][0]["noise"]["conditions"]
    assert list(conditions) == ["clean", "10 dB"]
    assert conditions["clean"]["UA"] == pytest.approx(record["per_fold"][0]["metrics"]["UA"])


def test_wav2vec2_hub_name_offline_is_one_message(data_root, tmp_path, monkeypatch, capsys,
                                                  tiny_wav2vec2):
    from ser_tf.models import wav2vec2_classifier

    monkeypatch.setattr(wav2vec2_classifier, "_hub_unreachable",
                        lambda: "huggingface.co cannot be reached: no network")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert train(data_root, tmp_path, "--model", "wav2vec2") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "cannot download facebook/wav2vec2-base here" in err[0]
    assert err[0].endswith("give --pretrained PATH to a local copy (save_pretrained folder)")


def test_waveform_recipe_is_the_window_itself():
    from ser_tf.features.recipes import get_recipe
    from ser_tf.papers.cnn_family.recipes import WAVEFORM

    audio = np.random.default_rng(0).normal(size=16000 * 5).astype("float32")
    segment = WAVEFORM.segment_audio(audio)
    assert segment.shape == (48000,) and np.array_equal(segment, audio[8000:56000])
    assert np.array_equal(WAVEFORM.compute(segment[None]), segment[None])
    assert WAVEFORM.feature_shape() == (48000,)
    assert get_recipe("cnn_waveform").compute(segment[None]).shape == (1, 48000)
    assert WAVEFORM.config()["frontend"] == {"kind": "waveform"}
