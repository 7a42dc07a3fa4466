"""A user's own recordings sorted into one folder per label.

Layout: ``root/<label>/<anything>.wav`` at any depth below the label folder; extensions
wav, flac, ogg and mp3 (any case). Other files (README, notes) and hidden files/folders are
ignored; an audio file directly in ``root`` has no label and is an error.

The label order is the ``labels`` option when given (then every label folder must be in
it), otherwise the folder names **sorted** (Python string order, so ``Angry`` comes before
``angry``) - never the file system's listing order, so class indices are the same on every
machine. Without ``labels`` only folders holding at least one recording count.

The utterance id is the path relative to ``root`` without extension (``angry/s01/take1``).
Speakers come from the ``speaker_from`` option:

* ``"none"`` (default): every recording has speaker ``"unknown"``;
* ``"parent"``: the folder holding the file, e.g. ``root/angry/s01/take1.wav`` -> ``s01``
  (the file must then sit in a sub-folder of its label folder);
* ``"prefix"``: the file name before its first ``_``, e.g. ``s01_take1.wav`` -> ``s01``.
"""

from __future__ import annotations

from pathlib import Path

from ser_tf.data.corpora.base import UserLabelsCorpus, check_label_order, register
from ser_tf.data.manifest import Utterance

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
SPEAKER_FROM = ("none", "parent", "prefix")


@register
class FOLDER(UserLabelsCorpus):
    name = "FOLDER"
    label_source = "folder names"
    folder = "folder"
    homepage = "your own recordings (see the ser_tf.data.corpora.folder docstring)"
    layout = "<root>/<label>/<anything>.wav (any depth; wav, flac, ogg or mp3)"
    expected_files = None

    def __init__(self, labels=None, speaker_from: str = "none"):
        """Args:
            labels: the label order; ``None`` = the sorted label folder names.
            speaker_from: ``"none"``, ``"parent"`` or ``"prefix"`` (see the module docstring).
        """
        if speaker_from not in SPEAKER_FROM:
            raise ValueError(f"FOLDER speaker_from must be one of {SPEAKER_FROM}, "
                             f"got {speaker_from!r}")
        self.labels_option = check_label_order(labels, "FOLDER")
        self.speaker_from = speaker_from
        self._found = None

    def options(self) -> dict:
        return {"labels": None if self.labels_option is None else list(self.labels_option),
                "speaker_from": self.speaker_from}

    def scan(self, root: Path) -> list[Utterance]:
        root = Path(root)
        files = sorted(p for p in root.rglob("*") if p.is_file()
                       and p.suffix.lower() in AUDIO_EXTENSIONS
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
        utterances, seen = [], {}
        for path in files:
            rel = path.relative_to(root)
            if len(rel.parts) < 2:
                raise self.layout_error(path, "audio file outside a label folder")
            label = rel.parts[0]
            if self.labels_option is not None and label not in self.labels_option:
                raise self.layout_error(root / label, f"folder {label!r} is not one of the "
                                                      f"labels {list(self.labels_option)}")
            utt_id = rel.with_suffix("").as_posix()
            if utt_id in seen:
                raise self.layout_error(path, f"same utterance id {utt_id!r} as {seen[utt_id]}")
            seen[utt_id] = path
            utterances.append(Utterance(
                utterance_id=utt_id, path=str(path), label=label,
                speaker=self._speaker(path, rel), corpus=self.name))
        self._found = tuple(sorted({u.label for u in utterances}))
        return utterances

    def _speaker(self, path: Path, rel: Path) -> str:
        if self.speaker_from == "parent":
            if len(rel.parts) < 3:
                raise self.layout_error(path, 'speaker_from="parent" needs the file in a '
                                              "speaker folder: <root>/<label>/<speaker>/file")
            return path.parent.name
        if self.speaker_from == "prefix":
            prefix, sep, _ = path.stem.partition("_")
            if not sep or not prefix:
                raise self.layout_error(path, 'speaker_from="prefix" needs file names like '
                                              "<speaker>_<anything>.wav")
            return prefix
        return "unknown"
