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
    # a missing file is bad audio, not a malformed row: the error names it with its line
    ("path,label\nclips/a1.wav,sad\nclips/zz.wav,sad\n",
     r"zz\.wav: file not found \(listed in .*manifest\.csv:3\)"),
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


def _csv_with_missing(root: Path, n_missing: int) -> Path:
    rows = ["path,label,speaker", "clips/a1.wav,sad,s01", "clips/b7.wav,angry,s02"]
    rows += [f"gone/m{i:02d}.wav,{'calm' if i == 0 else 'sad'},s03" for i in range(n_missing)]
    return make_csv(root, "\n".join(rows) + "\n", audio=("clips/a1.wav", "clips/b7.wav"))


def test_csv_fail_names_every_missing_file_in_one_error(tmp_path):
    from ser_tf.data import BadAudioError

    root = _csv_with_missing(tmp_path / "own", 12)
    with pytest.raises(BadAudioError) as info:
        load_manifest("CSV", root)
    text = str(info.value)
    assert text.startswith("CSV: 12 unusable audio file(s):")
    assert len(info.value.errors) == 12
    listed_in = root / "manifest.csv"
    for i in range(10):  # the first ten by name, with the CSV line that lists them
        assert f"gone/m{i:02d}.wav: file not found (listed in {listed_in}:{i + 4})" in text
    assert "m10.wav" not in text and "... and 2 more" in text


@pytest.mark.parametrize("check_audio", [True, False])
def test_csv_skip_leaves_out_every_missing_or_unreadable_file(tmp_path, check_audio):
    root = _csv_with_missing(tmp_path / "own", 3)
    (root / "clips" / "b7.wav").write_text("not audio")  # present but unreadable as audio
    m = load_manifest("CSV", root, on_bad_audio="skip", check_audio=check_audio)
    skipped = {Path(s["path"]).name: s["reason"] for s in m.skipped}
    assert {"m00.wav", "m01.wav", "m02.wav"} <= set(skipped)
    assert skipped["m01.wav"] == f"file not found (listed in {root / 'manifest.csv'}:5)"
    if check_audio:  # the bad content is only found by decoding
        assert "not a readable audio file" in skipped["b7.wav"]
        assert [u.utterance_id for u in m] == ["clips/a1"]
    else:
        assert [u.utterance_id for u in m] == ["clips/a1", "clips/b7"]
    # Labels of skipped rows still count: the class indices match those of a full copy.
    assert m.labels == ("angry", "calm", "sad")


def test_csv_path_that_is_a_folder_is_named_as_one(tmp_path):
    from ser_tf.data import BadAudioError

    root = make_csv(tmp_path / "own", "path,label\nclips/a1.wav,sad\nclips,sad\n",
                    audio=("clips/a1.wav",))
    with pytest.raises(BadAudioError, match=r"clips: is a directory, not an audio file "
                                            r"\(listed in .*manifest\.csv:3\)"):
        load_manifest("CSV", root)
