"""A named lease in the store: at most one live holder per name among the processes on one database.

A lease is a row (name, owner, acquired_at, expires_at). ``hold`` takes it (insert
if absent), renews it (the row is ours) or takes it over (the row expired), in one
conditional statement, so two processes racing for it never both win: on
PostgreSQL the loser's UPDATE waits for the winner's row lock and then finds the
row no longer expired; SQLite has one writer at a time. A holder killed with
SIGKILL stops renewing and the next ``hold`` of another process after
``expires_at`` takes over. Times are wall-clock epoch seconds, so replicas on
several hosts need clocks within a small part of the TTL of each other.

The gateway's rollout controller holds ``rollout-controller`` (shadow.app): only
the holder runs the controller's analysis; every replica follows the stage flag.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Float, String, Table, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from changeover.store.engine import Store, is_unavailable
from changeover.store.schema import metadata

MARGIN = 0.1  # of the TTL: ``held`` turns false this much before the row may expire (clock skew, latency)

named_leases = Table(
    "named_leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("owner", String(256), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)


def new_owner() -> str:
    """A name for this process: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lease, since and until when (epoch seconds)."""

    owner: str
    acquired_at: float
    expires_at: float

    @property
    def alive(self) -> bool:
        return self.expires_at > time.time()


def lease_holder(store: Store, name: str) -> Holder | None:
    """The lease row of ``name`` (alive or expired), or None."""
    store.ensure(named_leases)
    with store.engine.connect() as conn:
        row = conn.execute(select(named_leases).where(named_leases.c.name == name)).first()
    return None if row is None else Holder(row.owner, row.acquired_at, row.expires_at)


def _take(conn: Connection, name: str, owner: str, ttl: float) -> bool:
    at = time.time()
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = conn.execute(
        dialect.insert(named_leases)
        .values(name=name, owner=owner, acquired_at=at, expires_at=at + ttl)
        .on_conflict_do_nothing()
    )
    if inserted.rowcount == 1:
        return True
    c = named_leases.c
    renewed = conn.execute(
        update(named_leases)
        .where(c.name == name, (c.owner == owner) | (c.expires_at < at))
        .values(owner=owner, expires_at=at + ttl, acquired_at=case((c.owner == owner, c.acquired_at), else_=at))
    )
    return renewed.rowcount == 1


class NamedLease:
    """One process's claim on a named lease; ``hold`` is called periodically (at most every TTL/3)."""

    def __init__(self, store: Store, name: str, ttl: float = 10.0, owner: str | None = None):
        if ttl <= 0:
            raise ValueError("lease ttl must be > 0")
        self.store, self.name, self.ttl = store, name, float(ttl)
        self.owner = owner or new_owner()
        self._held = False  # as of the last hold()
        self._valid_until = 0.0  # monotonic: the last successful hold's start + ttl - margin
        self.taken = 0  # times this process took the lease (first time or after another holder)
        self.errors = 0  # hold() calls the store could not answer (the lease counts as not held)

    @property
    def held(self) -> bool:
        """Held as of the last ``hold()`` and not expired since: a renewal that stalls (a busy executor, a
        slow store) stops counting as held before the row can expire and another process take over."""
        return self._held and time.monotonic() < self._valid_until

    def hold(self) -> bool:
        """Take, renew or take over the lease; whether this process holds it now. A store that cannot
        be reached means not held (counted in ``errors``): another process may take over meanwhile."""
        start = time.monotonic()
        try:
            self.store.ensure(named_leases)
            with self.store.engine.begin() as conn:
                held = _take(conn, self.name, self.owner, self.ttl)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self.errors += 1
            held = False
        if held and not self.held:
            self.taken += 1
        self._held = held
        if held:
            self._valid_until = start + self.ttl * (1 - MARGIN)
        return self.held

    def release(self) -> None:
        """Give the lease up (graceful shutdown): another process takes it at its next ``hold``."""
        was, self._held = self._held, False
        if not was:
            return
        try:
            with self.store.engine.begin() as conn:
                conn.execute(
                    delete(named_leases).where(named_leases.c.name == self.name, named_leases.c.owner == self.owner)
                )
        except Exception as exc:  # the store away: the row expires on its own
            if not is_unavailable(exc):
                raise
