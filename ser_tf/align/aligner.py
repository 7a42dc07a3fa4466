"""Word-level forced alignment with aeneas (aeneas-ng) and eSpeak NG, with a result cache.

aeneas synthesises the transcript with eSpeak NG, computes MFCCs of the synthetic and the
real audio and aligns them with DTW; each text fragment gets the time span its synthetic
counterpart maps to. Giving aeneas one fragment per word is what makes the result
word-level (the alternative, a multi-level ``mplain`` text, refines paragraph / sentence /
word in three passes; for one utterance the first two levels add nothing).

:func:`align_words` checks its inputs first (language, eSpeak voice, transcript, audio) so
that every failure is an :class:`AlignmentError` whose message names the file and says why.
aeneas and its audio probing are imported only when an alignment runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ser_tf.align.words import Word, normalise_transcript, words_from_records
from ser_tf.util.errors import UserError
from ser_tf.util.jsonio import write_json_atomic

#: aeneas language code -> eSpeak NG voice the synthesis needs.
ESPEAK_VOICES = {"deu": "de", "eng": "en", "ita": "it"}

#: Below this many seconds per word no speaker could have said the transcript: refuse
#: rather than let DTW squeeze the words into near-zero intervals.
MIN_SECONDS_PER_WORD = 0.1

CACHE_FORMAT = "ser_tf.align.cache/1"


class AlignmentError(UserError, ValueError):
    """An alignment that cannot be done; the message names the file and the reason."""


@dataclass(frozen=True)
class AlignerSettings:
    """The aeneas settings that change a result (all part of the cache key).

    Defaults are aeneas's own word-level ("level 3") MFCC frame settings, 20 ms windows
    every 5 ms, instead of its 100 ms / 40 ms paragraph-level defaults: word boundaries
    need the finer time grid (on 49 EMO-DB files of speaker 03, 40/10 ms and 100/40 ms
    windows gave 18 and 41 ms larger mean boundary errors). aeneas's head/tail detection is
    not offered: head detection changed nothing on two files tried, tail detection hangs in
    ``cew`` (aeneas-ng 1.7.4), so the first word starts at 0 s and the last ends with the
    audio: leading and trailing silence belong to them.

    ``tts="espeak"`` is aeneas's eSpeak wrapper, which calls its C extension ``cew``
    (built against libespeak-ng) to synthesise all words in one pass; its ``"espeak-ng"``
    wrapper instead runs one ``espeak-ng`` process per word, and the silence eSpeak pads
    around every single word (0.2-0.5 s each) stretches the synthetic utterance so much
    that DTW misplaces the boundaries (measured: a clean eSpeak sentence aligned to
    itself lost its last word). The binary is still the fallback when ``cew`` cannot load.
    """

    mfcc_window_length: float = 0.020
    mfcc_window_shift: float = 0.005
    dtw_algorithm: str = "stripe"
    dtw_margin: float = 10.0
    tts: str = "espeak"

    def __post_init__(self):
        if not 0 < self.mfcc_window_shift <= self.mfcc_window_length:
            raise ValueError("need 0 < mfcc_window_shift <= mfcc_window_length")
        if self.dtw_algorithm not in ("stripe", "exact"):
            raise ValueError(f"dtw_algorithm must be 'stripe' or 'exact', "
                             f"got {self.dtw_algorithm!r}")
        if self.dtw_margin <= 0:
            raise ValueError("dtw_margin must be > 0 s")

    def runtime_config(self) -> str:
        """The aeneas RuntimeConfiguration string."""
        binary = shutil.which("espeak-ng") or "espeak-ng"
        # cew in a fresh subprocess each time: a second in-process cew call hangs in
        # libespeak-ng (measured with aeneas-ng 1.7.4 / eSpeak NG 1.51).
        return (f"tts={self.tts}|tts_path={binary}|cew_subprocess_enabled=True"
                f"|cew_subprocess_path={sys.executable}"
                f"|mfcc_window_length={self.mfcc_window_length:.3f}"
                f"|mfcc_window_shift={self.mfcc_window_shift:.3f}"
                f"|dtw_algorithm={self.dtw_algorithm}|dtw_margin={self.dtw_margin:.3f}")

    def task_config(self, lang: str) -> str:
        """The aeneas task configuration string."""
        return f"task_language={lang}|is_text_type=plain|os_task_file_format=json"


DEFAULT_SETTINGS = AlignerSettings()


def aeneas_version() -> str:
    try:
        from importlib.metadata import version

        return version("aeneas-ng")
    except Exception:  # noqa: BLE001 - a plain `aeneas` install, or none
        try:
            import aeneas

            return str(aeneas.__version__)
        except ImportError:
            return "not installed"


@functools.lru_cache(maxsize=None)
def espeak_has_voice(voice: str) -> bool:
    """Whether eSpeak NG has a voice for language ``voice`` ("de", "en", ...)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        return False
    # `--voices=en` lists the voices speaking "en" (en-gb, en-us, ...) under a header line.
    listing = subprocess.run([binary, f"--voices={voice}"], capture_output=True, text=True,
                             check=False).stdout
    return any(line.split() for line in listing.splitlines()[1:])


