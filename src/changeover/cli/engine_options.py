"""The ``--engine`` / ``--ray-address`` options shared by the batch-job commands (evaluate, embeddings reembed)."""

from __future__ import annotations

import typer

ENGINE_OPTION = typer.Option(
    "local", "--engine", help="Where the batches run: local (this process) or ray (needs changeover[ray])."
)
RAY_ADDRESS_OPTION = typer.Option(
    None, "--ray-address", help="Ray cluster to run on, e.g. ray://head:10001 (default: start a local Ray)."
)
