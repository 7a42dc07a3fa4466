from pathlib import Path

import pytest

from ser_tf.data import load_manifest
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.synthetic import write_wav

NAMES = ["liuchanhg/angry/201.wav", "liuchanhg/fear/201.wav", "wangzhe/happy/251.wav",
         "zhaoquanyin/neutral/202.wav", "ZhaoZuoxiang/sad/203.wav", "wangzhe/surprise/204.wav"]


def make_casia(root: Path, names=NAMES):
    for i, name in enumerate(names):
        write_wav(root / name, duration=0.2, seed=i)
    return root


@pytest.mark.parametrize("wrapper", ["", "CASIA database"])
def test_casia_parses_speaker_and_emotion_folders(tmp_path, wrapper):
    root = tmp_path / "casia"
    make_casia(root / wrapper if wrapper else root)
    m = load_manifest("CASIA", root)
    assert m.labels == ("anger", "fear", "happiness", "neutral", "sadness", "surprise")
    by_id = {u.utterance_id: u for u in m}
    assert {k: (u.label, u.speaker, u.gender) for k, u in by_id.items()} == {
        "liuchanhg_angry_201": ("anger", "liuchanhg", "female"),
        "liuchanhg_fear_201": ("fear", "liuchanhg", "female"),
        "wangzhe_happy_251": ("happiness", "wangzhe", "male"),
        "zhaoquanyin_neutral_202": ("neutral", "zhaoquanyin", "female"),
        "ZhaoZuoxiang_sad_203": ("sadness", "ZhaoZuoxiang", "male"),
        "wangzhe_surprise_204": ("surprise", "wangzhe", "male")}
    assert by_id["wangzhe_happy_251"].extra == {"number": "251"}
    assert all(u.corpus == "CASIA" and u.text is None for u in m)


@pytest.mark.parametrize("bad", ["liuchanhg/bored/201.wav", "someone/angry/201.wav",
                                 "liuchanhg/angry/take1.wav", "liuchanhg/201.wav",
                                 "a/b/liuchanhg/angry/205.wav"])
def test_casia_rejects_files_outside_the_layout(tmp_path, bad):
    root = make_casia(tmp_path / "casia", NAMES[:1] + [bad])
    with pytest.raises(CorpusLayoutError, match=f"{Path(bad).name}.*CASIA"):
        load_manifest("CASIA", root)
