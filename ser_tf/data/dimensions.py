"""Emotion categories -> continuous dimensions (arousal, valence, dominance), for proxy
experiments that train a dimensional model on a categorical corpus (EMO-DB, RAVDESS).

Source: the NRC Valence, Arousal, and Dominance Lexicon, version 1.0 (released 2018):
Saif M. Mohammad, "Obtaining Reliable Human Ratings of Valence, Arousal, and Dominance for
20,000 English Words", Proceedings of the 56th Annual Meeting of the Association for
Computational Linguistics (ACL 2018), Melbourne. Its scores are in [0, 1] (best-worst
scaling of crowd ratings).

How the values below were taken: each category's entry is the lexicon entry of the
category's own word, as the corpora here name it (``ser_tf.data.corpora``: EMO-DB's
anger, boredom, disgust, fear, happiness, sadness, neutral; RAVDESS's neutral, calm,
happiness, sadness, anger, fear, disgust, surprise). RAVDESS's own adjectives (happy, sad,
angry, fearful, surprised) are aliases of the noun categories, so one category gets one
target whatever a corpus calls it (the adjectives' own entries differ, e.g. ``fearful``
has arousal 0.482 against ``fear``'s 0.840; they are listed in ``NRC_VAD_ADJECTIVES`` for
reference, unused). The values were read from two independent public copies of the
v1.0 ``NRC-VAD-Lexicon.txt`` (agreeing on every entry checked), not from the NRC site
itself, which could not be reached from here: check them against the official file before
publishing numbers that rest on them.

Rescaling: ``x' = 2 * x - 1`` maps [0, 1] onto [-1, 1] (0.5, the scale's midpoint, -> 0).

=========  =======  =======  =========  ==========================
category   valence  arousal  dominance  lexicon word
=========  =======  =======  =========  ==========================
anger      0.167    0.865    0.657      anger
boredom    0.167    0.139    0.255      boredom
calm       0.875    0.100    0.282      calm
disgust    0.052    0.775    0.317      disgust
fear       0.073    0.840    0.293      fear
happiness  0.960    0.732    0.850      happiness
neutral    0.469    0.184    0.357      neutral
sadness    0.052    0.288    0.164      sadness
surprise   0.875    0.875    0.562      surprise
=========  =======  =======  =========  ==========================

(Lexicon quirks kept as published: ``neutral`` is low-arousal, ``surprise`` clearly
positive.)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["DIMENSIONS", "EMOTION_DIMENSIONS", "LABEL_ALIASES", "NRC_VAD_V1",
           "NRC_VAD_ADJECTIVES", "dimensional_targets"]

DIMENSIONS = ("arousal", "valence", "dominance")

#: NRC VAD Lexicon v1.0 entries (valence, arousal, dominance in [0, 1]) of the category words.
NRC_VAD_V1: dict[str, tuple[float, float, float]] = {
    "anger": (0.167, 0.865, 0.657),
    "boredom": (0.167, 0.139, 0.255),
    "calm": (0.875, 0.100, 0.282),
    "disgust": (0.052, 0.775, 0.317),
    "fear": (0.073, 0.840, 0.293),
    "happiness": (0.960, 0.732, 0.850),
    "neutral": (0.469, 0.184, 0.357),
    "sadness": (0.052, 0.288, 0.164),
    "surprise": (0.875, 0.875, 0.562),
}

#: The same lexicon's entries for RAVDESS's adjectives (valence, arousal, dominance), for
#: reference only: the aliases below use the noun entries.
NRC_VAD_ADJECTIVES: dict[str, tuple[float, float, float]] = {
    "happy": (1.000, 0.735, 0.772),
    "sad": (0.225, 0.333, 0.149),
    "angry": (0.122, 0.830, 0.604),
    "fearful": (0.083, 0.482, 0.278),
    "surprised": (0.784, 0.855, 0.539),
    "bored": (0.153, 0.167, 0.196),
    "disgusted": (0.051, 0.773, 0.274),
}

#: Other spellings of a category -> the category.
LABEL_ALIASES = {"happy": "happiness", "sad": "sadness", "angry": "anger", "fearful": "fear",
                 "surprised": "surprise", "bored": "boredom", "disgusted": "disgust"}

#: category -> {"arousal", "valence", "dominance"} in [-1, 1] (2 * lexicon score - 1).
EMOTION_DIMENSIONS: dict[str, dict[str, float]] = {
    category: {"valence": round(2 * v - 1, 3), "arousal": round(2 * a - 1, 3),
               "dominance": round(2 * d - 1, 3)}
    for category, (v, a, d) in NRC_VAD_V1.items()
}


def dimensional_targets(label: str, dimensions: Sequence[str] = ("arousal", "valence")
                        ) -> np.ndarray:
    """The category ``label``'s values on ``dimensions``, float32 in [-1, 1].

    ``label`` is matched case-insensitively, aliases included (``"Happy"`` ->
    ``happiness``). ValueError for an unknown label or dimension.
    """
    if isinstance(dimensions, str):
        dimensions = (dimensions,)
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown or not dimensions:
        raise ValueError(f"dimensions must be a non-empty selection of {DIMENSIONS}, got "
                         f"{list(dimensions)}")
    name = str(label).strip().lower()
    category = LABEL_ALIASES.get(name, name)
    if category not in EMOTION_DIMENSIONS:
        known = sorted(set(EMOTION_DIMENSIONS) | set(LABEL_ALIASES))
        raise ValueError(f"no dimensional mapping for emotion label {label!r}; known labels: "
                         f"{', '.join(known)}")
    values = EMOTION_DIMENSIONS[category]
    return np.asarray([values[d] for d in dimensions], np.float32)
