"""Which copy of a corpus a run read: fingerprints and release checksums.

Two copies of a corpus with the same file names can hold different audio: a processed copy
(resampled, every file cut to one length) gives very different scores from the release.
Two tools tell them apart:

- :func:`fingerprint`: cheap facts about the files a manifest lists (count, sample rates,
  durations from the headers, a digest of ``utterance id + size``). Every run stores it in
  its config, so a run on another copy gets another run id and ``ser-tf report`` never puts
  two copies in one row.
- :func:`verify_release`: compares a copy with the release's checksum list (file name,
  size, SHA-256; shipped in ``ser_tf/data/checksums/`` for the corpora whose lists are
  public facts) and says ``original release``, ``processed copy`` or ``incomplete``.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ser_tf.util.jsonio import content_hash

#: Bump when the fingerprint's fields change (new runs then get new ids; old ones keep theirs).
FINGERPRINT_FORMAT = 1
#: Durations are rounded to this many decimals (ms): header facts, not float noise.
_DECIMALS = 3
#: A spread of durations below this (seconds) means every file was cut to one length.
SAME_DURATION_TOLERANCE = 0.005

ORIGINAL, PROCESSED, INCOMPLETE = "original release", "processed copy", "incomplete"


def fingerprint(manifest, *, verify: bool = True) -> dict:
    """Facts about the files of ``manifest`` that tell one copy of a corpus from another.

    Returns ``{"format", "files", "sample_rates" ({rate: count}), "duration_s" (min,
    median, max), "same_duration" (every file one length: a processed copy), "digest"
    (sha256 of the sorted ``utterance_id<TAB>bytes`` lines, 16 hex digits)}``, and with
    ``verify`` and a shipped checksum list for the corpus, ``"release"``: what the files the
    run read are (:attr:`ReleaseCheck.read_verdict`). A manifest that keeps some classes of
    a corpus reads part of the release on purpose, so listed files it does not hold are
    not called missing there; ``data check --verify`` judges the whole copy.

    Raises :class:`~ser_tf.data.audio.AudioError` for a file whose header cannot be read.
    """
    rates, durations, lines = Counter(), [], []
    for utt in manifest:
        path = Path(utt.path)
        info = _header(path)
        rates[str(info[1])] += 1
        durations.append(info[0])
        lines.append(f"{utt.utterance_id}\t{path.stat().st_size}")
    if not lines:
        raise ValueError(f"{manifest.corpus}: no files to fingerprint")
    digest = hashlib.sha256("\n".join(sorted(lines)).encode("utf-8")).hexdigest()[:16]
    result = {
        "format": FINGERPRINT_FORMAT, "files": len(lines),
        "sample_rates": dict(sorted(rates.items(), key=lambda kv: int(kv[0]))),
        "duration_s": {"min": round(min(durations), _DECIMALS),
                       "median": round(statistics.median(durations), _DECIMALS),
                       "max": round(max(durations), _DECIMALS)},
        "same_duration": max(durations) - min(durations) < SAME_DURATION_TOLERANCE,
        "digest": digest,
    }
    if verify and checksum_list(manifest.corpus) is not None:
        result["release"] = verify_release(manifest.corpus,
                                           [Path(u.path) for u in manifest]).read_verdict
    return result


def _header(path: Path) -> tuple[float, int]:
    """(duration in seconds, sample rate) from the header; ffmpeg formats are decoded."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate, int(info.samplerate)
    except Exception:  # noqa: BLE001 - not a libsndfile format: decode it once
        from ser_tf.data.audio import read_audio

        audio, rate = read_audio(path)
        return len(audio) / rate, rate


def describe(fp: dict | None) -> str:
    """One short line for tables: ``535 files, 16 kHz, 1.23–8.98 s, original release``."""
    if not fp:
        return "not recorded"
    rates = ", ".join(f"{int(r) / 1000:g} kHz" for r in fp.get("sample_rates", {}))
    d = fp.get("duration_s", {})
    span = (f"all {d.get('min', 0):.2f} s" if fp.get("same_duration")
            else f"{d.get('min', 0):.2f}–{d.get('max', 0):.2f} s")
    parts = [f"{fp.get('files', '?')} files", rates, span]
    if fp.get("release"):
        parts.append(fp["release"])
    return ", ".join(p for p in parts if p) + f" (#{str(fp.get('digest', ''))[:8]})"


# --- Release checksum lists -----------------------------------------------------------------

@dataclass(frozen=True)
class ChecksumRow:
    file: str     # path as the release names it (``03a01Fa.wav``, ``Actor_01/03-...wav``)
    size: int
    sha256: str


