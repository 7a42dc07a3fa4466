"""Download EMO-DB and RAVDESS from their official sources, resumably, and unpack them safely.

Typical use::

    from ser_tf.data.download import download_corpus
    root = download_corpus("emodb", "~/data")        # -> ~/data/emodb/wav/...

or ``ser-tf data download emodb --dest ~/data``. The archive goes to
``DEST/<name>.zip.partial`` (an interrupted download resumes with an HTTP ``Range``
request), is checked (zip CRCs, number of ``.wav`` files), unpacked into a temporary
folder next to ``DEST/<name>`` and only then renamed into place, so a crash never leaves a
half-unpacked corpus where the loaders would find it. A failed attempt removes what it
created and cannot be resumed from (folders it made, an empty ``.partial``); it keeps a
non-empty ``.partial`` for the resume, and never deletes anything that was there before.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from ser_tf import __version__
from ser_tf.data import DATA_ENV

CHUNK = 1 << 16
#: Entries of an archive that are packaging debris, not corpus content.
JUNK = ("__MACOSX",)


@dataclass(frozen=True)
class Source:
    """Where a corpus is officially distributed and what its archive must hold."""

    name: str            # folder name under the data root (``emodb``)
    url: str
    expected_files: int  # number of .wav files in the archive
    marker: str          # a top-level entry of the unpacked corpus (wrapper folders are stripped)
    homepage: str
    citation: str


SOURCES: dict[str, Source] = {
    "emodb": Source(
        name="emodb", url="http://emodb.bilderbar.info/download/download.zip",
        expected_files=535, marker="wav", homepage="http://emodb.bilderbar.info/",
        citation="F. Burkhardt, A. Paeschke, M. Rolfes, W. Sendlmeier, B. Weiss: A Database "
                 "of German Emotional Speech. Interspeech 2005."),
    "ravdess": Source(
        name="ravdess",
        url="https://zenodo.org/record/1188976/files/Audio_Speech_Actors_01-24.zip",
        expected_files=1440, marker="Actor_01", homepage="https://zenodo.org/record/1188976",
        citation="S. R. Livingstone, F. A. Russo: The Ryerson Audio-Visual Database of "
                 "Emotional Speech and Song (RAVDESS). PLoS ONE 13(5): e0196391, 2018. "
                 "License CC BY-NC-SA 4.0."),
}


class DownloadError(OSError):
    """A download or its check failed; the message says what to do next."""


def _manual_hint(source: Source) -> str:
    return (f"Get it manually from {source.homepage}, unpack it and pass --data-dir DIR, "
            f"or set {DATA_ENV}=ROOT with the corpus in ROOT/{source.name}/.")


def _is_content(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return not any(p in JUNK for p in parts) and not parts[-1].startswith(".")


def download_corpus(name: str, dest, *, url: str | None = None,
                    expected_files: int | None = None, progress: bool = True,
                    timeout: float = 30) -> Path:
    """Download, check and unpack corpus ``name`` into ``dest/<name>``; returns that folder.

    Args:
        name: a key of :data:`SOURCES` (``"emodb"``, ``"ravdess"``).
        dest: the data root; created if missing. ``dest/<name>`` must not exist or be empty.
        url: a mirror (or a test server) instead of the official address.
        expected_files: the number of ``.wav`` files the archive must hold
            (default: that of the official release).
        progress: show a progress bar on stderr (only when it is a terminal).
        timeout: seconds to wait for the server on connect and on each read.

    Raises:
        DownloadError: unreachable host, interrupted transfer (rerun to resume), corrupt
            archive or wrong file count; ``FileExistsError`` if ``dest/<name>`` is in use.
    """
    key = name.lower()
    if key not in SOURCES:
        raise ValueError(f"no download source for {name!r}; available: {', '.join(SOURCES)}")
    source = SOURCES[key]
    dest = Path(dest).expanduser()
    final = dest / source.name
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise FileExistsError(f"{final} already exists and is not empty; not overwriting it. "
                              f"Remove it first or choose another --dest.")
    new_folders = _folders_to_create(dest)
    dest.mkdir(parents=True, exist_ok=True)
    partial = dest / f"{source.name}.zip.partial"
    partial_existed = partial.exists()
    try:
        _fetch(url or source.url, partial, source, progress=progress, timeout=timeout)
        expected = source.expected_files if expected_files is None else expected_files
        _check_archive(partial, source, expected)
        _extract(partial, final, source)
    except BaseException:  # also Ctrl-C: the user should not find empty folders afterwards
        _remove_leftovers(partial, partial_existed, new_folders)
        raise
    partial.unlink()
    return final


def _folders_to_create(dest: Path) -> list[Path]:
    """``dest`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for folder in (dest, *dest.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    return missing


def _remove_leftovers(partial: Path, partial_existed: bool, new_folders: list[Path]) -> None:
    """Undo what a failed attempt made that is of no use: an empty partial file it created
    (nothing to resume) and the folders it created, if empty. A non-empty partial stays:
    the next run resumes from it. Nothing that existed before the attempt is touched."""
    try:
        if not partial_existed and partial.stat().st_size == 0:
            partial.unlink()
    except OSError:  # gone already (deleted as corrupt) or unreadable: leave it
        pass
    for folder in new_folders:  # deepest first; rmdir refuses a folder that is not empty
        try:
            folder.rmdir()
        except OSError:
            break


def _fetch(url: str, partial: Path, source: Source, *, progress: bool, timeout: float) -> None:
    """Download ``url`` into ``partial``, resuming from its current size if it exists."""
    start = partial.stat().st_size if partial.exists() else 0
    request = Request(url, headers={"User-Agent": f"ser-tf/{__version__}"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    host = urlsplit(url).netloc or url
    try:
        response = urlopen(request, timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and start:  # nothing left to send: the partial file is complete
            return
        raise DownloadError(f"could not download {source.name} from {host} (HTTP {err.code} "
                            f"{err.reason}). {_manual_hint(source)}") from None
    except (URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise DownloadError(f"could not reach {host} to download {source.name} ({reason}). "
                            f"{_manual_hint(source)}") from None

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if start and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-"):
                partial.unlink()
                raise DownloadError(f"{host} answered the resume request with an unexpected "
                                    f"range ({content_range!r}); deleted {partial}, run the "
                                    f"download again to start afresh.")
            mode = "ab"
        else:  # 200: fresh download, or a server that ignores Range -> restart from 0
            start, mode = 0, "wb"
        total = None if length is None else start + length
        received = 0
        bar = _progress_bar(total, start, source.name, progress)
        try:
            with open(partial, mode) as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:
            kept = (f"{start + received} bytes kept in {partial}: run the same command again "
                    "to resume" if start + received else
                    "nothing was received: run the same command again")
            raise DownloadError(
                f"download of {source.name} from {host} was interrupted ({err}); {kept}. "
                f"{_manual_hint(source)}") from None
        finally:
            bar.close()
    if length is not None and received < length:
        raise DownloadError(
            f"download of {source.name} from {host} was interrupted after {start + received} of "
            f"{total} bytes" + (f" (kept in {partial}): run the same command again to resume. "
                                if start + received else ": run the same command again. ")
            + _manual_hint(source))


def _progress_bar(total, initial: int, desc: str, progress: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # no progress bar rather than no download
        return SimpleNamespace(update=lambda n: None, close=lambda: None)
    # disable=None: tqdm turns itself off when stderr is not a terminal.
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                unit_divisor=1024, file=sys.stderr, disable=None if progress else True)


def _check_archive(partial: Path, source: Source, expected: int) -> None:
    """CRC-check the archive and count its .wav files; delete it if it cannot be used."""
    try:
        with zipfile.ZipFile(partial) as archive:
            bad = archive.testzip()
            names = archive.namelist()
            problem = None if bad is None else f"CRC check failed for {bad}"
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        problem, names = f"unreadable: {err}", []
    if problem:
        partial.unlink()
        raise DownloadError(f"the downloaded {source.name} archive is corrupt ({problem}); "
                            f"deleted {partial}. Run the download again.")
    found = sum(1 for n in names if n.lower().endswith(".wav") and _is_content(n))
    if found != expected:
        partial.unlink()
        raise DownloadError(f"the downloaded {source.name} archive holds {found} .wav files, "
                            f"expected {expected}; deleted {partial}. Is the URL right? "
                            f"{_manual_hint(source)}")


def _extract(partial: Path, final: Path, source: Source) -> None:
    """Unpack next to ``final``, strip wrapper folders, then rename into place atomically."""
    for stale in final.parent.glob(f".{source.name}.unpacking-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    # mkdir (not mkdtemp, which makes it 0700) so the corpus gets the usual permissions
    tmp = final.parent / f".{source.name}.unpacking-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        with zipfile.ZipFile(partial) as archive:
            archive.extractall(tmp)  # extractall drops absolute paths and '..' components
        root = tmp
        while True:
            entries = [p for p in root.iterdir() if _is_content(p.name)]
            if any(p.name == source.marker for p in entries):
                break
            if len(entries) == 1 and entries[0].is_dir():
                root = entries[0]  # a single wrapper folder: look inside it
                continue
            break
        for junk in JUNK:
            shutil.rmtree(root / junk, ignore_errors=True)
        had_final = final.is_dir()
        if had_final:
            final.rmdir()  # empty (checked before downloading); os.replace needs it gone
        try:
            os.replace(root, final)
        except OSError:
            if had_final:  # it was there before this attempt: put it back
                final.mkdir(exist_ok=True)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def add_cli(subparsers) -> None:
    """Register ``data download`` on the ``data`` subcommand's subparsers."""
    parser = subparsers.add_parser(
        "download", help="download EMO-DB or RAVDESS from the official source",
        description="Download a corpus (resumable), check it and unpack it into DEST/<corpus>/. "
                    + " ".join(f"{s.name}: {s.homepage} ({s.citation})" for s in SOURCES.values()))
    parser.add_argument("corpus", choices=sorted(SOURCES))
    parser.add_argument("--dest", metavar="DIR",
                        help=f"data root to put <corpus>/ in (default: ${DATA_ENV})")
    parser.add_argument("--url", help="download from this address instead (a mirror)")
    parser.add_argument("--timeout", type=float, default=30, metavar="S",
                        help="seconds to wait for the server (default: 30)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_cli_download)


def _cli_download(args) -> int:
    dest = args.dest or os.environ.get(DATA_ENV)
    if not dest:
        raise ValueError(f"where to put {args.corpus}? Pass --dest DIR or set {DATA_ENV}=ROOT.")
    root = download_corpus(args.corpus, dest, url=args.url, progress=not args.no_progress,
                           timeout=args.timeout)
    count = sum(1 for p in root.rglob("*.wav") if _is_content(p.name))
    print(f"{args.corpus}: {count} .wav files in {root}")
    print(f"use it with --data-dir {root} (or {DATA_ENV}={root.parent})")
    return 0
