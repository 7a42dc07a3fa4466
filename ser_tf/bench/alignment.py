"""How well the word aligner finds word boundaries: ``python -m ser_tf.bench.alignment``.

Reference: EMO-DB's hand-labelled syllables (``silb/<file>.silb``: one ``time<TAB>syllable``
line per syllable, ``(`` for a pause, ``.`` last). The times are syllable **start** times,
not end times as the corpus notes say, and ``.`` marks the end of the last syllable: the
first time lies at the energy onset of the speech (median 7 ms after it over all 535
files; 10 ms frames within 35 dB of the loud frames), the ``.`` time at its offset
(median 10 ms before it; the last syllable's time is 312 ms before it), and 87 % of the
syllable times fall within 2 ms of a phone time in ``lablaut``, at the syllable's first phone
(``der`` 0.080080 = ``_t`` 0.080109, ``la`` 0.244195 = ``l`` 0.244223): a syllable cannot
end where its own first phone is labelled. Read as end times, every file's first syllable
would end where speech begins. :func:`label_timing_evidence` measures this for the record.
So a word starts at its first syllable's time and ends at the time of whatever follows its
last syllable (next syllable, pause ``(`` or ``.``).

Syllables map to the words of the ten texts through :data:`EMODB_WORDS` (each word and the
syllables that concatenate to it). Files labelled differently (a syllabic consonant as
its own token, ``stunden dn``; merged or repeated syllables) are grouped by
:func:`group_syllables` and listed as deviating; a file whose labels do not fit the text
at all is left out and named. Each file is aligned with its text (``deu``) and every word
start and end is compared: mean absolute error, % within 20/50/100 ms, overall, per
emotion, starts and ends apart; with a naive baseline (words spread over the whole file in
proportion to their letters) for scale. The record goes to
``<results-dir>/alignment/EMODB/<id>/record.json``; :func:`markdown_table` renders it.

RAVDESS has no time-aligned transcription: only the two statements' texts, so there is
nothing to measure a boundary against (see :data:`RAVDESS_NOTE`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from ser_tf.align import AlignerSettings, AlignmentError, Word, align_words, audio_duration
from ser_tf.align.aligner import aeneas_version
from ser_tf.util.jsonio import write_json_atomic

FORMAT = "ser_tf.bench.alignment/1"
EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness",
            "T": "sadness", "N": "neutral"}
THRESHOLDS_MS = (20, 50, 100)

#: The ten texts as spoken, word by word with the syllables (as labelled in ``silb/``)
#: that concatenate to the word. a05 is published as "Das schwarze Stück Papier ..." but
#: every a05 file's labels (and phones, ``b l a t``) say "Blatt": aligning the published
#: word would measure a transcript error, so the spoken one is used.
EMODB_WORDS = {
    "a01": [("Der", "der"), ("Lappen", "la pen"), ("liegt", "liegt"), ("auf", "auf"),
            ("dem", "dem"), ("Eisschrank", "eis schrank")],
    "a02": [("Das", "das"), ("will", "will"), ("sie", "sie"), ("am", "am"),
            ("Mittwoch", "mitt woch"), ("abgeben", "ab ge ben")],
    "a04": [("Heute", "heu te"), ("abend", "a bend"), ("könnte", "könn te"),
            ("ich", "ich"), ("es", "es"), ("ihm", "ihm"), ("sagen", "sa gen")],
    "a05": [("Das", "das"), ("schwarze", "schwar ze"), ("Blatt", "blatt"),
            ("Papier", "pa pier"), ("befindet", "be fin det"), ("sich", "sich"),
            ("da", "da"), ("oben", "o ben"), ("neben", "ne ben"), ("dem", "dem"),
            ("Holzstück", "holz stück")],
    "a07": [("In", "in"), ("sieben", "sie ben"), ("Stunden", "stun den"), ("wird", "wird"),
            ("es", "es"), ("soweit", "so weit"), ("sein", "sein")],
    "b01": [("Was", "was"), ("sind", "sind"), ("denn", "denn"), ("das", "das"),
            ("für", "für"), ("Tüten", "tü ten"), ("die", "die"), ("da", "da"),
            ("unter", "un ter"), ("dem", "dem"), ("Tisch", "tisch"), ("stehen", "ste hen")],
    "b02": [("Sie", "sie"), ("haben", "ha ben"), ("es", "es"), ("gerade", "ge ra de"),
            ("hochgetragen", "hoch ge tra gen"), ("und", "und"), ("jetzt", "jetzt"),
            ("gehen", "ge hen"), ("sie", "sie"), ("wieder", "wie der"),
            ("runter", "run ter")],
    "b03": [("An", "an"), ("den", "den"), ("Wochenenden", "wo chen en den"), ("bin", "bin"),
            ("ich", "ich"), ("jetzt", "jetzt"), ("immer", "im mer"), ("nach", "nach"),
            ("Hause", "hau se"), ("gefahren", "ge fah ren"), ("und", "und"),
            ("habe", "ha be"), ("Agnes", "ag nes"), ("besucht", "be sucht")],
    "b09": [("Ich", "ich"), ("will", "will"), ("das", "das"), ("eben", "e ben"),
            ("wegbringen", "weg brin gen"), ("und", "und"), ("dann", "dann"), ("mit", "mit"),
            ("Karl", "karl"), ("was", "was"), ("trinken", "trin ken"), ("gehen", "ge hen")],
    "b10": [("Die", "die"), ("wird", "wird"), ("auf", "auf"), ("dem", "dem"),
            ("Platz", "platz"), ("sein", "sein"), ("wo", "wo"), ("wir", "wir"), ("sie", "sie"),
            ("immer", "im mer"), ("hinlegen", "hin le gen")],
}

RAVDESS_NOTE = (
    "RAVDESS is not measured: it ships no word or syllable timing, only the two statements' "
    "texts, so any reference would have to come from an aligner or from listening by hand; "
    "and the copy here is cut to 2.39 s, which can cut off the end of the statement, so even "
    "the word list of a file is not known for sure. A reference made from another aligner "
    "would measure agreement between aligners, not accuracy.")

_VOWELS = set("aeiouäöüy")


def parse_file_name(name: str) -> dict:
    """``03a01Fa`` -> speaker, text, emotion letter and name, version."""
    match = re.fullmatch(r"(\d\d)([ab]\d\d)([WLEAFTN])([a-z])", Path(name).stem)
    if not match:
        raise ValueError(f"{name}: not an EMO-DB file name (like 03a01Fa.wav)")
    speaker, text, letter, version = match.groups()
    return {"speaker": speaker, "text": text, "emotion": EMOTIONS[letter], "version": version}


def read_syllable_labels(silb_path: Path) -> list[tuple[float, str]]:
    """(time, label) lines of a ``.silb`` file, or of the ``.labsilb`` xlabel file beside
    it in ``labsilb/`` when the ``.silb`` is empty (13a01Wb's is)."""
    lines = silb_path.read_text(encoding="latin-1").splitlines()
    if not any(line.strip() for line in lines):
        labsilb = silb_path.parent.parent / "labsilb" / f"{silb_path.stem}.labsilb"
        if not labsilb.is_file():
            return []
        body = labsilb.read_text(encoding="latin-1").split("\n#", 1)[-1]
        # xlabel lines: time, colour, label, then an optional stress value.
        lines = ["\t".join(line.split()[::2][:2]) for line in body.splitlines()
                 if len(line.split()) >= 3]
    labels = []
    for line in lines:
        if line.strip():
            stamp, label = line.strip().split(None, 1)
            labels.append((float(stamp), label.strip().lower()))
    return labels


def _levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def group_syllables(labels: list[tuple[float, str]], text_id: str) -> dict:
    """Reference words of one file from its syllable labels.

    Returns ``{"words": [Word], "exact": bool, "worst": int}``: ``exact`` when the syllables
    are the text's :data:`EMODB_WORDS` syllables in order (pauses aside), ``worst`` the
    largest letter edit distance between a word and its syllables. A vowel-less token
    (``dn``, ``bm``: a syllabic consonant labelled apart) joins the syllable before it; the
    rest are split into the text's words by the grouping with the fewest letter edits,
    where a group whose first / last letter differs from the word's, or that spans a
    pause, costs a little more (ties go to the earlier word).
    """
    words = EMODB_WORDS[text_id]
    if not labels or labels[-1][1] != ".":
        raise ValueError("the labels do not end with '.'")
    canonical = [s for _, spelling in words for s in spelling.split()]
    spoken = [label for _, label in labels if label not in ("(", ".")]
    syllables = []  # [text, start, end, pause_before]
    pause = False
    for index, (stamp, label) in enumerate(labels[:-1]):
        next_time = labels[index + 1][0]
        if label == "(":
            pause = True
        elif syllables and not _VOWELS & set(label) and not pause:
            syllables[-1][0] += label
            syllables[-1][2] = next_time
        else:
            syllables.append([label, stamp, next_time, pause])
            pause = False
    n, m = len(syllables), len(words)
    if n < m:
        raise ValueError(f"{n} syllables for {m} words")
    targets = [w.lower() for w, _ in words]
    inf = float("inf")
    best = [[inf] * (m + 1) for _ in range(n + 1)]
    back = [[0] * (m + 1) for _ in range(n + 1)]
    best[0][0] = 0.0
    for j in range(1, m + 1):
        for i in range(j, n - (m - j) + 1):
            for k in range(j - 1, i):
                if best[k][j - 1] == inf:
                    continue
                joined = "".join(s[0] for s in syllables[k:i])
                cost = (_levenshtein(joined, targets[j - 1])
                        + 0.5 * (joined[0] != targets[j - 1][0])
                        + 0.5 * (joined[-1] != targets[j - 1][-1])
                        + 1.0 * any(s[3] for s in syllables[k + 1:i]))
                if best[k][j - 1] + cost <= best[i][j]:  # <=: later split wins ties
                    best[i][j], back[i][j] = best[k][j - 1] + cost, k
    bounds, i = [], n
    for j in range(m, 0, -1):
        bounds.append((back[i][j], i))
        i = back[i][j]
    bounds.reverse()
    result, worst = [], 0
    for (k, i), (word, _) in zip(bounds, words):
        worst = max(worst, _levenshtein("".join(s[0] for s in syllables[k:i]), word.lower()))
        result.append(Word(word, syllables[k][1], syllables[i - 1][2]))
    return {"words": result, "exact": spoken == canonical, "worst": worst}


def _speech_span(wav: Path) -> tuple[float, float]:
    """First and last 10 ms frame within 35 dB of the loud (95th percentile) frames, s."""
    import wave

    import numpy as np

    with wave.open(str(wav)) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(float)
    hop = rate // 100
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    energy = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-9)
    loud = np.flatnonzero(energy > np.percentile(energy, 95) - 35)
    return loud[0] / 100, (loud[-1] + 1) / 100


