"""Every command answers a usage mistake with one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from changeover.cli import app, run


def _leaves(command, path=()):
    subs = getattr(command, "commands", None)
    if subs:
        for name, sub in sorted(subs.items()):
            yield from _leaves(sub, (*path, name))
    else:
        yield path, command


COMMANDS = list(_leaves(typer.main.get_command(app)))


def test_the_walk_finds_the_commands():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"assess", "demo", "import", "embeddings reembed", "rollout status"} <= names
    assert len(names) >= 20


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_a_bogus_option_exits_2_in_one_line(path, capsys):
    rc = run([*path, "--bogus-option"])
    out, err = capsys.readouterr()
    assert rc == 2
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert "--bogus-option" in lines[0] and f"changeover {' '.join(path)} --help" in lines[0]
    assert "Traceback" not in out + err


REQUIRED = [(p, c) for p, c in COMMANDS if any(getattr(x, "required", False) for x in c.params)]


@pytest.mark.parametrize("path", [p for p, _ in REQUIRED], ids=[" ".join(p) for p, _ in REQUIRED])
def test_a_missing_required_option_exits_2_naming_it(path, capsys):
    rc = run(list(path))
    _, err = capsys.readouterr()
    assert rc == 2
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: Missing"), err


def test_the_installed_executable_exits_2_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "changeover.cli", "assess", "--bogus"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: No such option: --bogus; see `changeover assess --help`"


def test_help_prints_the_spec_example_exactly_as_the_readme_has_it(capsys):
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("The spec:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    example = [line.split("#")[0].rstrip() for line in block.splitlines()]
    assert run(["assess", "--help"]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # the help may wrap long lines to the terminal
    for line in example:
        assert " ".join(line.split()) in printed, line


def test_json_to_a_pipe_is_written_in_place_not_replaced(tmp_path):
    """`--json /dev/stdout` must not turn the device into a file (the atomic rename would)."""
    import os

    from changeover.cli.common import write_json

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_json({"verdict": "GO"}, fifo)
        assert b'"verdict": "GO"' in os.read(reader, 4096)
    finally:
        os.close(reader)
    assert fifo.is_fifo()
    write_json({"a": 1}, tmp_path / "out" / "d.json")
    assert (tmp_path / "out" / "d.json").read_text() == '{\n  "a": 1\n}\n'