def check_language(lang: str, audio_path="") -> str:
    """``lang`` if it is supported and its eSpeak NG voice is installed."""
    if lang not in ESPEAK_VOICES:
        raise AlignmentError(f"{audio_path}: language {lang!r} is not supported "
                             f"(choose one of {', '.join(ESPEAK_VOICES)})")
    voice = ESPEAK_VOICES[lang]
    if not espeak_has_voice(voice):
        where = ("eSpeak NG is not installed (espeak-ng not on PATH)"
                 if shutil.which("espeak-ng") is None else
                 f"`espeak-ng --voices` lists no voice {voice!r}")
        raise AlignmentError(f"{audio_path}: cannot align {lang!r}: {where}; the aligner "
                             f"synthesises the transcript with that voice")
    return lang


def read_transcript(transcript: str | os.PathLike) -> str:
    """The text: a path-like (``pathlib.Path``) is a file to read, a ``str`` is the text."""
    if isinstance(transcript, os.PathLike):
        path = Path(transcript)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise AlignmentError(f"{path}: transcript file not found") from None
        except (OSError, UnicodeDecodeError) as err:
            raise AlignmentError(f"{path}: cannot read the transcript ({err})") from None
    if isinstance(transcript, str):
        return transcript
    raise TypeError(f"transcript must be a str (the text) or a path, "
                    f"got {type(transcript).__name__}")


def audio_duration(audio_path: Path) -> float:
    """Seconds of audio, probed the way aeneas will read it (ffprobe)."""
    from aeneas.audiofile import AudioFile

    try:
        audio = AudioFile(file_path=str(audio_path))
        audio.read_properties()
        length = float(audio.audio_length or 0)
    except Exception as err:  # noqa: BLE001 - aeneas raises several unrelated types
        raise AlignmentError(f"{audio_path}: unreadable audio "
                             f"({type(err).__name__}: {err})") from None
    if length <= 0:
        raise AlignmentError(f"{audio_path}: unreadable audio (no samples)")
    return length


