"""Word alignment (ser_tf.align) on speech the tests synthesise with eSpeak NG.

The boundary test builds an utterance from separately synthesised words with known
positions (speech trimmed, known silences between), so the true word times are known and a
misplaced boundary fails it.
"""

import csv
import json
import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest

pytest.importorskip("aeneas")
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed", allow_module_level=True)

from ser_tf.align import (AlignmentError, Word, align_manifest, align_words,  # noqa: E402
                          normalise_transcript, read_textgrid, read_words_json,
                          write_textgrid, write_words_json)
from ser_tf.align import aligner  # noqa: E402
from ser_tf.cli import main  # noqa: E402

ENGLISH = "The quick brown fox jumps over the lazy dog."
GERMAN = "Der Lappen liegt auf dem Eisschrank."


def synthesise(text: str, path, voice: str = "en"):
    """(samples, rate) of ``text`` spoken by eSpeak NG, also saved to ``path``."""
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    return read_wav(path)


def read_wav(path):
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return samples, rate


def write_wav(path, samples: np.ndarray, rate: int):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())


def trim_silence(samples: np.ndarray, rate: int) -> np.ndarray:
    """The speech part: from the first to the last 10 ms frame within 35 dB of the peak."""
    hop = rate // 100
    frames = samples[: len(samples) // hop * hop].astype(float).reshape(-1, hop)
    energy = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-9)
    loud = np.flatnonzero(energy > energy.max() - 35)
    return samples[loud[0] * hop: (loud[-1] + 1) * hop]


def duration_of(path) -> float:
    samples, rate = read_wav(path)
    return len(samples) / rate


@pytest.fixture(scope="module")
def english_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("en") / "sentence.wav"
    synthesise(ENGLISH, path, "en")
    return path


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    """Words synthesised apart, trimmed and joined with known silences: (wav, truth)."""
    folder = tmp_path_factory.mktemp("composed")
    words = ["yesterday", "my", "grandmother", "whispered", "quietly"]
    gaps = [0.40, 0.12, 0.30, 0.08, 0.25, 0.35]  # before, between ..., after
    pieces, truth, cursor, rate = [], [], 0.0, None
    for index, word in enumerate(words):
        samples, rate = synthesise(word, folder / f"{word}.wav")
        speech = trim_silence(samples, rate)
        pieces += [np.zeros(int(gaps[index] * rate)), speech]
        cursor += int(gaps[index] * rate) / rate
        truth.append(Word(word, cursor, cursor + len(speech) / rate))
        cursor += len(speech) / rate
    pieces.append(np.zeros(int(gaps[-1] * rate)))
    write_wav(folder / "composed.wav", np.concatenate(pieces), rate)
    return folder / "composed.wav", truth


def test_normalise_keeps_surface_words_and_drops_punctuation():
    assert normalise_transcript(GERMAN) == ["Der", "Lappen", "liegt", "auf", "dem",
                                            "Eisschrank"]
    assert normalise_transcript("Was sind denn das für Tüten, die da stehen?!") == [
        "Was", "sind", "denn", "das", "für", "Tüten", "die", "da", "stehen"]
    assert normalise_transcript("Don't -- well-known ... 42") == ["Don't", "well-known", "42"]
    assert normalise_transcript(" .,;!? ") == []


def test_word_rejects_impossible_times():
    with pytest.raises(ValueError, match="before it starts"):
        Word("a", 1.0, 0.5)
    with pytest.raises(ValueError, match="start"):
        Word("a", -0.1, 0.5)


def assert_valid_timing(words, expected, duration):
    assert [w.word for w in words] == expected
    assert words[0].start >= 0 and words[-1].end <= duration + 1e-3
    for prev, nxt in zip(words, words[1:]):
        assert prev.start < prev.end <= nxt.start + 1e-9


def test_english_sentence_aligned_in_order_within_the_audio(english_wav):
    words = align_words(english_wav, ENGLISH, lang="eng")
    assert_valid_timing(words, normalise_transcript(ENGLISH), duration_of(english_wav))


def test_german_sentence_from_a_transcript_file(tmp_path):
    wav = tmp_path / "de.wav"
    synthesise(GERMAN, wav, "de")
    text_file = tmp_path / "de.txt"
    text_file.write_text(GERMAN + "\n", encoding="utf-8")
    words = align_words(wav, text_file, lang="deu")
    assert_valid_timing(words, normalise_transcript(GERMAN), duration_of(wav))


def test_boundaries_within_150_ms_of_known_word_positions(composed):
    wav, truth = composed
    words = align_words(wav, " ".join(w.word for w in truth), lang="eng")
    assert [w.word for w in words] == [w.word for w in truth]
    tolerance = 0.150
    # aeneas's words are contiguous, so a boundary falls somewhere in the silence between
    # two words: it must lie between the true end of one and the true start of the next,
    # give or take the tolerance.
    assert words[0].start <= truth[0].start + tolerance
    assert words[-1].end >= truth[-1].end - tolerance
    for index in range(len(truth) - 1):
        boundary = words[index].end
        assert truth[index].end - tolerance <= boundary <= truth[index + 1].start + tolerance, \
            (index, boundary, truth[index], truth[index + 1])
    # The check can fail: spreading the words evenly over the file misses it.
    duration = duration_of(wav)
    even = [duration * (i + 1) / len(truth) for i in range(len(truth) - 1)]
    assert any(not truth[i].end - tolerance <= b <= truth[i + 1].start + tolerance
               for i, b in enumerate(even))


