"""Fixtures for the fault-injection suite: a PostgreSQL of its own to stop and restart, the fake upstream."""

from __future__ import annotations

import os

import pytest
from tests.embeddings.conftest import cranfield, small_corpus  # noqa: F401 - the re-embed job's corpus
from tests.faults.pg import PgCluster, pg_bin
from tests.gateway.conftest import admin_token, fake, make_spec  # noqa: F401 - shared fixtures

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="session")
def pg_cluster() -> PgCluster:
    """One throwaway cluster per session; a test that stops it starts it again (``pg_db`` checks)."""
    if pg_bin() is None and not os.environ.get("CI"):
        pytest.skip("no PostgreSQL binaries (scripts/setup.d/10-postgres.sh)")
    cluster = PgCluster().start()
    yield cluster
    cluster.close()


@pytest.fixture
def pg_db(pg_cluster: PgCluster) -> str:
    """A fresh database on the throwaway cluster; the cluster is running again afterwards."""
    url = pg_cluster.create_database()
    yield url
    try:
        pg_cluster.sql("SELECT 1")
    except Exception:  # noqa: BLE001 - a test left it stopped
        pg_cluster.start()