def label_timing_evidence(data_dir: Path, wavs: list[Path]) -> dict:
    """Whether ``silb`` times are syllable starts or ends, measured (medians in ms):
    speech onset minus the first time, offset minus the ``.`` time and minus the last
    syllable's time, and the share of syllable times within 2 ms of a ``lablaut`` phone
    time (a syllable's time at its first phone's label: a start, since it cannot end
    where its own first phone is)."""
    onset, offset_dot, offset_last, on_phone, n_syllables = [], [], [], 0, 0
    for wav in wavs:
        labels = read_syllable_labels(data_dir / "silb" / f"{wav.stem}.silb")
        phones = data_dir / "lablaut" / f"{wav.stem}xx.lablaut"
        if len(labels) < 2 or labels[-1][1] != ".":
            continue
        start, end = _speech_span(wav)
        onset.append(start - labels[0][0])
        offset_dot.append(end - labels[-1][0])
        offset_last.append(end - labels[-2][0])
        if phones.is_file():
            body = phones.read_text(encoding="latin-1").split("\n#", 1)[-1]
            times = [float(line.split()[0]) for line in body.splitlines() if line.split()]
            for stamp, label in labels[:-1]:
                if label != "(":
                    n_syllables += 1
                    on_phone += any(abs(stamp - t) <= 0.002 for t in times)
    def ms(values):
        return round(1000 * float(statistics.median(values)), 1) if values else None

    evidence = {"n_files": len(onset), "onset_minus_first_time_ms": ms(onset),
                "offset_minus_end_mark_ms": ms(offset_dot),
                "offset_minus_last_syllable_ms": ms(offset_last),
                "syllable_times_on_a_phone_time_pct": round(100 * on_phone / n_syllables, 1)
                if n_syllables else None}
    starts = (onset and abs(evidence["onset_minus_first_time_ms"]) < 30
              and abs(evidence["offset_minus_end_mark_ms"]) < 30
              and evidence["offset_minus_last_syllable_ms"] > 100)
    evidence["conclusion"] = ("syllable start times; '.' is the end of the last syllable"
                              if starts else "unclear: the times do not fit syllable starts")
    return evidence


