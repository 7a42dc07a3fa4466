"""CREMA-D, the Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al., IEEE Trans.
Affective Computing 5(4), 2014).

91 actors (43 female, 48 male, ids 1001-1091), 12 English sentences, 6 emotions, 7442 clips,
16 kHz WAV in ``AudioWAV/``. File ``1001_DFA_ANG_XX.wav`` = actor_sentence_emotion_level; the
level is LO, MD, HI or XX (unspecified); one release file, ``1040_ITH_SAD_X.wav``, has ``X``
(read as XX). Actor sex, age, race and ethnicity are in ``VideoDemographics.csv``
(``ActorID,Age,Sex,Race,Ethnicity``) at the top of the release: when that file is anywhere below
the root or next to it, it gives ``gender`` and ``extra["age"]``; otherwise gender is ``None``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ser_tf.data.corpora.base import Corpus, register, wav_files
from ser_tf.data.manifest import Utterance

#: Emotion code -> label, in the label order used everywhere (the corpus's code order).
EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness",
            "NEU": "neutral", "SAD": "sadness"}

#: Sentence code -> text.
TEXTS = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting", "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before",
    "TSI": "The surface is slick", "WSI": "We'll stop in a couple of minutes",
}

LEVELS = {"LO": "LO", "MD": "MD", "HI": "HI", "XX": "XX", "X": "XX"}

DEMOGRAPHICS = "VideoDemographics.csv"

_NAME = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})")


@register
class CREMAD(Corpus):
    name = "CREMAD"
    folder = "cremad"
    homepage = "https://github.com/CheyneyComputerScience/CREMA-D"
    language = "English"
    speech = "acted by 91 actors of varied age and ethnicity, 12 sentences"
    layout = ("AudioWAV/1001_DFA_ANG_XX.wav (actor_sentence_emotion_level), optional "
              "VideoDemographics.csv")
    expected_files = 7442

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(EMOTIONS.values())

    def read_demographics(self, root: Path) -> dict[str, dict]:
        """``ActorID -> {"gender", "age"}`` from ``VideoDemographics.csv``, or ``{}``."""
        found = sorted(root.rglob(DEMOGRAPHICS)) + [root.parent / DEMOGRAPHICS]
        found = [p for p in found if p.is_file()]
        if not found:
            return {}
        with open(found[0], newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not {"ActorID", "Sex"} <= set(reader.fieldnames or ()):
                raise self.layout_error(found[0], "expected the columns ActorID,Age,Sex,Race,"
                                                  "Ethnicity")
            table = {}
            for row in reader:
                sex = (row["Sex"] or "").strip().lower()
                age = (row.get("Age") or "").strip()
                table[row["ActorID"].strip()] = {
                    "gender": sex if sex in ("female", "male") else None,
                    "age": int(age) if age.isdigit() else None}
        return table

    def scan(self, root: Path) -> list[Utterance]:
        root = Path(root)
        demographics = self.read_demographics(root)
        utterances = []
        for path in wav_files(root):
            match = _NAME.fullmatch(path.stem)
            if (not match or match.group(2) not in TEXTS or match.group(3) not in EMOTIONS
                    or match.group(4) not in LEVELS):
                raise self.layout_error(path, "file name does not follow the CREMA-D scheme "
                                              "(e.g. 1001_DFA_ANG_XX.wav)")
            actor, sentence, emotion, level = match.groups()
            extra = {"sentence": sentence, "level": LEVELS[level]}
            person = demographics.get(actor, {})
            if person.get("age") is not None:
                extra["age"] = person["age"]
            utterances.append(Utterance(
                utterance_id=path.stem, path=str(path), label=EMOTIONS[emotion], speaker=actor,
                corpus=self.name, gender=person.get("gender"), text=TEXTS[sentence],
                extra=extra))
        return utterances
