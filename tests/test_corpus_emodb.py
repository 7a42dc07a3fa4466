from pathlib import Path

import pytest

from ser_tf.data import load_manifest
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.corpora.emodb import read_syllables
from ser_tf.data.synthetic import write_wav


def make_emodb(root: Path, names):
    for i, name in enumerate(names):
        write_wav(root / "wav" / name, duration=0.3, seed=i)
    return root


def test_emodb_parses_speaker_text_emotion_and_gender(tmp_path):
    root = make_emodb(tmp_path / "emodb", ["03a01Fa.wav", "08b10Wb.wav", "16a05Tc.wav"])
    (root / "silb").mkdir()
    (root / "silb" / "03a01Fa.silb").write_text("0.080080\tder\n0.244195\tla\n1.841390\t.\n")
    m = load_manifest("EMODB", root)
    by_id = {u.utterance_id: u for u in m}
    assert m.labels == ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
    u = by_id["03a01Fa"]
    assert (u.speaker, u.label, u.gender) == ("03", "happiness", "male")
    assert u.text == "Der Lappen liegt auf dem Eisschrank."
    assert read_syllables(u.extra["syllables_path"])[:2] == [(0.080080, "der"), (0.244195, "la")]
    assert (by_id["08b10Wb"].label, by_id["08b10Wb"].gender) == ("anger", "female")
    assert by_id["16a05Tc"].label == "sadness" and "syllables_path" not in by_id["16a05Tc"].extra
    assert m.label_indices == [m.labels.index(by_id[i].label) for i in ("03a01Fa", "08b10Wb", "16a05Tc")]


def test_emodb_rejects_foreign_file_name(tmp_path):
    root = make_emodb(tmp_path / "emodb", ["03a01Fa.wav", "hello.wav"])
    with pytest.raises(CorpusLayoutError, match="hello.wav.*EMO-DB"):
        load_manifest("EMODB", root)


@pytest.mark.integration
def test_real_emodb_counts(shared_data):
    m = load_manifest("EMODB", shared_data / "emodb")
    assert len(m) == 535
    assert m.counts("label") == {"anger": 127, "boredom": 81, "disgust": 46, "fear": 69,
                                 "happiness": 71, "sadness": 62, "neutral": 79}
    assert len(m.counts("speaker")) == 10
    assert all("syllables_path" in u.extra for u in m)
