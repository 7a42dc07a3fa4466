"""ser_tf.data.download against a local HTTP server on 127.0.0.1 (never any other address)."""

from __future__ import annotations

import io
import socket
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ser_tf.cli import main
from ser_tf.data import load_manifest
from ser_tf.data.download import SOURCES, DownloadError, download_corpus
from ser_tf.data.synthetic import write_wav

NAMES = ["03a01Fa.wav", "08b10Wb.wav", "16a05Tc.wav", "11a02Nc.wav"]


def build_zip(tmp: Path, names=NAMES, wrapper: str = "") -> bytes:
    """An EMO-DB-like archive (stored, so member bytes appear verbatim): wav/ and silb/."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for i, name in enumerate(names):
            wav = write_wav(tmp / "src" / name, duration=0.2, seed=i)
            archive.write(wav, f"{wrapper}wav/{name}")
        archive.writestr(f"{wrapper}silb/03a01Fa.silb", "0.080080\tder\n1.841390\t.\n")
        archive.writestr(f"{wrapper}erklaerung.txt", "readme")
    return buffer.getvalue()


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` unless ``server.ignore_range``;
    with ``server.cut_after = n`` sends only n bytes of the next body, then hangs up."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and not server.ignore_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if server.cut_after is not None:
            payload, server.cut_after = payload[:server.cut_after], None
            self.close_connection = True
        self.wfile.write(payload)
        self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.requests, httpd.cut_after, httpd.ignore_range = {}, [], None, False
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def fetch(server, dest, path="/emodb.zip", **kw):
    kw.setdefault("expected_files", len(NAMES))
    return download_corpus("emodb", dest, url=server.base + path, progress=False, timeout=5, **kw)


def test_full_download_unpacks_the_corpus(server, tmp_path):
    server.files["/emodb.zip"] = build_zip(tmp_path)
    root = fetch(server, tmp_path / "data")
    assert root == tmp_path / "data" / "emodb"
    assert sorted(p.name for p in (root / "wav").iterdir()) == sorted(NAMES)
    assert (root / "silb" / "03a01Fa.silb").is_file()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["emodb"]  # no leftovers
    assert server.requests == [("/emodb.zip", None)]


def test_single_wrapper_folder_is_stripped(server, tmp_path):
    server.files["/emodb.zip"] = build_zip(tmp_path, wrapper="download/")
    root = fetch(server, tmp_path / "data")
    assert (root / "wav" / NAMES[0]).is_file() and not (root / "download").exists()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    body = build_zip(tmp_path)
    server.files["/emodb.zip"] = body
    server.cut_after = 5000
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="interrupted.*run the same command again"):
        fetch(server, dest)
    partial = dest / "emodb.zip.partial"
    assert partial.stat().st_size == 5000
    assert not (dest / "emodb").exists()

    root = fetch(server, dest)
    assert server.requests[-1] == ("/emodb.zip", "bytes=5000-")
    assert not partial.exists()
    assert len(list((root / "wav").glob("*.wav"))) == len(NAMES)
    assert len(load_manifest("EMODB", root)) == len(NAMES)


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.files["/emodb.zip"] = build_zip(tmp_path)
    server.ignore_range = True
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "emodb.zip.partial").write_bytes(b"stale bytes from another file")
    root = fetch(server, dest)
    assert server.requests[-1][1] == "bytes=29-"
    assert len(load_manifest("EMODB", root)) == len(NAMES)


def test_complete_partial_is_used_after_416(server, tmp_path):
    body = build_zip(tmp_path)
    server.files["/emodb.zip"] = body
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "emodb.zip.partial").write_bytes(body)  # e.g. killed before unpacking
    root = fetch(server, dest)
    assert (root / "wav" / NAMES[0]).is_file()


def test_corrupt_zip_fails_clearly_and_is_deleted(server, tmp_path):
    body = bytearray(build_zip(tmp_path))
    member = (tmp_path / "src" / NAMES[1]).read_bytes()
    at = bytes(body).find(member[2000:2032])
    assert at > 0
    body[at:at + 16] = bytes(b ^ 0xFF for b in body[at:at + 16])
    server.files["/emodb.zip"] = bytes(body)
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=f"corrupt.*{NAMES[1]}.*deleted"):
        fetch(server, dest)
    assert not (dest / "emodb").exists()
    assert not (dest / "emodb.zip.partial").exists()
    assert not list(dest.glob(".emodb.unpacking-*"))


def test_wrong_file_count_names_found_and_expected(server, tmp_path):
    server.files["/emodb.zip"] = build_zip(tmp_path)
    with pytest.raises(DownloadError, match="holds 4 .wav files, expected 535"):
        fetch(server, tmp_path / "data", expected_files=None)  # the official count
    assert not (tmp_path / "data" / "emodb").exists()


def test_refuses_to_overwrite_existing_corpus(server, tmp_path):
    server.files["/emodb.zip"] = build_zip(tmp_path)
    (tmp_path / "data" / "emodb").mkdir(parents=True)
    (tmp_path / "data" / "emodb" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty; not overwriting"):
        fetch(server, tmp_path / "data")
    assert server.requests == []
    assert (tmp_path / "data" / "emodb" / "mine.txt").read_text() == "keep me"


def test_unreachable_host_gives_one_clear_message(tmp_path):
    with socket.socket() as sock:  # find a free port, then close it: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError) as info:
        download_corpus("emodb", tmp_path, url=f"http://127.0.0.1:{port}/x.zip",
                        progress=False, timeout=5)
    message = str(info.value)
    assert "\n" not in message
    assert f"could not reach 127.0.0.1:{port}" in message
    assert "http://emodb.bilderbar.info/" in message
    assert "--data-dir DIR" in message and "SER_TF_DATA=ROOT" in message and "ROOT/emodb/" in message
    assert not (tmp_path / "emodb").exists()


def test_http_error_is_reported(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404.*--data-dir"):
        fetch(server, tmp_path, path="/missing.zip")


def test_cli_download_then_load(server, tmp_path, capsys, monkeypatch):
    # The CLI checks the official count; make it match the small test archive.
    monkeypatch.setitem(SOURCES, "emodb", replace(SOURCES["emodb"], expected_files=len(NAMES)))
    server.files["/emodb.zip"] = build_zip(tmp_path)
    dest = tmp_path / "data"
    code = main(["data", "download", "emodb", "--dest", str(dest), "--url",
                 server.base + "/emodb.zip", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"--data-dir {dest / 'emodb'}" in out and f"{len(NAMES)} .wav files" in out
    manifest = load_manifest("EMODB", dest / "emodb")
    assert sorted(u.utterance_id for u in manifest) == sorted(n[:-4] for n in NAMES)


def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SER_TF_DATA", raising=False)
    assert main(["data", "download", "emodb", "--no-progress"]) == 1
    assert "--dest DIR or set SER_TF_DATA" in capsys.readouterr().err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("SER_TF_DATA", str(tmp_path))
    assert main(["data", "download", "ravdess", "--url", f"http://127.0.0.1:{port}/r.zip",
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "zenodo.org/record/1188976" in err and "ROOT/ravdess/" in err


# --- A failed attempt leaves nothing behind it created -----------------------------------------
# A fake opener stands in for the network: the tests never leave this process.

def _failing_opener(monkeypatch, error):
    from ser_tf.data import download

    calls = []

    def urlopen(request, timeout=None):
        calls.append(request.full_url)
        raise error

    monkeypatch.setattr(download, "urlopen", urlopen)
    return calls


def test_failed_download_removes_the_folders_it_created(tmp_path, monkeypatch):
    from urllib.error import URLError

    calls = _failing_opener(monkeypatch, URLError("no route to host"))
    dest = tmp_path / "new" / "data"
    with pytest.raises(DownloadError, match="could not reach example.invalid"):
        download_corpus("emodb", dest, url="http://example.invalid/e.zip", progress=False)
    assert calls == ["http://example.invalid/e.zip"]
    assert list(tmp_path.iterdir()) == []  # neither data/ nor new/ is left


def test_failed_download_keeps_what_was_there_before(tmp_path, monkeypatch):
    from urllib.error import HTTPError

    _failing_opener(monkeypatch, HTTPError("http://x/e.zip", 503, "Unavailable", {}, None))
    dest = tmp_path / "data"
    (dest / "emodb").mkdir(parents=True)  # an empty corpus folder made by the user
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(DownloadError, match="HTTP 503"):
        download_corpus("emodb", dest, url="http://x/e.zip", progress=False)
    assert sorted(p.name for p in dest.iterdir()) == ["emodb", "notes.txt"]
    assert (dest / "emodb").is_dir() and (dest / "notes.txt").read_text() == "mine"

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DownloadError):
        download_corpus("emodb", empty, url="http://x/e.zip", progress=False)
    assert empty.is_dir() and list(empty.iterdir()) == []


def test_transfer_dying_before_the_first_byte_leaves_no_empty_partial(tmp_path, monkeypatch):
    from ser_tf.data import download

    class DeadResponse:
        status, headers = 200, {"Content-Length": "1000"}

        def read(self, n):
            raise ConnectionResetError("connection reset by peer")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(download, "urlopen", lambda request, timeout=None: DeadResponse())
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="nothing was received: run the same command again"):
        download_corpus("emodb", dest, url="http://x/e.zip", progress=False)
    assert not dest.exists()


def test_interrupted_download_into_new_folder_keeps_partial_for_resume(server, tmp_path):
    server.files["/emodb.zip"] = build_zip(tmp_path)
    server.cut_after = 3000
    dest = tmp_path / "new" / "data"
    with pytest.raises(DownloadError, match=r"after 3000 of \d+ bytes \(kept in"):
        fetch(server, dest)
    assert [p.name for p in dest.iterdir()] == ["emodb.zip.partial"]
    assert (dest / "emodb.zip.partial").stat().st_size == 3000


def test_corrupt_download_into_new_folder_leaves_nothing(server, tmp_path):
    server.files["/emodb.zip"] = b"PK\x03\x04 this is not a zip archive at all" * 10
    dest = tmp_path / "new" / "data"
    with pytest.raises(DownloadError, match="corrupt"):
        fetch(server, dest)
    assert list(tmp_path.iterdir()) == []
