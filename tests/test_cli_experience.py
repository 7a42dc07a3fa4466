"""What a user of ``ser-tf train`` sees: bad numbers end in argparse's one-line usage error,
long runs say how long they have left and what a silent step is doing, a finished run prints
its scores, TensorFlow's start-up chatter stays hidden unless ``-v``, ``--help`` answers
without importing TensorFlow, and runs go to the user's data folder unless told otherwise."""

from __future__ import annotations

import io
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ser_tf.experiments import common, runner
from ser_tf.util import quiet, status

REPO = Path(__file__).resolve().parents[1]
PAPERS = ("lightsernet", "timnet")


def child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", **extra)
    return env


def python(*args, timeout=120, **env):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          cwd=REPO, env=child_env(**env), timeout=timeout)


def paper_parser(paper):
    import importlib

    return importlib.import_module(f"ser_tf.experiments.{paper}").build_parser()


def parse_error(paper, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        paper_parser(paper).parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# --- 1. numbers are checked while parsing ----------------------------------------------------

@pytest.mark.parametrize("paper", PAPERS)
@pytest.mark.parametrize("argv,message", [
    (["--epochs", "0"], "argument --epochs: expected a whole number >= 1"),
    (["--epochs", "-1"], "argument --epochs: expected a whole number >= 1"),
    (["--batch-size", "0"], "argument --batch-size: expected a whole number >= 1"),
    (["--folds", "0"], "argument --folds: expected a number of folds >= 2"),
    (["--folds", "1"], "needs at least 2 folds, got 1"),
    (["--folds", "1", "--protocol", "speaker"], "'speaker' needs at least 2 folds"),
])
def test_bad_numbers_are_one_usage_error(paper, argv, message, capsys):
    line = parse_error(paper, argv, capsys)
    assert line.startswith(f"python -m ser_tf.experiments.{paper}: error: ") and message in line


@pytest.mark.parametrize("argv,message", [
    (["--ship-fold", "10"], "argument --ship-fold: folds are numbered 0 to 9 (--folds 10), got 10"),
    (["--ship-fold", "2", "--folds", "2"], "argument --ship-fold: folds are numbered 0 to 1"),
    (["--ship-fold", "-1"], "argument --ship-fold: expected a whole number >= 0"),
    (["--protocol", "paper-time", "--folds", "46"], "paper-time has 45 repetitions"),
])
def test_lightsernet_ship_fold_and_repetitions_in_range(argv, message, capsys):
    assert message in parse_error("lightsernet", argv, capsys)


@pytest.mark.parametrize("argv,message", [
    (["--check-every", "0"], "argument --check-every: expected a whole number >= 1"),
    (["--patience", "0"], "argument --patience: expected a whole number >= 1"),
    (["--min-epochs", "-2"], "argument --min-epochs: expected a whole number >= 0"),
    (["--blocks", "0"], "argument --blocks: expected a whole number >= 1"),
])
def test_timnet_numbers(argv, message, capsys):
    assert message in parse_error("timnet", argv, capsys)


def test_valid_numbers_still_parse():
    args = paper_parser("lightsernet").parse_args(
        ["--protocol", "paper-time", "--folds", "1", "--ship-fold", "0", "--epochs", "1",
         "--batch-size", "1", "--train-folds", "0"])
    assert (args.folds, args.ship_fold, args.epochs, args.batch_size) == (1, 0, 1, 1)
    args = paper_parser("timnet").parse_args(["--folds", "2", "--min-epochs", "0",
                                              "--patience", "3", "--check-every", "2"])
    assert (args.folds, args.min_epochs, args.patience, args.check_every) == (2, 0, 3, 2)


def test_cli_usage_error_is_one_line_and_quick():
    start = time.perf_counter()
    out = python("-m", "ser_tf.cli", "train", "lightsernet", "--epochs", "0")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        "ser-tf train lightsernet: error: argument --epochs: expected a whole number >= 1 "
        "(e.g. 10), got '0'")
    assert time.perf_counter() - start < 20  # no TensorFlow import before the answer


def test_ship_fold_beyond_the_folds_the_run_has_is_a_user_error(tmp_path):
    """``--folds 10`` on a corpus with fewer speakers makes fewer folds: said in one line."""
    from ser_tf.papers.lightsernet.experiment import ship
    from ser_tf.util.errors import UserError

    args = paper_parser("lightsernet").parse_args(["--ship-fold", "5", "--protocol", "speaker"])
    plan = SimpleNamespace(folds=[0, 1, 2, 3], run_id="speaker-0123456789", work_dir=tmp_path)
    with pytest.raises(UserError, match=r"--ship-fold 5: run speaker-0123456789 has 4 folds, "
                                        r"numbered 0 to 3"):
        ship(args, None, plan)
    assert issubclass(UserError, common.user_errors())


