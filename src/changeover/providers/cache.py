"""The call cache: every successful model call stored once, so a rerun or a resume calls nothing twice.

A call is keyed by (kind, item, model, prompt version, request fingerprint),
the fingerprint covering messages, tools and parameters. Results are written
with group commit: each ``put`` waits until its row is committed, and all
rows that arrived meanwhile share one transaction, so throughput stays high
and a crash loses only calls that were still in flight. Failed calls are not
cached: a rerun tries them again.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, String, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from changeover.providers.base import ChatRequest, Completion
from changeover.store import Store, metadata

call_cache = Table(
    "eval_calls",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),  # response | judge:<signal>
    Column("item", String(512), nullable=False),
    Column("model", String(256), nullable=False),
    Column("prompt_version", String(256), nullable=False),
    Column("completion", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

_CHUNK = 500


def call_key(kind: str, item: str, model: str, prompt_version: str, request: ChatRequest) -> str:
    """The cache key of one call."""
    blob = "\x1f".join((kind, item, model, prompt_version, request.fingerprint()))
    return hashlib.sha256(blob.encode()).hexdigest()


class CallCache:
    """Read cached completions; write new ones with group commit (use inside one event loop)."""

    def __init__(self, store: Store):
        self.store = store
        store.ensure(call_cache)
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self.hits = 0
        self.writes = 0

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        """The cached completions of these call keys, by key."""
        return self._select(call_cache.c.key, keys)

    def get_for_items(self, items: list[str]) -> dict[str, Completion]:
        """Every cached completion of these items (responses and judgements), by key."""
        return self._select(call_cache.c.item, items)

    def _select(self, column: Column, values: list[str]) -> dict[str, Completion]:
        out: dict[str, Completion] = {}
        with self.store.engine.connect() as conn:
            for start in range(0, len(values), _CHUNK):
                rows = conn.execute(
                    select(call_cache.c.key, call_cache.c.completion).where(column.in_(values[start : start + _CHUNK]))
                ).all()
                out.update({r.key: Completion.from_dict(r.completion) for r in rows})
        return out

    def count(self) -> int:
        with self.store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(call_cache)).scalar_one()

    async def put(
        self, key: str, kind: str, item: str, model: str, prompt_version: str, completion: Completion
    ) -> None:
        """Store a successful completion; returns once it is committed."""
        row = {
            "key": key,
            "kind": kind,
            "item": item,
            "model": model,
            "prompt_version": prompt_version,
            "completion": completion.to_dict(),
            "created_at": datetime.now(UTC),
        }
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._writer is None or self._writer.done():
            self._wake = asyncio.Event()
            self._writer = asyncio.create_task(self._write_loop())
        assert self._wake is not None
        self._wake.set()
        await future

    async def _write_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                await asyncio.to_thread(self._insert, [row for row, _ in batch])
            except Exception as exc:  # surface the store error to every waiter
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.writes += len(batch)
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
            if self._pending:
                self._wake.set()

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        dialect = self.store.dialect
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        with self.store.engine.begin() as conn:
            conn.execute(insert(call_cache).on_conflict_do_nothing(index_elements=["key"]), rows)

    async def close(self) -> None:
        if self._writer is not None and not self._writer.done():
            assert self._wake is not None
            self._wake.set()
            await self._writer


class CachedCaller:
    """Call a model through the cache: a hit returns the stored completion, a miss calls and stores."""

    def __init__(self, cache: CallCache | None):
        self.cache = cache
        self._known: dict[str, Completion] = {}
        self._inflight: dict[str, asyncio.Future[Completion]] = {}

    def preload(self, items: list[str]) -> int:
        """Fetch every cached completion of ``items`` in bulk; returns how many were found."""
        if self.cache is None:
            return 0
        found = self.cache.get_for_items(items)
        self._known.update(found)
        return len(found)

    async def call(
        self, client: Any, kind: str, item: str, prompt_version: str, request: ChatRequest
    ) -> tuple[Completion, bool]:
        """(completion, was_cached). ``client`` is a ModelClient.

        The key covers the request as the model is sent it (``client.prepare``: its default
        parameters and ``param_map``), so changing either is a new call, never a stale hit.

        The same call asked twice at once is made once: the second waits for the first.
        """
        key = call_key(kind, item, client.name, prompt_version, client.prepare(request))
        hit = self._known.get(key)
        if hit is not None:
            if self.cache is not None:
                self.cache.hits += 1
            return hit, True
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        cache = self.cache

        async def keep(result: Completion) -> None:  # stored while the call holds its slot
            await cache.put(key, kind, item, client.name, prompt_version, result)

        try:
            result = await client.complete(request, keep=keep if cache is not None else None)
            if result.ok:
                self._known[key] = result
            future.set_result(result)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._inflight[key]
        return result, False
