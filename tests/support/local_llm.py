"""A real local LLM for tests: SmolLM2-135M-Instruct behind llama.cpp's OpenAI-compatible server.

The server itself is ``changeover.providers.llamacpp.LlamaCppServer`` (also
used by ``changeover demo --live``); this module adds what tests need: one
shared server per test session, and skip-or-fail when it is not installed.

    @pytest.fixture(scope="session")
    def local_llm():
        require_local_llm()
        return start_local_llm()

    client = openai.OpenAI(base_url=local_llm.base_url, api_key="none")
    client.chat.completions.create(model=local_llm.model, messages=[...], max_tokens=16)

These are weak models: use them for the real wire protocol, tokens, latency,
streaming and messy output, never to assert what a verdict should be.
Under ``CI=true`` a missing engine or model is an error, never a skip.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable

from changeover.providers.llamacpp import (
    LlamaCppServer,
    LocalModelUnavailable,
    gemma3_gguf,
    smollm2_gguf,
    unavailable_reason,
)

LocalLLM = LlamaCppServer
__all__ = [
    "LocalLLM",
    "LocalModelUnavailable",
    "gemma3_gguf",
    "local_llm_available",
    "require_local_llm",
    "smollm2_gguf",
    "start_local_gemma",
    "start_local_llm",
]


def local_llm_available() -> str | None:
    """None when the engine and weights are installed, else why not."""
    return unavailable_reason()


def require_local_llm(gemma: bool = False) -> None:
    """Skip (pytest) when the local LLM is missing; under CI=true that is an error instead."""
    import pytest

    reason = unavailable_reason()
    if reason is None and gemma:
        try:
            gemma3_gguf()
        except LocalModelUnavailable as exc:
            reason = str(exc)
    if reason is None:
        return
    if os.environ.get("CI"):
        raise LocalModelUnavailable(f"CI=true but the local LLM is unavailable: {reason}")
    pytest.skip(reason)


_shared: dict[str, LlamaCppServer] = {}
_shared_lock = threading.Lock()


def _start_shared(name: str, factory: Callable[[], LlamaCppServer]) -> LlamaCppServer:
    with _shared_lock:
        if name not in _shared:
            _shared[name] = factory().start()
            atexit.register(_shared[name].stop)
        return _shared[name]


def start_local_llm() -> LlamaCppServer:
    """A process-wide SmolLM2-135M-Instruct server (started once, stopped at exit): a session fixture."""
    return _start_shared("smollm2", LlamaCppServer)


def start_local_gemma() -> LlamaCppServer:
    """A process-wide Gemma-3-270M base-model server (use the completions API: no chat template)."""
    return _start_shared("gemma3", lambda: LlamaCppServer(gguf=gemma3_gguf(), model="gemma3"))
