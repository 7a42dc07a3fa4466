"""The EMO-DB word-boundary benchmark (ser_tf.bench.alignment) on a tiny generated layout.

Syllable grouping and the statistics are tested on hand-written labels; the end-to-end
run aligns two eSpeak NG utterances built from words with known positions, labelled in
EMO-DB's ``silb`` format (syllable start times, ``(`` pause, ``.`` end).
"""

import json
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from ser_tf.bench import alignment as bench

needs_aligner = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or __import__("importlib").util.find_spec("aeneas")
    is None, reason="aeneas or espeak-ng missing")


def labels(text: str) -> list[tuple[float, str]]:
    """``"0.1 der 0.3 la ..."`` -> [(0.1, "der"), (0.3, "la"), ...]."""
    items = text.split()
    return [(float(t), s) for t, s in zip(items[::2], items[1::2])]


def starts_ends(result):
    return [(w.word, round(w.start, 3), round(w.end, 3)) for w in result["words"]]


def test_exact_labels_give_word_starts_and_ends():
    result = bench.group_syllables(labels(
        "0.08 der 0.24 la 0.43 pen 0.64 liegt 0.87 auf 0.98 dem 1.15 eis 1.40 schrank 1.84 ."),
        "a01")
    assert result["exact"] and result["worst"] == 1  # "la pen" spells Lappen with one p
    assert starts_ends(result) == [("Der", 0.08, 0.24), ("Lappen", 0.24, 0.64),
                                   ("liegt", 0.64, 0.87), ("auf", 0.87, 0.98),
                                   ("dem", 0.98, 1.15), ("Eisschrank", 1.15, 1.84)]


def test_deviating_labels_are_grouped_to_the_right_words():
    # a syllabic consonant labelled apart joins its syllable; a pause ends the word
    result = bench.group_syllables(labels(
        "0.1 in 0.2 sie 0.3 ben 0.4 stunden 0.7 dn 0.8 ( 0.9 wird 1.0 es 1.1 so 1.2 weit "
        "1.3 sein 1.6 ."), "a07")
    assert not result["exact"]
    assert starts_ends(result)[2:4] == [("Stunden", 0.4, 0.8), ("wird", 0.9, 1.0)]
    # a repeated part goes to the word it spells: "ge" starts "gerade", "ben" ends "oben"
    b02 = bench.group_syllables(labels(
        "0.0 sie 0.1 ha 0.2 ben 0.3 es 0.4 ge 0.5 gera 0.6 de 0.7 hoch 0.8 ge 0.9 tra "
        "1.0 gen 1.1 und 1.2 jetzt 1.3 gehen 1.4 hn 1.5 sie 1.6 wie 1.7 der 1.8 run 1.9 ter "
        "2.0 ."), "b02")
    assert starts_ends(b02)[2:4] == [("es", 0.3, 0.4), ("gerade", 0.4, 0.7)]
    assert starts_ends(b02)[7] == ("gehen", 1.3, 1.5)
    a05 = bench.group_syllables(labels(
        "0 das 1 schwar 2 ze 3 blatt 4 pa 5 pier 6 be 7 fin 8 det 9 sich 10 da 11 oben "
        "12 ben 13 ne 14 ben 15 dem 16 holz 17 stück 18 ."), "a05")
    assert starts_ends(a05)[7:9] == [("oben", 11, 13), ("neben", 13, 15)]


def test_labels_without_end_mark_or_too_few_syllables_are_refused():
    with pytest.raises(ValueError, match="end with"):
        bench.group_syllables(labels("0.1 der 0.2 la"), "a01")
    with pytest.raises(ValueError, match="3 syllables for 6 words"):
        bench.group_syllables(labels("0.1 der 0.2 lappen 0.3 liegt 0.4 ."), "a01")


def test_syllables_of_every_text_spell_its_words():
    for text, words in bench.EMODB_WORDS.items():
        for word, syllables in words:
            joined = syllables.replace(" ", "")
            assert joined == word.lower() or (word, joined) == ("Lappen", "lapen"), (text, word)


def test_empty_silb_falls_back_to_labsilb(tmp_path):
    (tmp_path / "silb").mkdir()
    (tmp_path / "labsilb").mkdir()
    (tmp_path / "silb" / "13a01Wb.silb").write_text("")
    (tmp_path / "labsilb" / "13a01Wb.labsilb").write_text(
        "signal x\nnfields 1\n#\n    0.073214   -1 der\t0.5\n    0.208890   -1 la\t1.9\n"
        "    2.293052   -1 .\n", encoding="latin-1")
    assert bench.read_syllable_labels(tmp_path / "silb" / "13a01Wb.silb") == [
        (0.073214, "der"), (0.20889, "la"), (2.293052, ".")]


