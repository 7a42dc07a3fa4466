"""``ser-tf align``: word alignment from the command line (argparse only at import time).

Two forms::

    ser-tf align AUDIO TRANSCRIPT --lang deu [--out words.json | words.TextGrid]
    ser-tf align --manifest M.csv --out-dir DIR --lang deu [--format json|textgrid]

TRANSCRIPT is read as a UTF-8 text file when a file of that name exists, and is the text
itself otherwise (``ser-tf align a.wav "Der Lappen liegt auf dem Eisschrank." --lang deu``).
aeneas is imported only when an alignment runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

LANGUAGES = ("deu", "eng", "ita")


def add_cli(subparsers) -> None:
    """Register ``ser-tf align``."""
    parser = subparsers.add_parser(
        "align", help="word start/end times of a transcript in a recording (aeneas forced "
                      "alignment)",
        description="Force-align a transcript to a recording at word level (aeneas with "
                    "eSpeak NG). TRANSCRIPT is a text file if one of that name exists, "
                    "else the text itself. Without --out the words are printed. With "
                    "--manifest, align every row of a CSV (audio path + text columns); "
                    "failed rows are reported one per line and the exit code is 1.")
    parser.add_argument("audio", nargs="?", help="the recording (any format ffmpeg reads)")
    parser.add_argument("transcript", nargs="?", help="a text file, or the text itself")
    parser.add_argument("--lang", required=True, choices=LANGUAGES,
                        help="language of the speech (eSpeak NG voice de / en / it)")
    parser.add_argument("--out", help="write the words here: .json, or .TextGrid (Praat)")
    parser.add_argument("--manifest", help="CSV with one recording per row (batch mode)")
    parser.add_argument("--out-dir", help="batch mode: folder for one words file per row "
                                          "and alignment-summary.json")
    parser.add_argument("--audio-column", default="path", help="batch mode: audio path "
                        "column, relative to the CSV's folder (default: path)")
    parser.add_argument("--text-column", default="text",
                        help="batch mode: transcript column (default: text)")
    parser.add_argument("--format", choices=("json", "textgrid"), default="json",
                        help="batch mode: output format (default: json)")
    parser.add_argument("--cache-dir", help="reuse alignments stored here (keyed by audio "
                        "bytes, text, language and aligner settings)")
    parser.set_defaults(handler=run, align_parser=parser)


def _usage(args, message: str):
    parser = getattr(args, "align_parser", None)
    if parser is None:
        raise ValueError(message)
    parser.error(message)  # exits 2 with the usage line, like argparse's own errors


def transcript_argument(value: str):
    """A ``Path`` when ``value`` names an existing file, else the text itself."""
    path = Path(value)
    try:
        is_file = path.is_file()
    except OSError:  # a long sentence can be an invalid path name
        is_file = False
    return path if is_file else value


def run(args) -> int:
    if args.manifest:
        if args.audio or args.transcript or args.out:
            _usage(args, "--manifest takes no AUDIO, TRANSCRIPT or --out (use --out-dir)")
        if not args.out_dir:
            _usage(args, "--manifest needs --out-dir")
        return _run_manifest(args)
    if not (args.audio and args.transcript):
        _usage(args, "give AUDIO and TRANSCRIPT, or --manifest CSV --out-dir DIR")
    if args.out_dir:
        _usage(args, "--out-dir goes with --manifest (use --out for one file)")
    return _run_one(args)


def _run_one(args) -> int:
    from ser_tf.align import align_words, audio_duration, write_textgrid, write_words_json

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".json", ".textgrid"):
        raise ValueError(f"{out}: --out must end in .json or .TextGrid")
    words = align_words(args.audio, transcript_argument(args.transcript), lang=args.lang,
                        cache_dir=args.cache_dir)
    if out is None:
        for w in words:
            print(f"{w.start:8.3f} {w.end:8.3f}  {w.word}")
    elif out.suffix.lower() == ".json":
        write_words_json(words, out, audio=str(args.audio), lang=args.lang)
        print(f"{args.audio}: {len(words)} words -> {out}")
    else:
        write_textgrid(words, out, max(audio_duration(Path(args.audio)), words[-1].end))
        print(f"{args.audio}: {len(words)} words -> {out}")
    return 0


def _run_manifest(args) -> int:
    from ser_tf.align import align_manifest

    summary = align_manifest(args.manifest, args.out_dir, lang=args.lang,
                             text_column=args.text_column, audio_column=args.audio_column,
                             cache_dir=args.cache_dir, output_format=args.format,
                             progress=lambda line: print(line, file=sys.stderr
                                                         if line.startswith("FAILED")
                                                         else sys.stdout))
    print(f"{summary['n_aligned']} of {summary['n_rows']} rows aligned, "
          f"{summary['n_failed']} failed; summary in "
          f"{Path(args.out_dir) / 'alignment-summary.json'}")
    return 1 if summary["n_failed"] else 0
