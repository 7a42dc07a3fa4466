"""Corpora as frame sequences for the semantic model: audio frames, the word of every
frame and per-frame targets, written once as sequence records
(:mod:`ser_tf.data.sequence_records`) and reused by every variant and fold.

- **SEWA** (AVEC 2017, the paper's corpus): one frame per row of the 10 Hz label file,
  2205 samples at 22.05 kHz from the row's time (as the official code). The 4410 values of
  a frame hold the subject's half first and the partner's half second: a frame whose centre
  lies in one of the subject's speaking turns (``turns/``) fills the first half, any other frame the
  second, the other half staying zero (the official code's layout; without a turn file
  every frame counts as the subject's). Targets: arousal, valence, liking per frame.
- **EMO-DB / RAVDESS proxy**: consecutive 0.1 s frames of the utterance, the subject's
  2205 samples only (:func:`frame_len_of`): these corpora have no partner, and a partner
  half that is always zero carries nothing but doubles the convolutions' work. Constant
  targets per utterance from its category
  (:func:`ser_tf.data.dimensions.dimensional_targets`: arousal and valence), the corpus's
  sentence as the transcript (EMO-DB's ten texts, RAVDESS's two statements).

Words: transcripts are timed with :func:`ser_tf.align.align_words` (aeneas + eSpeak NG)
when ``align="aeneas"``; with ``"uniform"``, or for a recording aeneas cannot align,
:func:`ser_tf.features.frames.uniform_word_times` spreads the words evenly over the
utterance (SEWA: over each transcribed segment). Every record's ``alignment`` metadata says
which it got. A frame's word is the one spoken at the frame's centre
(:func:`~ser_tf.features.frames.words_per_frame`; the official code instead marked every
frame from round(start) to round(end), both included).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

SAMPLE_RATE = 22050
FRAME_SECONDS = 0.1
HALF = 2205                       # samples of one 0.1 s half-frame at 22.05 kHz
FRAME_LEN = 2 * HALF              # subject half + partner half
ALIGNMENTS = ("auto", "aeneas", "uniform")
#: aeneas language of each corpus (SEWA's AVEC 2017 recordings: German subjects).
LANGUAGES = {"SEWA": "deu", "EMODB": "deu", "RAVDESS": "eng"}
SEWA_OUTPUTS = ("arousal", "valence", "liking")
PROXY_OUTPUTS = ("arousal", "valence")
# 2: proxy frames hold the subject's half only (1: both halves, the partner's zero).
RECORDS_VERSION = 2


def outputs_of(corpus: str) -> tuple[str, ...]:
    return SEWA_OUTPUTS if corpus == "SEWA" else PROXY_OUTPUTS


def frame_len_of(corpus: str) -> int:
    """Samples per frame: SEWA's subject + partner halves, a proxy corpus's one half."""
    return FRAME_LEN if corpus == "SEWA" else HALF


def frame_layout_of(corpus: str) -> str:
    return "subject half, partner half" if corpus == "SEWA" else "subject only (no partner)"


def resolve_alignment(choice: str) -> str:
    """``auto`` -> ``aeneas`` when aeneas and eSpeak NG can run here, else ``uniform``."""
    if choice not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {choice!r}")
    if choice != "auto":
        return choice
    import shutil
    from importlib.util import find_spec

    usable = find_spec("aeneas") is not None and shutil.which("espeak-ng") is not None
    return "aeneas" if usable else "uniform"


def transcripts(manifest) -> list[str]:
    """Every utterance's transcript (SEWA: all its segments), for the vocabulary."""
    texts = []
    for utterance in manifest:
        if manifest.corpus == "SEWA" and utterance.extra.get("transcription_csv"):
            from ser_tf.data.corpora.sewa import read_sewa_transcription

            texts += [t for _, _, t in read_sewa_transcription(
                utterance.extra["transcription_csv"])]
        elif utterance.text:
            texts.append(utterance.text)
    return texts


def build_vocabulary(manifest):
    """The words of the corpus's transcripts (0 no word, 1 unknown)."""
    from ser_tf.features.word_vectors import Vocabulary

    return Vocabulary.build(transcripts(manifest))


