from pathlib import Path

import pytest

from ser_tf.data import load_manifest
from ser_tf.data.audio import read_audio
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.synthetic import write_wav


def make_emovo(root: Path, names, **wav_options):
    for i, name in enumerate(names):
        write_wav(root / name, duration=0.2, seed=i, **wav_options)
    return root


def test_emovo_parses_emotion_speaker_sentence(tmp_path):
    root = make_emovo(tmp_path / "emovo", [
        "f1/dis-f1-b1.wav", "f2/gio-f2-d2.wav", "f3/neu-f3-l4.wav", "m1/pau-m1-n5.wav",
        "m2/rab-m2-b2.wav", "m3/sor-m3-n1.wav", "m3/tri-m3-l1.wav"], sr=48000, channels=2)
    m = load_manifest("EMOVO", root)
    assert m.labels == ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
    by_id = {u.utterance_id: u for u in m}
    assert {k: (u.label, u.speaker, u.gender, u.extra["sentence"]) for k, u in by_id.items()} == {
        "dis-f1-b1": ("disgust", "f1", "female", "b1"),
        "gio-f2-d2": ("joy", "f2", "female", "d2"),
        "neu-f3-l4": ("neutral", "f3", "female", "l4"),
        "pau-m1-n5": ("fear", "m1", "male", "n5"),
        "rab-m2-b2": ("anger", "m2", "male", "b2"),
        "sor-m3-n1": ("surprise", "m3", "male", "n1"),
        "tri-m3-l1": ("sadness", "m3", "male", "l1")}
    assert all(u.corpus == "EMOVO" for u in m)
    # 48 kHz stereo as released: the reader gives 16 kHz mono.
    audio, sr = read_audio(by_id["dis-f1-b1"].path, sr=16000)
    assert (audio.ndim, sr) == (1, 16000)


@pytest.mark.parametrize("bad", ["xyz-f1-b1.wav", "dis-f1.wav", "dis-x1-b1.wav",
                                 "dis_f1_b1.wav"])
def test_emovo_rejects_foreign_file_name(tmp_path, bad):
    root = make_emovo(tmp_path / "emovo", ["f1/dis-f1-b1.wav", f"f1/{bad}"])
    with pytest.raises(CorpusLayoutError, match=f"{bad}.*EMOVO"):
        load_manifest("EMOVO", root)
