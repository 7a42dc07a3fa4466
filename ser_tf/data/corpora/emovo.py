"""EMOVO, an Italian emotional speech corpus (Costantini, Iaderola, Paoloni & Todisco,
LREC 2014).

6 actors (f1, f2, f3 female; m1, m2, m3 male), 14 sentences, 7 emotions: 588 files, one folder
per actor (``f1/dis-f1-b1.wav``). File name = emotion-speaker-sentence; the emotion codes are
Italian (:data:`EMOTIONS`), the sentence codes are b1, b2, d1, d2, l1-l4, n1-n5 (kept as
``extra["sentence"]``). The release is 48 kHz stereo WAV: :func:`ser_tf.data.read_audio`
averages the channels and resamples when asked, so the files are used as released.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_tf.data.corpora.base import Corpus, register, wav_files
from ser_tf.data.manifest import Utterance

#: The label order used everywhere (alphabetical, in English).
LABELS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")

#: Italian emotion code -> label: disgusto, gioia, neutro, paura, rabbia, sorpresa, tristezza.
EMOTIONS = {"dis": "disgust", "gio": "joy", "neu": "neutral", "pau": "fear", "rab": "anger",
            "sor": "surprise", "tri": "sadness"}

_NAME = re.compile(r"([a-z]{3})-([fm]\d)-([a-z]\d)", re.IGNORECASE)


@register
class EMOVO(Corpus):
    name = "EMOVO"
    folder = "emovo"
    homepage = "http://voice.fub.it/activities/corpora/emovo/index.html"
    language = "Italian"
    speech = "acted by 6 actors, 14 sentences"
    layout = "f1/dis-f1-b1.wav (emotion-speaker-sentence, one folder per speaker f1-f3, m1-m3)"
    expected_files = 588

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def scan(self, root: Path) -> list[Utterance]:
        utterances = []
        for path in wav_files(Path(root)):
            match = _NAME.fullmatch(path.stem)
            if not match or match.group(1).lower() not in EMOTIONS:
                raise self.layout_error(path, "file name does not follow the EMOVO scheme "
                                              "(e.g. dis-f1-b1.wav)")
            emotion, speaker, sentence = (g.lower() for g in match.groups())
            utterances.append(Utterance(
                utterance_id=f"{emotion}-{speaker}-{sentence}", path=str(path),
                label=EMOTIONS[emotion], speaker=speaker, corpus=self.name,
                gender="female" if speaker[0] == "f" else "male",
                extra={"sentence": sentence}))
        return utterances
