"""EMO-DB, the Berlin Database of Emotional Speech (Burkhardt et al., Interspeech 2005).

10 actors (5 female, 5 male), 10 German sentences, 7 emotions, 535 utterances, 16 kHz.
File ``03a01Fa.wav``: speaker = characters 0-1, text id = 2-4, emotion letter = 5,
version = 6. The release has ``wav/`` and, among others, ``silb/`` with one line per
syllable: end time in seconds, a tab, the syllable.
"""

from __future__ import annotations

from pathlib import Path

from ser_tf.data.corpora.base import Corpus, register, wav_files
from ser_tf.data.manifest import Utterance

#: Emotion letter -> label, in the label order used everywhere (the corpus's own letter order
#: as given in its documentation: W L E A F T N).
EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness",
            "T": "sadness", "N": "neutral"}

#: Speaker id -> gender, from the corpus documentation (erklaerung.txt).
SPEAKER_GENDER = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
                  "12": "male", "13": "female", "14": "female", "15": "male", "16": "female"}

#: The ten sentences (text id -> German text).
TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}


def read_syllables(path) -> list[tuple[float, str]]:
    """Parse a ``silb/*.silb`` file: ``[(end_time_s, syllable), ...]`` ('.' marks the end)."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        try:
            rows.append((float(parts[0]), parts[1].strip() if len(parts) > 1 else ""))
        except ValueError:
            raise ValueError(f"{path}:{n}: expected '<end time> <syllable>', got {line!r}") from None
    return rows


@register
class EMODB(Corpus):
    name = "EMODB"
    folder = "emodb"
    homepage = "http://emodb.bilderbar.info/ (download.zip)"
    language = "German"
    speech = "acted by 10 professional actors (5 female, 5 male), 10 everyday sentences, studio recordings"
    layout = "wav/03a01Fa.wav (speaker 03, text a01, emotion F, version a), optional silb/"
    expected_files = 535

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(EMOTIONS.values())

    def scan(self, root: Path) -> list[Utterance]:
        root = Path(root)
        wav_dir = root / "wav" if (root / "wav").is_dir() else root
        silb_dir = root / "silb"
        utterances = []
        for path in wav_files(wav_dir):
            stem = path.stem
            if len(stem) != 7 or stem[5] not in EMOTIONS or stem[2:5] not in TEXTS:
                raise self.layout_error(path, "file name does not follow the EMO-DB scheme "
                                              "(e.g. 03a01Fa.wav)")
            speaker, text_id = stem[:2], stem[2:5]
            extra = {"text_id": text_id, "version": stem[6]}
            silb = silb_dir / f"{stem}.silb"
            if silb.is_file():
                extra["syllables_path"] = str(silb)
            utterances.append(Utterance(
                utterance_id=stem, path=str(path), label=EMOTIONS[stem[5]], speaker=speaker,
                corpus=self.name, gender=SPEAKER_GENDER.get(speaker), text=TEXTS[text_id],
                extra=extra))
        return utterances
