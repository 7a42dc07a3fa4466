from pathlib import Path

import pytest

from ser_tf.data import get_corpus, load_manifest
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.synthetic import write_wav


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