def test_second_call_reads_the_cache_without_running_aeneas(english_wav, tmp_path,
                                                            monkeypatch):
    calls = []
    real = aligner._run_aeneas

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(aligner, "_run_aeneas", counting)
    first = align_words(english_wav, ENGLISH, lang="eng", cache_dir=tmp_path / "cache")
    second = align_words(english_wav, ENGLISH, lang="eng", cache_dir=tmp_path / "cache")
    assert len(calls) == 1 and first == second
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 1
    # Another transcript (or language, or setting) is another key.
    align_words(english_wav, "The quick brown fox", lang="eng", cache_dir=tmp_path / "cache")
    assert len(calls) == 2


def test_missing_espeak_voice_is_named(english_wav, monkeypatch):
    assert aligner.espeak_has_voice("en") and not aligner.espeak_has_voice("zz-nonexistent")
    monkeypatch.setattr(aligner, "espeak_has_voice", lambda voice: False)
    with pytest.raises(AlignmentError, match=r"sentence\.wav.*'ita'.*no voice 'it'"):
        align_words(english_wav, ENGLISH, lang="ita")


def test_unsupported_language(english_wav):
    with pytest.raises(AlignmentError, match="'fra' is not supported"):
        align_words(english_wav, ENGLISH, lang="fra")


def test_empty_transcript(english_wav):
    with pytest.raises(AlignmentError, match=r"sentence\.wav: the transcript has no words"):
        align_words(english_wav, " ... !? ", lang="eng")


def test_audio_too_short_for_the_text(tmp_path):
    wav = tmp_path / "short.wav"
    write_wav(wav, np.zeros(3200), 16000)  # 0.2 s
    with pytest.raises(AlignmentError, match=r"short\.wav: audio too short.*0\.20 s for 9"):
        align_words(wav, ENGLISH, lang="eng")


def test_unreadable_and_missing_audio(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....not really a wave file" * 10)
    with pytest.raises(AlignmentError, match=r"broken\.wav: unreadable audio"):
        align_words(bad, ENGLISH, lang="eng")
    with pytest.raises(AlignmentError, match=r"absent\.wav: audio file not found"):
        align_words(tmp_path / "absent.wav", ENGLISH, lang="eng")


def test_textgrid_and_json_round_trip(tmp_path):
    words = [Word("Der", 0.08, 0.244), Word("Lappen", 0.244, 0.643),
             Word("liegt", 0.7, 0.866), Word("auf \"x\"", 0.866, 0.98)]
    grid = write_textgrid(words, tmp_path / "w.TextGrid", duration=1.5)
    text = grid.read_text(encoding="utf-8")
    assert 'name = "words"' in text and "intervals: size = 7" in text  # 4 words + 3 gaps
    assert read_textgrid(grid) == (words, 1.5)
    path = write_words_json(words, tmp_path / "w.json", lang="deu")
    assert read_words_json(path) == words
    assert json.loads(path.read_text())["lang"] == "deu"
    (tmp_path / "other.json").write_text('{"words": []}')
    with pytest.raises(ValueError, match="not a words file"):
        read_words_json(tmp_path / "other.json")
    with pytest.raises(ValueError, match="shorter than the last word"):
        write_textgrid(words, tmp_path / "x.TextGrid", duration=0.5)


def test_batch_reports_bad_rows_and_aligns_the_rest(english_wav, tmp_path):
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "text", "label"])
        writer.writerow([str(english_wav), ENGLISH, "x"])
        writer.writerow(["missing.wav", ENGLISH, "x"])
        writer.writerow([str(english_wav), "  ", "x"])
    lines = []
    summary = align_manifest(manifest, tmp_path / "out", lang="eng", progress=lines.append,
                             cache_dir=tmp_path / "cache")
    assert (summary["n_rows"], summary["n_aligned"], summary["n_failed"]) == (3, 1, 2)
    assert [f["row"] for f in summary["failures"]] == [3, 4]
    assert "missing.wav: audio file not found" in summary["failures"][0]["error"]
    assert "no words" in summary["failures"][1]["error"]
    assert len(lines) == 3 and sum(line.startswith("FAILED") for line in lines) == 2
    assert read_words_json(summary["outputs"][0]["words"])[0].word == "The"
    saved = json.loads((tmp_path / "out" / "alignment-summary.json").read_text())
    assert saved["n_failed"] == 2
    with pytest.raises(ValueError, match="no column 'transcript'"):
        align_manifest(manifest, tmp_path / "out", lang="eng", text_column="transcript")


def test_cli_one_file_and_batch(english_wav, tmp_path, capsys):
    grid = tmp_path / "w.TextGrid"
    assert main(["align", str(english_wav), ENGLISH, "--lang", "eng", "--out", str(grid),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    words, xmax = read_textgrid(grid)
    assert [w.word for w in words] == normalise_transcript(ENGLISH)
    assert xmax == pytest.approx(duration_of(english_wav), abs=0.01)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,text\n{english_wav},{ENGLISH}\nnope.wav,hello there\n")
    assert main(["align", "--manifest", str(manifest), "--out-dir", str(tmp_path / "o"),
                 "--lang", "eng", "--cache-dir", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "nope.wav" in err
    assert main(["align", str(english_wav), " ", "--lang", "eng"]) == 1
    assert "no words" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["align", "--lang", "eng"])
    assert usage.value.code == 2


def test_building_the_cli_parser_imports_no_aeneas():
    code = ("import sys; from ser_tf.cli import build_parser; build_parser(); "
            "print(sorted({'aeneas', 'tensorflow'} & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
