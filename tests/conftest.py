"""Shared test helpers. Unit tests never need the real corpora; integration tests that use
``../shared/data`` are marked ``integration`` and skip when it is absent."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SER_TF_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The real corpora folder; skips the test when this machine does not have it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def run_lock_held_by():
    """``with run_lock_held_by(path, pid):`` another process holds the run lock ``path``
    (an exclusive ``flock``, with ``pid`` written in it) until the block ends."""

    @contextlib.contextmanager
    def hold(lock_path, pid: int = 4242):
        holder = subprocess.Popen(
            [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'a+'); "
             "fcntl.flock(f, fcntl.LOCK_EX); f.seek(0); f.truncate(); f.write(sys.argv[2]); "
             "f.flush(); print('locked', flush=True); sys.stdin.read()",
             str(lock_path), str(pid)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            yield
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)

    return hold


@pytest.fixture
def in_fresh_process():
    """``in_fresh_process("tests.test_x", "function", *args)``: what ``function(*args)``
    returns (JSON), computed in a new Python process. For memory measurements: a test
    worker that has run other tests already holds memory whose reuse would be measured
    instead of the growth. glibc is held to two malloc arenas: TensorFlow's thread pools
    otherwise get an arena per thread, and the free memory those arenas keep (tens of MB,
    varying with thread timing: a 124 MB peak once failed a 120 MB cap in CI where the same
    reads usually peak at 45-90 MB) is the allocator's cache, not what the code holds."""

    def run(module: str, function: str, *args, timeout: float = 900):
        code = (f"import json, sys; from {module} import {function}; "
                f"print(json.dumps({function}(*sys.argv[1:])))")
        out = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO,
                             capture_output=True, text=True, timeout=timeout,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                  "MALLOC_ARENA_MAX": "2"})
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    return run
