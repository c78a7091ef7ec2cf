"""``changeover label serve`` as a user runs it: records imported with ``changeover import``,
the server started from the command line, its printed login links working over HTTP."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from tests.support.serving import free_port

from changeover.records import write_records

from .conftest import RUBRIC

BIN = Path(sys.executable).parent / "changeover"


def test_serve_prints_links_that_work(tmp_path, records):
    write_records(records, tmp_path / "records.jsonl")
    db = str(tmp_path / "store.db")
    subprocess.run(
        [str(BIN), "import", str(tmp_path / "records.jsonl"), "--db", db], check=True, capture_output=True, timeout=120
    )
    spec = tmp_path / "migration.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "incumbent": "llama2orig",
                "candidates": ["gpt4", "mistralinstruct"],
                "dimensions": {"refusal": {"margin": 0.05, "rubric": RUBRIC}},
                "labeling": {"annotators": ["alice", "bob"], "refresh_seconds": 3600},
            }
        )
    )
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "label", "serve", "--spec", str(spec), "--db", db, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "label serve exited early:\n" + "".join(lines)
            lines.append(line)
            if "serving on" in line:
                break
        out = "".join(lines)
        links = dict(re.findall(r"^\s+(\w+)\s+\w+\s+(http://\S+)$", out, re.M))
        assert set(links) == {"admin", "alice", "bob"}
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(base + "/api/next", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(base + "/api/next").status_code == 401
        with httpx.Client(follow_redirects=True) as browser:
            page = browser.get(links["alice"])
            assert page.status_code == 200 and "Acceptable when the response" in page.text
            assert "llama2orig" not in page.text and "gpt4" not in page.text
            assert browser.get(base + "/api/next").json()["task"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
