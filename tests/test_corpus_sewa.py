from pathlib import Path

import numpy as np
import pytest

from ser_tf.data import get_corpus, load_manifest
from ser_tf.data.corpora.base import CorpusLayoutError
from ser_tf.data.corpora.sewa import (read_sewa_labels, read_sewa_transcription,
                                      read_sewa_turns)
from ser_tf.data.synthetic import write_wav


def label_rows(stem: str, n: int = 5, delim: str = ";", header: bool = False) -> str:
    rows = [delim.join(["Instance_name", "time", "Arousal", "Valence", "Liking"])] if header else []
    for i in range(n):
        rows.append(delim.join([f"'{stem}'", f"{i / 10:.1f}", f"{0.01 * i:.3f}",
                                f"{-0.02 * i:.3f}", f"{0.5:.3f}"]))
    return "\n".join(rows) + "\n"


def make_sewa(root: Path, stems, *, labels=True, extras=True):
    for i, stem in enumerate(stems):
        write_wav(root / "audio" / f"{stem}.wav", duration=0.2, seed=i)
        if labels and not stem.startswith("Test"):
            (root / "labels").mkdir(parents=True, exist_ok=True)
            (root / "labels" / f"{stem}.csv").write_text(label_rows(stem))
        if extras:
            for sub, text in (("transcriptions", "0.35;1.20;Ja, das ist gut\n2.00;2.80;okay\n"),
                              ("turns", "0.30;1.25\n1.90;2.85\n")):
                (root / sub).mkdir(parents=True, exist_ok=True)
                (root / sub / f"{stem}.csv").write_text(text)
    return root


def test_sewa_default_partitions_and_fields(tmp_path):
    root = make_sewa(tmp_path / "sewa", ["Train_01", "Train_02", "Devel_01", "Test_01"])
    m = load_manifest("SEWA", root)
    assert m.labels == ("arousal", "valence", "liking")
    assert get_corpus("SEWA").task == "regression"
    by_id = {u.utterance_id: u for u in m}
    assert sorted(by_id) == ["Devel_01", "Train_01", "Train_02"]  # no Test by default
    u = by_id["Train_02"]
    assert (u.label, u.speaker, u.gender, u.corpus) == (None, "Train_02", None, "SEWA")
    assert u.text == "Ja, das ist gut okay"
    assert u.extra == {"partition": "Train",
                       "labels_csv": str(root / "labels" / "Train_02.csv"),
                       "transcription_csv": str(root / "transcriptions" / "Train_02.csv"),
                       "turns_csv": str(root / "turns" / "Train_02.csv")}
    assert by_id["Devel_01"].extra["partition"] == "Devel"


def test_sewa_test_partition_without_labels_and_optional_files(tmp_path):
    root = make_sewa(tmp_path / "sewa", ["Train_01", "Test_01"], extras=False)
    m = load_manifest("SEWA", root, partitions=("Test",))
    assert [u.utterance_id for u in m] == ["Test_01"]
    assert m[0].extra == {"partition": "Test"} and m[0].text is None
    assert len(load_manifest("SEWA", root, partitions="Train")) == 1


def test_sewa_label_reader_10hz(tmp_path):
    path = tmp_path / "Train_01.csv"
    path.write_text(label_rows("Train_01", n=20))
    labels = read_sewa_labels(path)
    assert set(labels) == {"time", "arousal", "valence", "liking"}
    assert labels["time"].shape == (20,) and labels["time"].dtype == np.float32
    np.testing.assert_allclose(np.diff(labels["time"]), 0.1, atol=1e-6)
    np.testing.assert_allclose(labels["arousal"][:3], [0.0, 0.01, 0.02], atol=1e-6)
    np.testing.assert_allclose(labels["valence"][:3], [0.0, -0.02, -0.04], atol=1e-6)
    np.testing.assert_allclose(labels["liking"], 0.5)


def test_sewa_label_reader_header_comma_and_named_columns(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(label_rows("Train_01", n=4, delim=",", header=True))
    labels = read_sewa_labels(path)
    np.testing.assert_allclose(labels["time"], [0.0, 0.1, 0.2, 0.3], atol=1e-6)
    np.testing.assert_allclose(labels["valence"], [0.0, -0.02, -0.04, -0.06], atol=1e-6)
    # columns found by name when the header gives them in another order
    path.write_text("name;time;liking;arousal;valence\nx;0.0;0.9;0.1;0.2\nx;0.1;0.8;0.3;0.4\n")
    labels = read_sewa_labels(path)
    np.testing.assert_allclose(labels["liking"], [0.9, 0.8])
    np.testing.assert_allclose(labels["arousal"], [0.1, 0.3])


@pytest.mark.parametrize("text, message", [
    ("x;0.0;0.1;0.2;0.3\nx;0.1;0.1;abc;0.3\n", r"a\.csv:2: valence 'abc'"),
    ("x;0.0;0.1;0.2;0.3\nx;0.1;0.1\n", r"a\.csv:2: expected at least 5"),
    ("x;0.1;0.1;0.2;0.3\nx;0.1;0.1;0.2;0.3\n", r"a\.csv:2: time 0\.1.* does not increase"),
    ("instance;time;arousal;valence;liking\n", r"a\.csv: no label rows"),
])
def test_sewa_label_reader_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_sewa_labels(path)


def test_sewa_turn_and_transcription_readers(tmp_path):
    turns = tmp_path / "turns.csv"
    turns.write_text("start;end\n0.30;1.25\n\n1.90;2.85\n")
    assert read_sewa_turns(turns) == [(0.30, 1.25), (1.90, 2.85)]
    tr = tmp_path / "tr.csv"
    tr.write_text("0.35;1.20;Ja; das ist gut\n2.00;2.80;okay\n")
    assert read_sewa_transcription(tr) == [(0.35, 1.20, "Ja; das ist gut"), (2.0, 2.8, "okay")]
    tr.write_text('start,end,text\n0.35,1.20,"Ja, gut"\n')
    assert read_sewa_transcription(tr) == [(0.35, 1.20, "Ja, gut")]
    turns.write_text("0.30;1.25\n1.90;x\n")
    with pytest.raises(ValueError, match=r"turns\.csv:2: end 'x'"):
        read_sewa_turns(turns)
    turns.write_text("0.30;0.10\n")
    with pytest.raises(ValueError, match=r"turns\.csv:1: .*before it starts"):
        read_sewa_turns(turns)
    tr.write_text("0.35;1.20;hallo\n2.00\n")
    with pytest.raises(ValueError, match=r"tr\.csv:2: expected at least 3"):
        read_sewa_transcription(tr)


def test_sewa_layout_errors(tmp_path):
    root = make_sewa(tmp_path / "sewa", ["Train_01", "Dev_01"])
    with pytest.raises(CorpusLayoutError, match=r"Dev_01\.wav.*AVEC scheme"):
        load_manifest("SEWA", root)
    root = make_sewa(tmp_path / "sewa2", ["Train_01", "Devel_01"])
    (root / "labels" / "Devel_01.csv").unlink()
    with pytest.raises(CorpusLayoutError, match=r"Devel_01\.csv: missing label file"):
        load_manifest("SEWA", root)
    (root / "labels" / "Train_01.csv").write_text("x;0.0;0.1;0.2\n")
    with pytest.raises(ValueError, match=r"Train_01\.csv:1"):
        load_manifest("SEWA", root, partitions=["Train"])
    with pytest.raises(ValueError, match="partitions"):
        get_corpus("SEWA", partitions=("Train", "Validation"))
