"""Fixtures for the evaluation tests: the fake OpenAI-compatible server and a real local LLM."""

from __future__ import annotations

import pytest
from tests.support.fake_openai import FakeOpenAI  # noqa: E402
from tests.support.local_llm import (  # noqa: E402
    LocalLLM,
    require_local_llm,
    start_local_gemma,
    start_local_llm,
)


@pytest.fixture
def fake() -> FakeOpenAI:
    """A fresh fake OpenAI-compatible server on loopback."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def local_llm() -> LocalLLM:
    """SmolLM2-135M-Instruct served by llama.cpp on loopback, once per session."""
    require_local_llm()
    return start_local_llm()


@pytest.fixture(scope="session")
def local_gemma() -> LocalLLM:
    """Gemma-3-270M (a base model, completions API) served by llama.cpp on loopback, once per session."""
    require_local_llm(gemma=True)
    return start_local_gemma()
