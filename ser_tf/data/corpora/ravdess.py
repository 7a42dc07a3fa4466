"""RAVDESS, the Ryerson Audio-Visual Database of Emotional Speech and Song
(Livingstone & Russo, PLoS ONE 13(5): e0196391, 2018).

24 actors (12 female, 12 male), 2 English statements, 8 emotions. The audio-only speech
part has 1440 files (60 per actor), 48 kHz 16-bit WAV in the release
(``Audio_Speech_Actors_01-24.zip``, one ``Actor_NN/`` folder per actor); the song part
(``Audio_Song_Actors_01-24.zip``) has 1012 more, without disgust and surprise.

File ``03-01-05-01-02-01-12.wav``, seven two-digit fields: modality (01 audio-video,
02 video-only, 03 audio-only), vocal channel (01 speech, 02 song), emotion (see
:data:`EMOTIONS`), intensity (01 normal, 02 strong; neutral has normal only), statement
(01 "Kids are talking by the door", 02 "Dogs are sitting by the door"), repetition (01, 02),
actor (01-24; odd = male, even = female). Files may sit in ``Actor_NN/`` folders, flat, or
nested anywhere below the root; only audio-only (modality 03) WAV files are used.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_tf.data.corpora.base import Corpus, register, wav_files
from ser_tf.data.manifest import Utterance

#: Emotion code -> label, in the corpus's own code order (01 neutral ... 08 surprised),
#: named like the other corpora's labels (happy -> happiness, angry -> anger, ...).
EMOTIONS = {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness", "05": "anger",
            "06": "fear", "07": "disgust", "08": "surprise"}

STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
INTENSITIES = {"01": "normal", "02": "strong"}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
MODALITIES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}

_NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")


@register
class RAVDESS(Corpus):
    name = "RAVDESS"
    folder = "ravdess"
    homepage = "https://zenodo.org/record/1188976"
    language = "North American English"
    speech = "acted by 24 professional actors (12 female, 12 male), 2 fixed statements, studio recordings"
    layout = ("Actor_12/03-01-05-01-02-01-12.wav (modality-channel-emotion-intensity-"
              "statement-repetition-actor), folders optional")
    #: The speech part; ``include_song=True`` adds up to 1012 song files.
    expected_files = 1440

    def __init__(self, merge_calm: bool = False, include_song: bool = False):
        for option, value in (("merge_calm", merge_calm), ("include_song", include_song)):
            if not isinstance(value, bool):
                raise ValueError(f"RAVDESS option {option} must be True or False, got {value!r}")
        self.merge_calm = merge_calm
        self.include_song = include_song

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(v for v in EMOTIONS.values() if not (self.merge_calm and v == "calm"))

    def scan(self, root: Path) -> list[Utterance]:
        utterances, seen = [], {}
        for path in wav_files(Path(root)):
            match = _NAME.fullmatch(path.stem)
            if not match:
                raise self.layout_error(path, "file name does not follow the RAVDESS scheme "
                                              "(e.g. 03-01-05-01-02-01-12.wav)")
            modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
            if (modality not in MODALITIES or channel not in VOCAL_CHANNELS
                    or emotion not in EMOTIONS or intensity not in INTENSITIES
                    or statement not in STATEMENTS or repetition not in ("01", "02")
                    or not 1 <= int(actor) <= 24):
                raise self.layout_error(path, "a field of the file name is out of range for "
                                              "RAVDESS (e.g. emotion 01-08, actor 01-24)")
            if modality != "03" or (channel == "02" and not self.include_song):
                continue
            if path.stem in seen:
                raise self.layout_error(path, f"the same recording is also at {seen[path.stem]}")
            seen[path.stem] = path
            label = EMOTIONS[emotion]
            if self.merge_calm and label == "calm":
                label = "neutral"
            utterances.append(Utterance(
                utterance_id=path.stem, path=str(path), label=label, speaker=actor,
                corpus=self.name, gender="male" if int(actor) % 2 else "female",
                text=STATEMENTS[statement],
                extra={"emotion_code": emotion, "intensity": INTENSITIES[intensity],
                       "statement": STATEMENTS[statement], "repetition": int(repetition),
                       "vocal_channel": VOCAL_CHANNELS[channel]}))
        return utterances
