"""Generated blocks of a README: the text between ``<!-- KIND:NAME:start -->`` and
``<!-- KIND:NAME:end -->``, written from the run records (``ser-tf report --readme``, the
CNN family's noise table) and checked against them (``--check``, ``make check-readmes``).

A block is the only place a README states a measured number that no prose can drift from:
rewriting it is deterministic, so a committed README either says what the committed records
say or :func:`block_diff` shows where it does not.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

__all__ = ["block_diff", "check_block", "markers", "read_block", "rewrite_block"]


def markers(kind: str, name: str) -> tuple[str, str]:
    """The start and end comment of the ``kind`` block ``name`` (e.g. ``report``,
    ``lightsernet``)."""
    return f"<!-- {kind}:{name}:start -->", f"<!-- {kind}:{name}:end -->"


def _split(path: Path, kind: str, name: str) -> tuple[str, str, str]:
    start, end = markers(kind, name)
    content = path.read_text(encoding="utf-8")
    if start not in content or end not in content:
        raise ValueError(f"{path}: needs the markers {start} and {end} around the table")
    head, rest = content.split(start, 1)
    body, tail = rest.split(end, 1)
    return head, body, tail


def read_block(path, kind: str, name: str) -> str:
    """The block's text as the README holds it, without its markers."""
    return _split(Path(path), kind, name)[1].strip("\n")


def rewrite_block(path, kind: str, name: str, text: str) -> bool:
    """Put ``text`` between the block's markers in ``path`` (which must hold both);
    True if the file changed."""
    path = Path(path)
    head, _, tail = _split(path, kind, name)
    start, end = markers(kind, name)
    new = f"{head}{start}\n{text.strip()}\n{end}{tail}"
    if new == path.read_text(encoding="utf-8"):
        return False
    path.write_text(new, encoding="utf-8")
    return True


def block_diff(path, kind: str, name: str, text: str) -> list[str]:
    """Unified-diff lines from the block ``path`` holds to ``text``: empty when the README
    already says exactly that."""
    held = read_block(path, kind, name).strip().splitlines()
    wanted = text.strip().splitlines()
    if held == wanted:
        return []
    return list(difflib.unified_diff(held, wanted, f"{path} ({kind}:{name}, committed)",
                                     f"{kind}:{name} from the records", lineterm=""))


def check_block(path, kind: str, name: str, text: str, *, what: str, results) -> int:
    """The ``--check`` of a command that writes the block: 0 and one line when ``path``
    already holds ``text``; else the difference and what to do on standard error, and 1.
    ``what`` names the table (``"the timnet table"``), ``results`` the records' folder."""
    diff = block_diff(path, kind, name, text)
    if diff:
        print("\n".join(diff), file=sys.stderr)
        print(f"{path}: {what} is not what the records under {results} say (rewrite it: "
              "drop --check)", file=sys.stderr)
        return 1
    print(f"{path}: {what} matches the records")
    return 0
