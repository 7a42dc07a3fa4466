from pathlib import Path

import pytest

from ser_tf.data import load_manifest
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.synthetic import write_wav

NAMES = ["1001_DFA_ANG_XX.wav", "1002_IEO_HAP_HI.wav", "1002_TSI_NEU_XX.wav",
         "1040_ITH_SAD_X.wav", "1091_WSI_FEA_LO.wav", "1003_MTI_DIS_MD.wav"]

DEMOGRAPHICS = ("ActorID,Age,Sex,Race,Ethnicity\n"
                "1001,51,Male,Caucasian,Not Hispanic\n"
                "1002,21,Female,Caucasian,Not Hispanic\n"
                "1040,27,Male,Asian,Not Hispanic\n"
                "1091,29,Female,Asian,Not Hispanic\n")


def make_cremad(root: Path, names=NAMES):
    for i, name in enumerate(names):
        write_wav(root / "AudioWAV" / name, duration=0.2, seed=i)
    return root


def test_cremad_parses_names_without_demographics(tmp_path):
    m = load_manifest("CREMA-D", make_cremad(tmp_path / "cremad"))
    assert m.corpus == "CREMAD"
    assert m.labels == ("anger", "disgust", "fear", "happiness", "neutral", "sadness")
    by_id = {u.utterance_id: u for u in m}
    assert {k: (u.label, u.speaker) for k, u in by_id.items()} == {
        "1001_DFA_ANG_XX": ("anger", "1001"), "1002_IEO_HAP_HI": ("happiness", "1002"),
        "1002_TSI_NEU_XX": ("neutral", "1002"), "1040_ITH_SAD_X": ("sadness", "1040"),
        "1091_WSI_FEA_LO": ("fear", "1091"), "1003_MTI_DIS_MD": ("disgust", "1003")}
    assert all(u.gender is None for u in m)
    assert by_id["1001_DFA_ANG_XX"].text == "Don't forget a jacket"
    assert by_id["1091_WSI_FEA_LO"].text == "We'll stop in a couple of minutes"
    assert by_id["1040_ITH_SAD_X"].text == "I think I have a doctor's appointment"
    assert by_id["1002_IEO_HAP_HI"].extra == {"sentence": "IEO", "level": "HI"}
    assert by_id["1040_ITH_SAD_X"].extra["level"] == "XX"


def test_cremad_gender_from_demographics_csv(tmp_path):
    root = make_cremad(tmp_path / "cremad")
    (root / "VideoDemographics.csv").write_text(DEMOGRAPHICS, encoding="utf-8")
    by_id = {u.utterance_id: u for u in load_manifest("CREMAD", root)}
    assert by_id["1001_DFA_ANG_XX"].gender == "male"
    assert by_id["1002_TSI_NEU_XX"].gender == "female"
    assert by_id["1091_WSI_FEA_LO"].gender == "female"
    assert by_id["1002_IEO_HAP_HI"].extra == {"sentence": "IEO", "level": "HI", "age": 21}
    assert by_id["1003_MTI_DIS_MD"].gender is None  # actor not in the csv


def test_cremad_demographics_next_to_the_audio_folder(tmp_path):
    # data_dir points at AudioWAV/ itself; the csv is in its parent.
    root = make_cremad(tmp_path / "cremad")
    (root / "VideoDemographics.csv").write_text(DEMOGRAPHICS, encoding="utf-8")
    m = load_manifest("CREMAD", root / "AudioWAV")
    assert m.counts("gender") == {"female": 3, "male": 2, None: 1}


@pytest.mark.parametrize("bad", ["1001_DFA_ANG.wav", "1001_XYZ_ANG_XX.wav",
                                 "1001_DFA_JOY_XX.wav", "1001_DFA_ANG_ZZ.wav", "101_DFA_ANG_XX.wav"])
def test_cremad_rejects_foreign_file_name(tmp_path, bad):
    root = make_cremad(tmp_path / "cremad", NAMES[:1] + [bad])
    with pytest.raises(CorpusLayoutError, match=f"{bad}.*CREMAD"):
        load_manifest("CREMAD", root)


def test_cremad_rejects_demographics_without_sex_column(tmp_path):
    root = make_cremad(tmp_path / "cremad")
    (root / "VideoDemographics.csv").write_text("ActorID,Age\n1001,51\n", encoding="utf-8")
    with pytest.raises(CorpusLayoutError, match="VideoDemographics.csv"):
        load_manifest("CREMAD", root)