def test_names_spelled_in_common_match_their_modules():
    from ser_tf.papers.lightsernet import folds as lightsernet_folds
    from ser_tf.papers.lightsernet.experiment import PAPER_TIME_MAX_REPETITIONS
    from ser_tf.training import protocols, seeding

    assert common.PROTOCOLS == protocols.PROTOCOLS
    assert common.STRATEGIES == seeding.STRATEGIES
    assert set(common.REPETITION_PROTOCOLS) <= set(lightsernet_folds.SPLIT.overlapping)
    assert PAPER_TIME_MAX_REPETITIONS == len(lightsernet_folds.paper_time_pairs(45))
    with pytest.raises(ValueError):
        lightsernet_folds.paper_time_pairs(PAPER_TIME_MAX_REPETITIONS + 1)


# --- 2. time left, silent steps, the final summary -------------------------------------------

def test_format_duration():
    assert [status.format_duration(s) for s in (3.14, 45, 725, 10930)] == \
        ["3.1s", "45s", "12m05s", "3h02m10s"]


def test_run_clock_estimates_from_folds_then_epochs():
    clock = status.RunClock(10, 3, epochs=100)
    clock.fold_started()
    # No fold done yet: the rest of this fold, then 2 folds of 100 epochs at 2 s.
    assert clock.folds_after_current == 2
    assert clock.run_left(50.0, 2.0) == pytest.approx(50 + 2 * 200)
    # Folds finished in an earlier session: their median training time.
    clock = status.RunClock(10, 3, epochs=100, finished_fold_seconds=[300, 100, 120])
    clock.fold_started()
    assert clock.run_left(10.0, 2.0) == pytest.approx(10 + 2 * 120)
    # This session's folds (training and export) win once there are some.
    clock.walls = [400.0]
    assert clock.run_left(10.0, 2.0) == pytest.approx(10 + 2 * 400)
    clock.started = 3  # the last fold: only its own time is left
    assert clock.run_left(10.0, 2.0) == 10.0
    # A fold resumed from its backup took part of a fold's time: it is not a sample.
    clock = status.RunClock(10, 3, epochs=100, finished_fold_seconds=[300])
    clock.fold_started(resumed=True)
    clock._fold_start -= 20.0  # its last 20 s
    clock.fold_started()
    assert clock.walls == [] and clock.run_left(10.0, 2.0) == pytest.approx(10 + 300)
    clock._fold_start -= 250.0
    clock.fold_started()
    assert clock.walls == [pytest.approx(250.0, abs=1.0)]


def fit_tiny(logger, epochs=3):
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    model.fit(x, (x[:, 0] > 0).astype("int32"), epochs=epochs, batch_size=4, verbose=0,
              callbacks=[logger])


def test_epoch_lines_say_what_the_fold_and_the_run_have_left():
    from ser_tf.training.progress import EpochLogger

    out = io.StringIO()
    clock = status.RunClock(5, 3, epochs=3)
    with status.run_clock(clock):
        clock.fold_started()
        fit_tiny(EpochLogger(2, 5, stream=out, tty=False))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert re.search(r"^fold 2/5 epoch 1/3 loss .* \d+\.\ds \| left: fold \S+s, run \S+s$",
                     lines[0]), lines[0]
    # The fold's last epoch: nothing left of it, two more folds of the run.
    assert " | left: run " in lines[2] and "fold " not in lines[2].split("|")[1]
    # Without a run around it (a lone fit), only the fold's time left; nothing at its end.
    out = io.StringIO()
    fit_tiny(EpochLogger(1, 1, stream=out, tty=False), epochs=2)
    first, last = out.getvalue().splitlines()
    assert "| left: fold " in first and ", run" not in first and "left" not in last


def test_step_lines_plain_and_quiet():
    out = io.StringIO()
    with status.step("fold 3/10: TFLite export", stream=out, tty=False):
        pass
    start, end = out.getvalue().splitlines()
    assert start == "fold 3/10: TFLite export ..."
    assert re.fullmatch(r"fold 3/10: TFLite export: done in \d+\.\ds", end)
    out = io.StringIO()
    with pytest.raises(RuntimeError), status.step("t-SNE", stream=out, tty=False):
        raise RuntimeError("boom")
    assert "t-SNE: failed after" in out.getvalue()
    out = io.StringIO()
    with status.step("t-SNE", stream=out, quiet=True):
        pass
    assert out.getvalue() == ""


