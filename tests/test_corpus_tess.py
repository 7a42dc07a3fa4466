from pathlib import Path

import pytest

from ser_tf.data import load_manifest
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.synthetic import write_wav


def make_tess(root: Path, names):
    for i, name in enumerate(names):
        write_wav(root / name, duration=0.2, seed=i)
    return root


def test_tess_parses_file_names_not_folders(tmp_path):
    make_tess(tmp_path / "tess" / "TESS Toronto emotional speech set data", [
        "OAF_angry/OAF_back_angry.wav", "OAF_Fear/OAF_back_fear.wav",
        "OAF_Pleasant_surprise/OAF_back_ps.wav", "YAF_pleasant_surprised/YAF_dog_ps.wav",
        "YAF_sad/YAF_dog_sad.wav", "YAF_happy/YAF_Dog_Happy.wav",
        "YAF_disgust/YAF_chair_disgust.wav", "OAF_neutral/OA_bite_neutral.wav",
        "YAF_other/YAF_bar_pleasant_surprise.wav"])
    m = load_manifest("TESS", tmp_path / "tess")
    assert m.labels == ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
    by_id = {u.utterance_id: u for u in m}
    assert {k: (u.label, u.speaker) for k, u in by_id.items()} == {
        "OAF_back_angry": ("anger", "OAF"), "OAF_back_fear": ("fear", "OAF"),
        "OAF_back_ps": ("surprise", "OAF"), "YAF_dog_ps": ("surprise", "YAF"),
        "YAF_dog_sad": ("sadness", "YAF"), "YAF_dog_happy": ("happiness", "YAF"),
        "YAF_chair_disgust": ("disgust", "YAF"), "OAF_bite_neutral": ("neutral", "OAF"),
        "YAF_bar_pleasant_surprise": ("surprise", "YAF")}
    assert all(u.gender == "female" for u in m)
    u = by_id["YAF_dog_happy"]
    assert u.text == "Say the word dog"
    assert u.extra == {"word": "dog", "age_group": "younger"}
    assert by_id["OAF_bite_neutral"].extra == {"word": "bite", "age_group": "older"}
    assert by_id["OAF_bite_neutral"].path.endswith("OA_bite_neutral.wav")
    assert m.counts("speaker") == {"OAF": 4, "YAF": 5}


@pytest.mark.parametrize("bad", ["OAF_back.wav", "OAF_back_bored.wav", "MAF_back_angry.wav",
                                 "OAF__angry.wav"])
def test_tess_rejects_foreign_file_name(tmp_path, bad):
    root = make_tess(tmp_path / "tess", ["OAF_angry/OAF_back_angry.wav", f"OAF_angry/{bad}"])
    with pytest.raises(CorpusLayoutError, match=f"{bad}.*TESS"):
        load_manifest("TESS", root)