def checksum_list(corpus: str) -> list[ChecksumRow] | None:
    """The shipped release checksum list of a corpus (``ser_tf/data/checksums/<name>.tsv``:
    ``file``, ``bytes``, ``sha256`` columns), or ``None`` when none is shipped."""
    name = f"{corpus.lower().replace('-', '')}.tsv"
    source = resources.files("ser_tf.data").joinpath("checksums", name)
    if not source.is_file():
        return None
    return read_checksum_list(source.read_text(encoding="utf-8"), name)


def read_checksum_list(text: str, where: str = "checksum list") -> list[ChecksumRow]:
    """Parse a tab-separated ``file / bytes / sha256`` list (header line first)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].split("\t")[:3] != ["file", "bytes", "sha256"]:
        raise ValueError(f"{where}: expected a header 'file<TAB>bytes<TAB>sha256'")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) < 3 or not parts[1].isdigit() or len(parts[2]) != 64:
            raise ValueError(f"{where}:{n}: expected '<file> <bytes> <sha256>', got {line!r}")
        rows.append(ChecksumRow(parts[0], int(parts[1]), parts[2].lower()))
    return rows


@dataclass
class ReleaseCheck:
    """A copy of a corpus compared with its release checksum list."""

    corpus: str
    listed: int
    matching: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)   # present, other bytes
    missing: list[str] = field(default_factory=list)     # listed, not found
    extra: list[str] = field(default_factory=list)       # found, not listed

    @property
    def verdict(self) -> str:
        if self.differing:
            return f"{PROCESSED} ({len(self.differing)} of {self.listed} files differ)"
        if self.missing:
            return f"{INCOMPLETE} ({len(self.missing)} of {self.listed} files missing)"
        return ORIGINAL

    @property
    def read_verdict(self) -> str:
        """The verdict on the files given, not on the copy: ``original release`` when they
        are all of it, ``original release (339 of 535 files)`` when they are unchanged
        release files but not all of them (a class subset), else :attr:`verdict`."""
        if self.missing and not self.differing and self.matching:
            return f"{ORIGINAL} ({len(self.matching)} of {self.listed} files)"
        return self.verdict

    @property
    def is_original(self) -> bool:
        return self.verdict == ORIGINAL

    def lines(self, show: int = 10) -> list[str]:
        out = [f"release check: {self.verdict}; {len(self.matching)} of {self.listed} "
               "listed files match size and SHA-256"]
        for what, names in (("differs from the release", self.differing),
                            ("missing", self.missing), ("not in the release list", self.extra)):
            for name in names[:show]:
                out.append(f"  {what}: {name}")
            if len(names) > show:
                out.append(f"  ... and {len(names) - show} more")
        return out


def verify_release(corpus: str, files, rows: list[ChecksumRow] | None = None, *,
                   hash_files: bool = True) -> ReleaseCheck:
    """Compare ``files`` (paths of a local copy) with the release list of ``corpus``.

    A listed ``file`` matches a local path ending in it (``Actor_01/x.wav`` or ``x.wav``
    under any folder). Sizes are compared first; SHA-256 only where the size agrees.
    ``hash_files=False`` only pairs names (missing / extra), cheaply: nothing is compared,
    so every present file counts as matching.
    """
    rows = checksum_list(corpus) if rows is None else rows
    if rows is None:
        raise ValueError(f"no release checksum list is shipped for {corpus}")
    by_tail: dict[str, Path] = {}
    for path in files:
        path = Path(path)
        by_tail[path.name] = path
        by_tail[f"{path.parent.name}/{path.name}"] = path
    check, used = ReleaseCheck(corpus, len(rows)), set()
    for row in rows:
        # The listed folder/name, else the name alone: a flat copy (every file in one
        # folder, which the loaders accept) is judged by what it holds, not where.
        path = by_tail.get(row.file) or by_tail.get(Path(row.file).name)
        if path is None:
            check.missing.append(row.file)
            continue
        used.add(path)
        same = not hash_files or (path.stat().st_size == row.size
                                  and content_hash(path) == row.sha256)
        (check.matching if same else check.differing).append(row.file)
    check.extra = sorted(str(p) for p in set(by_tail.values()) - used)
    return check


def check_durations(durations) -> str | None:
    """A warning when every file has the same duration (a copy cut to one length), else None."""
    durations = list(durations)
    if len(durations) > 1 and max(durations) - min(durations) < SAME_DURATION_TOLERANCE:
        return (f"every one of the {len(durations)} files lasts {durations[0]:.2f} s: this copy "
                "was cut to one length (a processed copy, not the release); its results are not "
                "comparable with published figures")
    return None


def durations_of(paths) -> list[float]:
    """Header durations of ``paths`` (an AudioError names a file that cannot be read)."""
    return [_header(Path(path))[0] for path in paths]


__all__ = ["fingerprint", "describe", "checksum_list", "read_checksum_list", "verify_release",
           "ReleaseCheck", "check_durations", "durations_of", "ORIGINAL", "PROCESSED",
           "INCOMPLETE", "FINGERPRINT_FORMAT"]
