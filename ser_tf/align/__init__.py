"""Word alignment: where each word of a transcript is in a recording.

:func:`align_words` force-aligns one recording with its transcript (aeneas + eSpeak NG,
word level, optional result cache); :func:`align_manifest` does a CSV of recordings and
collects per-file failures. Results are lists of :class:`Word` (word, start, end in
seconds), written as JSON (:func:`write_words_json`) or a Praat TextGrid
(:func:`write_textgrid`). aeneas is imported only when an alignment runs.
"""

from ser_tf.align.aligner import (DEFAULT_SETTINGS, ESPEAK_VOICES, AlignerSettings,
                                  AlignmentError, align_words, audio_duration)
from ser_tf.align.batch import align_manifest
from ser_tf.align.words import (Word, normalise_transcript, read_textgrid, read_words_json,
                                write_textgrid, write_words_json)

__all__ = ["AlignerSettings", "AlignmentError", "DEFAULT_SETTINGS", "ESPEAK_VOICES", "Word",
           "align_manifest", "align_words", "audio_duration", "normalise_transcript",
           "read_textgrid", "read_words_json", "write_textgrid", "write_words_json"]
