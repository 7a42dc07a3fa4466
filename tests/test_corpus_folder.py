import os
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from ser_tf.data import get_corpus, load_manifest
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.synthetic import class_signal, write_wav


def make_folder(root: Path, rel_paths):
    for i, rel in enumerate(rel_paths):
        subtype = "VORBIS" if rel.endswith(".ogg") else "PCM_16"
        write_wav(root / rel, duration=0.2, seed=i, subtype=subtype)
    return root


FILES = ["sad/s02_a.wav", "angry/s01_a.wav", "angry/deep/s02_b.flac", "calm/s01_x.ogg"]


def test_folder_sorted_label_order_ids_and_default_speaker(tmp_path):
    root = make_folder(tmp_path / "mine", FILES)
    (root / "sad" / "notes.txt").write_text("not audio")
    (root / ".hidden").mkdir()
    write_wav(root / ".hidden" / "x.wav", duration=0.2)
    m = load_manifest("FOLDER", root)
    # sorted names, whatever order the folders were created in
    assert m.labels == ("angry", "calm", "sad")
    by_id = {u.utterance_id: u for u in m}
    assert sorted(by_id) == ["angry/deep/s02_b", "angry/s01_a", "calm/s01_x", "sad/s02_a"]
    u = by_id["angry/deep/s02_b"]
    assert (u.label, u.speaker, u.gender, u.corpus) == ("angry", "unknown", None, "FOLDER")
    assert u.path == str(root / "angry" / "deep" / "s02_b.flac")
    assert by_id["calm/s01_x"].label == "calm"
    assert m.label_indices == [m.labels.index(u.label) for u in m]


def test_folder_explicit_label_order(tmp_path):
    root = make_folder(tmp_path / "mine", FILES)
    m = load_manifest("FOLDER", root, labels=["sad", "calm", "angry", "happy"])
    assert m.labels == ("sad", "calm", "angry", "happy")
    assert m.counts("label") == {"sad": 1, "calm": 1, "angry": 2, "happy": 0}
    with pytest.raises(CorpusLayoutError, match=r"calm.*not one of the labels"):
        load_manifest("FOLDER", root, labels=["sad", "angry"])


def test_folder_speaker_options(tmp_path):
    root = make_folder(tmp_path / "mine", ["angry/s01/a_1.wav", "calm/s02/b_1.wav"])
    m = load_manifest("FOLDER", root, speaker_from="parent")
    assert {u.utterance_id: u.speaker for u in m} == {"angry/s01/a_1": "s01", "calm/s02/b_1": "s02"}
    m = load_manifest("FOLDER", root, speaker_from="prefix")
    assert {u.utterance_id: u.speaker for u in m} == {"angry/s01/a_1": "a", "calm/s02/b_1": "b"}

    flat = make_folder(tmp_path / "flat", ["angry/s01_a.wav", "calm/take.wav"])
    with pytest.raises(CorpusLayoutError, match=r"take\.wav.*prefix"):
        load_manifest("FOLDER", flat, speaker_from="prefix")
    with pytest.raises(CorpusLayoutError, match=r"s01_a\.wav.*speaker folder"):
        load_manifest("FOLDER", flat, speaker_from="parent")


def test_folder_layout_errors(tmp_path):
    root = make_folder(tmp_path / "mine", ["angry/a.wav", "stray.wav"])
    with pytest.raises(CorpusLayoutError, match=r"stray\.wav.*outside a label folder"):
        load_manifest("FOLDER", root)
    root = make_folder(tmp_path / "dup", ["angry/a.wav", "angry/a.flac"])
    with pytest.raises(CorpusLayoutError, match=r"a\.wav.*same utterance id 'angry/a'"):
        load_manifest("FOLDER", root)
    (tmp_path / "empty" / "angry").mkdir(parents=True)
    with pytest.raises(CorpusLayoutError, match="no recordings"):
        load_manifest("FOLDER", tmp_path / "empty")


