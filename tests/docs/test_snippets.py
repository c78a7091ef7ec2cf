"""The docs run: every Python snippet executes, every `changeover ...` line names real commands and options,
every spec example loads. A snippet that cannot run here (a production URL, a hosted model) says
`# illustrative` on one of its lines and is then only compiled."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from changeover.cli import app
from changeover.config import spec_from_dict

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.M | re.S)


def _blocks(kind: set[str]) -> list[tuple[str, int, str, str]]:
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if m.group(1) in kind:
                line = text.count("\n", 0, m.start()) + 1
                out.append((page.relative_to(ROOT).as_posix(), line, m.group(1), m.group(2)))
    return out


PYTHON = _blocks({"python", "py"})
SHELL = _blocks({"bash", "sh", "shell", "console", ""})
YAML = [b for b in _blocks({"yaml", "yml"}) if re.search(r"^incumbent:", b[3], re.M)]


@pytest.mark.parametrize("page, line, kind, code", PYTHON, ids=[f"{p}:{n}" for p, n, _, _ in PYTHON])
def test_python_snippets_run(page, line, kind, code, tmp_path):
    compile(code, f"{page}:{line}", "exec")
    if "# illustrative" in code:
        return
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{page}:{line} failed:\n{proc.stderr[-3000:]}"


def _command_lines(kind: str, code: str) -> list[str]:
    """Commands typed in a snippet: every line of a bash block, the `$ ` lines of a transcript."""
    joined = code.replace("\\\n", " ")
    lines = []
    for raw in joined.splitlines():
        raw = raw.strip()
        if raw.startswith("$ "):
            raw = raw[2:]
        elif kind not in ("bash", "sh", "shell"):
            continue
        for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", raw):
            part = part.split(" #", 1)[0].strip()
            if part.startswith("changeover "):
                lines.append(part)
    return lines


COMMANDS = [(p, n, c) for p, n, kind, code in SHELL for c in _command_lines(kind, code)]


def _check(argv: list[str]) -> None:
    group = typer.main.get_command(app)
    cmd, path = group, ["changeover"]
    args = list(argv)
    while getattr(cmd, "commands", None) and args and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in cmd.commands, f"`{' '.join(path)}` has no command '{name}'"
        cmd, path = cmd.commands[name], [*path, name]
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    for a in args:
        if a.startswith("--"):
            opt = a.split("=", 1)[0]
            assert opt in known, f"`{' '.join(path)}` has no option {opt}"


@pytest.mark.parametrize("page, line, command", COMMANDS, ids=[f"{p}:{n}:{c[:40]}" for p, n, c in COMMANDS])
def test_command_lines_name_real_commands_and_options(page, line, command):
    try:
        argv = shlex.split(command)[1:]
    except ValueError:
        pytest.fail(f"{page}:{line}: cannot parse {command!r}")
    argv = [a for a in argv if not a.startswith(("<", ">", "2>"))]
    _check(argv)


@pytest.mark.parametrize("page, line, kind, code", YAML, ids=[f"{p}:{n}" for p, n, _, _ in YAML])
def test_spec_examples_load(page, line, kind, code):
    spec_from_dict(yaml.safe_load(code), f"{page}:{line}")


def test_the_walk_found_the_docs():
    assert len(COMMANDS) >= 20 and YAML and PYTHON


def test_the_github_action_runs_real_options():
    """action.yml's assess step passes options `changeover assess` has, and reads the exit codes it documents."""
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    assert action["runs"]["using"] == "composite"
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "assess")
    script = step["run"]
    options = re.findall(r"(--[a-z-]+)", script.split("args=(", 1)[1].split(")", 1)[0])
    options += re.findall(r"args\+=\((--[a-z-]+)", script)
    _check(["assess", *options])
    assert "changeover assess" in script and "0) v=GO;; 1) v=NO-GO;; 3) v=NEED-LABELS" in script
    for name in re.findall(r"inputs\.([a-z-]+)", yaml.safe_dump(action["runs"])):
        assert name in action["inputs"], f"action.yml uses input '{name}' it does not declare"