def proportional_baseline(words: list[str], duration: float) -> list[Word]:
    """Words spread over 0 .. ``duration`` in proportion to their letters (no audio used)."""
    total, cursor, out = sum(len(w) for w in words), 0.0, []
    for w in words:
        end = cursor + duration * len(w) / total
        out.append(Word(w, cursor, end))
        cursor = end
    return out


def boundary_errors(aligned: list[Word], reference: list[Word]) -> dict:
    """Absolute start and end errors in ms, word by word."""
    if [w.word for w in aligned] != [w.word for w in reference]:
        raise ValueError("aligned and reference words differ")
    return {"starts": [abs(a.start - r.start) * 1000 for a, r in zip(aligned, reference)],
            "ends": [abs(a.end - r.end) * 1000 for a, r in zip(aligned, reference)]}


def summarise(errors_ms: list[float]) -> dict:
    """Mean / median absolute error (ms) and % of boundaries within each threshold."""
    if not errors_ms:
        return {"n": 0}
    return {"n": len(errors_ms), "mean_ms": round(statistics.fmean(errors_ms), 1),
            "median_ms": round(statistics.median(errors_ms), 1),
            **{f"within_{t}ms_pct": round(100 * sum(e <= t for e in errors_ms)
                                          / len(errors_ms), 1) for t in THRESHOLDS_MS}}


