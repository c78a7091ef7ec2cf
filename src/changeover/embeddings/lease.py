"""A per-version lease on the re-embedding job: one run at a time per model version, on
SQLite and PostgreSQL alike.

A lease is a row (version, owner, expires_at). A run takes it with an
insert-if-absent or by taking over an *expired* row, keeps it alive from a
heartbeat thread, checks it in the same transaction as each batch it commits
(so a run that lost its lease cannot write), and deletes it when done. A run
killed with SIGKILL stops renewing: once ``expires_at`` passes, ``status``
shows its job as ``interrupted`` and the next run takes the lease over and
resumes. Times are wall-clock epoch seconds, so the rows mean the same on
every dialect.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, update

from changeover.embeddings.errors import JobRunningError, LeaseLostError
from changeover.embeddings.schema import insert_ignore, leases
from changeover.store import Store
from changeover.store.engine import is_unavailable
from changeover.store.lease import Holder as StoreHolder
from changeover.store.lease import new_owner

DEFAULT_TTL = 30.0  # seconds a lease lives without renewal


@dataclass(frozen=True, slots=True)
class Holder(StoreHolder):
    """Who holds a version's lease, and until when (epoch seconds); a holder known dead is not alive."""

    @property
    def alive(self) -> bool:
        """Not expired, and (when it ran on this host) its process still exists."""
        return self.expires_at > time.time() and not _dead_here(self.owner)


def _dead_here(owner: str) -> bool:
    """True when ``owner`` names a process of this host that no longer exists (SIGKILL, crash).

    Lets the next run take over at once instead of waiting out the lease; a
    holder on another host is judged by its expiry alone.
    """
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def holder(store: Store, version: str) -> Holder | None:
    """The current lease row of a version (alive or expired), or None."""
    with store.engine.connect() as conn:
        row = conn.execute(select(leases).where(leases.c.model_version == version)).first()
    return None if row is None else Holder(row.owner, row.acquired_at, row.expires_at)


def _try_take(conn: Connection, version: str, owner: str, ttl: float, dead: str | None = None) -> bool:
    """Insert the lease row, or take over one that expired (or whose holder ``dead`` is known gone)."""
    at = time.time()
    values = {"model_version": version, "owner": owner, "acquired_at": at, "expires_at": at + ttl}
    if conn.execute(insert_ignore(conn, leases).values(**values)).rowcount == 1:
        return True
    takeover = (leases.c.expires_at < at) | (leases.c.owner == owner)
    if dead is not None:
        takeover = takeover | (leases.c.owner == dead)
    taken = conn.execute(
        update(leases)
        .where(leases.c.model_version == version, takeover)
        .values(owner=owner, acquired_at=at, expires_at=at + ttl)
    )
    return taken.rowcount == 1


class Lease:
    """The right to run the re-embedding job of one version; a context manager.

    ``wait`` > 0: wait up to that many seconds for a running job to finish
    (polling its row); otherwise a held lease raises ``JobRunningError`` at once.
    """

    def __init__(self, store: Store, version: str, ttl: float = DEFAULT_TTL, owner: str | None = None):
        if ttl <= 0:
            raise ValueError("lease ttl must be > 0")
        self.store, self.version, self.ttl = store, version, float(ttl)
        store.ensure(leases)
        self.owner = owner or new_owner()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = threading.Event()

    def acquire(self, wait: float = 0.0) -> Lease:
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            current = holder(self.store, self.version)
            dead = current.owner if current is not None and _dead_here(current.owner) else None
            with self.store.engine.begin() as conn:
                if _try_take(conn, self.version, self.owner, self.ttl, dead):
                    break
            current = holder(self.store, self.version)
            if time.monotonic() >= deadline:
                raise JobRunningError(self._busy_message(current, wait))
            time.sleep(min(0.5, self.ttl / 4))
        self._thread = threading.Thread(target=self._beat, name=f"lease {self.version}", daemon=True)
        self._thread.start()
        return self

    def _busy_message(self, current: Holder | None, waited: float) -> str:
        who = "another run" if current is None else current.owner
        left = 0.0 if current is None else max(0.0, current.expires_at - time.time())
        waited_note = f" (waited {waited:g}s)" if waited > 0 else ""
        return (
            f"a re-embedding job for {self.version} is already running ({who}){waited_note}; "
            f"wait for it (`--wait SECONDS`) or check `changeover embeddings status`; if that run died, "
            f"its lease expires within {left:.0f}s and the next run resumes it"
        )

    def check(self, conn: Connection) -> None:
        """Renew the lease inside the caller's transaction; raise if another run took it."""
        renewed = conn.execute(
            update(leases)
            .where(leases.c.model_version == self.version, leases.c.owner == self.owner)
            .values(expires_at=time.time() + self.ttl)
        )
        if renewed.rowcount != 1:
            self.lost.set()
            raise LeaseLostError(
                f"this run lost the lease on {self.version} (it was not renewed within {self.ttl:g}s and "
                "another run took the job over); nothing of this batch was written, the other run continues"
            )

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with self.store.engine.begin() as conn:
                    self.check(conn)
            except LeaseLostError:
                return
            except Exception:  # noqa: BLE001 - the store may blip; the next beat or batch retries
                continue

    def release(self) -> None:
        """Stop the heartbeat and delete the lease row; with the store gone the row stays behind
        and expires (or, on this host, is taken over at once: its process is gone)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            with self.store.engine.begin() as conn:
                conn.execute(delete(leases).where(leases.c.model_version == self.version, leases.c.owner == self.owner))
        except Exception as exc:
            if not is_unavailable(exc):
                raise

    def __enter__(self) -> Lease:
        if self._thread is None:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