def test_step_counts_seconds_on_a_terminal():
    out = io.StringIO()
    with status.step("export", stream=out, tty=True, every=0.05):
        time.sleep(0.2)
    text = out.getvalue()
    assert text.startswith("export ...") and "\rexport ... " in text
    assert text.endswith("\x1b[K\n") and "\rexport: done in " in text


def test_fold_export_and_tsne_say_what_they_do(monkeypatch, capsys, tmp_path):
    import numpy as np

    import ser_tf.export.evaluate as evaluate
    import ser_tf.reporting.plots as plots
    from ser_tf.export import folds as export_folds
    from ser_tf.reporting import embeddings

    monkeypatch.setattr(evaluate, "current_fold_export", lambda work_dir, fold: None)
    monkeypatch.setattr(evaluate, "ensure_fold_export", lambda *a, **k: {"fold": 2})
    fold = SimpleNamespace(index=2, test_ids=["a"])
    with status.run_clock(status.RunClock(10, 1)):
        assert export_folds.export_fold(tmp_path, fold, None, None, None, name="m") == {"fold": 2}
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"fold 3/10: {export_folds.STEP} ..."
    assert err[1].startswith(f"fold 3/10: {export_folds.STEP}: done in ")
    # Already exported: read back, nothing said.
    monkeypatch.setattr(evaluate, "current_fold_export", lambda work_dir, fold: {"fold": 2})
    export_folds.export_fold(tmp_path, fold, None, None, None, name="m")
    assert capsys.readouterr().err == ""

    x = np.random.default_rng(0).normal(size=(12, 4))
    monkeypatch.setattr(embeddings, "fold_embeddings", lambda *a, **k: (
        x, np.arange(12) % 2, np.repeat([1, 2], 6)))
    monkeypatch.setattr(plots, "plot_tsne", lambda *a, **k: None)
    labels = SimpleNamespace(label_names=["a", "b"])
    embeddings.write_tsne(tmp_path, [fold, fold], labels, None, None, tmp_path / "t.png")
    err = capsys.readouterr().err
    assert "t-SNE of 2 folds' test embeddings (12 points) ..." in err and "done in" in err
    embeddings.write_tsne(tmp_path, [fold, fold], labels, None, None, tmp_path / "t.png",
                          quiet=True)
    assert capsys.readouterr().err == ""


def fake_record(folder: Path, **extra) -> Path:
    folder.mkdir(parents=True)
    record = {"run_id": "speaker-0123456789", "paper": "lightsernet", "corpus": "EMODB",
              "protocol": "speaker", "protocol_warning": None, "wall_time_seconds": 7384.0,
              "summary": {"UA": {"mean": 70.52178, "std": 8.94531},
                          "WA": {"mean": 72.22124, "std": 7.97297},
                          "macro_F1": {"mean": 66.4, "std": 10.4}, "n_folds": 10},
              **extra}
    (folder / "record.json").write_text(json.dumps(record))
    return folder


def test_summary_lines_of_a_finished_run(tmp_path):
    folder = fake_record(tmp_path / "r", summary_last_epoch={"UA": {"mean": 68.0, "std": 9.0},
                                                               "WA": {"mean": 69.5, "std": 8.0}})
    lines = runner.summary_lines({"run_id": "speaker-0123456789", "record": folder})
    assert lines == [
        "run speaker-0123456789 (lightsernet EMODB, protocol speaker): 10 folds, 2h03m04s of "
        "training",
        "  UA 70.52 ± 8.95, WA 72.22 ± 7.97  (mean ± std over folds)",
        "  last epoch: UA 68.00 ± 9.00, WA 69.50 ± 8.00",
        f"  record: {folder}"]
    assert runner.summary_lines({"run_id": "x", "record": None}) == []
    assert runner.summary_lines({"run_id": "x", "record": tmp_path / "shipped.json"}) == []


