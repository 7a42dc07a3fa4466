import subprocess
import sys

import pytest

from ser_tf import __version__
from ser_tf.cli import main
from ser_tf.data.synthetic import write_wav


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ser_tf.cli", *args], capture_output=True, text=True)


def test_version_and_help_list_subcommands():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"ser-tf {__version__}"
    out = run_cli("--help")
    assert out.returncode == 0 and "data" in out.stdout
    out = run_cli("data", "--help")
    assert out.returncode == 0 and "download" in out.stdout and "check" in out.stdout


def test_data_check_reports_counts_and_what_is_missing(tmp_path, capsys):
    root = tmp_path / "emodb"
    for i, name in enumerate(["03a01Fa.wav", "03a02Wa.wav", "08a01Wb.wav"]):
        write_wav(root / "wav" / name, duration=0.3, seed=i)
    (root / "wav" / "09a01Nc.wav").write_bytes(b"")
    code = main(["data", "check", "emodb", "--data-dir", str(root)])
    out = capsys.readouterr().out
    assert code == 1
    assert "3 usable recordings" in out
    assert "anger 2" in out and "happiness 1" in out and "boredom 0" in out
    assert "03 2" in out and "08 1" in out
    assert "09a01Nc.wav: empty file" in out
    assert "4 files found, the complete release has 535: 534 missing: 03a01Nc.wav, " in out
    assert "no recordings for class(es) boredom, disgust, fear, sadness, neutral" in out


def test_data_dir_from_environment(tmp_path, capsys, monkeypatch):
    write_wav(tmp_path / "root" / "emodb" / "wav" / "03a01Fa.wav", duration=0.3)
    monkeypatch.setenv("SER_TF_DATA", str(tmp_path / "root"))
    assert main(["data", "check", "EMODB"]) == 1
    assert "1 usable recordings" in capsys.readouterr().out


def test_missing_data_dir_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.delenv("SER_TF_DATA", raising=False)
    out = run_cli("data", "check", "EMODB")
    assert out.returncode == 1
    assert "--data-dir" in out.stderr and "SER_TF_DATA" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.integration
def test_check_real_emodb_is_complete(shared_data, capsys):
    assert main(["data", "check", "EMODB", "--data-dir", str(shared_data / "emodb")]) == 0
    out = capsys.readouterr().out
    assert "535 usable recordings" in out and out.strip().endswith("OK")


def test_data_manifest_fail_and_skip(tmp_path, capsys):
    root = tmp_path / "emodb"
    write_wav(root / "wav" / "03a01Fa.wav", duration=0.3)
    write_wav(root / "wav" / "03a02Wa.wav", duration=0.3, seed=1)
    (root / "wav" / "09a01Nc.wav").write_text("not audio")
    out_csv = tmp_path / "m.csv"
    assert main(["data", "manifest", "EMODB", "--data-dir", str(root), "--out", str(out_csv)]) == 1
    assert "09a01Nc.wav: not a readable audio file" in capsys.readouterr().out
    assert not out_csv.exists()
    assert main(["data", "manifest", "EMODB", "--data-dir", str(root), "--out", str(out_csv),
                 "--on-bad-audio", "skip"]) == 0
    assert "skipped: " in capsys.readouterr().out
    rows = out_csv.read_text().splitlines()
    assert rows[0].startswith("utterance_id,path,label") and len(rows) == 3
    from ser_tf.data import load_manifest
    again = load_manifest("CSV", tmp_path, manifest="m.csv",
                          labels=("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"))
    assert sorted(u.label for u in again) == ["anger", "happiness"]


@pytest.mark.parametrize("name", ["attention_fcn", "cnn_family", "lightsernet", "semantic",
                                  "timnet"])
def test_each_paper_takes_folds_and_seed_defaults_from_its_config(name):
    from ser_tf.experiments import runner
    from ser_tf.papers import get_paper

    spec = get_paper(name)
    config = spec.config()
    args = runner.build_parser(spec, prog="x").parse_args([])
    assert args.folds == config["folds"]
    assert args.seed == config["seed"]
