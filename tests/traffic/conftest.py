"""Fixtures for the traffic import tests: the fake OpenAI-compatible server."""

from __future__ import annotations

import pytest
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture
def fake() -> FakeOpenAI:
    """A fresh fake OpenAI-compatible server on loopback."""
    with FakeOpenAI() as server:
        yield server
