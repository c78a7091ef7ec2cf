"""Regenerate the README's demo transcript from what `changeover demo` really prints.

Runs the demo in a temporary folder at 120 columns and replaces the block that
starts with ``$ bash scripts/demo`` in README.md. Run it after a change that
alters the demo's output: ``.venv/bin/python scripts/readme_transcript.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAD = "$ bash scripts/demo        # ~5-10 s after installing\n"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "changeover.cli", "demo"], cwd=tmp, env=env, capture_output=True, text=True
        )
    if done.returncode not in (0, 1, 3):
        sys.stderr.write(done.stdout + done.stderr)
        return 1
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    block = re.compile(r"(```\n)\$ bash scripts/demo[^\n]*\n.*?(```)", re.S)
    if not block.search(text):
        sys.stderr.write("README.md has no block starting with '$ bash scripts/demo'\n")
        return 1
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    new = block.sub(lambda m: m.group(1) + HEAD + "\n".join(lines) + "\n" + m.group(2), text, count=1)
    readme.write_text(new, encoding="utf-8")
    print(f"README.md: demo transcript regenerated ({len(lines)} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
