"""A throwaway PostgreSQL cluster the fault tests may stop, crash and restart.

Never the shared test server (``CHANGEOVER_TEST_PG``, other suites use it): a
cluster of its own with Debian's binaries, on a free loopback port, data and
socket in a temporary directory, removed at the end. Run as the ``postgres``
user when the tests run as root (initdb refuses root), as scripts/setup.d/10-postgres.sh does.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from tests.gateway.helpers import free_port


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PgCluster:
    """initdb + pg_ctl on a temp directory; ``stop``/``start`` make the store go away and come back."""

    def __init__(self) -> None:
        binaries = pg_bin()
        if binaries is None:
            raise RuntimeError(
                "PostgreSQL binaries not found under /usr/lib/postgresql (scripts/setup.d/10-postgres.sh)"
            )
        self.bin = binaries
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="changeover-faults-pg-"))
        self.data = self.root / "db"
        self.log = self.root / "log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, "postgres")
        self._pg(f"{self.bin}/initdb -D {self.data} -U postgres -A trust")

    def _pg(self, command: str) -> None:
        args = ["su", "postgres", "-s", "/bin/sh", "-c", command] if self._as_root else ["sh", "-c", command]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{command}: {done.stdout}{done.stderr}")

    def start(self) -> PgCluster:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg(f"{self.bin}/pg_ctl -D {self.data} -o '{options}' -l {self.log} -w -t 60 start")
        return self

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash (no checkpoint, connections cut); ``fast`` a clean shutdown."""
        self._pg(f"{self.bin}/pg_ctl -D {self.data} -m {mode} -w -t 60 stop")

    @property
    def base(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def create_database(self) -> str:
        name = f"f_{uuid.uuid4().hex[:10]}"
        self.sql(f'CREATE DATABASE "{name}"')
        return f"{self.base}/{name}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        engine = create_engine(f"{self.base}/{database}", isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(text(statement))
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def terminate_backends(self, database: str) -> int:
        """Cut every connection to ``database`` (as a failover or an admin would); returns how many."""
        rows = self.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )
        return len(rows)

    def close(self) -> None:
        """Stop the server (if it runs) and remove its directory; never leaves a postmaster behind."""
        try:
            self.stop("immediate")
        except RuntimeError:
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():  # pg_ctl failed but a server runs: stop it by its own pid
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
        shutil.rmtree(self.root, ignore_errors=True)
