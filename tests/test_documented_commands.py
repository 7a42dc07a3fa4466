"""Every concrete command the documentation shows parses with today's code.

The README, ``docs/`` and each paper's README show ``ser-tf …`` and ``python -m ser_tf…``
commands in code blocks. A renamed or removed flag would leave a reader with a command that
fails at once; this test gives each of those commands to its parser (nothing runs; a flag
that checks at parse time that its file exists may say it does not). Lines that describe a
syntax rather than a command (``[--flag]``, ``{a,b}``, ``<placeholder>``, ``A|B``, ``...``)
are left out.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
        *sorted((REPO / "ser_tf" / "papers").glob("*/README.md"))]
COMMAND = re.compile(r"^(\$ )?(\.venv/bin/)?(ser-tf |python -m ser_tf\.)")
SYNTAX = re.compile(r"[\[\]{}<>|]|\.\.\.")


def documented_commands(path: Path) -> list[tuple[int, str]]:
    """``(line, command)`` of every command line in ``path``'s fenced code blocks,
    continuation lines joined and trailing comments cut."""
    found, in_block, pending, start = [], False, "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if text.startswith("```"):
            in_block, pending = not in_block, ""
            continue
        if not in_block:
            continue
        if pending:
            pending += " " + text
        elif COMMAND.match(text):
            pending, start = text, number
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        found.append((start, pending))
        pending = ""
    return found


def _words(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    if words[0] == "$":
        words = words[1:]
    words[0] = words[0].removeprefix(".venv/bin/")
    return words


def _parser_and_argv(words: list[str]):
    """The argparse parser that reads this command, and the arguments it is given."""
    if words[0] == "ser-tf":
        if words[1:2] == ["train"] and len(words) > 2:
            from ser_tf.experiments import runner
            from ser_tf.papers import get_paper

            return runner.build_parser(get_paper(words[2])), words[3:]
        from ser_tf.cli import build_parser

        return build_parser(), words[1:]
    assert words[:2] == ["python", "-m"], words
    module = importlib.import_module(words[2])
    assert hasattr(module, "build_parser"), f"{words[2]} has no build_parser()"
    return module.build_parser(), words[3:]


CASES = [(path, line, command) for path in DOCS for line, command in documented_commands(path)
         if not SYNTAX.search(command.split("#")[0])]


def test_the_documentation_shows_commands_of_every_kind():
    shown = {_words(command)[0] if _words(command)[0] == "ser-tf" else _words(command)[2]
             for _, _, command in CASES}
    assert {"ser-tf", "ser_tf.experiments.timnet", "ser_tf.experiments.semantic",
            "ser_tf.experiments.cnn_family"} <= shown
    assert len(CASES) >= 30


def test_a_removed_flag_would_be_caught(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("```bash\nser-tf train timnet --dataset EMODB \\\n    --no-such-flag 3\n```\n")
    [(line, command)] = documented_commands(doc)
    assert line == 2 and command.endswith("--no-such-flag 3")
    parser, argv = _parser_and_argv(_words(command))
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as exit_:
        parser.parse_args(argv)
    assert exit_.value.code == 2


@pytest.mark.parametrize("path,line,command", CASES,
                         ids=[f"{p.relative_to(REPO)}:{n}" for p, n, _ in CASES])
def test_documented_command_parses(path, line, command):
    parser, argv = _parser_and_argv(_words(command))
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exit_:  # --help exits 0; a bad flag exits 2
        # A flag that checks its file at parse time finds none here: the flag exists.
        missing_file = re.search(r"error: argument [^:]+: [^:]+: no such file$",
                                 stderr.getvalue().strip())
        assert exit_.code == 0 or missing_file, (f"{path.relative_to(REPO)}:{line}: `{command}` does not "
                                 f"parse:\n{stderr.getvalue()}")
