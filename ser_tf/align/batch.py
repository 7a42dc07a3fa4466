"""Batch alignment over a CSV manifest: one words file per row, failures collected.

A bad row (missing audio, empty text, a failed alignment) is recorded with its file and
reason and the batch goes on; the summary says what was aligned and what was not.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ser_tf.align.aligner import DEFAULT_SETTINGS, AlignerSettings, AlignmentError, \
    align_words, audio_duration, check_language
from ser_tf.align.words import write_textgrid, write_words_json
from ser_tf.util.jsonio import write_json_atomic

OUTPUT_FORMATS = ("json", "textgrid")
SUMMARY_NAME = "alignment-summary.json"


def _output_name(audio: str, row_number: int, used: set[str], suffix: str) -> str:
    """``<audio stem><suffix>``, made unique with the row number when stems repeat."""
    name = f"{Path(audio).stem or 'row'}{suffix}"
    if name in used:
        name = f"{Path(audio).stem or 'row'}-row{row_number}{suffix}"
    used.add(name)
    return name


def align_manifest(manifest_csv: str | os.PathLike, out_dir: str | os.PathLike, *,
                   lang: str, text_column: str = "text", audio_column: str = "path",
                   cache_dir: str | os.PathLike | None = None, output_format: str = "json",
                   settings: AlignerSettings = DEFAULT_SETTINGS, progress=None) -> dict:
    """Align every row of ``manifest_csv`` and write one words file per row to ``out_dir``.

    Relative audio paths are relative to the CSV's folder. ``output_format``: ``"json"``
    (:func:`write_words_json`) or ``"textgrid"``. ``progress``, if given, is called with
    one line per row (``"ok  file -> out"`` or ``"FAILED file: reason"``). Returns (and
    writes to ``out_dir/alignment-summary.json``) ``{"n_rows", "n_aligned", "n_failed",
    "outputs": [...], "failures": [{"row", "audio", "error"}]}``. Only a problem with the
    manifest itself (missing file or column, unsupported language) raises.
    """
    manifest_csv, out_dir = Path(manifest_csv), Path(out_dir)
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, "
                         f"got {output_format!r}")
    check_language(lang, manifest_csv)
    if not manifest_csv.is_file():
        raise FileNotFoundError(f"{manifest_csv}: manifest not found")
    with open(manifest_csv, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in (audio_column, text_column) if c not in columns]
        if missing:
            raise ValueError(f"{manifest_csv}: no column {', '.join(map(repr, missing))} "
                             f"(columns: {', '.join(columns) or 'none'})")
        rows = list(reader)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".json" if output_format == "json" else ".TextGrid"
    outputs, failures, used = [], [], set()
    for row_number, row in enumerate(rows, start=2):  # row 1 is the header
        audio = (row.get(audio_column) or "").strip()
        audio_path = Path(audio)
        if audio and not audio_path.is_absolute():
            audio_path = manifest_csv.parent / audio_path
        try:
            if not audio:
                raise AlignmentError(f"row {row_number}: empty {audio_column!r} cell")
            words = align_words(audio_path, row.get(text_column) or "", lang=lang,
                                cache_dir=cache_dir, settings=settings)
            target = out_dir / _output_name(audio, row_number, used, suffix)
            if output_format == "json":
                write_words_json(words, target, audio=str(audio_path), lang=lang)
            else:
                write_textgrid(words, target, max(audio_duration(audio_path),
                                                  words[-1].end))
        except (AlignmentError, OSError, ValueError) as err:
            failures.append({"row": row_number, "audio": str(audio_path), "error": str(err)})
            if progress:
                progress(f"FAILED {err}")
            continue
        outputs.append({"row": row_number, "audio": str(audio_path), "words": str(target)})
        if progress:
            progress(f"ok  {audio_path} -> {target}")
    summary = {"manifest": str(manifest_csv), "lang": lang, "n_rows": len(rows),
               "n_aligned": len(outputs), "n_failed": len(failures),
               "outputs": outputs, "failures": failures}
    write_json_atomic(out_dir / SUMMARY_NAME, summary)
    return summary
