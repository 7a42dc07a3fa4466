"""A user's own recordings sorted into one folder per label.

Layout: ``root/<label>/<anything>.wav`` at any depth below the label folder; every
extension :func:`~ser_tf.data.audio.read_audio` reads, any case
(:data:`~ser_tf.data.audio.AUDIO_EXTENSIONS`: wav, flac, ogg, aiff, ..., and through ffmpeg
mp3, m4a, aac, opus, ...). A file of an ffmpeg format is picked up even when ffmpeg is not
installed: reading it then fails with an error saying so, it is never left out unnoticed.
Other files (README, notes, videos) and hidden files/folders are ignored; an audio file
directly in ``root`` has no label and is an error. Symbolic links to folders are not
followed (as before).

A folder below ``root`` that cannot be listed (permission denied) is an unusable entry like
a bad audio file: :func:`ser_tf.data.load_manifest` names it (``on_bad_audio="fail"``) or
lists it in ``manifest.skipped`` (``"skip"``). ``root`` itself must be listable.

The label order is the ``labels`` option when given (then every label folder must be in
it), otherwise the folder names **sorted** (Python string order, so ``Angry`` comes before
``angry``) - never the file system's listing order, so class indices are the same on every
machine. Without ``labels`` the label set is the folders holding at least one recording,
plus any label folder that cannot be listed: it may hold recordings, so with ``skip`` its
class stays in the label set and the class indices do not shift.

The utterance id is the path relative to ``root`` without extension (``angry/s01/take1``).
Speakers come from the ``speaker_from`` option:

* ``"none"`` (default): every recording has speaker ``"unknown"``;
* ``"parent"``: the folder holding the file, e.g. ``root/angry/s01/take1.wav`` -> ``s01``
  (the file must then sit in a sub-folder of its label folder);
* ``"prefix"``: the file name before its first ``_``, e.g. ``s01_take1.wav`` -> ``s01``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ser_tf.data.audio import AUDIO_EXTENSIONS
from ser_tf.data.corpora.base import FolderError, UserLabelsCorpus, check_label_order, register
from ser_tf.data.manifest import Utterance

SPEAKER_FROM = ("none", "parent", "prefix")
#: Made by fsck at the top of ext2/3/4 file systems and readable by root only: when the
#: data folder is a mount point this is not a label folder, so it is never reported.
_SYSTEM_FOLDERS = ("lost+found",)


@register
class FOLDER(UserLabelsCorpus):
    name = "FOLDER"
    label_source = "folder names"
    folder = "folder"
    homepage = "your own recordings (see the ser_tf.data.corpora.folder docstring)"
    layout = ("<root>/<label>/<anything>.wav (any depth; wav, flac, ogg, aiff, mp3, m4a, "
              "opus, ...)")
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
        files, unlistable = self._walk(root)
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
        problems, unlisted_labels = [], set()
        for folder, reason in unlistable:
            rel = folder.relative_to(root)
            if len(rel.parts) == 1:
                unlisted_labels.add(rel.parts[0])
                if self.labels_option is not None and rel.parts[0] not in self.labels_option:
                    reason += f" (not one of the labels {list(self.labels_option)} either)"
            problems.append(FolderError(folder, reason))
        self._found = tuple(sorted({u.label for u in utterances} | unlisted_labels))
        self._scan_problems = tuple(problems)
        return utterances

    def _walk(self, root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
        """Candidate audio files below ``root`` (sorted) and the folders that could not be
        listed, with the reason. pathlib's ``rglob`` skips unreadable folders without a
        word, hence ``os.walk`` with an error handler."""
        unlistable: list[tuple[Path, str]] = []

        def unreadable(err: OSError) -> None:
            folder = Path(err.filename)
            if folder == root:  # nothing at all can be read: no skip can help
                raise self.layout_error(root, f"cannot list the folder ({err.strerror})")
            if folder.parent == root and folder.name in _SYSTEM_FOLDERS:
                return
            what = ("permission denied" if isinstance(err, PermissionError)
                    else err.strerror or str(err))
            unlistable.append((folder, f"cannot list this folder ({what}): the recordings "
                                       "in it, if any, cannot be used"))

        files = []
        for folder, subfolders, names in os.walk(root, onerror=unreadable):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            files += [Path(folder, name) for name in names if not name.startswith(".")
                      and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS]
        return sorted(files), sorted(unlistable)

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