def cache_key(audio_path: Path, words: list[str], lang: str,
              settings: AlignerSettings) -> str:
    """SHA-256 over the audio bytes, the words, the language and the aligner settings."""
    digest = hashlib.sha256()
    with open(audio_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    meta = {"words": words, "lang": lang, "settings": asdict(settings),
            "aeneas": aeneas_version(), "format": CACHE_FORMAT}
    digest.update(json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def _run_aeneas(audio_path: Path, words: list[str], lang: str,
                settings: AlignerSettings) -> list[Word]:
    """One aeneas task, one text fragment per word; the regular fragments as words."""
    from aeneas.executetask import ExecuteTask
    from aeneas.runtimeconfiguration import RuntimeConfiguration
    from aeneas.syncmap import SyncMapFragment
    from aeneas.task import Task
    from aeneas.textfile import TextFile, TextFragment

    task = Task(config_string=settings.task_config(lang))
    task.audio_file_path_absolute = str(audio_path)
    text = TextFile()
    for index, word in enumerate(words):
        text.add_fragment(TextFragment(identifier=f"w{index:05d}", language=lang,
                                       lines=[word], filtered_lines=[word]))
    task.text_file = text
    ExecuteTask(task, rconf=RuntimeConfiguration(settings.runtime_config())).execute()
    fragments = [f for f in task.sync_map_leaves()
                 if f.fragment_type == SyncMapFragment.REGULAR]
    return [Word(word, round(float(f.begin), 4), round(float(f.end), 4))
            for word, f in zip(words, fragments, strict=True)]


def align_words(audio_path: str | os.PathLike, transcript: str | os.PathLike, *,
                lang: str, cache_dir: str | os.PathLike | None = None,
                settings: AlignerSettings = DEFAULT_SETTINGS) -> list[Word]:
    """Word start/end times of ``transcript`` spoken in ``audio_path``.

    ``transcript``: a ``str`` is the text itself, a ``pathlib.Path`` a UTF-8 text file.
    Its words are the surface forms with punctuation dropped (:func:`normalise_transcript`).
    ``lang``: ``"deu"``, ``"eng"`` or ``"ita"``. With ``cache_dir``, the result is stored
    under a key of the audio bytes, words, language and settings, and a repeated call
    reads it instead of aligning again. Raises :class:`AlignmentError` (naming the file)
    for an unsupported language or missing eSpeak voice, an empty transcript, unreadable
    audio, audio too short for the words, or an aeneas failure.
    """
    audio_path = Path(audio_path)
    check_language(lang, audio_path)
    text = read_transcript(transcript)
    words = normalise_transcript(text)
    if not words:
        raise AlignmentError(f"{audio_path}: the transcript has no words "
                             f"({text.strip()[:40]!r})")
    if not audio_path.is_file():
        raise AlignmentError(f"{audio_path}: audio file not found")
    cache_file = None
    if cache_dir is not None:
        key = cache_key(audio_path, words, lang, settings)
        cache_file = Path(cache_dir) / key[:2] / f"{key}.json"
        cached = _read_cache(cache_file)
        if cached is not None:
            return cached
    duration = audio_duration(audio_path)
    needed = MIN_SECONDS_PER_WORD * len(words)
    if duration < needed:
        raise AlignmentError(f"{audio_path}: audio too short for the transcript: "
                             f"{duration:.2f} s for {len(words)} words (needs at least "
                             f"{needed:.2f} s at {MIN_SECONDS_PER_WORD} s per word)")
    try:
        aligned = _run_aeneas(audio_path, words, lang, settings)
    except AlignmentError:
        raise
    except Exception as err:  # noqa: BLE001 - aeneas wraps its failures inconsistently
        raise AlignmentError(f"{audio_path}: aeneas could not align the transcript "
                             f"({type(err).__name__}: {err})") from None
    if cache_file is not None:
        write_json_atomic(cache_file, {"format": CACHE_FORMAT, "audio": str(audio_path),
                                       "lang": lang, "settings": asdict(settings),
                                       "aeneas": aeneas_version(),
                                       "words": [asdict(w) for w in aligned]})
    return aligned


def _read_cache(cache_file: Path) -> list[Word] | None:
    """The cached words, or ``None`` when absent or unreadable (then it is recomputed)."""
    try:
        record = json.loads(cache_file.read_text(encoding="utf-8"))
        if record.get("format") != CACHE_FORMAT:
            return None
        return words_from_records(record["words"], source=str(cache_file))
    except (OSError, ValueError, KeyError, AttributeError):
        return None
