"""Regenerate the session transcript of docs/embeddings.md: real `changeover embeddings` runs on
40 Cranfield abstracts and 20 queries with the two real offline models, in a scratch folder.

Prints each command, its output and its exit code. The concurrent-run step starts one
re-embed in the background, waits until it holds the version's lease, and runs a second.

    python scripts/embeddings_transcript.py > /tmp/transcript.txt
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CRANFIELD = ROOT.parent / "shared" / "data" / "cranfield"
CLI = [sys.executable, "-c", "from changeover.cli import main; main()"]
ENV = {**os.environ, "COLUMNS": "110", "NO_COLOR": "1", "TERM": "dumb", "CHANGEOVER_ACTOR": "alice"}

SPEC = {
    "embeddings": {
        "incumbent": "all-MiniLM-L6-v2",
        "candidate": "multilingual-e5-small",
        "corpus": "data/corpus.jsonl",
        "queries": "data/queries.jsonl",
        "qrels": "data/qrels.tsv",
        "rate": "600/min",
        "stability_period": "7d",
    }
}


def changeover(work: Path, *args: str) -> None:
    print("$ changeover " + " ".join(a if " " not in a else repr(a).replace("'", '"') for a in args))
    proc = subprocess.run([*CLI, *args], cwd=work, env=ENV, capture_output=True, text=True)
    print((proc.stdout + proc.stderr).rstrip())
    print(f"[exit {proc.returncode}]\n")


def lease_taken(work: Path) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{work / '.changeover' / 'changeover.db'}")
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM embedding_leases")).scalar() > 0
    except Exception:  # noqa: BLE001 - the table appears with the first run
        return False
    finally:
        engine.dispose()


def concurrent(work: Path, *args: str) -> None:
    """A first run in the background; once it holds the lease, a second run of the same version."""
    first = subprocess.Popen([*CLI, *args], cwd=work, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not lease_taken(work) and time.time() < deadline and first.poll() is None:
        time.sleep(0.1)
    print(f"$ changeover {' '.join(args)} &   # a first run, in the background")
    changeover(work, *args)
    out, _ = first.communicate(timeout=600)
    print(f"$ wait   # the first run's output\n{out.decode().rstrip()}\n[exit {first.returncode}]\n")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        (data / "corpus.jsonl").write_text("\n".join((CRANFIELD / "corpus.jsonl").read_text().splitlines()[:40]) + "\n")
        (data / "queries.jsonl").write_text(
            "\n".join((CRANFIELD / "queries.jsonl").read_text().splitlines()[:20]) + "\n"
        )
        (data / "qrels.tsv").write_text((CRANFIELD / "qrels.tsv").read_text())
        (work / "migration.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
        spec = ("--spec", "migration.yaml")
        changeover(work, "embeddings", "reembed", *spec, "--to", "old", "--no-progress")
        changeover(work, "embeddings", "reembed", *spec, "--to", "new", "--limit", "16", "--no-progress")
        changeover(work, "embeddings", "status", *spec)
        changeover(work, "embeddings", "switch", *spec, "--to", "new")
        concurrent(work, "embeddings", "reembed", *spec, "--to", "new", "--no-progress")
        changeover(work, "embeddings", "status", *spec)
        changeover(work, "embeddings", "compare", *spec, "--json", "compare.json")
        query = "flow over a wing in a slipstream"
        changeover(work, "embeddings", "search", *spec, query, "--query-model", "e5", "--k", "3")
        changeover(work, "embeddings", "fit-adapter", *spec, "--reason", "serve e5 queries before the switch")
        changeover(work, "embeddings", "search", *spec, query, "--query-model", "e5", "--k", "3")
        changeover(work, "embeddings", "status", *spec)
        changeover(
            work, "embeddings", "switch", *spec, "--to", "new", "--reason", "overlap reviewed, nDCG within margin"
        )
        changeover(work, "embeddings", "search", *spec, query, "--k", "3")
        changeover(work, "embeddings", "adapter", "retire", *spec, "1", "--reason", "the e5 index serves")
        changeover(work, "embeddings", "switch", *spec, "--to", "old", "--reason", "rollback drill")
        changeover(work, "embeddings", "switch", *spec, "--to", "new", "--reason", "drill over")
        changeover(work, "embeddings", "cleanup", *spec, "old")
        changeover(
            work, "embeddings", "cleanup", *spec, "old", "--stability", "0s", "--reason", "demo: no week to wait"
        )


if __name__ == "__main__":
    main()
