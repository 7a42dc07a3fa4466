"""The model cards' Pi commands as ``ser_tf.bench.device_install`` reads them (the bench
itself needs the package index; its record is in experiments/results/bench/)."""

import pytest

from ser_tf.bench.device_install import REPO, _copy_like_scp, card_commands, venv_of


def test_every_shipped_card_has_the_three_pi_commands_in_order():
    cards = [c for c in (REPO / "tflite_models").glob("*.md")
             if "python3 -m venv" in c.read_text(encoding="utf-8")]
    assert cards, "no shipped model card with Pi commands"
    for card in cards:
        commands = card_commands(card)
        assert "pip install ai-edge-litert numpy soundfile soxr" in commands["install"]
        # The copy names ser_tf/ and the card's own model and sidecar, which exist.
        assert f"tflite_models/{card.stem}.tflite" in commands["copy"]
        assert f"tflite_models/{card.stem}.json" in commands["copy"]
        assert f"--model {card.stem}.tflite" in commands["run"]


def test_scp_line_becomes_a_copy_and_bad_cards_are_named(tmp_path):
    card = next(c for c in (REPO / "tflite_models").glob("*.md")
                if "python3 -m venv" in c.read_text(encoding="utf-8"))
    copied = _copy_like_scp(card_commands(card)["copy"], tmp_path)
    assert (tmp_path / "ser_tf" / "lite" / "predict.py").is_file()
    assert (tmp_path / f"{card.stem}.tflite").is_file() and len(copied) == 3
    assert not list((tmp_path / "ser_tf").rglob("__pycache__"))
    with pytest.raises(FileNotFoundError, match="no/such.tflite"):
        _copy_like_scp("scp -r no/such.tflite pi@raspberrypi.local:", tmp_path)
    bad = tmp_path / "bad.md"
    bad.write_text("```bash\npython3 -m venv x\nrsync a b\n```\n")
    with pytest.raises(ValueError, match="bad.md: the Pi block is not venv"):
        card_commands(bad)
    bad.write_text("no commands")
    with pytest.raises(ValueError, match="bad.md: no ```bash block"):
        card_commands(bad)


def test_the_venv_is_read_from_the_install_line(tmp_path):
    line = "python3 -m venv ~/ser-env && ~/ser-env/bin/pip install ai-edge-litert numpy"
    assert venv_of(line, tmp_path) == tmp_path / "ser-env"
    with pytest.raises(ValueError, match="without `python3 -m venv DIR`"):
        venv_of("pip install numpy", tmp_path)