def test_main_prints_the_summary_after_the_run(tmp_path, monkeypatch, capsys):
    from ser_tf.papers import get_paper

    folder = fake_record(tmp_path / "r", protocol="paper",
                         protocol_warning="Protocol 'paper': optimistic.")
    monkeypatch.setattr(quiet, "import_tensorflow", lambda: None)
    monkeypatch.setattr(runner, "run", lambda spec, args: {
        "run_id": "speaker-0123456789", "record": folder, "n_folds": 10,
        "folds_done": list(range(10))})
    assert runner.main(get_paper("lightsernet"), ["--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("run speaker-0123456789 (lightsernet EMODB, protocol paper): ")
    assert "UA 70.52 ± 8.95, WA 72.22 ± 7.97" in out[1]
    assert out[-2:] == ["  NOTE: Protocol 'paper': optimistic.", f"  record: {folder}"]


def test_print_run_dir_names_the_runs_folder_and_trains_nothing(tmp_path, monkeypatch, capsys):
    """Scripts that act on a run's folder (figures, shipping) ask the experiment for it."""
    from ser_tf.data.synthetic import make_emodb_like
    from ser_tf.papers import get_paper

    root = make_emodb_like(tmp_path / "emodb", per_class=4, duration=0.5)
    monkeypatch.setattr(quiet, "import_tensorflow", lambda: None)
    flags = ["--data-dir", str(root), "--results-dir", str(tmp_path / "results"),
             "--cache-dir", str(tmp_path / "cache"), "--protocol", "speaker", "--folds", "2"]
    spec = get_paper("lightsernet")
    assert runner.main(spec, [*flags, "--print-run-dir"]) == 0
    printed = capsys.readouterr().out.splitlines()
    expected = runner.plan(spec, paper_parser("lightsernet").parse_args(flags)).work_dir
    assert printed == [str(expected)]
    assert expected.name.startswith("speaker-") and expected.name.endswith(".work")
    assert not (tmp_path / "results").exists()  # nothing planned on disk, nothing trained


# --- 3. TensorFlow's chatter ------------------------------------------------------------------

def test_native_lines_are_filtered_in_quiet_mode_only(capfd):
    noise = ("WARNING: All log messages before absl::InitializeLog() is called are written "
             "to STDERR\nI0000 00:00:1796388448.886703   12301 port.cc:153] oneDNN custom "
             "operations are on.\nfully_quantize: 0, inference_type: 6, input_inference_type: "
             "INT8, output_inference_type: INT8\nINFO: Created TensorFlow Lite XNNPACK delegate "
             "for CPU.\n")
    with quiet.command_line_output(verbose=False):
        with quiet.filtered_native_stderr():
            os.write(2, (noise + "E0000 something real failed\n").encode())
            print("progress line", file=sys.stderr, flush=True)
    err = capfd.readouterr().err
    assert "something real failed" in err and "progress line" in err
    assert "oneDNN" not in err and "fully_quantize" not in err and "absl" not in err
    assert "XNNPACK" not in err
    with quiet.filtered_native_stderr():  # not configured: nothing is held back
        os.write(2, noise.encode())
    assert capfd.readouterr().err == noise
    with quiet.command_line_output(verbose=True), quiet.filtered_native_stderr():
        os.write(2, noise.encode())
    assert capfd.readouterr().err == noise
    assert not quiet.is_quiet()  # the block's settings are gone


def test_configure_keeps_a_level_the_user_set(monkeypatch):
    import ser_tf

    monkeypatch.setattr(ser_tf, "USER_TF_CPP_MIN_LOG_LEVEL", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    with quiet.command_line_output(verbose=True):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    monkeypatch.setattr(ser_tf, "USER_TF_CPP_MIN_LOG_LEVEL", None)
    with quiet.command_line_output(verbose=True):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    with quiet.command_line_output(verbose=False):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


#: A retracing warning (Python logging) after a quiet or verbose command-line set-up.
RETRACE = """
import sys
from ser_tf.util import quiet
with quiet.command_line_output(verbose=sys.argv[1] == "verbose"):
    quiet.import_tensorflow()
    import tensorflow as tf
    for i in range(8):
        tf.function(lambda x: x * 2)(tf.constant(float(i)))
    print("END", file=sys.stderr)
"""


def test_tensorflow_start_up_and_warnings_hidden_unless_verbose():
    quiet_run = python("-c", RETRACE, "quiet", timeout=300)
    assert quiet_run.returncode == 0, quiet_run.stderr
    assert quiet_run.stderr.strip() == "END"
    verbose_run = python("-c", RETRACE, "verbose", timeout=300)
    assert verbose_run.returncode == 0, verbose_run.stderr
    assert "retracing" in verbose_run.stderr


@pytest.mark.parametrize("paper", PAPERS)
def test_a_failing_run_prints_its_error_and_nothing_of_tensorflow(paper, tmp_path):
    argv = ["-m", f"ser_tf.experiments.{paper}", "--data-dir", str(tmp_path / "none"),
            "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")]
    out = python(*argv, timeout=300)
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr  # the error alone: no start-up chatter
    assert lines[0].startswith(
        f"python -m ser_tf.experiments.{paper}: error: {tmp_path / 'none'}: not a folder")
    if platform.machine() in ("x86_64", "AMD64") and paper == "timnet":
        # -v: TensorFlow's own start-up lines again (oneDNN / CUDA probing on x86 Linux).
        loud = python(*argv, "-v", timeout=300)
        assert loud.returncode == 1 and "Traceback" not in loud.stderr
        assert len(loud.stderr.splitlines()) > 1, loud.stderr


# --- 4. --help without TensorFlow -----------------------------------------------------------

BUILD_PARSERS = """
import sys
from ser_tf.cli import build_parser
from ser_tf.experiments import lightsernet, timnet, runner
from ser_tf.papers import get_paper, paper_names
build_parser()
lightsernet.build_parser().parse_args([])
timnet.build_parser().parse_args([])
for name in paper_names():
    runner.build_parser(get_paper(name))
heavy = {"tensorflow", "keras", "sklearn", "tf_keras"}
print(sorted({m.split(".")[0] for m in sys.modules} & heavy))
"""


def test_building_the_parsers_imports_no_tensorflow():
    out = python("-c", BUILD_PARSERS)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [
    ["-m", "ser_tf.cli", "--help"],
    ["-m", "ser_tf.cli", "train", "lightsernet", "--help"],
    ["-m", "ser_tf.cli", "train", "timnet", "--help"],
    ["-m", "ser_tf.cli", "predict", "--help"],
    ["-m", "ser_tf.cli", "data", "--help"],
    ["-m", "ser_tf.lite.predict", "--help"],
    ["-m", "ser_tf.experiments.lightsernet", "--help"],
    ["-m", "ser_tf.experiments.timnet", "--help"],
    ["-m", "ser_tf.experiments.attention_fcn", "--help"],
    ["-m", "ser_tf.experiments.cnn_family", "--help"],
    ["-m", "ser_tf.experiments.semantic", "--help"],
])
def test_help_is_quick(command):
    start = time.perf_counter()
    out = python(*command)
    elapsed = time.perf_counter() - start
    assert out.returncode == 0 and "usage:" in out.stdout
    # Under a second on an idle machine (it was 6-14 s importing TensorFlow); generous here
    # for a busy CI machine.
    assert elapsed < 5, f"{' '.join(command)}: {elapsed:.1f}s"


# --- 5. where runs go by default ------------------------------------------------------------

def test_results_go_to_the_users_data_folder(monkeypatch, tmp_path):
    from ser_tf.util.paths import default_results_dir

    monkeypatch.setenv("SER_TF_RESULTS", str(tmp_path / "mine"))
    for paper in PAPERS:
        assert paper_parser(paper).parse_args([]).results_dir == str(tmp_path / "mine")
    monkeypatch.delenv("SER_TF_RESULTS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_results_dir() == tmp_path / "xdg" / "ser-tf" / "results"
    assert paper_parser("timnet").parse_args([]).results_dir == \
        str(tmp_path / "xdg" / "ser-tf" / "results")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_results_dir() == tmp_path / "home" / ".local" / "share" / "ser-tf" / "results"
    assert paper_parser("lightsernet").parse_args(["--results-dir", "elsewhere"]).results_dir \
        == "elsewhere"


def test_plan_without_results_dir_uses_the_users_data_folder():
    import inspect

    for function in (runner.plan_experiment, runner.run_experiment):
        assert inspect.signature(function).parameters["results_dir"].default is None


def makefile_commands() -> list[str]:
    """The Makefile's recipe commands, continuation lines joined."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.startswith("\t")]


def test_makefile_targets_write_and_read_the_committed_records():
    text = (REPO / "Makefile").read_text()
    assert re.search(r"^RESULTS_DIR :?= experiments/results$", text, re.M)
    commands = makefile_commands()
    runs = [c for c in commands if "ser_tf.experiments." in c or "ser_tf.bench." in c]
    reports = [c for c in commands if "ser-tf report" in c]
    assert len(runs) >= 4 and len(reports) >= 2
    for command in runs:
        assert "--results-dir $(RESULTS_DIR)" in command, command
    for command in reports:
        assert "--results $(RESULTS_DIR)" in command, command


def test_train_help_lists_the_papers_and_exits_zero(capsys):
    """`ser-tf train --help` (no paper yet) answers with the papers, not an argparse error."""
    from ser_tf.cli import main
    from ser_tf.papers import paper_names

    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: ser-tf train" in out and "`ser-tf train PAPER --help`" in out
    assert all(name in out for name in paper_names())
