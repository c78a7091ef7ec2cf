"""Fixtures for the gateway tests: the fake OpenAI upstream, specs pointing at it, gateways on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.gateway.helpers import GatewayServer, write_spec  # noqa: E402
from tests.support.fake_openai import FakeOpenAI  # noqa: E402
from tests.support.local_llm import LocalLLM, require_local_llm, start_local_llm  # noqa: E402

from changeover.store import open_store  # noqa: E402

ADMIN_TOKEN = "test-admin-token-7f3a"


@pytest.fixture
def fake() -> FakeOpenAI:
    with FakeOpenAI() as server:
        server.set("old", reply="Paris is the capital of France.")
        server.set("new", reply="The capital of France is Paris.")
        yield server


@pytest.fixture
def admin_token(monkeypatch) -> str:
    monkeypatch.setenv("CHANGEOVER_ADMIN_TOKEN", ADMIN_TOKEN)
    return ADMIN_TOKEN


@pytest.fixture
def make_spec(tmp_path, fake):
    """Write a migration spec whose upstreams are the fake server; keyword args replace sections."""

    def make(**sections) -> Path:
        return write_spec(tmp_path / "migration.yaml", fake.base_url, **sections)

    return make


@pytest.fixture
def gw_store(sqlite_url):
    """The store the in-process gateways write to (SQLite; PostgreSQL is covered by the process tests)."""
    s = open_store(sqlite_url)
    yield s
    s.dispose()


@pytest.fixture
def serve(gw_store):
    """Start gateways in this process (uvicorn in a thread); all stopped at the end."""
    started: list[GatewayServer] = []

    def start(spec_path: Path, **kwargs) -> GatewayServer:
        server = GatewayServer(spec_path, gw_store, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def local_llm() -> LocalLLM:
    require_local_llm()
    return start_local_llm()


@pytest.fixture
def pg_env(pg_url, monkeypatch):
    monkeypatch.setenv("CHANGEOVER_DB", pg_url)
    return pg_url


def pytest_collection_modifyitems(items):
    # tests here that need PostgreSQL only
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()) and "store_url" not in item.fixturenames:
            item.add_marker(pytest.mark.postgres)


os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def judged(fake):
    """The judging tests' upstreams (test_judging, test_budget): the incumbent, the candidate (rewording every
    other answer) and the LLM judge."""
    from tests.evaluate.helpers import judge_reply
    from tests.gateway.test_judging import SAME, candidate_reply

    fake.set("old", reply=SAME)
    fake.set("new", reply=candidate_reply)
    fake.set("judge", reply=judge_reply)
    return fake
