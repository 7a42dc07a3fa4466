"""TensorFlow's own output on the command line: quiet by default, all of it with ``-v``.

TensorFlow writes to the process's standard error from C++ (oneDNN and CUDA probing, CPU
feature notes, the TFLite converter's settings) and through Python logging (retracing
warnings, absl warnings). None of it is the suite's; on a CPU machine it buries the
progress lines. The command-line entry points call :func:`configure` once they know the
verbosity, before TensorFlow is imported, then :func:`import_tensorflow`:

* quiet (the default): ``TF_CPP_MIN_LOG_LEVEL=2`` (warnings and info off; errors stay),
  the ``tensorflow`` and ``absl`` Python loggers at ERROR, the messages TensorFlow writes
  while it loads and probes for GPUs held back (shown if the import fails), and
  :func:`filtered_native_stderr` around TFLite conversions drops the converter's lines;
* verbose: ``TF_CPP_MIN_LOG_LEVEL=0`` and nothing held back.

A ``TF_CPP_MIN_LOG_LEVEL`` the user set is always kept. Library use (notebooks, tests)
changes nothing until someone calls :func:`configure`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile

import ser_tf

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
#: Python loggers TensorFlow and Keras warn through (retracing, saving formats).
LOGGERS = ("tensorflow", "absl")

#: Native stderr lines that are TensorFlow's chatter, not a failure: the absl preamble,
#: info/warning lines in absl's format (``I0000 00:00:... file.cc:12] ...``), the
#: converter's settings line and the TFLite interpreter's delegate note. Error lines
#: (``E...``/``F...``) are kept.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\]"
    r"|To enable the following instructions: .*rebuild TensorFlow"
    r"|fully_quantize: \d+, inference_type: "
    r"|Estimated count of arithmetic ops"
    r"|INFO: (Created|Initialized) TensorFlow Lite"
    r"|\s*$)")

_state = {"quiet": False}


def user_log_level() -> str | None:
    """``TF_CPP_MIN_LOG_LEVEL`` as the user set it (``None``: not set), read before
    ``import ser_tf`` gave it a default."""
    return getattr(ser_tf, "USER_TF_CPP_MIN_LOG_LEVEL", None)


def configure(verbose: bool = False) -> None:
    """Quiet (default) or verbose TensorFlow output for this process (module docstring).
    Environment settings reach TensorFlow only if it is not imported yet."""
    _state["quiet"] = not verbose
    if user_log_level() is None:
        os.environ[LOG_LEVEL_ENV] = "0" if verbose else "2"
    level = logging.NOTSET if verbose else logging.ERROR
    for name in LOGGERS:
        logging.getLogger(name).setLevel(level)
    absl = sys.modules.get("absl.logging")
    if absl is not None and not verbose:
        absl.set_verbosity(absl.ERROR)


@contextlib.contextmanager
def command_line_output(verbose: bool = False):
    """:func:`configure` for the block, then the settings before it again (an entry point
    called in-process, by a test or a notebook, leaves the process as it found it)."""
    saved_state, saved_env = dict(_state), os.environ.get(LOG_LEVEL_ENV)
    saved_levels = {name: logging.getLogger(name).level for name in LOGGERS}
    configure(verbose)
    try:
        yield
    finally:
        _state.update(saved_state)
        if saved_env is None:
            os.environ.pop(LOG_LEVEL_ENV, None)
        else:
            os.environ[LOG_LEVEL_ENV] = saved_env
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


def is_quiet() -> bool:
    return _state["quiet"]


def _fd_of(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


@contextlib.contextmanager
def _native_stderr_captured():
    """Standard error at the file-descriptor level (C++ writes) goes to a temporary file
    during the block; yields a function returning what was written so far. Python's
    ``sys.stderr`` keeps writing where it did if it is not descriptor 2 (pytest's capture),
    and to the real descriptor 2 otherwise."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = os.dup(2)
    capture = tempfile.TemporaryFile()
    python_stderr = sys.stderr
    try:
        os.dup2(capture.fileno(), 2)
        if _fd_of(python_stderr) == 2:
            # Python's own lines (progress) still reach the terminal, in order.
            sys.stderr = open(os.dup(saved), "w", buffering=1, encoding="utf-8",
                              errors="replace", closefd=True)

        def read() -> str:
            capture.flush()
            capture.seek(0)
            return capture.read().decode("utf-8", errors="replace")

        yield read
    finally:
        if sys.stderr is not python_stderr:
            with contextlib.suppress(Exception):
                sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
        capture.close()


def _write_native(text: str) -> None:
    if text:
        with contextlib.suppress(OSError):
            os.write(2, text.encode("utf-8", errors="replace"))


def without_noise(text: str) -> str:
    """``text`` without the lines :data:`NOISE` matches."""
    kept = [line for line in text.splitlines(keepends=True) if not NOISE.match(line)]
    return "".join(kept)


@contextlib.contextmanager
def filtered_native_stderr():
    """In quiet mode, what native code writes to standard error during the block is
    shown after it without TensorFlow's chatter (:data:`NOISE`); otherwise a no-op."""
    if not is_quiet():
        yield
        return
    with _native_stderr_captured() as read:
        try:
            yield
        finally:
            text = read()
    _write_native(without_noise(text))


def import_tensorflow() -> None:
    """Import TensorFlow and Keras, and let TensorFlow look for GPUs, so that in quiet
    mode the messages of both are held back (all shown, then the error, if the import
    fails); Python loggers are set again afterwards (TensorFlow's import creates them)."""
    if "tensorflow" in sys.modules or not is_quiet():
        import keras  # noqa: F401
        import tensorflow as tf

        return
    error = None
    with _native_stderr_captured() as read:
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA probing: its messages are held back too
        except BaseException as exc:  # noqa: BLE001 - shown with what TF said, then raised
            error, text = exc, read()
    if error is not None:
        _write_native(text)
        raise error
    configure(verbose=False)
