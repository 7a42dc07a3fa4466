"""The corpus interface and registry.

A corpus is a small class that knows its folder layout and label set; it turns a folder
into :class:`~ser_tf.data.manifest.Utterance` rows (:meth:`Corpus.scan`). It never reads
audio: checking the audio is :func:`ser_tf.data.load_manifest`'s job, once, for all corpora.
"""

from __future__ import annotations

from pathlib import Path

from ser_tf.data.audio import AudioError
from ser_tf.data.manifest import Utterance

#: name (upper case) -> Corpus subclass; filled by :func:`register`.
CORPORA: dict[str, type["Corpus"]] = {}


class CorpusLayoutError(ValueError):
    """The folder does not look like the corpus: says what was expected and where."""


class FolderError(AudioError):
    """A folder of the corpus that cannot be listed (e.g. permission denied): the
    recordings in it cannot be used. Handled like an unusable audio file
    (``on_bad_audio``), so it is never dropped without a word."""


class Corpus:
    """Base class of the corpus loaders.

    Subclasses set the class attributes and implement :attr:`labels` and :meth:`scan`.
    Options (e.g. RAVDESS ``merge_calm``) are keyword arguments of ``__init__``.
    """

    #: Registry name, upper case (``EMODB``).
    name: str = ""
    #: Folder name under ``$SER_TF_DATA``.
    folder: str = ""
    #: Where a user gets the corpus.
    homepage: str = ""
    #: ``classification`` or ``regression`` (continuous labels, e.g. SEWA).
    task: str = "classification"
    #: One line on the expected layout, shown when a folder does not match.
    layout: str = ""
    #: What a model trained on it has heard (model cards): language and kind of speech.
    language: str = ""
    speech: str = ""
    #: File count of the complete release (``None`` when it varies); used by ``data check``.
    expected_files: int | None = None
    #: Set by :meth:`scan`: what it found named or present but unusable before decoding
    #: anything (a listed file that is missing, a folder it cannot list).
    _scan_problems: tuple[AudioError, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        raise NotImplementedError

    def scan(self, root: Path) -> list[Utterance]:
        """Parse the folder into utterances (file names and annotation files only).

        Files or folders that cannot be used go to :meth:`scan_problems`, not into the
        result, so :func:`~ser_tf.data.load_manifest` can skip or report every one of them
        (``on_bad_audio``) instead of stopping at the first."""
        raise NotImplementedError

    def scan_problems(self) -> list[AudioError]:
        """The unusable files and folders the last :meth:`scan` met (see there)."""
        return list(self._scan_problems)

    def options(self) -> dict:
        """The options this instance was built with (stored in run records)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def layout_error(self, root: Path, what: str) -> CorpusLayoutError:
        return CorpusLayoutError(f"{root}: {what}. Expected the {self.name} layout: {self.layout}. "
                                 f"The corpus is available from {self.homepage}")


def check_label_order(labels, owner: str) -> tuple[str, ...] | None:
    """Validate a ``labels`` option: ``None`` or distinct non-empty strings."""
    if labels is None:
        return None
    if isinstance(labels, str):
        raise ValueError(f"{owner} labels must be a sequence of names, not the string {labels!r}")
    labels = tuple(labels)
    if not labels or not all(isinstance(x, str) and x.strip() for x in labels):
        raise ValueError(f"{owner} labels must be non-empty strings, got {list(labels)!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{owner} labels contain duplicates: {list(labels)!r}")
    return labels


class UserLabelsCorpus(Corpus):
    """A user's own corpus: the label order is the ``labels`` option, or else the sorted
    labels :meth:`scan` finds (stored in ``_found``), never file-system order."""

    #: Where the labels come from, for the error when ``labels`` is read before ``scan``.
    label_source: str = "labels"
    labels_option: tuple[str, ...] | None = None
    _found: tuple[str, ...] | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        if self.labels_option is not None:
            return self.labels_option
        if self._found is None:
            raise RuntimeError(f"{self.name}: the label set is the sorted {self.label_source}; "
                               "scan() first or pass labels=[...]")
        return self._found


def register(cls: type[Corpus]) -> type[Corpus]:
    """Class decorator adding a corpus to :data:`CORPORA`."""
    if not cls.name or cls.name != cls.name.upper():
        raise ValueError(f"corpus {cls.__name__} needs an upper-case name")
    CORPORA[cls.name] = cls
    return cls


def wav_files(root: Path, pattern: str = "*.wav") -> list[Path]:
    """All files matching ``pattern`` below ``root``, sorted (case-insensitive extension)."""
    suffix = pattern.rsplit(".", 1)[-1].lower()
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == "." + suffix
                  and not p.name.startswith("."))
