import dataclasses
from pathlib import Path

import pytest

from ser_tf.data import get_corpus, load_manifest
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.synthetic import write_wav


def make_csv(root: Path, text: str, audio=("clips/a1.wav", "clips/b7.wav", "c.wav"),
             name="manifest.csv"):
    for i, rel in enumerate(audio):
        write_wav(root / rel, duration=0.2, seed=i)
    (root / name).write_text(text)
    return root


def test_csv_fields_defaults_and_sorted_labels(tmp_path):
    root = make_csv(tmp_path / "own",
                    "path,label,speaker,gender,text,session\n"
                    "clips/a1.wav,sad,s01,F,hello there,2\n"
                    "clips/b7.wav,angry,,male,,\n"
                    "\n"
                    "c.wav,calm,s02,,,\n")
    m = load_manifest("CSV", root)
    assert m.labels == ("angry", "calm", "sad")
    by_id = {u.utterance_id: u for u in m}
    assert sorted(by_id) == ["c", "clips/a1", "clips/b7"]
    u = by_id["clips/a1"]
    assert (u.label, u.speaker, u.gender, u.text, u.corpus) == ("sad", "s01", "female",
                                                                "hello there", "CSV")
    assert u.path == str(root / "clips" / "a1.wav") and u.extra == {"session": "2"}
    u = by_id["clips/b7"]
    assert (u.speaker, u.gender, u.text, u.extra) == ("unknown", "male", None, {})
    assert by_id["c"].gender is None


def test_csv_explicit_labels_absolute_manifest_and_ids(tmp_path):
    root = make_csv(tmp_path / "own", "utterance_id,path,label\n"
                                      "x1,clips/a1.wav,sad\n"
                                      f"x2,{tmp_path / 'own' / 'c.wav'},calm\n",
                    name="lists/train.csv", audio=("lists/clips/a1.wav", "c.wav"))
    (tmp_path / "elsewhere").mkdir()  # an absolute manifest path ignores the data folder
    m = load_manifest("CSV", tmp_path / "elsewhere",
                      manifest=str(root / "lists" / "train.csv"), labels=["sad", "calm", "joy"])
    assert m.labels == ("sad", "calm", "joy")
    assert {u.utterance_id: u.path for u in m} == {"x1": str(root / "lists" / "clips" / "a1.wav"),
                                                   "x2": str(root / "c.wav")}
    assert get_corpus("CSV", manifest="a.csv").options() == {"manifest": "a.csv", "labels": None}


def test_csv_reads_back_manifest_to_csv(tmp_path):
    root = make_csv(tmp_path / "own", "path,label,speaker,gender\n"
                                      "clips/a1.wav,sad,s01,female\n"
                                      "clips/b7.wav,angry,s02,m\n")
    first = load_manifest("CSV", root)
    first.utterances[0] = dataclasses.replace(first[0], extra={"take": 3})
    first.to_csv(root / "copy.csv")
    again = load_manifest("CSV", root, manifest="copy.csv")
    assert again.labels == first.labels
    for a, b in zip(first, again):
        assert (a.utterance_id, a.path, a.label, a.speaker, a.gender, a.text) == \
               (b.utterance_id, b.path, b.label, b.speaker, b.gender, b.text)
    assert again[0].extra == {"take": 3, "source_corpus": "CSV"}


@pytest.mark.parametrize("text, message", [
    ("file,label\nclips/a1.wav,sad\n", r"manifest\.csv:1: missing column\(s\) \['path'\]"),
    ("path,label\nclips/a1.wav,sad\nclips/b7.wav,\n", r"manifest\.csv:3: empty label"),
    ("path,label,gender\nclips/a1.wav,sad,female\nclips/b7.wav,sad,woman\n",
     r"manifest\.csv:3: unknown gender 'woman'"),
    ("path,label,utterance_id\nclips/a1.wav,sad,u1\nc.wav,sad,u2\nclips/b7.wav,sad,u1\n",
     r"manifest\.csv:4: duplicate utterance id 'u1' \(first on line 2\)"),
    ("path,label\nclips/a1.wav,sad\nclips/zz.wav,sad\n", r"manifest\.csv:3: .*zz\.wav not found"),
    ("path,label,extra\nclips/a1.wav,sad,[1]\n", r"manifest\.csv:2: extra must be a JSON object"),
    ("path,label\nclips/a1.wav,sad,extra\n", r"manifest\.csv:2: more fields"),
])
def test_csv_errors_name_file_and_line(tmp_path, text, message):
    root = make_csv(tmp_path / "own", text)
    with pytest.raises(ValueError, match=message):
        load_manifest("CSV", root)


def test_csv_unknown_label_and_missing_manifest(tmp_path):
    root = make_csv(tmp_path / "own", "path,label\nclips/a1.wav,sad\nclips/b7.wav,joy\n")
    with pytest.raises(ValueError, match=r"manifest\.csv:3: label 'joy' is not one of"):
        load_manifest("CSV", root, labels=["sad"])
    with pytest.raises(CorpusLayoutError, match=r"nope\.csv: manifest CSV not found"):
        load_manifest("CSV", root, manifest="nope.csv")
    with pytest.raises(ValueError, match="manifest"):
        get_corpus("CSV", manifest="")
