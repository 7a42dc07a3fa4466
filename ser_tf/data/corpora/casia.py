"""CASIA Chinese emotional speech corpus (Tao et al., "Design of speech corpus for Mandarin
text to speech", Blizzard Challenge workshop, 2008), Institute of Automation, Chinese Academy
of Sciences.

The freely circulated part: 4 speakers (liuchanhg and zhaoquanyin female, wangzhe and
ZhaoZuoxiang male), 6 emotions, 50 utterances per speaker and emotion: 1200 files. One folder
per speaker and emotion, ``liuchanhg/angry/201.wav``; copies often wrap the speaker folders in
one more folder (``CASIA database/``), which is accepted. File names are numbers that repeat
across folders, so utterance ids are ``speaker_emotion_number``.
"""

from __future__ import annotations

from pathlib import Path

from ser_tf.data.corpora.base import Corpus, register, wav_files
from ser_tf.data.manifest import Utterance

#: Emotion folder -> label, in the label order used everywhere (the folders' alphabetical order).
EMOTIONS = {"angry": "anger", "fear": "fear", "happy": "happiness", "neutral": "neutral",
            "sad": "sadness", "surprise": "surprise"}

#: Speaker folder (lower case) -> (speaker id as released, gender).
SPEAKERS = {"liuchanhg": ("liuchanhg", "female"), "zhaoquanyin": ("zhaoquanyin", "female"),
            "wangzhe": ("wangzhe", "male"), "zhaozuoxiang": ("ZhaoZuoxiang", "male")}


@register
class CASIA(Corpus):
    name = "CASIA"
    folder = "casia"
    homepage = "http://www.chineseldc.org/ (CASIA Chinese emotional corpus)"
    language = "Mandarin Chinese"
    speech = "acted by 4 speakers, studio recordings"
    layout = ("liuchanhg/angry/201.wav (speaker/emotion/number.wav), optionally inside one "
              "wrapping folder such as 'CASIA database/'")
    expected_files = 1200

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(EMOTIONS.values())

    def scan(self, root: Path) -> list[Utterance]:
        root = Path(root)
        utterances = []
        for path in wav_files(root):
            depth = len(path.relative_to(root).parts)
            speaker_dir, emotion = path.parent.parent.name.lower(), path.parent.name.lower()
            if (depth not in (3, 4) or speaker_dir not in SPEAKERS or emotion not in EMOTIONS
                    or not path.stem.isdigit()):
                raise self.layout_error(path, "file is not at <speaker>/<emotion>/<number>.wav "
                                              "(e.g. liuchanhg/angry/201.wav)")
            speaker, gender = SPEAKERS[speaker_dir]
            utterances.append(Utterance(
                utterance_id=f"{speaker}_{emotion}_{path.stem}", path=str(path),
                label=EMOTIONS[emotion], speaker=speaker, corpus=self.name, gender=gender,
                extra={"number": path.stem}))
        return utterances
