"""TESS, the Toronto Emotional Speech Set (Dupuis & Pichora-Fuller, University of Toronto,
2010; Dupuis & Pichora-Fuller, Canadian Acoustics 39(3), 2011).

Two female speakers, OAF (older adult, 64) and YAF (younger adult, 26), say "Say the word ___"
with the 200 target words of the NU-6 test in 7 emotions: 2800 files, 24.4 kHz WAV.
File ``OAF_back_angry.wav`` = speaker_word_emotion; the files sit in folders such as
``OAF_angry/``, ``OAF_Fear/`` or ``YAF_pleasant_surprised/`` whose spelling varies, so only the
FILE name is parsed. The emotion part is case-insensitive and may itself contain an underscore
(``pleasant_surprise``); pleasant surprise is usually written ``ps``. One file of the release
is named ``OA_bite_neutral.wav``: the ``OA`` speaker prefix is read as OAF.
"""

from __future__ import annotations

from pathlib import Path

from ser_tf.data.corpora.base import Corpus, register, wav_files
from ser_tf.data.manifest import Utterance

#: The label order used everywhere (alphabetical; the emotion spellings are mapped below).
LABELS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")

#: Emotion as written in the file name (lower case) -> label.
EMOTIONS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
            "neutral": "neutral", "sad": "sadness", "ps": "surprise",
            "pleasant_surprise": "surprise", "pleasant_surprised": "surprise"}

#: Speaker prefix -> (speaker, age group); ``OA`` is the misspelled prefix of one OAF file.
SPEAKERS = {"OAF": ("OAF", "older"), "YAF": ("YAF", "younger"), "OA": ("OAF", "older")}


@register
class TESS(Corpus):
    name = "TESS"
    folder = "tess"
    homepage = "https://doi.org/10.5683/SP2/E8H2MF"
    language = "Canadian English"
    speech = 'acted by 2 female speakers (aged 26 and 64), carrier phrase "Say the word ..."'
    layout = "OAF_angry/OAF_back_angry.wav (speaker_word_emotion; folder names may vary)"
    expected_files = 2800

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def scan(self, root: Path) -> list[Utterance]:
        utterances, seen = [], {}
        for path in wav_files(Path(root)):
            parts = path.stem.split("_", 2)
            emotion = parts[2].lower() if len(parts) == 3 else ""
            if parts[0].upper() not in SPEAKERS or emotion not in EMOTIONS or not parts[1]:
                raise self.layout_error(path, "file name does not follow the TESS scheme "
                                              "(e.g. OAF_back_angry.wav or YAF_dog_ps.wav)")
            speaker, age_group = SPEAKERS[parts[0].upper()]
            word = parts[1].lower()
            utterance_id = f"{speaker}_{word}_{emotion}"
            if utterance_id in seen:
                raise self.layout_error(path, f"the same recording is also at {seen[utterance_id]}")
            seen[utterance_id] = path
            utterances.append(Utterance(
                utterance_id=utterance_id, path=str(path), label=EMOTIONS[emotion],
                speaker=speaker, corpus=self.name, gender="female", text=f"Say the word {word}",
                extra={"word": word, "age_group": age_group}))
        return utterances
