from pathlib import Path

import pytest

from ser_tf.data import get_corpus, load_manifest
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.synthetic import write_wav

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def evaluation(rows) -> str:
    """An EmoEvaluation file: summary lines plus the evaluator lines that must be ignored."""
    text = HEADER
    for start, end, utt, code, vad in rows:
        text += f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]\n"
        text += "C-E1:\tAnger;\t()\nC-E3:\tSadness;\t(bored)\nA-E1:\tval 3; act 2; dom  2;\t()\n\n"
    return text


def make_iemocap(root: Path, dialogs: dict, skip_wav=()):
    """dialogs: {dialog: [(start, end, utterance_id, code, (v, a, d)), ...]}."""
    for i, (dialog, rows) in enumerate(dialogs.items()):
        session = root / f"Session{int(dialog[3:5])}"
        (session / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
        (session / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text(evaluation(rows))
        for j, row in enumerate(rows):
            if row[2] not in skip_wav:
                write_wav(session / "sentences" / "wav" / dialog / f"{row[2]}.wav",
                          duration=0.2, seed=10 * i + j)
    return root


DIALOGS = {
    "Ses01F_impro01": [
        (6.2901, 8.2357, "Ses01F_impro01_F000", "neu", (2.5, 2.5, 2.5)),
        (10.01, 11.3925, "Ses01F_impro01_M013", "exc", (4.0, 3.5, 3.0)),
        (14.8872, 18.0175, "Ses01F_impro01_F001", "fru", (2.0, 3.5, 3.5)),
        (19.29, 20.73, "Ses01F_impro01_M014", "ang", (1.5, 4.0, 4.5)),
    ],
    "Ses01F_script01_1": [
        (1.0, 2.5, "Ses01F_script01_1_M000", "sad", (1.5, 1.5, 2.0)),
        (3.0, 4.5, "Ses01F_script01_1_F000", "hap", (4.5, 3.0, 3.0)),
        (5.0, 6.0, "Ses01F_script01_1_F001", "xxx", (3.0, 3.0, 3.0)),
    ],
    "Ses02M_impro03": [
        (0.5, 1.9, "Ses02M_impro03_F002", "sad", (2.0, 2.0, 2.0)),
    ],
}


def test_iemocap_default_four_classes_with_excited_merged(tmp_path):
    root = make_iemocap(tmp_path / "iemocap", DIALOGS)
    s1 = root / "Session1" / "dialog" / "transcriptions"
    s1.mkdir()
    (s1 / "Ses01F_impro01.txt").write_text(
        "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.\n"
        "Ses01F_impro01_M013 [010.0100-011.3925]: Yeah, great!\n"
        "M: [BREATHING]\n")
    m = load_manifest("IEMOCAP", root)
    assert m.labels == ("anger", "happiness", "neutral", "sadness")
    by_id = {u.utterance_id: u for u in m}
    # fru and xxx are dropped; exc and hap both become happiness
    assert sorted(by_id) == ["Ses01F_impro01_F000", "Ses01F_impro01_M013", "Ses01F_impro01_M014",
                             "Ses01F_script01_1_F000", "Ses01F_script01_1_M000",
                             "Ses02M_impro03_F002"]
    u = by_id["Ses01F_impro01_F000"]
    assert (u.label, u.speaker, u.gender, u.text) == ("neutral", "Ses01F", "female", "Excuse me.")
    assert u.extra == {"session": 1, "dialog": "Ses01F_impro01", "category": "neu",
                       "start": 6.2901, "end": 8.2357, "valence": 2.5, "activation": 2.5,
                       "dominance": 2.5}
    assert u.path == str(root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")
    # a male turn inside a dialog whose name says F: speaker from the utterance id
    u = by_id["Ses01F_impro01_M013"]
    assert (u.label, u.speaker, u.gender, u.text) == ("happiness", "Ses01M", "male", "Yeah, great!")
    assert (u.extra["valence"], u.extra["activation"], u.extra["dominance"]) == (4.0, 3.5, 3.0)
    assert by_id["Ses01F_script01_1_F000"].label == "happiness"
    assert by_id["Ses01F_script01_1_M000"].text is None  # no transcription file
    # a female turn inside a dialog whose name says M
    u = by_id["Ses02M_impro03_F002"]
    assert (u.speaker, u.gender, u.extra["session"]) == ("Ses02F", "female", 2)
    assert m.counts("label") == {"anger": 1, "happiness": 2, "neutral": 1, "sadness": 2}


def test_iemocap_drop_excited_and_subsets(tmp_path):
    root = make_iemocap(tmp_path / "iemocap", DIALOGS)
    ids = lambda **o: sorted(u.utterance_id for u in load_manifest("IEMOCAP", root, **o))
    assert "Ses01F_impro01_M013" not in ids(merge_excited=False)
    assert len(ids(merge_excited=False)) == 5
    assert ids(subset="impro") == ["Ses01F_impro01_F000", "Ses01F_impro01_M013",
                                   "Ses01F_impro01_M014", "Ses02M_impro03_F002"]
    assert ids(subset="script") == ["Ses01F_script01_1_F000", "Ses01F_script01_1_M000"]
    assert get_corpus("IEMOCAP", subset="impro").options() == {"merge_excited": True,
                                                               "subset": "impro"}


def test_iemocap_rejects_bad_options():
    with pytest.raises(ValueError, match="subset"):
        get_corpus("IEMOCAP", subset="improvised")
    with pytest.raises(ValueError, match="merge_excited"):
        get_corpus("IEMOCAP", merge_excited="yes")


def test_iemocap_missing_wav_is_an_error_naming_it(tmp_path):
    root = make_iemocap(tmp_path / "iemocap", DIALOGS, skip_wav={"Ses01F_impro01_M014"})
    with pytest.raises(CorpusLayoutError, match=r"Ses01F_impro01_M014\.wav.*missing audio"):
        load_manifest("IEMOCAP", root)


def test_iemocap_wav_of_dropped_category_may_be_missing(tmp_path):
    root = make_iemocap(tmp_path / "iemocap", DIALOGS, skip_wav={"Ses01F_impro01_F001"})
    assert len(load_manifest("IEMOCAP", root)) == 6


def test_iemocap_malformed_summary_line_names_file_and_line(tmp_path):
    root = make_iemocap(tmp_path / "iemocap", DIALOGS)
    txt = root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02M_impro03.txt"
    txt.write_text(HEADER + "[0.5 - 1.9]\tSes02M_impro03_F002\tsad\n")
    with pytest.raises(CorpusLayoutError, match=r"Ses02M_impro03\.txt:3: malformed"):
        load_manifest("IEMOCAP", root)


@pytest.mark.parametrize("utt, code, message", [
    ("Ses02M_impro04_F002", "sad", "does not belong to dialog"),
    ("Ses02M_impro03_X002", "sad", "does not belong to dialog"),
    ("Ses02M_impro03_F002", "happy", "unknown category"),
])
def test_iemocap_rejects_foreign_ids_and_codes(tmp_path, utt, code, message):
    root = make_iemocap(tmp_path / "iemocap", DIALOGS)
    txt = root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02M_impro03.txt"
    txt.write_text(evaluation([(0.5, 1.9, utt, code, (2, 2, 2))]))
    with pytest.raises(CorpusLayoutError, match=rf"Ses02M_impro03\.txt:3: .*{message}"):
        load_manifest("IEMOCAP", root)


def test_iemocap_needs_session_folders(tmp_path):
    (tmp_path / "iemocap" / "wav").mkdir(parents=True)
    with pytest.raises(CorpusLayoutError, match="Session1"):
        load_manifest("IEMOCAP", tmp_path / "iemocap")


@pytest.mark.integration
def test_real_iemocap_counts(shared_data):
    root = shared_data / "iemocap"
    if not root.is_dir():
        pytest.skip("IEMOCAP not present")
    m = load_manifest("IEMOCAP", root, check_audio=False)
    assert m.counts("label") == {"anger": 1103, "happiness": 1636, "neutral": 1708,
                                 "sadness": 1084}
    assert len(m.counts("speaker")) == 10
