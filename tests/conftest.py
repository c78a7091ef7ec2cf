"""Fixtures shared by every test folder: stores on SQLite and on a real PostgreSQL.

``store`` is parametrised over both backends. PostgreSQL comes from
``CHANGEOVER_TEST_PG`` (scripts/setup.d/10-postgres.sh starts one on
loopback); under CI a missing PostgreSQL is an error, never a silent skip.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

# The CLI gives piped output 120 columns unless COLUMNS says otherwise (cli/common.py), and the tests read it.
# In a pytest-xdist worker COLUMNS is unset at start-up but reads 80 by the time a test runs (measured), which
# wrapped the lines 7 tests look for. Set here, before changeover loads, it stays 120 as in one process.
os.environ.setdefault("COLUMNS", "120")

import pytest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from changeover.store import Store, open_store  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"


def _pg_base() -> str | None:
    url = os.environ.get("CHANGEOVER_TEST_PG")
    if not url and os.environ.get("CI"):
        raise RuntimeError("CI=true but CHANGEOVER_TEST_PG is unset: scripts/setup.d/10-postgres.sh failed")
    return url


@pytest.fixture
def pg_url() -> str:
    """A fresh, empty PostgreSQL database on the test server (dropped afterwards)."""
    base = _pg_base()
    if not base:
        pytest.skip("no PostgreSQL: set CHANGEOVER_TEST_PG or run scripts/test")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'changeover.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path) -> str:
    """A store URL on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'changeover.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url: str) -> Store:
    s = open_store(store_url)
    yield s
    s.dispose()


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real public data sets); required in CI."""
    if not SHARED_DATA.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{SHARED_DATA} is missing")
        pytest.skip("../shared/data is not beside the repo")
    return SHARED_DATA