def _summaries(per_file: list[dict], key: str) -> dict:
    starts = [e for f in per_file for e in f[key]["starts"]]
    ends = [e for f in per_file for e in f[key]["ends"]]
    out = {"all": summarise(starts + ends), "starts": summarise(starts),
           "ends": summarise(ends), "per_emotion": {}}
    for emotion in EMOTIONS.values():
        files = [f for f in per_file if f["emotion"] == emotion]
        out["per_emotion"][emotion] = summarise(
            [e for f in files for part in ("starts", "ends") for e in f[key][part]])
    return out


def run(data_dir: Path, *, settings: AlignerSettings, cache_dir=None, limit=None,
        speakers=None, tuned_on=(), progress=print) -> dict:
    """Align every EMO-DB file that has labels; the record's result (not written).

    ``tuned_on``: speakers whose files chose the settings; the result then also holds the
    summary without them (``aligner_unseen_speakers``), free of that selection.
    """
    data_dir = Path(data_dir)
    wavs = sorted((data_dir / "wav").glob("*.wav"))
    if not wavs:
        raise FileNotFoundError(f"{data_dir / 'wav'}: no .wav files (is --data-dir EMO-DB?)")
    if speakers:
        wavs = [w for w in wavs if w.stem[:2] in speakers]
    wavs = wavs[:limit] if limit else wavs
    per_file, deviating, excluded, failures = [], [], [], []
    started = time.monotonic()
    for index, wav in enumerate(wavs, start=1):
        meta = parse_file_name(wav.name)
        try:
            labels = read_syllable_labels(data_dir / "silb" / f"{wav.stem}.silb")
            reference = group_syllables(labels, meta["text"])
        except (OSError, ValueError) as err:
            excluded.append({"file": wav.name, "reason": f"labels: {err}"})
            continue
        if not reference["exact"]:
            deviating.append(wav.name)
        if reference["worst"] > 4:  # the labels do not spell the text: no honest reference
            excluded.append({"file": wav.name, "reason": "syllables do not fit the text "
                             f"(a word is {reference['worst']} letters off)"})
            continue
        words = [w.word for w in reference["words"]]
        try:
            aligned = align_words(wav, " ".join(words), lang="deu", cache_dir=cache_dir,
                                  settings=settings)
        except AlignmentError as err:
            failures.append({"file": wav.name, "error": str(err)})
            continue
        baseline = proportional_baseline(words, audio_duration(wav))
        per_file.append({"file": wav.name, **meta, "exact_labels": reference["exact"],
                         "aligner": boundary_errors(aligned, reference["words"]),
                         "baseline": boundary_errors(baseline, reference["words"])})
        if progress and index % 50 == 0:
            progress(f"{index}/{len(wavs)} files, {time.monotonic() - started:.0f} s")
    exact_files = [f for f in per_file if f["exact_labels"]]
    unseen = [f for f in per_file if f["speaker"] not in tuned_on]
    return {"n_files": len(wavs), "n_measured": len(per_file),
            "n_exact_labels": len(exact_files), "deviating_labels": deviating,
            "excluded": excluded, "failures": failures,
            "aligner": _summaries(per_file, "aligner"),
            "aligner_exact_labels_only": _summaries(exact_files, "aligner"),
            "baseline_proportional": _summaries(per_file, "baseline"),
            **({"tuned_on_speakers": sorted(tuned_on),
                "aligner_unseen_speakers": _summaries(unseen, "aligner")} if tuned_on else {}),
            "seconds": round(time.monotonic() - started, 1),
            "label_timing_evidence": label_timing_evidence(data_dir, wavs),
            "per_file": [{"file": f["file"], "emotion": f["emotion"],
                          "mean_ms": round(statistics.fmean(f["aligner"]["starts"]
                                                            + f["aligner"]["ends"]), 1)}
                         for f in per_file]}


