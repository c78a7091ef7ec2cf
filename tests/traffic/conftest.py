"""Fixtures for the traffic import tests: the fake OpenAI-compatible server."""

from __future__ import annotations

import pytest
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture
def fake() -> FakeOpenAI:
    """A fresh fake OpenAI-compatible server on loopback."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def local_llm():
    """SmolLM2-135M-Instruct served by llama.cpp on loopback, once per session (skip, or fail under CI)."""
    from tests.support.local_llm import require_local_llm, start_local_llm

    require_local_llm()
    return start_local_llm()
