"""SEWA as released for the AVEC 2017 Emotion Sub-Challenge (Ringeval et al., "AVEC 2017:
Real-life Depression, and Affect Recognition Workshop and Challenge", ACM MM workshops 2017;
the database: Kossaifi et al., "SEWA DB", IEEE TPAMI 2019).

German subjects discussing an advert in a video chat; one recording per subject (so the
speaker is the recording id), continuous arousal, valence and liking annotations. Layout::

    audio/Train_01.wav            (also Devel_NN, Test_NN)
    labels/Train_01.csv           instance;time;arousal;valence;liking   every 0.1 s (10 Hz)
    transcriptions/Train_01.csv   start;end;text                          (optional)
    turns/Train_01.csv            start;end  of the subject's speaking turns (optional)

Times are in seconds. The AVEC files use ``;`` and no header (as the challenge's baseline
scripts read them); the readers below also accept ``,`` and a header line, so re-exported
copies load too. Test labels were never made public, so the default partitions are
``("Train", "Devel")``; a Test recording is listed only when asked for, with its label
file when one is present.

This is a regression corpus: ``Utterance.label`` is ``None``; ``extra`` points at the label,
transcription and turn files, and ``text`` joins the transcription segments.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ser_tf.data.corpora.base import Corpus, register, wav_files
from ser_tf.data.manifest import Utterance

PARTITIONS = ("Train", "Devel", "Test")
DIMENSIONS = ("arousal", "valence", "liking")
_RECORDING = re.compile(r"^(Train|Devel|Test)_(\d+)$")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _rows(path, min_fields: int, number_col: int, max_split: int = -1):
    """Yield ``(line_number, fields)`` of a ``;``/``,`` separated file.

    The delimiter is taken from the first non-empty line. When that line's ``number_col``
    is not a number it is a header, yielded with line number 0."""
    lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    first = next((i for i, line in enumerate(lines, 1) if line.strip()), 0)
    delim = ";" if first and ";" in lines[first - 1] else ","
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(delim, max_split)]
        if len(fields) < min_fields:
            raise ValueError(f"{path}:{n}: expected at least {min_fields} '{delim}'-separated "
                             f"fields, got {line!r}")
        header = n == first and not _NUMBER.match(fields[number_col])
        yield (0 if header else n), fields


def _float(path, n: int, text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}:{n}: {what} {text!r} is not a number") from None


def _span(path, n: int, fields, what: str) -> tuple[float, float]:
    start, end = _float(path, n, fields[0], "start"), _float(path, n, fields[1], "end")
    if end < start:
        raise ValueError(f"{path}:{n}: {what} ends ({end}) before it starts ({start})")
    return start, end


def read_sewa_labels(path) -> dict[str, np.ndarray]:
    """Continuous annotations: ``{"time", "arousal", "valence", "liking"}`` float32 arrays.

    Rows are ``instance;time;arousal;valence;liking`` (10 Hz); with a header naming the
    dimensions, columns are found by name. Times must increase."""
    columns = {"time": 1, "arousal": 2, "valence": 3, "liking": 4}
    values = {k: [] for k in columns}
    for n, fields in _rows(path, min_fields=5, number_col=1):
        if n == 0:
            names = [f.strip().strip("'\"").lower() for f in fields]
            columns.update({k: names.index(k) for k in columns if k in names})
            continue
        for key, col in columns.items():
            if col >= len(fields):
                raise ValueError(f"{path}:{n}: no {key} column in {';'.join(fields)!r}")
            values[key].append(_float(path, n, fields[col], key))
        if len(values["time"]) > 1 and values["time"][-1] <= values["time"][-2]:
            raise ValueError(f"{path}:{n}: time {values['time'][-1]} does not increase")
    if not values["time"]:
        raise ValueError(f"{path}: no label rows")
    return {k: np.asarray(v, dtype=np.float32) for k, v in values.items()}


def read_sewa_turns(path) -> list[tuple[float, float]]:
    """Speaking turns of the subject: ``[(start_s, end_s), ...]``."""
    turns = []
    for n, fields in _rows(path, min_fields=2, number_col=0):
        if n == 0:
            continue
        turns.append(_span(path, n, fields, "turn"))
    return turns


def read_sewa_transcription(path) -> list[tuple[float, float, str]]:
    """Transcribed segments: ``[(start_s, end_s, text), ...]`` (the text may contain the
    delimiter; surrounding quotes are removed)."""
    segments = []
    for n, fields in _rows(path, min_fields=3, number_col=0, max_split=2):
        if n == 0:
            continue
        start, end = _span(path, n, fields, "segment")
        text = fields[2]
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1].replace('""', '"')
        segments.append((start, end, text))
    return segments


@register
class SEWA(Corpus):
    name = "SEWA"
    folder = "sewa"
    homepage = "https://db.sewaproject.eu/ (AVEC 2017 emotion sub-challenge release)"
    language = "several European languages (as released)"
    speech = "spontaneous video-chat conversations"
    task = "regression"
    layout = ("audio/Train_01.wav (Train|Devel|Test_NN) with labels/Train_01.csv "
              "(instance;time;arousal;valence;liking at 10 Hz), optional "
              "transcriptions/Train_01.csv (start;end;text) and turns/Train_01.csv (start;end)")
    #: Depends on ``partitions`` (AVEC 2017: 34 Train, 14 Devel, 16 Test recordings).
    expected_files = None

    def __init__(self, partitions=("Train", "Devel")):
        """Args:
            partitions: which of ``"Train"``, ``"Devel"``, ``"Test"`` to list (Test labels
                are not public: Test recordings come without a label file).
        """
        if isinstance(partitions, str):
            partitions = (partitions,)
        partitions = tuple(partitions)
        bad = [p for p in partitions if p not in PARTITIONS]
        if bad or not partitions or len(set(partitions)) != len(partitions):
            raise ValueError(f"SEWA partitions must be distinct values of {PARTITIONS}, "
                             f"got {partitions!r}")
        self.partitions = partitions

    @property
    def labels(self) -> tuple[str, ...]:
        return DIMENSIONS

    def scan(self, root: Path) -> list[Utterance]:
        root = Path(root)
        audio_dir = root / "audio"
        if not audio_dir.is_dir():
            raise self.layout_error(audio_dir, "missing audio folder")
        utterances = []
        for wav in wav_files(audio_dir):
            match = _RECORDING.match(wav.stem)
            if not match or wav.parent != audio_dir:
                raise self.layout_error(wav, "file name does not follow the AVEC scheme "
                                             "(audio/Train_01.wav, Devel_NN, Test_NN)")
            partition = match.group(1)
            if partition not in self.partitions:
                continue
            stem = wav.stem
            extra = {"partition": partition}
            labels_csv = root / "labels" / f"{stem}.csv"
            if labels_csv.is_file():
                read_sewa_labels(labels_csv)  # fail here, naming the file, if malformed
                extra["labels_csv"] = str(labels_csv)
            elif partition != "Test":
                raise self.layout_error(labels_csv, f"missing label file of {wav.name}")
            text = None
            transcription = root / "transcriptions" / f"{stem}.csv"
            if transcription.is_file():
                extra["transcription_csv"] = str(transcription)
                text = " ".join(t for _, _, t in read_sewa_transcription(transcription) if t)
            turns = root / "turns" / f"{stem}.csv"
            if turns.is_file():
                extra["turns_csv"] = str(turns)
            utterances.append(Utterance(
                utterance_id=stem, path=str(wav), label=None, speaker=stem, corpus=self.name,
                gender=None, text=text, extra=extra))
        return utterances
