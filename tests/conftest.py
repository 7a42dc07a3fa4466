"""Shared test helpers. Unit tests never need the real corpora; integration tests that use
``../shared/data`` are marked ``integration`` and skip when it is absent."""

from __future__ import annotations

import os
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