def _time_words(audio: np.ndarray, text: str, offset: float, alignment: str, lang: str,
                cache_dir, where: str, failures: list | None = None):
    """``([(word, start, end)], method)`` of ``text`` spoken in ``audio`` (22.05 kHz), the
    times shifted by ``offset`` seconds. aeneas failures fall back to uniform timing; each
    is appended to ``failures`` as ``{"recording": where, "reason": ...}``."""
    from ser_tf.features.frames import uniform_word_times

    duration = len(audio) / SAMPLE_RATE
    if alignment == "aeneas":
        import soundfile as sf

        from ser_tf.align import AlignmentError, align_words

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{where}.wav"
            sf.write(str(path), audio, SAMPLE_RATE, subtype="PCM_16")
            try:
                words = align_words(path, text, lang=lang, cache_dir=cache_dir)
                return [(w.word, w.start + offset, w.end + offset) for w in words], "aeneas"
            except AlignmentError as error:
                if failures is not None:
                    # The aligner names its temporary copy; the recording's name is `where`.
                    reason = str(error).replace(str(path), f"{where}.wav")
                    failures.append({"recording": where, "reason": reason})
    words = uniform_word_times(text, duration)
    return [(w, s + offset, e + offset) for w, s, e in words], "uniform"


def _method(methods: set) -> str:
    return "none" if not methods else methods.pop() if len(methods) == 1 else "mixed"


def sewa_item(utterance, vocabulary, *, alignment: str, align_cache=None, failures=None):
    """One SEWA recording as a :class:`~ser_tf.data.sequence_records.SequenceItem`
    (``failures``: a list collecting the segments aeneas could not align)."""
    from ser_tf.data.audio import read_audio
    from ser_tf.data.corpora.sewa import (read_sewa_labels, read_sewa_transcription,
                                          read_sewa_turns)
    from ser_tf.data.sequence_records import SequenceItem
    from ser_tf.features.frames import words_per_frame

    if "labels_csv" not in utterance.extra:
        raise ValueError(f"{utterance.path}: no label file (Test recordings cannot train)")
    wave, _ = read_audio(utterance.path, SAMPLE_RATE)
    labels = read_sewa_labels(utterance.extra["labels_csv"])
    times = labels["time"].astype(np.float64)
    starts = np.round(times * SAMPLE_RATE).astype(np.int64)
    halves = np.zeros((len(times), HALF), np.float32)
    for i, s in enumerate(starts):
        piece = wave[s:s + HALF]
        halves[i, :len(piece)] = piece
    subject = np.ones(len(times), bool)
    if utterance.extra.get("turns_csv"):
        turns = read_sewa_turns(utterance.extra["turns_csv"])
        subject = np.zeros(len(times), bool)
        centres = times + FRAME_SECONDS / 2  # the rule words_per_frame uses for words
        for start, end in turns:
            subject |= (centres >= start) & (centres < end)
    audio = np.zeros((len(times), FRAME_LEN), np.float32)
    audio[subject, :HALF] = halves[subject]
    audio[~subject, HALF:] = halves[~subject]
    timed, methods = [], set()
    if utterance.extra.get("transcription_csv"):
        segments = read_sewa_transcription(utterance.extra["transcription_csv"])
        for start, end, text in segments:
            if not text.strip():
                continue
            piece = wave[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]
            words, method = _time_words(piece, text, start - float(times[0]), alignment,
                                        LANGUAGES["SEWA"], align_cache,
                                        f"{utterance.utterance_id}@{start:.2f}-{end:.2f}s",
                                        failures)
            timed += words
            methods.add(method)
    ids = words_per_frame(timed, len(times), vocabulary, FRAME_SECONDS)
    targets = np.stack([labels[d] for d in SEWA_OUTPUTS], axis=1)
    return SequenceItem(utterance.utterance_id, audio, ids, targets,
                        {"speaker": str(utterance.speaker),
                         "partition": utterance.extra.get("partition", ""),
                         "alignment": _method(methods)})


def proxy_item(utterance, vocabulary, *, corpus: str, alignment: str, align_cache=None,
               failures=None):
    """One categorical utterance (EMO-DB, RAVDESS) with constant dimensional targets
    (``failures``: a list collecting the utterances aeneas could not align)."""
    from ser_tf.data.audio import read_audio
    from ser_tf.data.dimensions import dimensional_targets
    from ser_tf.data.sequence_records import SequenceItem
    from ser_tf.features.frames import frame_audio, words_per_frame

    wave, _ = read_audio(utterance.path, SAMPLE_RATE)
    halves = frame_audio(wave, SAMPLE_RATE, FRAME_SECONDS)
    audio = np.asarray(halves, np.float32)  # the subject's half: there is no partner
    method = "none"
    words = []
    if utterance.text:
        words, method = _time_words(wave, utterance.text, 0.0, alignment, LANGUAGES[corpus],
                                    align_cache, utterance.utterance_id, failures)
    ids = words_per_frame(words, len(halves), vocabulary, FRAME_SECONDS)
    value = dimensional_targets(utterance.label, PROXY_OUTPUTS)
    targets = np.tile(value[None], (len(halves), 1))
    return SequenceItem(utterance.utterance_id, audio, ids, targets,
                        {"speaker": str(utterance.speaker), "label": str(utterance.label),
                         "alignment": method})


