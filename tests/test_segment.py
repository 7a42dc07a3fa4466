"""Segmentation: the generic operations, the segment-kind registry, and the paper kinds
registered by ser_tf.papers.lightsernet / ser_tf.papers.timnet (same strings and configs
as before they moved out of the shared layer: run ids and feature-cache keys hash them)."""

import ast
from pathlib import Path

import numpy as np
import pytest

from ser_tf.features import segment as seg
from ser_tf.features.recipes import FeatureRecipe, get_recipe, register_recipe
from ser_tf.papers.lightsernet.recipes import segment_lightsernet
from ser_tf.papers.timnet.recipes import TIMNET_LENGTHS, TIMNET_SAMPLE_RATE, segment_timnet

PACKAGE = Path(__file__).resolve().parents[1] / "ser_tf"


def ramp(n):
    return (np.arange(n, dtype=np.float32) + 1) / n


def test_lightsernet_long_file_is_centre_cropped_floor_in_front():
    sr, dur = 100, 3.0
    audio = ramp(307)  # 7 samples too many: 3 removed in front, 4 behind
    out = segment_lightsernet(audio, sr, dur)
    assert out.shape == (300,)
    scale = np.percentile(np.abs(audio[3:303]), 99.9) + 1e-6
    np.testing.assert_allclose(out, np.clip(audio[3:303] / scale, -1, 1), rtol=1e-6)


def test_lightsernet_short_file_normalised_then_padded_symmetrically():
    sr = 100
    audio = np.full(295, 0.25, dtype=np.float32)
    audio[10] = 0.5  # above the 99.9th percentile: clipped to 1 after scaling
    out = segment_lightsernet(audio, sr, 3.0)
    assert out.shape == (300,)
    assert np.all(out[:2] == 0) and np.all(out[-3:] == 0) and out[2] != 0 and out[-4] != 0
    assert out.max() == 1.0 and np.all(np.abs(out) <= 1.0)
    np.testing.assert_allclose(out[3], 0.25 / (np.percentile(np.abs(audio), 99.9) + 1e-6), rtol=1e-6)


def test_percentile_normalize_makes_robust_peak_one():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(10000).astype(np.float32)
    out = seg.percentile_normalize(audio)
    assert np.isclose(np.percentile(np.abs(out), 99.9), 1.0, atol=1e-3)
    assert np.abs(out).max() <= 1.0


def test_sliding_windows_cover_the_whole_recording():
    sr = 10
    audio = ramp(75)  # 7.5 s: windows at 0,1,2,3,4 s and one aligned to the end
    w = seg.sliding_windows(audio, sr, window=3.0, hop=1.0, normalize=False)
    assert w.shape == (6, 30)
    np.testing.assert_array_equal(w[0], audio[:30])
    np.testing.assert_array_equal(w[-1], audio[-30:])
    short = seg.sliding_windows(ramp(12), sr, window=3.0, hop=1.0, normalize=False)
    assert short.shape == (1, 30) and short[0, 9] == ramp(12)[0] and short[0, 8] == 0


@pytest.mark.parametrize("corpus,length", sorted(TIMNET_LENGTHS.items()))
def test_timnet_lengths(corpus, length):
    assert segment_timnet(ramp(1000), corpus).shape == (length,)
    assert segment_timnet(ramp(length + 11), corpus)[0] == ramp(length + 11)[5]


def test_timnet_unknown_corpus():
    with pytest.raises(ValueError, match="no TIM-Net length"):
        segment_timnet(ramp(10), "TESS")


def test_window_from_offset_and_padding():
    audio = ramp(100)
    out = seg.segment_window(audio, sr=10, offset=0.5, duration=3.0)
    np.testing.assert_array_equal(out, audio[5:35])
    tail = seg.segment_window(audio, sr=10, offset=9.0, duration=3.0)
    assert tail.shape == (30,) and np.all(tail[10:] == 0)


def test_rejects_multichannel():
    with pytest.raises(ValueError, match="1-D"):
        seg.pad_or_crop_center(np.zeros((10, 2)), 5)


# --- the registry ----------------------------------------------------------------------

