"""Corpora, audio I/O and downloads.

Typical use::

    from ser_tf.data import load_manifest
    manifest = load_manifest("EMODB", data_dir="../shared/data/emodb")
    manifest.labels            # ('anger', 'boredom', 'disgust', 'fear', 'happiness', ...)
    manifest.counts("speaker")
"""

from __future__ import annotations

import os
from pathlib import Path

from ser_tf.data.audio import AudioError, read_audio
from ser_tf.data.corpora import CORPORA, Corpus, CorpusLayoutError
from ser_tf.data.corpora.base import FolderError
from ser_tf.data.manifest import Manifest, Utterance

#: Environment variable naming a root with one folder per corpus (``emodb/``, ``ravdess/``, ...).
DATA_ENV = "SER_TF_DATA"

ON_BAD_AUDIO = ("fail", "skip")

__all__ = ["AudioError", "CORPORA", "Corpus", "CorpusLayoutError", "DATA_ENV", "Manifest",
           "Utterance", "BadAudioError", "get_corpus", "load_manifest", "read_audio",
           "resolve_data_dir"]


class BadAudioError(ValueError):
    """Manifest building met unusable audio files with ``on_bad_audio="fail"``."""

    def __init__(self, corpus: str, errors: list[AudioError]):
        self.errors = errors
        shown = "\n".join(f"  {e}" for e in errors[:10])
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        what = ("audio file(s) or folder(s)" if any(isinstance(e, FolderError) for e in errors)
                else "audio file(s)")
        super().__init__(f"{corpus}: {len(errors)} unusable {what}:\n{shown}{more}\n"
                         "Fix or remove them, or pass --on-bad-audio skip to leave them out "
                         "(skipped files are listed in the run record).")


def corpus_key(name: str) -> str:
    """How corpus names are compared: case-insensitive, ``-`` and ``_`` ignored
    (``CREMA-D`` = ``crema_d`` = ``CREMAD``)."""
    return str(name).upper().replace("-", "").replace("_", "")


def get_corpus(name: str, **options) -> Corpus:
    """The corpus loader registered under ``name`` (:func:`corpus_key`)."""
    key = corpus_key(name)
    if key not in CORPORA:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(sorted(CORPORA))}")
    return CORPORA[key](**options)


def resolve_data_dir(corpus: str | Corpus, data_dir=None) -> Path:
    """Where a corpus lives: ``data_dir`` if given, else ``$SER_TF_DATA/<folder>``."""
    corpus = get_corpus(corpus) if isinstance(corpus, str) else corpus
    if data_dir is not None:
        path = Path(data_dir).expanduser()
    elif os.environ.get(DATA_ENV):
        path = Path(os.environ[DATA_ENV]).expanduser() / corpus.folder
    else:
        raise FileNotFoundError(
            f"No data folder for {corpus.name}: pass --data-dir DIR, or set {DATA_ENV} to a "
            f"folder holding {corpus.folder}/. Get the corpus from {corpus.homepage}"
            + (f" or with `ser-tf data download {corpus.folder} --dest DIR`."
               if corpus.folder in ("emodb", "ravdess") else "."))
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a folder (data folder for {corpus.name}). "
                                f"Get the corpus from {corpus.homepage}")
    return path


def load_manifest(corpus: str | Corpus, data_dir=None, *, on_bad_audio: str = "fail",
                  check_audio: bool = True, **options) -> Manifest:
    """Scan a corpus folder into a :class:`Manifest`.

    Args:
        corpus: a registry name (``"EMODB"``) or a :class:`Corpus` instance.
        data_dir: the corpus folder; default ``$SER_TF_DATA/<folder>``.
        on_bad_audio: ``"fail"`` raises :class:`BadAudioError` listing every unusable file;
            ``"skip"`` leaves them out and lists them in ``manifest.skipped``.
        check_audio: decode every file once to find bad audio (empty, truncated, silent,
            NaN, too short). Turn off only for trusted, already-checked copies. Files the
            corpus lists but that are missing or unreadable, and folders that cannot be
            listed, are found while scanning and handled by ``on_bad_audio`` either way.
        **options: corpus options (e.g. ``merge_calm=True`` for RAVDESS).
    """
    if on_bad_audio not in ON_BAD_AUDIO:
        raise ValueError(f"on_bad_audio must be one of {ON_BAD_AUDIO}, got {on_bad_audio!r}")
    if isinstance(corpus, str):
        corpus = get_corpus(corpus, **options)
    elif options:
        raise TypeError("pass options either to the Corpus instance or here, not both")
    root = resolve_data_dir(corpus, data_dir)
    utterances = corpus.scan(root)
    errors = corpus.scan_problems()
    if not utterances and not errors:
        raise corpus.layout_error(root, "no recordings found")

    skipped = [{"path": err.path, "reason": err.reason} for err in errors]
    kept = []
    for utt in utterances:
        if check_audio:
            try:
                read_audio(utt.path)
            except AudioError as err:
                errors.append(err)
                skipped.append({"path": err.path, "reason": err.reason})
                continue
        kept.append(utt)
    if errors and on_bad_audio == "fail":
        raise BadAudioError(corpus.name, errors)
    return Manifest(corpus=corpus.name, labels=corpus.labels, utterances=kept, skipped=skipped)
