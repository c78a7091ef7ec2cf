"""Benchmark: the evaluation pipeline's overhead per call against a bare client, same local server.

Both sides send the same N chat completions, 200 at a time, to one fake
OpenAI-compatible server (tests/support/fake_openai.py) running in its own
process with a fixed latency per call:
- bare: the same HTTP transport (providers.http.ClientPool), a semaphore, json
  bodies and nothing else;
- pipeline: ModelClient (rate-limit buckets, concurrency slots, retry loop,
  timeout, cost) + CachedCaller writing every result to a SQLite call cache
  with group commit - what ``changeover evaluate`` does per call.
Runs alternate (bare, pipeline, bare, ...) and the medians are compared.
Prints the wall times, the overhead per call, and the ratio (target < 1.05).
For reference it also times a naive single httpx.AsyncClient with 200
connections (what the transport pool replaces).

    python benchmarks/bench_evaluate.py [--calls 2000] [--concurrency 200] [--latency 0.25]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from changeover.providers import CachedCaller, CallCache, ChatRequest, ModelClient, ModelConfig, Price  # noqa: E402
from changeover.providers.http import ClientPool  # noqa: E402
from changeover.providers.openai_compat import OpenAIProvider  # noqa: E402
from changeover.store import open_store  # noqa: E402


def _serve(latency: float, port_queue: mp.Queue, stop: mp.Event) -> None:
    import importlib.util  # by path: a site-packages 'tests' package may shadow this repo's tests/

    spec = importlib.util.spec_from_file_location("fake_openai", ROOT / "tests" / "support" / "fake_openai.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_openai"] = module
    spec.loader.exec_module(module)
    with module.FakeOpenAI() as fake:
        fake.default.latency = latency
        fake.default.reply = "The capital of France is Paris."
        port_queue.put(fake.port)
        stop.wait()


def requests(n: int, tag: str) -> list[ChatRequest]:
    return [
        ChatRequest(
            [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": f"Question {tag}-{i}: what is the capital of France?"},
            ],
            {"max_tokens": 32, "temperature": 0},
            item=f"{tag}-{i}",
        )
        for i in range(n)
    ]


async def bare(base_url: str, reqs: list[ChatRequest], concurrency: int, naive: bool = False) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = (
        httpx.AsyncClient(base_url=base_url + "/", limits=limits, timeout=60)
        if naive
        else ClientPool(base_url, {}, concurrency, 60)
    )
    try:
        slots = asyncio.Semaphore(concurrency)

        async def one(r: ChatRequest) -> str:
            async with slots:
                resp = await client.post(
                    "chat/completions", json={"model": "bench", "messages": r.messages, **r.params}
                )
                return resp.json()["choices"][0]["message"]["content"]

        start, cpu = time.perf_counter(), time.process_time()
        outs = await asyncio.gather(*(one(r) for r in reqs))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await client.aclose()
    assert all(outs)
    return elapsed, cpu


async def pipeline(base_url: str, reqs: list[ChatRequest], concurrency: int, db: Path) -> tuple[float, float]:
    config = ModelConfig(base_url=base_url, concurrency=concurrency, rpm=10_000_000, tpm=10_000_000_000)
    client = ModelClient(
        "bench",
        OpenAIProvider("bench", base_url, concurrency=concurrency),
        config,
        Price(input_per_1k=0.5, output_per_1k=1.5),
    )
    with open_store(f"sqlite:///{db}") as store:
        cache = CallCache(store)
        caller = CachedCaller(cache)
        caller.preload([r.item for r in reqs])
        start, cpu = time.perf_counter(), time.process_time()
        outs = await asyncio.gather(*(caller.call(client, "response", r.item or "", "v1", r) for r in reqs))
        await cache.close()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        await client.aclose()
        assert all(c.ok for c, _ in outs) and not any(cached for _, cached in outs)
        assert cache.writes == len(reqs)
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.25, help="server latency per call, seconds")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    port_queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(args.latency, port_queue, stop), daemon=True)
    server.start()
    base_url = f"http://127.0.0.1:{port_queue.get(timeout=30)}/v1"
    bare_times, pipe_times = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(bare(base_url, requests(args.concurrency, "warm"), args.concurrency))  # warm up
            for k in range(args.rounds):
                bare_times.append(asyncio.run(bare(base_url, requests(args.calls, f"b{k}"), args.concurrency)))
                pipe_times.append(
                    asyncio.run(
                        pipeline(base_url, requests(args.calls, f"p{k}"), args.concurrency, Path(tmp) / f"bench{k}.db")
                    )
                )
            naive, _ = asyncio.run(bare(base_url, requests(args.calls, "n"), args.concurrency, naive=True))
    finally:
        stop.set()
        server.join(timeout=10)
    bare_cpu = [c for _, c in bare_times]
    pipe_cpu = [c for _, c in pipe_times]
    bare_times = [t for t, _ in bare_times]
    pipe_times = [t for t, _ in pipe_times]
    b, p = statistics.median(bare_times), statistics.median(pipe_times)
    paired = statistics.median(pt / bt for pt, bt in zip(pipe_times, bare_times, strict=True))
    cpu_extra_ms = (statistics.median(pipe_cpu) - statistics.median(bare_cpu)) / args.calls * 1000
    waves = args.calls / args.concurrency
    print(
        f"{args.calls} calls, {args.concurrency} concurrent, server latency {args.latency * 1000:.0f} ms, "
        f"{args.rounds} rounds (median)"
    )
    print(
        f"bare client : {b:7.3f} s  ({args.calls / b:7.1f} calls/s)  rounds: "
        + ", ".join(f"{t:.3f}" for t in bare_times)
    )
    print(
        f"pipeline    : {p:7.3f} s  ({args.calls / p:7.1f} calls/s)  rounds: "
        + ", ".join(f"{t:.3f}" for t in pipe_times)
    )
    print(
        f"(reference) one httpx.AsyncClient, {args.concurrency} connections: {naive:7.3f} s "
        f"({args.calls / naive:7.1f} calls/s)"
    )
    print(
        f"overhead per call: {(p - b) / waves * 1000:+.1f} ms of latency "
        f"({(p - b) / args.calls * 1000:+.3f} ms of wall time per call)"
    )
    print(
        f"client CPU per call: bare {statistics.median(bare_cpu) / args.calls * 1000:.3f} ms, pipeline "
        f"{statistics.median(pipe_cpu) / args.calls * 1000:.3f} ms (+{cpu_extra_ms:.3f} ms, "
        f"{cpu_extra_ms / (args.latency * 1000) * 100:.2f}% of the {args.latency * 1000:.0f} ms call); "
        "CPU time is robust to other load on the machine, wall time is not"
    )
    print(f"ratio of medians pipeline/bare: {p / b:.3f}")
    print(
        f"ratio pipeline/bare (median of paired rounds): {paired:.3f}  "
        f"({(paired - 1) * 100:+.1f}% overhead; target < +5%)"
    )


if __name__ == "__main__":
    main()