def test_generic_kinds_are_registered_and_paper_kinds_come_with_their_package():
    assert {"window", "none", "crop_normalise_pad", "pad_or_crop"} <= set(seg.segment_kinds())
    assert {"lightsernet", "timnet"} <= set(seg.segment_kinds())  # imported above
    with pytest.raises(ValueError, match=r"unknown segment kind 'nope'.*ser_tf\.papers\.<name>"):
        seg.get_segmenter("nope")
    with pytest.raises(ValueError, match="recipe bad: unknown segment kind 'nope'"):
        FeatureRecipe("bad", 16000, {"kind": "nope"})


def test_shared_modules_name_no_paper_kind():
    """The shared layer's code registers only generic kinds (comments may cite papers)."""
    for module in ("features/segment.py", "features/recipes.py"):
        tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
        strings = {node.value for node in ast.walk(tree)
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        assert not {"lightsernet", "timnet"} & strings, module
        assert not any(s.startswith("timnet-") for s in strings), module


def test_crop_normalise_pad_is_the_lightsernet_segmentation():
    rng = np.random.default_rng(3)
    for n in (250, 300, 377):
        audio = rng.standard_normal(n).astype(np.float32)
        generic = FeatureRecipe("g", 100, {"kind": "crop_normalise_pad", "duration": 3.0})
        paper = FeatureRecipe("p", 100, {"kind": "lightsernet", "duration": 3.0})
        np.testing.assert_array_equal(generic.segment_audio(audio), paper.segment_audio(audio))
        np.testing.assert_array_equal(paper.segment_audio(audio),
                                      segment_lightsernet(audio, 100, 3.0))
    assert generic.num_samples() == paper.num_samples() == 300
    expected = {"method": "percentile", "percentile": 99.9, "clip": 1.0}
    assert generic.window_normalisation() == paper.window_normalisation() == expected
    other = generic.replace(segment={"percentile": 95.0})
    assert other.window_normalisation()["percentile"] == 95.0


def test_generic_kinds_lengths_and_normalisation():
    audio = ramp(100)
    window = FeatureRecipe("w", 10, {"kind": "window", "offset": 0.5, "duration": 3.0})
    np.testing.assert_array_equal(window.segment_audio(audio), audio[5:35])
    assert window.num_samples() == 30 and window.window_normalisation() is None
    pad = FeatureRecipe("p", 10, {"kind": "pad_or_crop", "length": 40})
    np.testing.assert_array_equal(pad.segment_audio(audio), audio[30:70])
    assert pad.num_samples() == 40 and pad.window_normalisation() is None
    whole = FeatureRecipe("n", 10, {"kind": "none"})
    np.testing.assert_array_equal(whole.segment_audio(audio), audio)
    assert whole.window_normalisation() is None
    with pytest.raises(ValueError, match="recipe n: segment kind 'none' has no fixed length"):
        whole.num_samples()
    timnet = FeatureRecipe("t", TIMNET_SAMPLE_RATE, {"kind": "timnet", "corpus": "emodb"})
    assert timnet.num_samples() == 96000 and timnet.window_normalisation() is None


def test_a_taken_kind_keeps_its_meaning():
    with pytest.raises(ValueError, match="'window' is already registered"):
        seg.register_segmenter("window", lambda audio, sample_rate: audio,
                               lambda sample_rate: None)
    current = seg.get_segmenter("window")
    # The same definitions again (a module imported twice) are accepted.
    seg.register_segmenter("window", current.segment, current.num_samples,
                           current.window_normalisation)
    assert seg.get_segmenter("window") == current


def test_window_normalisation_specs():
    spec = {"method": "percentile", "percentile": 99.9, "clip": 1.0}
    assert seg.check_window_normalisation(spec) == spec
    assert seg.check_window_normalisation(None) is None
    for bad in ({"method": "peak"}, {"method": "percentile", "percentile": 0},
                {"method": "percentile", "percentile": 99.9, "clip": -1},
                {"method": "percentile", "percentile": 99.9, "gain": 2}, "percentile"):
        with pytest.raises(ValueError, match="window normalisation"):
            seg.check_window_normalisation(bad)
    audio = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    np.testing.assert_array_equal(seg.normalise_window(audio, spec),
                                  seg.percentile_normalize(audio))
    unclipped = seg.normalise_window(audio, {**spec, "clip": None})
    assert np.abs(unclipped).max() > 1.0
    np.testing.assert_array_equal(seg.normalise_window(audio, None), audio)
    # sliding_windows: True is the 99.9th-percentile normalisation, a dict is applied as is.
    np.testing.assert_array_equal(seg.sliding_windows(audio, 100, 3.0, 1.0),
                                  seg.sliding_windows(audio, 100, 3.0, 1.0, normalize=spec))
    np.testing.assert_array_equal(seg.sliding_windows(audio, 100, 3.0, 1.0, normalize=None),
                                  seg.sliding_windows(audio, 100, 3.0, 1.0, normalize=False))


# Today's configs, copied from the code before the paper recipes moved to ser_tf.papers:
# run ids and feature-cache keys hash them, so they must not change by a byte.
LIGHTSERNET_CONFIG = {
    "name": "lightsernet", "sample_rate": 16000,
    "segment": {"kind": "lightsernet", "duration": 3.0},
    "frontend": {"kind": "mfcc", "frame_length": 1024, "frame_step": 256, "fft_length": 1024,
                 "window": "hann", "power": 1.0, "center": False, "pad_mode": "constant",
                 "num_mel_bins": 128, "fmin": 80.0, "fmax": 7600.0, "mel_scale": "htk",
                 "norm": None, "log": "log", "log_offset": 1e-06, "num_mfcc": 40,
                 "dct_norm": "tf", "clip": 10.0, "dft": "fft"}}
TIMNET_EMODB_CONFIG = {
    "name": "timnet-EMODB", "sample_rate": 22050,
    "segment": {"kind": "timnet", "corpus": "EMODB"},
    "frontend": {"kind": "librosa_mfcc", "frame_length": 2048, "frame_step": 512,
                 "fft_length": 2048, "window": "hann", "power": 2.0, "center": True,
                 "pad_mode": "constant", "num_mel_bins": 128, "fmin": 0.0, "fmax": None,
                 "mel_scale": "slaney", "norm": "slaney", "log": "db", "ref": 1.0,
                 "amin": 1e-10, "top_db": 80.0, "dct_norm": "ortho", "num_mfcc": 39}}


def test_paper_recipes_keep_their_configs_byte_for_byte():
    import json

    for name, expected in (("lightsernet", LIGHTSERNET_CONFIG),
                           ("timnet-EMODB", TIMNET_EMODB_CONFIG)):
        config = get_recipe(name).config()
        assert config == expected
        assert json.dumps(config) == json.dumps(expected)  # key order too
    for corpus in ("CASIA", "EMODB", "EMOVO", "IEMOCAP", "RAVDESS", "SAVEE"):
        recipe = get_recipe(f"timnet-{corpus}")
        assert recipe.segment == {"kind": "timnet", "corpus": corpus}
        assert recipe.frontend == TIMNET_EMODB_CONFIG["frontend"]
        assert recipe.num_samples() == TIMNET_LENGTHS[corpus]


def test_recipe_registry():
    with pytest.raises(KeyError, match=r"unknown feature recipe 'nope'.*ser_tf\.papers"):
        get_recipe("nope")
    register_recipe(get_recipe("lightsernet"))  # the same config again: accepted
    with pytest.raises(ValueError, match="'lightsernet' is already registered"):
        register_recipe(get_recipe("lightsernet", segment={"duration": 7.0}))
    assert get_recipe("lightsernet").config() == LIGHTSERNET_CONFIG


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import module` imports the module too.
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_paper_segmentation_modules_import_no_tensorflow():
    """The lightsernet / timnet recipes modules and the ser_tf modules they import, as the
    source says (module level and inside functions, excluding lazily imported front-ends):
    NumPy only, no TensorFlow or Keras."""
    lazy = {"ser_tf.features.frontends"}  # FeatureRecipe.compute imports it when called
    todo = ["ser_tf.papers.lightsernet.recipes", "ser_tf.papers.timnet.recipes"]
    seen = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        for target in imports_of(path):
            assert target.split(".")[0] not in ("tensorflow", "keras", "tf_keras"), module
            if target.startswith("ser_tf.") and target not in lazy and \
                    (PACKAGE.parent / (target.replace(".", "/") + ".py")).is_file():
                todo.append(target)
    assert "ser_tf.features.segment" in seen and "ser_tf.features.recipes" in seen
