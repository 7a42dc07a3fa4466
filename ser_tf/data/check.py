"""``ser-tf data check`` and ``ser-tf data manifest``: validate a local copy of a corpus,
say what is in it, and write its manifest.

Works for every registered corpus, including the licence-gated ones the suite cannot
download (IEMOCAP, CREMA-D, ...): point it at the folder you obtained.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ser_tf.data import (BadAudioError, CORPORA, get_corpus, load_manifest, resolve_data_dir)
from ser_tf.data import fingerprint as fp
from ser_tf.data.manifest import Manifest


@dataclass
class CheckReport:
    corpus: str
    folder: str
    manifest: Manifest
    problems: list[str] = field(default_factory=list)
    #: ``--verify``: the copy compared with the release checksum list.
    release: fp.ReleaseCheck | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        m = self.manifest
        lines = [f"{self.corpus} at {self.folder}: {len(m)} usable recordings"]
        if m.labels and self.manifest.utterances and m.utterances[0].label is not None:
            lines.append("per class:   " + ", ".join(f"{k} {v}" for k, v in m.counts("label").items()))
        lines.append("per speaker: " + ", ".join(f"{k} {v}" for k, v in m.counts("speaker").items()))
        genders = m.counts("gender")
        if any(k is not None for k in genders):
            lines.append("per gender:  " + ", ".join(f"{k} {v}" for k, v in genders.items()))
        for item in m.skipped:
            lines.append(f"unusable: {item['path']}: {item['reason']}")
        if self.release is not None:
            lines += self.release.lines()
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"problem: {p}" for p in self.problems]
        lines.append("OK" if self.ok else f"{len(self.problems)} problem(s) found")
        return "\n".join(lines)


def check_corpus(name: str, data_dir=None, *, verify: bool = False, **options) -> CheckReport:
    """Scan and decode every file of a corpus copy; report counts and what is missing.

    Missing means: fewer files than the complete release (``Corpus.expected_files``; named
    when the release's checksum list is shipped), a class with no recordings, or unusable
    audio files. Any of these makes the copy not OK (``data check`` exits 1): results on an
    incomplete copy are not results on the corpus. ``verify``: also compare every file's
    size and SHA-256 with the release list and say whether this is the original release, a
    processed copy or incomplete, and warn when every file has the same duration (a copy
    cut to one length).
    """
    corpus = get_corpus(name, **options)
    root = resolve_data_dir(corpus, data_dir)
    manifest = load_manifest(corpus, root, on_bad_audio="skip")
    problems, warnings, release = [], [], None
    # Skipped entries include listed files that are not there and folders: not "found".
    files = [u.path for u in manifest] + [item["path"] for item in manifest.skipped
                                          if Path(item["path"]).is_file()]
    found = len(files)
    rows = fp.checksum_list(corpus.name)
    if verify:
        if rows is None:
            raise ValueError(f"--verify: no release checksum list is shipped for {corpus.name} "
                             "(there are lists for EMODB and RAVDESS)")
        release = fp.verify_release(corpus.name, files, rows)
        if not release.is_original:
            problems.append(f"not the original release: {release.verdict}")
        warning = fp.check_durations(fp.durations_of(u.path for u in manifest))
        if warning:
            warnings.append(warning)
    if rows is not None:  # the release list names what is missing
        names = missing_from_release(files, rows)
        if names:
            problems.append(_missing_message(corpus, found, len(rows), names))
    elif corpus.expected_files is not None and found < corpus.expected_files:
        problems.append(f"incomplete copy: {found} files found, the complete release has "
                        f"{corpus.expected_files}: {corpus.expected_files - found} missing "
                        f"(no list of the release's files is shipped to name them)")
    if corpus.task == "classification":
        empty = [k for k, v in manifest.counts("label").items() if v == 0]
        if empty:
            problems.append(f"no recordings for class(es) {', '.join(empty)}")
    if manifest.skipped:
        problems.append(f"{len(manifest.skipped)} unusable audio file(s) (listed above)")
    return CheckReport(corpus.name, str(root), manifest, problems, release, warnings)


def missing_from_release(files, rows: list[fp.ChecksumRow]) -> list[str]:
    """The release files (as the checksum list names them) with no file of the same name
    in ``files``, in list order.

    Matched by file name alone, so a copy whose files sit flat or in other folders than
    the release's (``Actor_01/``) is judged by what it holds, not by where: the loaders
    accept any folder layout. The shipped lists name every file uniquely.
    """
    present = {Path(f).name for f in files}
    return [row.file for row in rows if Path(row.file).name not in present]


def _missing_message(corpus, found: int, listed: int, names: list[str], show: int = 10) -> str:
    shown = ", ".join(names[:show]) + (f" ... and {len(names) - show} more"
                                       if len(names) > show else "")
    # When the list is cut short, say at least where the rest are missing from.
    folders = Counter(Path(n).parent.name for n in names if Path(n).parent.name)
    per_folder = (" (per folder: " + ", ".join(f"{k} {v}" for k, v in sorted(folders.items()))
                  + ")" if len(names) > show and 0 < len(folders) <= 30 else "")
    list_name = corpus.name.lower().replace("-", "")
    return (f"incomplete copy: {found} files found, the complete release has {listed}: "
            f"{len(names)} missing: {shown}{per_folder}. They are in the release's checksum "
            f"list (ser_tf/data/checksums/{list_name}.tsv) and not in this folder; the "
            f"release is at {corpus.homepage}")


def _corpus_arguments(parser) -> None:
    parser.add_argument("corpus", type=str.upper, choices=sorted(CORPORA), metavar="CORPUS",
                        help="one of: " + ", ".join(sorted(CORPORA)))
    parser.add_argument("--data-dir", help="the corpus folder (default: $SER_TF_DATA/<corpus>)")


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("check", help="validate a local copy of a corpus",
                                   description="Decode every file of a corpus copy and print "
                                               "counts per class and speaker and what is missing.")
    _corpus_arguments(parser)
    parser.add_argument("--verify", action="store_true",
                        help="compare every file's size and SHA-256 with the release's "
                             "checksum list (EMODB, RAVDESS): original release, processed copy "
                             "or incomplete")
    parser.set_defaults(handler=_run)

    manifest = subparsers.add_parser("manifest", help="write a corpus's manifest as CSV",
                                     description="Scan a corpus folder, decode every file once, "
                                                 "and write one CSV row per usable recording.")
    _corpus_arguments(manifest)
    manifest.add_argument("--out", required=True, help="CSV file to write")
    manifest.add_argument("--on-bad-audio", choices=("fail", "skip"), default="fail",
                          help="stop at unusable audio (default) or leave it out and list it")
    manifest.set_defaults(handler=_write_manifest)


def _write_manifest(args) -> int:
    try:
        manifest = load_manifest(args.corpus, args.data_dir, on_bad_audio=args.on_bad_audio)
    except BadAudioError as err:
        print(err)
        return 1
    manifest.to_csv(args.out)
    print(f"{len(manifest)} recordings of {manifest.corpus} written to {args.out}")
    for item in manifest.skipped:
        print(f"skipped: {item['path']}: {item['reason']}")
    return 0


def _run(args) -> int:
    try:
        report = check_corpus(args.corpus, args.data_dir, verify=args.verify)
    except BadAudioError as err:  # not raised with on_bad_audio="skip"; kept for safety
        print(err)
        return 1
    print(report.format())
    return 0 if report.ok else 1
