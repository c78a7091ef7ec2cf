"""The call cache on SQLite and PostgreSQL: group commit, idempotent writes, lookups by item."""

from __future__ import annotations

import asyncio

from changeover.providers import CachedCaller, CallCache, ChatRequest, Completion, call_key


class CountingClient:
    """A stand-in ModelClient that counts calls (the cache is what is under test here)."""

    name = "m"

    def __init__(self, fail_on: set[str] | None = None):
        self.calls = 0
        self.fail_on = fail_on or set()

    def prepare(self, request: ChatRequest) -> ChatRequest:
        return request

    async def complete(self, request: ChatRequest, keep=None) -> Completion:
        self.calls += 1
        await asyncio.sleep(0.001)
        if request.item in self.fail_on:
            return Completion(text=None, error="HTTP 500")
        result = Completion(text=f"answer {request.item}", tokens_in=3, tokens_out=2, latency_ms=1.0)
        if keep is not None:  # as ModelClient does: stored before the call counts as done
            await keep(result)
        return result


def _requests(n: int) -> list[ChatRequest]:
    return [ChatRequest([{"role": "user", "content": f"q{i}"}], {"max_tokens": 5}, item=f"i{i}") for i in range(n)]


def test_cache_stores_each_call_once_and_skips_failures(store):
    async def run(client: CountingClient, requests: list[ChatRequest]) -> list[tuple[Completion, bool]]:
        cache = CallCache(store)
        caller = CachedCaller(cache)
        caller.preload([r.item for r in requests])
        try:
            return await asyncio.gather(*(caller.call(client, "response", r.item, "v1", r) for r in requests))
        finally:
            await cache.close()

    requests = _requests(50)
    first = CountingClient(fail_on={"i7"})
    out = asyncio.run(run(first, requests))
    assert first.calls == 50 and not any(cached for _, cached in out)
    assert CallCache(store).count() == 49  # the failure is not cached
    again = CountingClient()
    out = asyncio.run(run(again, requests))
    assert again.calls == 1  # only the failed one is retried
    assert [c.text for c, _ in out] == [f"answer i{i}" for i in range(50)]
    assert sum(cached for _, cached in out) == 49
    key = call_key("response", "i3", "m", "v1", requests[3])
    assert CallCache(store).get_many([key])[key].tokens_in == 3
    other_version = call_key("response", "i3", "m", "v2", requests[3])
    assert other_version != key and CallCache(store).get_many([other_version]) == {}


def test_concurrent_duplicate_puts_are_idempotent(store):
    async def go():
        cache = CallCache(store)
        done = Completion(text="x")
        await asyncio.gather(*(cache.put("k" * 64, "response", "i", "m", "v", done) for _ in range(5)))
        await cache.close()

    asyncio.run(go())
    assert CallCache(store).count() == 1


def test_the_same_call_asked_at_once_is_made_once(sqlite_url):
    from changeover.store import open_store

    async def go(store):
        client = CountingClient()
        caller = CachedCaller(CallCache(store))
        request = _requests(1)[0]
        outs = await asyncio.gather(*(caller.call(client, "judge:x", "i0", "judge", request) for _ in range(5)))
        await caller.cache.close()
        return client.calls, outs

    with open_store(sqlite_url) as store:
        calls, outs = asyncio.run(go(store))
    assert calls == 1 and {c.text for c, _ in outs} == {"answer i0"}
    assert sum(not cached for _, cached in outs) == 1
