"""The tempo check of the semantic proxy (``ser_tf.papers.semantic.tempo``): duration
relative to its sentence, correlated with the proxy's targets."""

import json

import numpy as np
import pytest

from ser_tf.data.dimensions import dimensional_targets
from ser_tf.data.synthetic import make_emodb_like
from ser_tf.papers.semantic.tempo import main, tempo_summary


def test_relative_duration_cancels_sentence_length_and_follows_the_labels():
    # Sentence "b" is twice as long as "a"; within each, sad utterances last 1.5x longer.
    durations = [1.0, 1.5, 1.0, 2.0, 3.0, 2.0]
    sentences = ["a", "a", "a", "b", "b", "b"]
    labels = ["anger", "sadness", "anger", "anger", "sadness", "anger"]
    summary = tempo_summary(durations, sentences, labels)
    assert summary["relative_duration_by_emotion"] == {"anger": 1.0, "sadness": 1.5}
    assert summary["mean_duration_s_by_emotion"] == {"anger": 1.5, "sadness": 2.25}
    relative = np.array([1.0, 1.5, 1.0, 1.0, 1.5, 1.0])
    for k, dim in enumerate(("arousal", "valence")):
        target = [dimensional_targets(label, dim)[0] for label in labels]
        assert summary["correlation"][dim] == pytest.approx(
            np.corrcoef(relative, target)[0, 1], abs=1e-4)
    # Sadness is calmer and more negative than anger: longer means lower on both.
    assert summary["correlation"]["arousal"] < -0.99
    assert summary["correlation"]["valence"] < 0 and summary["sentences"] == 2


def test_one_emotion_has_no_correlation_and_bad_input_is_named():
    assert tempo_summary([1, 2, 3], "aaa", ["fear"] * 3)["correlation"] == {
        "arousal": None, "valence": None}
    with pytest.raises(ValueError, match="differ in length"):
        tempo_summary([1, 2, 3], "aa", ["fear"] * 3)
    with pytest.raises(ValueError, match="positive"):
        tempo_summary([1, 0, 3], "aaa", ["fear"] * 3)
    with pytest.raises(ValueError, match="at least 3"):
        tempo_summary([1, 2], "aa", ["fear"] * 2)


def test_cli_writes_a_record_with_the_corpus_fingerprint(tmp_path, capsys):
    corpus = make_emodb_like(tmp_path / "emodb", per_class=2, classes="WTN")
    assert main(["--data-dir", str(corpus), "--results-dir", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "semantic" / "EMODB" / "tempo.json").read_text())
    assert record["n"] == 6 and record["data"]["files"] == 6
    assert set(record["mean_duration_s_by_emotion"]) == {"anger", "sadness", "neutral"}
    # A folder that is not a corpus: one line naming it, exit 1, nothing written.
    assert main(["--data-dir", str(tmp_path / "nothing"), "--results-dir",
                 str(tmp_path / "out2")]) == 1
    assert "nothing" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()
