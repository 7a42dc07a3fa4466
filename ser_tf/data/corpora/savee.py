"""SAVEE, Surrey Audio-Visual Expressed Emotion (Haq & Jackson, AVSP 2009; Haq & Jackson,
"Multimodal emotion recognition", in Machine Audition, IGI Global, 2010).

4 male British-English speakers (DC, JE, JK, KL), 7 emotions, 120 utterances each (neutral 30,
the other emotions 15), 480 in all. The release's ``AudioData/DC/a01.wav`` holds one folder per
speaker; a common flat copy names the files ``DC_a01.wav``. Both layouts are accepted. The file
name starts with the emotion prefix (:data:`EMOTIONS`; ``sa`` sadness and ``su`` surprise are two
letters) followed by a two-digit take number.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_tf.data.corpora.base import Corpus, register, wav_files
from ser_tf.data.manifest import Utterance

#: Emotion prefix -> label, in the label order used everywhere (alphabetical, as the corpus
#: documentation lists them).
EMOTIONS = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "n": "neutral",
            "sa": "sadness", "su": "surprise"}

SPEAKERS = ("DC", "JE", "JK", "KL")

# Two-letter prefixes first, so "sa01" is never read as "s" + "a01".
_TAKE = re.compile(r"(sa|su|a|d|f|h|n)(\d\d)", re.IGNORECASE)


@register
class SAVEE(Corpus):
    name = "SAVEE"
    folder = "savee"
    homepage = "http://kahlan.eps.surrey.ac.uk/savee/"
    language = "British English"
    speech = "acted by 4 male speakers, phonetically balanced sentences"
    layout = "AudioData/DC/a01.wav (speaker folder, emotion prefix, take) or flat DC_a01.wav"
    expected_files = 480

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(EMOTIONS.values())

    def scan(self, root: Path) -> list[Utterance]:
        utterances, seen = [], {}
        for path in wav_files(Path(root)):
            speaker, _, take = path.stem.rpartition("_")
            if not speaker:  # AudioData/DC/a01.wav: the folder names the speaker
                speaker = path.parent.name
            speaker = speaker.upper()
            match = _TAKE.fullmatch(take)
            if speaker not in SPEAKERS or not match:
                raise self.layout_error(path, "file name does not follow the SAVEE scheme "
                                              "(e.g. DC/a01.wav or DC_a01.wav)")
            prefix, number = match.group(1).lower(), match.group(2)
            utterance_id = f"{speaker}_{prefix}{number}"
            if utterance_id in seen:
                raise self.layout_error(path, f"the same recording is also at {seen[utterance_id]}")
            seen[utterance_id] = path
            utterances.append(Utterance(
                utterance_id=utterance_id, path=str(path), label=EMOTIONS[prefix],
                speaker=speaker, corpus=self.name, gender="male",
                extra={"take": int(number)}))
        return utterances