def record_id(settings: AlignerSettings, subset: dict) -> str:
    text = json.dumps({"settings": asdict(settings), "aeneas": aeneas_version(), **subset},
                      sort_keys=True)
    return f"aeneas-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def markdown_table(record: dict) -> str:
    """The measured boundary errors as a Markdown table (aligner rows, then the baseline)."""
    head = ("| boundaries | n | mean abs. error (ms) | median (ms) | ≤ 20 ms | ≤ 50 ms "
            "| ≤ 100 ms |\n|---|---:|---:|---:|---:|---:|---:|")
    rows = []

    def row(name, s):
        if s.get("n"):
            rows.append(f"| {name} | {s['n']} | {s['mean_ms']:.1f} | {s['median_ms']:.1f} | "
                        + " | ".join(f"{s[f'within_{t}ms_pct']:.1f} %" for t in THRESHOLDS_MS)
                        + " |")

    result = record["result"]
    for part in ("all", "starts", "ends"):
        row(f"aeneas, {part}", result["aligner"][part])
    for emotion, s in result["aligner"]["per_emotion"].items():
        row(f"aeneas, {emotion}", s)
    row("aeneas, all, files labelled exactly as the text",
        result["aligner_exact_labels_only"]["all"])
    if "aligner_unseen_speakers" in result:
        row("aeneas, all, speakers not used to choose the settings",
            result["aligner_unseen_speakers"]["all"])
    row("baseline (letters spread over the file), all", result["baseline_proportional"]["all"])
    return head + "\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ser_tf.bench.alignment",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, type=Path, help="EMO-DB folder "
                        "(with wav/ and silb/)")
    parser.add_argument("--results-dir", required=True, type=Path)
    parser.add_argument("--cache-dir", type=Path, help="alignment cache (default: none)")
    parser.add_argument("--limit", type=int, help="only the first N files")
    parser.add_argument("--speakers", help="only these speakers, comma-separated (03,08)")
    parser.add_argument("--tuned-on", default="", help="speakers whose files chose the "
                        "settings (comma-separated): also report without them")
    defaults = AlignerSettings()
    parser.add_argument("--window", type=float, default=defaults.mfcc_window_length,
                        help="MFCC window length, s")
    parser.add_argument("--shift", type=float, default=defaults.mfcc_window_shift,
                        help="MFCC window shift, s")
    return parser


def _data_fingerprint(data_dir) -> dict:
    """The copy of EMO-DB the record measured (as run records store it): the release or a
    processed copy, file count, rates, durations."""
    from ser_tf.data.fingerprint import fingerprint
    from ser_tf.data import load_manifest

    return fingerprint(load_manifest("EMODB", data_dir))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    settings = AlignerSettings(mfcc_window_length=args.window, mfcc_window_shift=args.shift)
    speakers = sorted(args.speakers.split(",")) if args.speakers else None
    tuned_on = tuple(sorted(code for code in args.tuned_on.split(",") if code))
    subset = {"limit": args.limit, "speakers": speakers, "tuned_on": list(tuned_on)}
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = run(args.data_dir, settings=settings, cache_dir=args.cache_dir,
                 limit=args.limit, speakers=speakers, tuned_on=tuned_on)
    record = {"format": FORMAT, "corpus": "EMODB", "created": created,
              "data_dir": str(args.data_dir), "subset": subset,
              # alignments read from a cache were computed by an earlier run with the same
              # audio, text and settings; "seconds" then times the cache, not aeneas
              "cache_dir": str(args.cache_dir) if args.cache_dir else None,
              "aligner": {"tool": "aeneas-ng", "version": aeneas_version(), "lang": "deu",
                          "settings": asdict(settings),
                          "runtime_config": settings.runtime_config(),
                          "task_config": settings.task_config("deu")},
              "reference": {"source": "silb/ syllable start times (see module docstring)",
                            "words": {k: [w for w, _ in v] for k, v in EMODB_WORDS.items()},
                            "note": "interior boundaries without a pause are counted twice: "
                                    "as one word's end and the next word's start"},
              "ravdess": RAVDESS_NOTE, "data": _data_fingerprint(args.data_dir),
              "result": result}
    out = write_json_atomic(args.results_dir / "alignment" / "EMODB"
                            / record_id(settings, subset) / "record.json", record)
    print(markdown_table(record))
    print(f"{result['n_measured']} of {result['n_files']} files measured, "
          f"{len(result['failures'])} alignment failures, {len(result['excluded'])} excluded")
    print(f"record {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
