"""Corpus fingerprints and the release check: a processed copy never passes for the release."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from ser_tf.cli import main
from ser_tf.data import load_manifest
from ser_tf.data import fingerprint as fp
from ser_tf.data.synthetic import make_emodb_like, write_wav


def _checksum_text(root, names) -> str:
    lines = ["file\tbytes\tsha256"]
    for name in names:
        data = (root / "wav" / name).read_bytes()
        lines.append(f"{name}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def release(tmp_path):
    """A generated EMO-DB-like 'release' and its checksum list."""
    root = make_emodb_like(tmp_path / "release", per_class=2, duration=1.0)
    names = sorted(p.name for p in (root / "wav").glob("*.wav"))
    return root, fp.read_checksum_list(_checksum_text(root, names))


def test_fingerprint_describes_the_files(release):
    root, _ = release
    manifest = load_manifest("EMODB", root)
    result = fp.fingerprint(manifest, verify=False)
    assert result["files"] == len(manifest) == 14
    assert result["sample_rates"] == {"16000": 14}
    d = result["duration_s"]
    assert 0.79 <= d["min"] < d["median"] < d["max"] <= 1.21  # make_emodb_like varies lengths
    assert result["same_duration"] is False
    assert "release" not in result
    assert fp.fingerprint(manifest, verify=False) == result  # deterministic


def test_a_resampled_trimmed_copy_has_another_fingerprint(release, tmp_path):
    root, _ = release
    copy = tmp_path / "copy" / "wav"
    copy.mkdir(parents=True)
    for path in (root / "wav").glob("*.wav"):  # the processed copy: 22.05 kHz, all 0.5 s
        write_wav(copy / path.name, sr=22050, duration=0.5)
    original = fp.fingerprint(load_manifest("EMODB", root), verify=False)
    processed = fp.fingerprint(load_manifest("EMODB", copy.parent), verify=False)
    assert processed["digest"] != original["digest"]
    assert processed["sample_rates"] == {"22050": 14}
    assert processed["same_duration"] is True
    assert "all 0.50 s" in fp.describe(processed) and "22.05 kHz" in fp.describe(processed)


def test_verify_release_tells_original_processed_and_incomplete(release, tmp_path):
    root, rows = release
    files = sorted((root / "wav").glob("*.wav"))
    assert fp.verify_release("EMODB", files, rows).verdict == fp.ORIGINAL

    copy = tmp_path / "copy" / "wav"
    shutil.copytree(root / "wav", copy)
    changed = sorted(copy.glob("*.wav"))[:3]
    for path in changed:  # same length, other bytes: only the hash can tell
        data = bytearray(path.read_bytes())
        data[-2:] = bytes([data[-2] ^ 1, data[-1]])
        path.write_bytes(bytes(data))
    (copy / files[-1].name).unlink()
    check = fp.verify_release("EMODB", sorted(copy.glob("*.wav")), rows)
    assert check.verdict == f"{fp.PROCESSED} (3 of 14 files differ)"
    assert check.differing == sorted(p.name for p in changed)
    assert check.missing == [files[-1].name]

    shutil.copy2(root / "wav" / changed[0].name, copy / changed[0].name)
    for path in changed[1:]:
        shutil.copy2(root / "wav" / path.name, path)
    check = fp.verify_release("EMODB", sorted(copy.glob("*.wav")), rows)
    assert check.verdict == f"{fp.INCOMPLETE} (1 of 14 files missing)"
    # What a run read: unchanged release files, not all of them (a class subset).
    assert check.read_verdict == f"{fp.ORIGINAL} (13 of 14 files)"
    assert fp.verify_release("EMODB", files, rows).read_verdict == fp.ORIGINAL
    changed_bytes = bytearray(files[0].read_bytes())
    changed_bytes[-1] ^= 1
    (copy / files[0].name).write_bytes(bytes(changed_bytes))
    check = fp.verify_release("EMODB", sorted(copy.glob("*.wav")), rows)
    assert check.read_verdict == check.verdict == f"{fp.PROCESSED} (1 of 14 files differ)"


def test_checksum_list_format_errors_name_the_line():
    with pytest.raises(ValueError, match="header"):
        fp.read_checksum_list("name\tsize\n")
    with pytest.raises(ValueError, match=r"x.tsv:3"):
        fp.read_checksum_list("file\tbytes\tsha256\na.wav\t12\t" + "0" * 64 + "\nb.wav\tbig\tff\n",
                              "x.tsv")


def test_shipped_lists_cover_both_releases():
    emodb, ravdess = fp.checksum_list("EMODB"), fp.checksum_list("RAVDESS")
    assert len(emodb) == 535 and len(ravdess) == 1440
    assert all(len(r.sha256) == 64 for r in emodb + ravdess)
    assert fp.checksum_list("IEMOCAP") is None


def test_same_duration_warning():
    assert fp.check_durations([2.0, 2.0, 2.0]).startswith("every one of the 3 files lasts 2.00 s")
    assert fp.check_durations(np.linspace(1.2, 9.0, 5)) is None


def test_data_check_verify_names_what_differs(release, tmp_path, capsys, monkeypatch):
    root, rows = release
    monkeypatch.setattr(fp, "checksum_list", lambda corpus: rows)
    assert main(["data", "check", "EMODB", "--data-dir", str(root), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "release check: original release; 14 of 14 listed files match" in out

    copy = tmp_path / "copy"
    for path in (root / "wav").glob("*.wav"):
        write_wav(copy / "wav" / path.name, sr=22050, duration=0.5)
    assert main(["data", "check", "EMODB", "--data-dir", str(copy), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "processed copy (14 of 14 files differ)" in out
    assert "warning: every one of the 14 files lasts 0.50 s" in out


def test_plan_records_the_fingerprint_and_a_new_copy_gets_a_new_run_id(release, tmp_path):
    import ser_tf.papers.lightsernet  # noqa: F401 (registers the "lightsernet" recipe)
    from ser_tf.features.recipes import get_recipe
    from ser_tf.training.classifier import FitConfig
    from ser_tf.experiments.runner import plan_experiment

    root, _ = release
    copy = tmp_path / "copy"
    for path in (root / "wav").glob("*.wav"):
        write_wav(copy / "wav" / path.name, sr=22050, duration=0.5)
    plans = [plan_experiment(load_manifest("EMODB", r), get_recipe("lightsernet"),
                             paper="toy", protocol="clean", fit=FitConfig(epochs=1),
                             results_dir=tmp_path / "results", n_folds=2)
             for r in (root, copy)]
    assert plans[0].config["data"]["files"] == 14
    assert plans[0].config["data"]["digest"] != plans[1].config["data"]["digest"]
    assert plans[0].run_id != plans[1].run_id


@pytest.mark.integration
def test_shared_copies_are_classified(shared_data):
    from ser_tf.data.check import check_corpus

    emodb = check_corpus("EMODB", shared_data / "emodb", verify=True)
    assert emodb.release.verdict == fp.ORIGINAL and emodb.ok and not emodb.warnings
    ravdess = check_corpus("RAVDESS", shared_data / "ravdess", verify=True)
    assert ravdess.release.verdict.startswith(fp.PROCESSED)
    assert len(ravdess.release.missing) == 6
    assert any("lasts 2.39 s" in w for w in ravdess.warnings)


def test_verify_release_matches_a_flat_copy_by_file_name(tmp_path):
    # Release rows name files under folders (RAVDESS: Actor_01/...); a flat copy holds them
    # all in one folder, which the loaders accept: judged by content, not by folder.
    nested = tmp_path / "release" / "Actor_01"
    names = [write_wav(nested / f"03-01-0{i}-01-01-01-01.wav", class_index=i).name
             for i in range(1, 4)]
    lines = ["file\tbytes\tsha256"] + [
        f"Actor_01/{n}\t{(nested / n).stat().st_size}\t"
        f"{hashlib.sha256((nested / n).read_bytes()).hexdigest()}" for n in names]
    rows = fp.read_checksum_list("\n".join(lines) + "\n")
    flat = tmp_path / "flat"
    shutil.copytree(nested, flat)
    check = fp.verify_release("RAVDESS", sorted(flat.glob("*.wav")), rows)
    assert check.verdict == fp.ORIGINAL and check.missing == []
