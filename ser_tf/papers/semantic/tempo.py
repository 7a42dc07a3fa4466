"""How much of the proxy's "semantic" stream is tempo: ``python -m ser_tf.papers.semantic.tempo``.

On a proxy corpus (EMO-DB, RAVDESS) every sentence is spoken in every emotion, so the words
themselves carry no emotion; but the word-per-frame sequence is timed on the audio, so a
text stream sees how long each word lasts. This measures how far utterance duration alone
predicts the proxy's targets: each utterance's duration relative to the median duration of
its sentence (so the sentences' different lengths cancel), its Pearson correlation with the
arousal and valence targets (:func:`ser_tf.data.dimensions.dimensional_targets`), and the
mean duration per emotion. The record (with the corpus fingerprint) goes to
``<results-dir>/semantic/<CORPUS>/tempo.json``; the paper's README cites it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

__all__ = ["tempo_summary", "main"]

DIMENSIONS = ("arousal", "valence")


def tempo_summary(durations, sentences, labels) -> dict:
    """Durations (s), sentence ids and emotion labels of the same utterances ->
    ``{"n", "correlation": {dim: r}, "relative_duration_by_emotion", "mean_duration_s_by_emotion"}``.

    The relative duration is ``duration / median duration of the utterance's sentence``.
    ValueError if the three sequences differ in length, a duration is not positive, or
    fewer than three utterances are given."""
    from ser_tf.data.dimensions import dimensional_targets

    durations = np.asarray(durations, dtype=np.float64)
    sentences, labels = list(sentences), list(labels)
    if not len(durations) == len(sentences) == len(labels):
        raise ValueError(f"durations, sentences and labels differ in length: {len(durations)}, "
                         f"{len(sentences)}, {len(labels)}")
    if len(durations) < 3:
        raise ValueError(f"need at least 3 utterances, got {len(durations)}")
    if not np.all(np.isfinite(durations)) or np.any(durations <= 0):
        raise ValueError("every duration must be a positive number of seconds")
    relative = np.empty_like(durations)
    for sentence in set(sentences):
        members = np.asarray([s == sentence for s in sentences])
        relative[members] = durations[members] / np.median(durations[members])
    targets = np.stack([dimensional_targets(label, DIMENSIONS) for label in labels])
    correlation = {}
    for k, dim in enumerate(DIMENSIONS):
        # A constant target or duration has no correlation: None, not NaN.
        constant = np.ptp(targets[:, k]) == 0 or np.ptp(relative) == 0
        correlation[dim] = (None if constant else
                            round(float(np.corrcoef(relative, targets[:, k])[0, 1]), 4))
    by_emotion = sorted(set(labels))
    return {
        "n": int(len(durations)),
        "sentences": len(set(sentences)),
        "correlation": correlation,
        "relative_duration_by_emotion": {
            e: round(float(np.mean([r for r, l in zip(relative, labels) if l == e])), 4)
            for e in by_emotion},
        "mean_duration_s_by_emotion": {
            e: round(float(np.mean([d for d, l in zip(durations, labels) if l == e])), 3)
            for e in by_emotion},
    }


def measure(corpus: str, data_dir) -> dict:
    """The record of :func:`tempo_summary` on a corpus copy (durations from file headers)."""
    from ser_tf.data import load_manifest
    from ser_tf.data.fingerprint import durations_of, fingerprint

    manifest = load_manifest(corpus, data_dir, check_audio=False)
    missing = [u.utterance_id for u in manifest if not u.text]
    if missing:
        raise ValueError(f"{corpus}: {len(missing)} utterance(s) have no sentence text "
                         f"(first: {missing[0]}); tempo needs the text of every utterance")
    durations = durations_of([u.path for u in manifest])
    summary = tempo_summary(durations, [u.text for u in manifest],
                            [u.label for u in manifest])
    return {"format": "ser-tf-tempo/1", "corpus": manifest.corpus,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "definition": "duration / median duration of the same sentence; Pearson r with "
                          "the proxy's constant targets (ser_tf.data.dimensions)",
            "data": fingerprint(manifest), **summary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ser_tf.papers.semantic.tempo",
        description="How much utterance duration alone predicts a proxy corpus's "
                    "arousal/valence targets (see the semantic README).")
    parser.add_argument("--dataset", default="EMODB", choices=("EMODB", "RAVDESS"))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--results-dir", type=Path, default=Path("experiments/results"))
    args = parser.parse_args(argv)
    try:
        record = measure(args.dataset, args.data_dir)
    except (OSError, ValueError) as err:
        print(f"tempo: {err}", file=sys.stderr)
        return 1
    out = args.results_dir / "semantic" / record["corpus"] / "tempo.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("n", "correlation",
                                              "mean_duration_s_by_emotion")}, indent=2))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
