"""Regenerate the `compare` transcript on pgvector in docs/embeddings.md: the index's own recall
against exact search, shown beside the overlap, at a starved and at a generous ef_search.

The documents are 3,000 random unit vectors filed under each real model's version (below
~2,000 rows PostgreSQL's planner scans the table instead of using the HNSW index, so a
small real corpus would show recall 1.000); the 8 Cranfield queries are embedded by the
real models. Uses a scratch database on the server of ``--pg`` and drops it afterwards.

    python scripts/hnsw_transcript.py --pg postgresql+psycopg://postgres@127.0.0.1:55432/changeover_test
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

from changeover.embeddings.config import HnswConfig
from changeover.embeddings.pgvector import PgvectorIndex
from changeover.providers.embedders import get_encoder
from changeover.store import open_store

ROOT = Path(__file__).resolve().parents[1]
CRANFIELD = ROOT.parent / "shared" / "data" / "cranfield"
CLI = [sys.executable, "-c", "from changeover.cli import main; main()"]
ENV = {**os.environ, "COLUMNS": "110", "NO_COLOR": "1", "TERM": "dumb", "CHANGEOVER_ACTOR": "alice"}
N, DIM, NAME = 3000, 384, "changeover_hnsw_transcript"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default=os.environ.get("CHANGEOVER_TEST_PG"), required=False)
    args = ap.parse_args()
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{NAME}"'))
    url = args.pg.rsplit("/", 1)[0] + "/" + NAME
    try:
        store = open_store(url)
        index = PgvectorIndex(store, HnswConfig())
        rng = np.random.default_rng(7)
        for key in (get_encoder("minilm").key, get_encoder("e5").key):
            docs = rng.standard_normal((N, DIM)).astype(np.float32)
            docs /= np.linalg.norm(docs, axis=1, keepdims=True)
            with store.engine.begin() as conn:
                index.copy_rows(conn, key, [f"d{i}" for i in range(N)], docs)
            index.finish(key)
        store.dispose()
        with tempfile.TemporaryDirectory() as tmp:
            queries = Path(tmp) / "queries.jsonl"
            queries.write_text("\n".join((CRANFIELD / "queries.jsonl").read_text().splitlines()[:8]) + "\n")
            for ef in ("1", "200"):
                cmd = ["embeddings", "compare", "--old", "minilm", "--new", "e5", "--queries", "queries.jsonl"]
                cmd += ["--backend", "pgvector", "--db", "postgresql+psycopg://.../shop", "--ef-search", ef]
                print("$ changeover " + " ".join(cmd))
                real = [url if c.endswith("/shop") else c for c in cmd]
                done = subprocess.run(CLI + real, cwd=tmp, env=ENV, capture_output=True, text=True)
                print(done.stdout + done.stderr + f"[exit {done.returncode}]\n", flush=True)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
