"""Benchmarks measure the CPU other processes took while they ran (not the lagging load average)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ser_tf.bench import features as bench
from ser_tf.bench.features import OtherLoad, contention_warning

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs /proc/stat")

SPIN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def test_a_process_spinning_during_the_benchmark_is_counted():
    meter = OtherLoad()
    # Reaped only after stop(): its CPU time is then not yet part of this process's children,
    # so it counts as another process's, like any job sharing the machine.
    spinner = subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=1.0)])
    while not _finished(spinner):
        time.sleep(0.05)
    measured = meter.stop()
    spinner.wait()
    assert measured["wall_seconds"] >= 1.0
    # At least the spinner's second of CPU over the wall time (more if the machine is busy).
    assert measured["other_cores_busy"] >= 0.8 / measured["wall_seconds"]
    if measured["wall_seconds"] < 4:  # then the spinner alone is over a tenth of 2 cores
        assert "the timings include that contention" in contention_warning(measured, 2)


def _finished(process) -> bool:
    """True once the child has exited, without reaping it (``/proc/PID/stat`` state Z)."""
    try:
        state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def test_warning_only_above_a_tenth_of_the_cores():
    idle = {"wall_seconds": 60.0, "other_cores_busy": 0.05, "steal_cores": 0.0}
    busy = {"wall_seconds": 60.0, "other_cores_busy": 0.9, "steal_cores": 0.0}
    stolen = {"wall_seconds": 60.0, "other_cores_busy": 0.0, "steal_cores": 0.5}
    assert contention_warning(idle, 2) is None
    assert "0.90 " in contention_warning(busy, 2)
    assert "hypervisor 0.50" in contention_warning(stolen, 2)
    assert contention_warning(None, 2) is None


def test_own_cpu_time_is_subtracted_and_the_result_never_negative(monkeypatch):
    clock = iter([100.0, 110.0, 200.0, 210.0])  # two meters, 10 s of wall time each
    machine = iter([(50.0, 1.0), (66.0, 3.0), (70.0, 3.0), (72.0, 3.0)])
    own = iter([5.0, 13.0, 20.0, 30.0])
    monkeypatch.setattr(bench.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(bench, "_machine_cpu_seconds", lambda: next(machine))
    monkeypatch.setattr(bench, "_own_cpu_seconds", lambda: next(own))
    # 16 busy CPU seconds, 8 of them ours: 0.8 cores of other work; 2 s stolen: 0.2 cores.
    assert OtherLoad().stop() == {"wall_seconds": 10.0, "other_cores_busy": 0.8,
                                  "steal_cores": 0.2}
    # Our children reaped during the run can exceed what /proc/stat saw: clamp at zero.
    assert OtherLoad().stop()["other_cores_busy"] == 0.0


def test_only_the_usable_cpus_are_counted(monkeypatch, tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  30 0 0 100 0 0 0 0 0 0\n"
                    "cpu0 10 0 0 50 0 0 0 0 0 0\n"
                    "cpu1 20 0 0 50 0 0 0 4 0 0\n")
    real_path = bench.Path
    monkeypatch.setattr(bench, "Path", lambda p: stat if p == "/proc/stat" else real_path(p))
    tick = bench.os.sysconf("SC_CLK_TCK")
    monkeypatch.setattr(bench, "_usable_cpus", lambda: {1})
    assert bench._machine_cpu_seconds() == (20 / tick, 4 / tick)
    monkeypatch.setattr(bench, "_usable_cpus", lambda: None)
    assert bench._machine_cpu_seconds() == (30 / tick, 4 / tick)
