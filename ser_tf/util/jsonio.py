"""File digests (and, as the restructure goes on, the JSON/atomic-write helpers)."""

from __future__ import annotations

import hashlib


def content_hash(path, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes, read in chunks (large files never fully in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