def check_targets_vary(outputs, low, high, manifest, folder) -> None:
    """Refuse a corpus whose targets are one constant for some output over every frame of
    every recording (e.g. label files that were read as zeros, or never filled): the
    `1 - CCC` loss cannot move and CCC is undefined. Called before ``preparation.json`` is
    written, so the half-written records are not reused."""
    from ser_tf.util.errors import UserError

    constant = [f"{name} (always {float(lo):g})" for name, lo, hi in zip(outputs, low, high)
                if lo == hi]
    if constant:
        where = ("label files under "
                 f"{Path(manifest[0].extra['labels_csv']).parent}"
                 if manifest.corpus == "SEWA" and manifest[0].extra.get("labels_csv")
                 else "the corpus's labels")
        raise UserError(f"{manifest.corpus}: {', '.join(constant)} over every frame of all "
                        f"{len(manifest)} recordings: nothing to learn (CCC needs targets that "
                        f"vary). Check the {where}; records left unfinished in {folder}")


def records_key(manifest, alignment: str) -> str:
    """A digest of what the records hold: the corpus copy (ids, files, sizes) and the
    preparation settings. The same key means the same records."""
    parts = [manifest.corpus, alignment, str(RECORDS_VERSION), str(SAMPLE_RATE)]
    for utterance in manifest:
        files = [utterance.path] + [utterance.extra.get(k, "") for k in
                                    ("labels_csv", "transcription_csv", "turns_csv")]
        sizes = [str(Path(f).stat().st_size) if f and Path(f).is_file() else "-" for f in files]
        parts.append("|".join([utterance.utterance_id, str(utterance.label),
                               str(utterance.text), *sizes]))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def prepare_records(manifest, out_root, *, alignment: str = "uniform", quiet: bool = True
                    ) -> Path:
    """Sequence records of ``manifest`` in ``out_root/<corpus>-<key>/`` (reused when
    complete); writes ``vocabulary.json`` and ``preparation.json`` (alignment counts)
    beside them. Returns the folder."""
    from ser_tf.data.sequence_records import INDEX_FILE, write_sequence_records

    alignment = resolve_alignment(alignment)
    folder = Path(out_root) / f"{manifest.corpus}-{records_key(manifest, alignment)}"
    if (folder / INDEX_FILE).is_file() and (folder / "preparation.json").is_file():
        return folder
    vocabulary = build_vocabulary(manifest)
    align_cache = Path(out_root) / "alignments"
    counts: dict = {}
    failures: list = []
    outputs = outputs_of(manifest.corpus)
    low = np.full(len(outputs), np.inf)
    high = np.full(len(outputs), -np.inf)

    def items():
        for n, utterance in enumerate(manifest, 1):
            if manifest.corpus == "SEWA":
                item = sewa_item(utterance, vocabulary, alignment=alignment,
                                 align_cache=align_cache, failures=failures)
            else:
                item = proxy_item(utterance, vocabulary, corpus=manifest.corpus,
                                  alignment=alignment, align_cache=align_cache,
                                  failures=failures)
            counts[item.metadata["alignment"]] = counts.get(item.metadata["alignment"], 0) + 1
            if item.targets is not None and len(item.targets):
                np.minimum(low, np.min(item.targets, axis=0), out=low)
                np.maximum(high, np.max(item.targets, axis=0), out=high)
            if not quiet and (n % 50 == 0 or n == len(manifest)):
                print(f"semantic: {manifest.corpus} {n}/{len(manifest)} recordings framed",
                      flush=True)
            yield item

    write_sequence_records(items(), folder, shard_size=32, target_names=outputs)
    check_targets_vary(outputs, low, high, manifest, folder)
    vocabulary.to_json(folder / "vocabulary.json")
    (folder / "preparation.json").write_text(json.dumps(
        {"alignment": alignment, "alignments": counts, "sample_rate": SAMPLE_RATE,
         "frame_seconds": FRAME_SECONDS, "frame_len": frame_len_of(manifest.corpus),
         "vocabulary": len(vocabulary), "alignment_fallbacks": failures}, indent=1),
        encoding="utf-8")
    if failures:
        # Always said, quiet or not: these recordings train on guessed word times.
        shown = "; ".join(f"{f['reason']}" for f in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        print(f"semantic: aeneas could not align {len(failures)} recording(s) or segment(s); "
              f"uniform word timing used for them ({folder / 'preparation.json'} lists "
              f"all): {shown}{more}", file=sys.stderr)
    return folder
