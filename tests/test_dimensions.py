"""Category -> arousal/valence mapping from the NRC VAD Lexicon v1.0."""

import numpy as np
import pytest

from ser_tf.data.dimensions import (EMOTION_DIMENSIONS, NRC_VAD_V1, dimensional_targets)

EMODB = ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
RAVDESS_REPO = ("neutral", "calm", "happiness", "sadness", "anger", "fear", "disgust", "surprise")
RAVDESS_ADJECTIVES = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust",
                      "surprised")


def test_every_corpus_label_has_values_in_range():
    for label in EMODB + RAVDESS_REPO + RAVDESS_ADJECTIVES:
        values = dimensional_targets(label, ("arousal", "valence", "dominance"))
        assert values.dtype == np.float32 and values.shape == (3,)
        assert np.all(values >= -1) and np.all(values <= 1)


def test_values_are_the_rescaled_lexicon_entries():
    # anger: NRC VAD v1.0 valence 0.167, arousal 0.865 -> 2x - 1
    np.testing.assert_allclose(dimensional_targets("anger"), [0.73, -0.666], atol=1e-6)
    np.testing.assert_allclose(dimensional_targets("sadness", ("valence",)), [-0.896], atol=1e-6)
    for category, (v, a, d) in NRC_VAD_V1.items():
        assert EMOTION_DIMENSIONS[category] == pytest.approx(
            {"valence": 2 * v - 1, "arousal": 2 * a - 1, "dominance": 2 * d - 1}, abs=1e-9)


def test_aliases_and_case_map_to_the_noun_category():
    np.testing.assert_array_equal(dimensional_targets("Happy"), dimensional_targets("happiness"))
    np.testing.assert_array_equal(dimensional_targets("fearful"), dimensional_targets("fear"))


def test_the_mapping_orders_categories_sensibly():
    arousal = {c: dimensional_targets(c, "arousal")[0] for c in EMOTION_DIMENSIONS}
    valence = {c: dimensional_targets(c, "valence")[0] for c in EMOTION_DIMENSIONS}
    assert arousal["anger"] > arousal["neutral"] > arousal["calm"]
    assert valence["happiness"] > valence["neutral"] > valence["sadness"]


def test_unknown_label_or_dimension_is_a_clear_error():
    with pytest.raises(ValueError, match="no dimensional mapping for emotion label 'contempt'"):
        dimensional_targets("contempt")
    with pytest.raises(ValueError, match="dimensions"):
        dimensional_targets("anger", ("arousal", "liking"))
