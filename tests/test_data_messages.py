"""What the data layer says about a bad copy: ``data check`` on an incomplete corpus, and
real permission errors (a chmod 000 file or folder), checked with the file system's own
refusal rather than a simulated one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ser_tf.cli import main
from ser_tf.data import fingerprint as fp
from ser_tf.data.check import check_corpus, missing_from_release
from ser_tf.data.synthetic import write_wav

RAVDESS_ROWS = fp.checksum_list("RAVDESS")
#: The six speech files the shared 1434-file copy lacks (see ../shared/data/README.md).
SIX = ["Actor_01/03-01-02-01-01-02-01.wav", "Actor_01/03-01-08-01-02-02-01.wav",
       "Actor_05/03-01-02-01-02-02-05.wav", "Actor_05/03-01-02-02-02-01-05.wav",
       "Actor_20/03-01-03-01-02-01-20.wav", "Actor_20/03-01-06-01-01-02-20.wav"]


def _ravdess_copy(root: Path, leave_out=(), flat: bool = False) -> Path:
    """Every release file name except ``leave_out``, as empty files: what ``data check``
    counts are names, and decoding is switched off by :func:`_no_decoding`."""
    for row in RAVDESS_ROWS:
        if row.file in leave_out:
            continue
        path = root / (Path(row.file).name if flat else row.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return root


@pytest.fixture
def _no_decoding(monkeypatch):
    # 1434 decodes would only slow the test down: this is about names, not audio.
    import ser_tf.data

    monkeypatch.setattr(ser_tf.data, "read_audio", lambda path: None)


def test_checksum_lists_name_every_file_uniquely():
    # missing_from_release matches by file name alone, which needs unique names.
    assert len(RAVDESS_ROWS) == 1440 and set(SIX) <= {row.file for row in RAVDESS_ROWS}
    for corpus in ("EMODB", "RAVDESS"):
        rows = fp.checksum_list(corpus)
        assert len({Path(row.file).name for row in rows}) == len(rows)


@pytest.mark.parametrize("flat", [False, True])
def test_check_names_the_six_missing_ravdess_files(tmp_path, capsys, _no_decoding, flat):
    root = _ravdess_copy(tmp_path / "ravdess", leave_out=SIX, flat=flat)
    report = check_corpus("RAVDESS", root)
    assert not report.ok
    assert report.problems == [
        "incomplete copy: 1434 files found, the complete release has 1440: 6 missing: "
        + ", ".join(SIX) + ". They are in the release's checksum list "
        "(ser_tf/data/checksums/ravdess.tsv) and not in this folder; the release is at "
        "https://zenodo.org/record/1188976"]
    # A copy missing files is incomplete: data check exits 1 (with the names printed).
    assert main(["data", "check", "RAVDESS", "--data-dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert all(name in out for name in SIX) and "1 problem(s) found" in out


def test_long_missing_lists_are_cut_with_a_count_and_per_folder(tmp_path, _no_decoding):
    keep = {row.file for row in RAVDESS_ROWS if not row.file.startswith(("Actor_03/", "Actor_04/"))}
    root = _ravdess_copy(tmp_path / "ravdess", leave_out={r.file for r in RAVDESS_ROWS} - keep)
    (problem,) = check_corpus("RAVDESS", root).problems
    assert "1320 files found, the complete release has 1440: 120 missing: " in problem
    assert "... and 110 more (per folder: Actor_03 60, Actor_04 60)." in problem


def test_missing_from_release_matches_names_in_any_folder(tmp_path):
    files = [tmp_path / "x" / "03-01-01-01-01-01-01.wav", tmp_path / "03-01-01-01-01-02-01.wav"]
    missing = missing_from_release(files, RAVDESS_ROWS)
    assert len(missing) == 1438 and "Actor_01/03-01-01-01-01-01-01.wav" not in missing


@pytest.mark.integration
def test_shared_ravdess_copy_names_its_six_missing_files(shared_data, capsys):
    code = main(["data", "check", "RAVDESS", "--data-dir", str(shared_data / "ravdess")])
    out = capsys.readouterr().out
    assert code == 1
    assert ("problem: incomplete copy: 1434 files found, the complete release has 1440: "
            "6 missing: " + ", ".join(SIX)) in out


# --- Real permission errors --------------------------------------------------------------------

def _run_as_plain_user(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a Python that the file modes apply to: as this user when it is not
    root; as root without the capabilities that bypass file modes (via ``setpriv``)
    otherwise. Skips the test when neither is possible."""
    command = [sys.executable, "-c", textwrap.dedent(code)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv is not installed")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search"] + command
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_NUM_INTRAOP_THREADS": "1"})
    if "setpriv:" in result.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {result.stderr.strip()}")
    return result


def test_chmod_000_file_says_permission_denied(tmp_path):
    path = write_wav(tmp_path / "locked.wav", duration=0.3)
    path.chmod(0)
    try:
        result = _run_as_plain_user(f"""
            from ser_tf.data.audio import AudioError, read_audio
            try:
                read_audio({str(path)!r})
            except AudioError as err:
                print(err)
            """)
    finally:
        path.chmod(0o644)
    assert result.stdout.startswith(f"{path}: permission denied: this user cannot read it "
                                    "(mode ----------"), result.stderr
    assert "System error" not in result.stdout and "corrupt" not in result.stdout


def test_chmod_000_class_folder_is_named(tmp_path):
    root = tmp_path / "mine"
    write_wav(root / "angry" / "a.wav", duration=0.3)
    write_wav(root / "calm" / "c.wav", duration=0.3, seed=1)
    (root / "calm").chmod(0)
    try:
        result = _run_as_plain_user(f"""
            from ser_tf.data import BadAudioError, load_manifest
            try:
                load_manifest("FOLDER", {str(root)!r})
            except BadAudioError as err:
                print(err)
            m = load_manifest("FOLDER", {str(root)!r}, on_bad_audio="skip")
            print("skipped:", m.skipped)
            """)
    finally:
        (root / "calm").chmod(0o755)
    assert f"{root / 'calm'}: cannot list this folder (permission denied)" in result.stdout, \
        result.stderr
    assert f"skipped: [{{'path': '{root / 'calm'}', 'reason': 'cannot list" in result.stdout
