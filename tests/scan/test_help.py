"""`--help` of scan, traffic import, doctor and evaluate: each teaches with an example, printed exactly as
written, that names only real commands and options."""

from __future__ import annotations

import re
import shlex

import pytest
import typer

from changeover.cli import app, run

COMMANDS = [["scan"], ["traffic", "import"], ["doctor"], ["evaluate"]]


def _command(path: list[str]):
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_prints_its_example_exactly_and_the_example_is_a_real_command_line(path, capsys):
    cmd = _command(path)
    examples = re.findall(r"Example: (changeover [^\n]+(?:\n(?!\n)[^\n]+)*)", cmd.help or "")
    assert examples, f"`changeover {' '.join(path)} --help` has no example"
    assert run([*path, "--help"]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # the help wraps long lines to the terminal
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    for example in examples:
        line = " ".join(example.split())
        assert line in printed, line  # nothing eaten by markup, nothing reworded
        argv = shlex.split(line)
        assert argv[1 : 1 + len(path)] == path, line
        for arg in argv[1 + len(path) :]:
            if arg.startswith("-"):
                assert arg.split("=", 1)[0] in known, f"{line}: no option {arg}"