def test_folder_options_validated_and_recorded():
    with pytest.raises(ValueError, match="speaker_from"):
        get_corpus("FOLDER", speaker_from="dir")
    with pytest.raises(ValueError, match="duplicates"):
        get_corpus("FOLDER", labels=["a", "a"])
    with pytest.raises(ValueError, match="sequence"):
        get_corpus("FOLDER", labels="angry")
    with pytest.raises(RuntimeError, match="scan"):
        get_corpus("FOLDER").labels
    assert get_corpus("FOLDER", labels=("b", "a")).options() == {"labels": ["b", "a"],
                                                                 "speaker_from": "none"}


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_folder_reads_m4a_and_other_readable_extensions(tmp_path):
    root = make_folder(tmp_path / "mine", ["angry/a.wav", "calm/c.WAV"])
    sf.write(root / "calm" / "d.aiff", class_signal(1, 0.3), 16000)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(root / "angry" / "a.wav"),
                    str(root / "angry" / "b.m4a")], check=True)
    m = load_manifest("FOLDER", root)
    assert sorted(u.utterance_id for u in m) == ["angry/a", "angry/b", "calm/c", "calm/d"]


def test_folder_m4a_without_ffmpeg_is_an_error_not_ignored(tmp_path, monkeypatch):
    from ser_tf.data import BadAudioError

    root = make_folder(tmp_path / "mine", ["angry/a.wav"])
    (root / "calm").mkdir()
    (root / "calm" / "take.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    monkeypatch.setattr(shutil, "which", lambda name: None)  # a machine without ffmpeg
    with pytest.raises(BadAudioError, match=r"take\.m4a: format '\.m4a' needs ffmpeg, which "
                                            r"is not installed"):
        load_manifest("FOLDER", root)
    m = load_manifest("FOLDER", root, on_bad_audio="skip")
    assert [Path(s["path"]).name for s in m.skipped] == ["take.m4a"]


def _refuse_listing(monkeypatch, *folders):
    # Root may list any folder whatever its mode, so the refusal is simulated where the
    # folder is listed; tests/test_data_messages.py checks a real chmod 000 folder.
    import errno

    real_scandir = os.scandir
    refused = {str(f) for f in folders}

    def scandir(path="."):
        if os.fspath(path) in refused:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_folder_unlistable_class_folder_is_named_not_dropped(tmp_path, monkeypatch):
    from ser_tf.data import BadAudioError

    root = make_folder(tmp_path / "mine", FILES)
    _refuse_listing(monkeypatch, root / "calm", root / "angry" / "deep")
    with pytest.raises(BadAudioError) as info:
        load_manifest("FOLDER", root)
    text = str(info.value)
    assert text.startswith("FOLDER: 2 unusable audio file(s) or folder(s):")
    assert f"{root / 'calm'}: cannot list this folder (permission denied)" in text
    assert f"{root / 'angry' / 'deep'}: cannot list this folder (permission denied)" in text

    m = load_manifest("FOLDER", root, on_bad_audio="skip")
    assert sorted(u.utterance_id for u in m) == ["angry/s01_a", "sad/s02_a"]
    assert sorted(Path(s["path"]).name for s in m.skipped) == ["calm", "deep"]
    assert m.labels == ("angry", "calm", "sad")  # the unlisted class keeps its index


def test_folder_unlistable_root_and_lost_and_found(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "mine", ["angry/a.wav"])
    (root / "lost+found").mkdir()
    (root / ".cache").mkdir()
    _refuse_listing(monkeypatch, root / "lost+found", root / ".cache")
    m = load_manifest("FOLDER", root)  # a mount point's lost+found is not a class
    assert [u.utterance_id for u in m] == ["angry/a"] and m.skipped == []
    _refuse_listing(monkeypatch, root)
    with pytest.raises(CorpusLayoutError, match=r"mine: cannot list the folder"):
        load_manifest("FOLDER", root)
