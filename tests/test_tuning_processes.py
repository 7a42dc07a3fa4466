"""Searches across processes: a search killed mid-way resumes without rerunning its finished
trials, and keras-tuner's chief/worker mode runs one search with a chief and two workers
on localhost (tiny model, tiny data; each trial waits a moment so the processes overlap)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("keras_tuner")

from ser_tf.tuning.distributed import environment  # noqa: E402

# One search: 60 two-feature utterances, a Dense model, a 6 x 3 grid; every epoch of a
# trial sleeps PAUSE seconds (so another process or a kill can happen in between).
SCRIPT = r'''
import json, sys, time
import keras
import numpy as np
from ser_tf.features.cache import FeatureSet
from ser_tf.training.classifier import FitConfig
from ser_tf.training.protocols import Fold
from ser_tf.training.sources import CachedFeatureSource
from ser_tf.training.tasks import ClassificationTask
from ser_tf.tuning.search import tune_fold

directory, out, tuner, trials, pause, max_epochs = sys.argv[1:7]
rng = np.random.default_rng(0)
x = rng.normal(size=(60, 2)).astype("float32")
y = (x.sum(axis=1) > 0).astype("int64")
ids = [f"u{i:02d}" for i in range(60)]
source = CachedFeatureSource(FeatureSet(x, y, ids, ("low", "high"), [f"{i}.npy" for i in ids]))
fold = Fold(0, ids[:40], ids[40:50], ids[50:], selection_on_test=False)


class Pause(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(float(pause))


def build(num_outputs, units=4):
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(num_outputs, activation="softmax")])


def space(hp):
    return {"fit": {"learning_rate": hp.Choice("learning_rate",
                                               [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1])},
            "model": {"units": hp.Choice("units", [2, 4, 8])}}


fit = FitConfig(epochs=2, batch_size=8, monitor="val_loss", jit_compile=False, seed=1)
result = tune_fold(fold, source=source, task=ClassificationTask(("low", "high")),
                   build_model=build, fit=fit, space=space, directory=directory, tuner=tuner,
                   max_epochs=int(max_epochs), max_trials=int(trials), callbacks=[Pause()])
with open(out, "w") as f:
    json.dump(result, f, default=str)
'''


def launch(tmp_path, name, *, trials, pause, env=None, tuner="random", max_epochs=2):
    script = tmp_path / "search.py"
    if not script.exists():
        # Written once: rewriting it for every process truncated the file while an earlier
        # process was still reading it, which then ran an empty script and exited 0.
        tmp = script.with_suffix(".tmp")
        tmp.write_text(SCRIPT)
        os.replace(tmp, script)
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1",
                "TF_NUM_INTEROP_THREADS": "1", **(env or {})}
    for key in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        if key not in (env or {}):
            full_env.pop(key, None)
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "tuner"),
                             str(tmp_path / f"{name}.json"), tuner, str(trials), str(pause),
                             str(max_epochs)],
                            env=full_env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def trial_states(project: Path) -> dict:
    states = {}
    for path in project.glob("trial_*/trial.json"):
        try:
            states[path.parent.name[len("trial_"):]] = json.loads(path.read_text())["status"]
        except (ValueError, KeyError, OSError):
            pass  # being written
    return states


def wait(process, timeout, tmp_path, name):
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"{name} did not finish: {(tmp_path / f'{name}.log').read_text()}")
    assert code == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    return json.loads((tmp_path / f"{name}.json").read_text())


# Hyperband with a budget of 3 epochs (factor 3): a bracket of three 1-epoch trials whose
# best goes on to 3 epochs, then a bracket of two 3-epoch trials; six trials in all.
SEARCHES = {"random": {"trials": 5, "max_epochs": 2, "total": 5},
            "hyperband": {"trials": 5, "max_epochs": 3, "total": 6}}


@pytest.mark.slow
@pytest.mark.parametrize("tuner", sorted(SEARCHES))
def test_a_killed_search_resumes_without_rerunning_finished_trials(tmp_path, tuner):
    project = tmp_path / "tuner" / "fold_00"
    search = SEARCHES[tuner]
    first = launch(tmp_path, "first", trials=search["trials"], pause=0.7, tuner=tuner,
                   max_epochs=search["max_epochs"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = trial_states(project)
        done = sorted(t for t, s in states.items() if s == "COMPLETED")
        # Killed once two trials are done and a later one has begun (the oracle's state,
        # saved when that trial was created, knows the first two are finished).
        if len(done) >= 2 and any(t > done[-1] for t in states):
            break
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        time.sleep(0.1)
    else:
        raise AssertionError("no two trials finished in time")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    logs = {t: sorted(p.name for p in (project / "tensorboard" / t).rglob("events.*"))
            for t in done}
    assert not (tmp_path / "first.json").exists()

    result = wait(launch(tmp_path, "second", trials=search["trials"], pause=0.0, tuner=tuner,
                         max_epochs=search["max_epochs"]), 120, tmp_path, "second")
    statuses = {t["trial_id"]: t["status"] for t in result["trials"]}
    assert len(statuses) == search["total"] and set(statuses.values()) == {"COMPLETED"}
    assert not set(done) & set(result["trials_run"])  # finished trials were not rerun
    assert set(done) | set(result["trials_run"]) == set(statuses)
    for trial_id, names in logs.items():  # and their logs were left as they were
        assert sorted(p.name for p in (project / "tensorboard" / trial_id).rglob("events.*")) \
            == names
    assert "Reloading Tuner" in (tmp_path / "second.log").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_chief_and_two_workers_share_one_search(tmp_path):
    start = time.monotonic()
    port = free_port()
    chief = launch(tmp_path, "chief", trials=6, pause=0.5,
                   env=environment("chief", "127.0.0.1", port))
    workers = [launch(tmp_path, name, trials=6, pause=0.5,
                      env=environment(name, "127.0.0.1", port))
               for name in ("tuner0", "tuner1")]
    shares = [wait(w, 150, tmp_path, name) for w, name in zip(workers, ("tuner0", "tuner1"))]
    result = wait(chief, 60, tmp_path, "chief")
    elapsed = time.monotonic() - start

    for share, name in zip(shares, ("tuner0", "tuner1")):
        assert share["distributed"] == {"role": "worker", "tuner_id": name,
                                        "oracle": f"127.0.0.1:{port}"}
        assert "best" not in share  # the chief reports the best values
    run_by = [set(share["trials_run"]) for share in shares]
    assert all(run_by), f"a worker ran no trial: {run_by}"
    assert not run_by[0] & run_by[1]
    # The chief's oracle holds exactly the workers' trials, all finished; it trained none.
    statuses = {t["trial_id"]: t["status"] for t in result["trials"]}
    assert set(statuses) == run_by[0] | run_by[1] and len(statuses) == 6
    assert set(statuses.values()) == {"COMPLETED"}
    assert result["trials_run"] == [] and result["distributed"]["role"] == "chief"
    assert result["best"]["learning_rate"] in (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    print(f"chief + 2 workers: {elapsed:.0f} s")