def test_timing_evidence_tells_end_times_from_start_times(tmp_path):
    (tmp_path / "wav").mkdir()
    (tmp_path / "silb").mkdir()
    rate = 16000
    speech = (8000 * np.sin(np.arange(rate) * 0.2)).astype(np.int16)  # 1 s tone
    audio = np.concatenate([np.zeros(rate // 2, np.int16), speech, np.zeros(rate // 2, np.int16)])
    with wave.open(str(tmp_path / "wav" / "03a01Fa.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(audio.tobytes())
    silb = tmp_path / "silb" / "03a01Fa.silb"
    silb.write_text("0.5 der\n0.7 la\n1.3 pen\n1.5 .\n")  # starts; "." at the offset
    assert bench.label_timing_evidence(tmp_path, [tmp_path / "wav" / "03a01Fa.wav"])[
        "conclusion"].startswith("syllable start times")
    silb.write_text("0.7 der\n1.3 la\n1.5 pen\n1.9 .\n")  # the same read as end times
    assert bench.label_timing_evidence(tmp_path, [tmp_path / "wav" / "03a01Fa.wav"])[
        "conclusion"].startswith("unclear")


def test_file_names_and_statistics():
    assert bench.parse_file_name("03a01Fa.wav") == {
        "speaker": "03", "text": "a01", "emotion": "happiness", "version": "a"}
    with pytest.raises(ValueError, match="not an EMO-DB file name"):
        bench.parse_file_name("hello.wav")
    assert bench.summarise([10, 30, 60, 200]) == {
        "n": 4, "mean_ms": 75.0, "median_ms": 45.0, "within_20ms_pct": 25.0,
        "within_50ms_pct": 50.0, "within_100ms_pct": 75.0}
    assert bench.summarise([]) == {"n": 0}


def _synthesise_word(word: str, folder: Path) -> tuple[np.ndarray, int]:
    path = folder / f"w-{word}.wav"
    subprocess.run(["espeak-ng", "-v", "de", "-w", str(path), word], check=True)
    with wave.open(str(path)) as w:
        rate, samples = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), np.int16)
    hop = rate // 100
    frames = samples[: len(samples) // hop * hop].astype(float).reshape(-1, hop)
    energy = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-9)
    loud = np.flatnonzero(energy > energy.max() - 35)
    return samples[loud[0] * hop: (loud[-1] + 1) * hop], rate


def make_file(data_dir: Path, name: str, words, gap: float, silb_tokens=None) -> list:
    """One utterance of ``words`` (word, syllables) with ``gap`` s of silence around each
    word; its ``silb`` file from the true times. Returns the true (start, end) per word."""
    pieces, lines, truth, cursor, rate = [], [], [], 0.0, 16000
    for word, syllables in words:
        speech, rate = _synthesise_word(word, data_dir)
        pieces += [np.zeros(int(gap * rate), np.int16), speech]
        cursor += int(gap * rate) / rate
        length = len(speech) / rate
        parts = (silb_tokens or {}).get(word, syllables).split()
        lines += [f"{cursor + i * length / len(parts):.6f}\t{s}" for i, s in enumerate(parts)]
        truth.append((cursor, cursor + length))
        cursor += length
        lines.append(f"{cursor:.6f}\t(")  # the silence after the word is a pause
    lines[-1] = f"{cursor:.6f}\t."
    pieces.append(np.zeros(int(gap * rate), np.int16))
    with wave.open(str(data_dir / "wav" / f"{name}.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.concatenate(pieces).tobytes())
    (data_dir / "silb" / f"{name}.silb").write_text("\n".join(lines) + "\n", encoding="latin-1")
    return truth


@needs_aligner
def test_run_on_a_tiny_emodb_layout(tmp_path):
    data = tmp_path / "emodb"
    (data / "wav").mkdir(parents=True)
    (data / "silb").mkdir()
    make_file(data, "03a01Fa", bench.EMODB_WORDS["a01"], gap=0.06)
    make_file(data, "08a07Nb", bench.EMODB_WORDS["a07"], gap=0.04,
              silb_tokens={"Stunden": "stunden dn"})  # labelled the deviating way
    assert bench.main(["--data-dir", str(data), "--results-dir", str(tmp_path / "results")]) == 0
    records = list((tmp_path / "results" / "alignment" / "EMODB").glob("*/record.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    result = record["result"]
    assert (result["n_files"], result["n_measured"], result["failures"]) == (2, 2, [])
    assert result["deviating_labels"] == ["08a07Nb.wav"] and result["n_exact_labels"] == 1
    assert result["aligner"]["all"]["n"] == 2 * (6 + 7)
    assert result["aligner"]["per_emotion"]["happiness"]["n"] == 12
    assert result["aligner"]["per_emotion"]["anger"] == {"n": 0}
    # eSpeak speech aligned with eSpeak synthesis: boundaries well within 150 ms
    assert result["aligner"]["all"]["mean_ms"] < 150
    assert record["aligner"]["version"] and "RAVDESS" in record["ravdess"]
    # The copy measured, as run records state it: two files, none of the release's sizes.
    assert record["data"]["files"] == 2 and record["data"]["release"] != "original release"
    evidence = result["label_timing_evidence"]  # the labels were written as start times
    assert evidence["conclusion"].startswith("syllable start times")
    assert abs(evidence["onset_minus_first_time_ms"]) <= 20
    assert evidence["syllable_times_on_a_phone_time_pct"] is None  # no lablaut/ here
    table = bench.markdown_table(record)
    assert "| aeneas, all | 26 |" in table and "| aeneas, neutral | 14 |" in table
    assert "anger" not in table  # no rows for emotions without files


@pytest.mark.integration
def test_every_emodb_label_file_fits_its_text(shared_data):
    labels = shared_data / "emodb" / "silb"
    if not labels.is_dir():
        pytest.skip(f"no EMO-DB syllable labels at {labels}")
    grouped = {}
    for silb in sorted(labels.glob("*.silb")):
        text = bench.parse_file_name(silb.stem)["text"]
        grouped[silb.stem] = bench.group_syllables(bench.read_syllable_labels(silb), text)
    assert len(grouped) == 535
    assert sum(r["worst"] > 4 for r in grouped.values()) <= 5  # the few mislabelled files
    assert sum(r["exact"] for r in grouped.values()) > 250
