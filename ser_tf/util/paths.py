"""Where a user's own runs go by default.

The repository's ``experiments/results`` holds the committed records (the papers' READMEs
and ``ser-tf report`` read them); a user's run from a clone must not land among them unless
asked (``--results-dir experiments/results``, as the Makefile's reproduce targets do).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable overriding the default results folder.
RESULTS_ENV = "SER_TF_RESULTS"
#: The committed records, relative to the repository root.
COMMITTED_RESULTS = "experiments/results"


def default_results_dir() -> Path:
    """``$SER_TF_RESULTS``, else ``$XDG_DATA_HOME/ser-tf/results``, else
    ``~/.local/share/ser-tf/results``."""
    env = os.environ.get(RESULTS_ENV)
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME")  # the XDG spec ignores a relative one
    base = Path(data_home) if data_home and os.path.isabs(data_home) else \
        Path.home() / ".local" / "share"
    return base / "ser-tf" / "results"
