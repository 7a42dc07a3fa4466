"""IEMOCAP, the Interactive Emotional Dyadic Motion Capture database (Busso et al., Language
Resources and Evaluation 42, 2008).

Five sessions, each a dyad of one female and one male actor (10 speakers), improvised and
scripted dialogs cut into utterances, 16 kHz. Layout of the release (``IEMOCAP_full_release/``)::

    Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav
    Session1/dialog/EmoEvaluation/Ses01F_impro01.txt
    Session1/dialog/transcriptions/Ses01F_impro01.txt          (optional here)

An EmoEvaluation file has one summary line per utterance::

    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]

(start/end in seconds, utterance id, consensus category, [valence, activation, dominance]);
its other lines (header, per-evaluator ``C-E1:`` / ``A-E1:`` lines) are ignored. Categories:
neu hap sad ang exc fru sur fea dis oth xxx (xxx = no majority).

The speaker of an utterance is the letter before its turn number, not the letter of the
dialog: ``Ses01F_impro01_M013`` is the male actor of session 1, speaker ``Ses01M``.

The usual 4-class set (anger, happiness, neutral, sadness; excited merged into happiness;
every other category dropped) has 5531 utterances (ang 1103, hap+exc 595+1041, neu 1708,
sad 1084); with ``merge_excited=False`` excited is dropped instead, leaving 4490.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser_tf.data.corpora.base import Corpus, register
from ser_tf.data.manifest import Utterance

#: Category code -> label for the 4-class set (``exc`` is added when merging).
FOUR_CLASSES = {"ang": "anger", "hap": "happiness", "neu": "neutral", "sad": "sadness"}
#: Every consensus code found in the EmoEvaluation files.
CATEGORY_CODES = ("neu", "hap", "sad", "ang", "exc", "fru", "sur", "fea", "dis", "oth", "xxx")
SUBSETS = ("all", "impro", "script")

_SUMMARY = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[([^\]]*)\]\s*$")
_UTTERANCE_ID = re.compile(r"^Ses(\d\d)([FM])_(\S+)_([FM])(\d{3})$")
_TRANSCRIPT = re.compile(r"^(\S+)\s+\[[\d.]+-[\d.]+\]:\s?(.*)$")
_SESSION_DIR = re.compile(r"^Session(\d+)$")


def read_transcriptions(path) -> dict[str, str]:
    """``{utterance_id: text}`` from a ``dialog/transcriptions/<dialog>.txt`` file.

    Lines not of the form ``<id> [start-end]: text`` (e.g. breathing or overlap markers of
    the other speaker) are ignored."""
    texts = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        match = _TRANSCRIPT.match(line.strip())
        if match and _UTTERANCE_ID.match(match.group(1)):
            texts[match.group(1)] = match.group(2).strip()
    return texts


@register
class IEMOCAP(Corpus):
    name = "IEMOCAP"
    folder = "iemocap"
    homepage = "https://sail.usc.edu/iemocap/ (licence request)"
    language = "American English"
    speech = "10 actors in dyadic sessions, scripted and improvised"
    layout = ("SessionN/sentences/wav/<dialog>/<utterance>.wav with labels in "
              "SessionN/dialog/EmoEvaluation/<dialog>.txt, optional "
              "SessionN/dialog/transcriptions/<dialog>.txt")
    #: Depends on the options: 5531 with the defaults, 4490 with ``merge_excited=False``.
    expected_files = None

    def __init__(self, merge_excited: bool = True, subset: str = "all"):
        """Args:
            merge_excited: count ``exc`` as happiness (the common 4-class setup); ``False``
                drops excited utterances instead.
            subset: ``"all"``, ``"impro"`` (improvised dialogs only) or ``"script"``.
        """
        if not isinstance(merge_excited, bool):
            raise ValueError(f"IEMOCAP merge_excited must be True or False, got {merge_excited!r}")
        if subset not in SUBSETS:
            raise ValueError(f"IEMOCAP subset must be one of {SUBSETS}, got {subset!r}")
        self.merge_excited = merge_excited
        self.subset = subset

    @property
    def labels(self) -> tuple[str, ...]:
        return ("anger", "happiness", "neutral", "sadness")

    def _label_map(self) -> dict[str, str]:
        mapping = dict(FOUR_CLASSES)
        if self.merge_excited:
            mapping["exc"] = "happiness"
        return mapping

    def _sessions(self, root: Path) -> list[tuple[int, Path]]:
        if not any(_SESSION_DIR.match(p.name) for p in root.iterdir() if p.is_dir()):
            if (root / "IEMOCAP_full_release").is_dir():
                root = root / "IEMOCAP_full_release"
        sessions = sorted((int(m.group(1)), p) for p in root.iterdir()
                          if p.is_dir() and (m := _SESSION_DIR.match(p.name)))
        if not sessions:
            raise self.layout_error(root, "no Session1 ... Session5 folders")
        return sessions

    def scan(self, root: Path) -> list[Utterance]:
        root = Path(root)
        mapping = self._label_map()
        utterances = []
        for number, session in self._sessions(root):
            evaluation_dir = session / "dialog" / "EmoEvaluation"
            if not evaluation_dir.is_dir():
                raise self.layout_error(evaluation_dir, "missing EmoEvaluation folder")
            for txt in sorted(evaluation_dir.glob("*.txt")):
                if txt.name.startswith("."):
                    continue
                dialog = txt.stem
                if self.subset != "all" and self.subset not in dialog:
                    continue
                utterances.extend(self._scan_dialog(session, number, txt, mapping))
        return utterances

    def _scan_dialog(self, session: Path, number: int, txt: Path, mapping) -> list[Utterance]:
        dialog = txt.stem
        transcript = session / "dialog" / "transcriptions" / f"{dialog}.txt"
        texts = read_transcriptions(transcript) if transcript.is_file() else {}
        rows = []
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
        for n, line in enumerate(lines, 1):
            if not line.startswith("["):
                continue  # header, evaluator lines (C-E1:, A-E1:), blank lines
            where = f"{txt}:{n}"
            match = _SUMMARY.match(line)
            if not match:
                raise self.layout_error(where, f"malformed summary line {line!r}")
            start, end, utt_id, code, triple = match.groups()
            id_match = _UTTERANCE_ID.match(utt_id)
            if not id_match or utt_id.rsplit("_", 1)[0] != dialog:
                raise self.layout_error(where, f"utterance id {utt_id!r} does not belong to "
                                               f"dialog {dialog} (e.g. {dialog}_F000)")
            if int(id_match.group(1)) != number:
                raise self.layout_error(where, f"{utt_id} is not in session {number}")
            if code not in CATEGORY_CODES:
                raise self.layout_error(where, f"unknown category {code!r} "
                                               f"(known: {' '.join(CATEGORY_CODES)})")
            try:
                valence, activation, dominance = (float(v) for v in triple.split(","))
            except ValueError:
                raise self.layout_error(where, f"expected [valence, activation, dominance], "
                                               f"got [{triple}]") from None
            if code not in mapping:
                continue
            wav = session / "sentences" / "wav" / dialog / f"{utt_id}.wav"
            if not wav.is_file():
                raise self.layout_error(wav, f"missing audio of {utt_id} (labelled in {where})")
            letter = id_match.group(4)
            rows.append(Utterance(
                utterance_id=utt_id, path=str(wav), label=mapping[code],
                speaker=f"Ses{id_match.group(1)}{letter}", corpus=self.name,
                gender="female" if letter == "F" else "male", text=texts.get(utt_id),
                extra={"session": number, "dialog": dialog, "category": code,
                       "start": float(start), "end": float(end), "valence": valence,
                       "activation": activation, "dominance": dominance}))
        return rows
