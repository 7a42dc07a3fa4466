from collections import Counter
from pathlib import Path

import pytest

from ser_tf.data import get_corpus, load_manifest
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.synthetic import write_wav

FILES = [
    "Actor_12/03-01-05-02-02-01-12.wav",  # angry, strong, "Dogs...", speech, actor 12
    "Actor_01/03-01-02-01-01-02-01.wav",  # calm, normal, "Kids...", rep 2, actor 1
    "Actor_01/03-02-03-01-01-01-01.wav",  # song, happy
    "03-01-08-01-01-01-07.wav",           # flat at the root: surprised
    "extra/deep/Actor_24/03-01-01-01-02-01-24.wav",  # nested: neutral
    "Actor_02/01-01-04-01-01-01-02.wav",  # audio-video modality: not used
]


def make_ravdess(root: Path, names=FILES):
    for i, name in enumerate(names):
        write_wav(root / name, duration=0.2, seed=i)
    (root / "Actor_01").mkdir(parents=True, exist_ok=True)
    (root / "Actor_01" / "01-01-02-01-01-02-01.mp4").write_bytes(b"video, not read")
    return root


def test_ravdess_parses_fields_and_keeps_speech_only(tmp_path):
    m = load_manifest("RAVDESS", make_ravdess(tmp_path / "ravdess"))
    assert m.labels == ("neutral", "calm", "happiness", "sadness", "anger", "fear", "disgust",
                        "surprise")
    by_id = {u.utterance_id: u for u in m}
    assert sorted(by_id) == ["03-01-01-01-02-01-24", "03-01-02-01-01-02-01",
                             "03-01-05-02-02-01-12", "03-01-08-01-01-01-07"]
    u = by_id["03-01-05-02-02-01-12"]
    assert (u.label, u.speaker, u.gender, u.corpus) == ("anger", "12", "female", "RAVDESS")
    assert u.text == "Dogs are sitting by the door"
    assert u.extra == {"emotion_code": "05", "intensity": "strong",
                       "statement": "Dogs are sitting by the door", "repetition": 1,
                       "vocal_channel": "speech"}
    calm = by_id["03-01-02-01-01-02-01"]
    assert (calm.label, calm.speaker, calm.gender, calm.text) == (
        "calm", "01", "male", "Kids are talking by the door")
    assert (calm.extra["intensity"], calm.extra["repetition"]) == ("normal", 2)
    assert (by_id["03-01-08-01-01-01-07"].label, by_id["03-01-08-01-01-01-07"].gender) == (
        "surprise", "male")
    assert by_id["03-01-01-01-02-01-24"].label == "neutral"
    assert m.counts("label")["calm"] == 1


def test_ravdess_merge_calm_and_include_song(tmp_path):
    root = make_ravdess(tmp_path / "ravdess")
    merged = load_manifest("RAVDESS", root, merge_calm=True)
    assert "calm" not in merged.labels and len(merged.labels) == 7
    calm = next(u for u in merged if u.utterance_id == "03-01-02-01-01-02-01")
    assert calm.label == "neutral" and calm.extra["emotion_code"] == "02"
    assert merged.counts("label")["neutral"] == 2

    with_song = load_manifest("RAVDESS", root, include_song=True)
    song = next(u for u in with_song if u.utterance_id == "03-02-03-01-01-01-01")
    assert (song.label, song.extra["vocal_channel"], song.speaker) == ("happiness", "song", "01")
    assert len(with_song) == 5
    assert get_corpus("RAVDESS", include_song=True).options() == {"merge_calm": False,
                                                                 "include_song": True}


def test_ravdess_rejects_bad_options():
    with pytest.raises(ValueError, match="merge_calm"):
        get_corpus("RAVDESS", merge_calm="yes")


@pytest.mark.parametrize("bad", ["03-01-05-01-02-01.wav", "03-01-09-01-02-01-12.wav",
                                 "03-01-05-01-02-01-25.wav", "notes.wav"])
def test_ravdess_rejects_foreign_file_name(tmp_path, bad):
    root = make_ravdess(tmp_path / "ravdess", FILES[:1] + [f"Actor_12/{bad}"])
    with pytest.raises(CorpusLayoutError, match=f"{bad}.*RAVDESS"):
        load_manifest("RAVDESS", root)


def test_ravdess_rejects_the_same_file_twice(tmp_path):
    root = make_ravdess(tmp_path / "ravdess", [FILES[0], "copy/" + Path(FILES[0]).name])
    with pytest.raises(CorpusLayoutError, match="also at"):
        load_manifest("RAVDESS", root)


@pytest.mark.integration
def test_real_ravdess_counts(shared_data):
    m = load_manifest("RAVDESS", shared_data / "ravdess")
    assert len(m) == 1434
    speakers = m.counts("speaker")
    assert speakers == {f"{a:02d}": (58 if a in (1, 5, 20) else 60) for a in range(1, 25)}
    # A complete actor has 4 neutral (normal intensity only) and 8 of every other emotion,
    # so with six files missing every class has at most its complete count and 6 are gone.
    counts = m.counts("label")
    full = {label: (96 if label == "neutral" else 192) for label in m.labels}
    assert all(counts[k] <= full[k] for k in full) and sum(full.values()) - sum(counts.values()) == 6
    for actor in range(1, 25):
        per_label = Counter(u.label for u in m if u.speaker == f"{actor:02d}")
        missing = sum((4 if k == "neutral" else 8) - per_label[k] for k in m.labels)
        assert missing == (2 if actor in (1, 5, 20) else 0)
    assert all(u.gender == ("male" if int(u.speaker) % 2 else "female") for u in m)
    assert m.counts("gender") == {"female": 12 * 60 - 2, "male": 12 * 60 - 4}
    assert all(u.extra["vocal_channel"] == "speech" for u in m)
