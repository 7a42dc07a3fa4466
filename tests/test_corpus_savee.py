from pathlib import Path

import pytest

from ser_tf.data import load_manifest
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.synthetic import write_wav

LABELS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")


def make_savee(root: Path, names):
    for i, name in enumerate(names):
        write_wav(root / name, duration=0.2, seed=i)
    return root


def test_savee_release_layout_speaker_from_folder(tmp_path):
    root = make_savee(tmp_path / "savee", [
        "AudioData/DC/a01.wav", "AudioData/JE/sa03.wav", "AudioData/JK/su15.wav",
        "AudioData/KL/n30.wav", "AudioData/DC/d02.wav", "AudioData/JE/f07.wav",
        "AudioData/JK/h11.wav"])
    m = load_manifest("SAVEE", root)
    assert m.labels == LABELS
    by_id = {u.utterance_id: u for u in m}
    assert {k: (u.label, u.speaker) for k, u in by_id.items()} == {
        "DC_a01": ("anger", "DC"), "JE_sa03": ("sadness", "JE"), "JK_su15": ("surprise", "JK"),
        "KL_n30": ("neutral", "KL"), "DC_d02": ("disgust", "DC"), "JE_f07": ("fear", "JE"),
        "JK_h11": ("happiness", "JK")}
    assert all(u.gender == "male" and u.corpus == "SAVEE" and u.text is None for u in m)
    assert by_id["JE_sa03"].extra == {"take": 3}
    assert by_id["JK_su15"].path == str(root / "AudioData" / "JK" / "su15.wav")


def test_savee_flat_layout_speaker_from_prefix(tmp_path):
    root = make_savee(tmp_path / "savee", ["ALL/DC_sa01.wav", "ALL/KL_su02.wav",
                                           "ALL/JE_a01.wav", "ALL/JK_n20.wav"])
    by_id = {u.utterance_id: u for u in load_manifest("SAVEE", root)}
    assert {k: (u.label, u.speaker) for k, u in by_id.items()} == {
        "DC_sa01": ("sadness", "DC"), "KL_su02": ("surprise", "KL"),
        "JE_a01": ("anger", "JE"), "JK_n20": ("neutral", "JK")}
    assert by_id["KL_su02"].extra["take"] == 2


@pytest.mark.parametrize("bad", ["AudioData/DC/s01.wav", "AudioData/DC/x01.wav",
                                 "AudioData/XY/a01.wav", "ALL/DC_sa1.wav", "ALL/AB_a01.wav"])
def test_savee_rejects_foreign_file_name(tmp_path, bad):
    root = make_savee(tmp_path / "savee", ["AudioData/KL/a01.wav", bad])
    with pytest.raises(CorpusLayoutError, match=f"{Path(bad).name}.*SAVEE"):
        load_manifest("SAVEE", root)


def test_savee_rejects_both_layouts_of_one_recording(tmp_path):
    root = make_savee(tmp_path / "savee", ["AudioData/DC/a01.wav", "ALL/DC_a01.wav"])
    with pytest.raises(CorpusLayoutError, match="also at"):
        load_manifest("SAVEE", root)
