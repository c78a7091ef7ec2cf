"""Benchmark the gateway against its upstream, on loopback, in one run.

Starts an OpenAI-compatible upstream (tests/support/fake_openai.py's app) and
`changeover serve` (mirroring every request to a candidate, logging to SQLite)
as separate processes, then drives first the upstream directly and then the
gateway with the same load:

- open loop at a fixed rate (default 200 requests/s) -> added latency p50 / p99;
- closed loop at fixed concurrency (default 16) -> throughput ratio gateway / direct.

With judging on (the default; ``--no-judge`` turns it off) the gateway also runs
the spec's LLM judge (the same fake upstream, model ``judge``) on the mirrored
pairs in its background worker; the run prints the worker's throughput and the
share of pairs the word-similarity pre-filter spared a judge call (the
candidate answers word for word like the incumbent about half the time).
``--quick`` is a 5 s / 1000-request run.

Targets: added p50 < 2 ms, added p99 < 10 ms at 200 req/s with mirroring on, throughput >= 0.8x.
Bounded in time and count; loopback only. Run: python benchmarks/bench_gateway.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
BODY = json.dumps(
    {"model": "gpt", "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 32}
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_upstream(port: int, latency: float) -> None:
    """Child process: the fake OpenAI app on a real uvicorn socket (host/port binding sets TCP_NODELAY)."""
    import importlib.util

    import uvicorn

    # by path: an installed package named "tests" may shadow the repo's tests/ folder
    spec = importlib.util.spec_from_file_location("fake_openai", ROOT / "tests/support/fake_openai.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_openai"] = module
    spec.loader.exec_module(module)
    Behaviour, FakeOpenAI = module.Behaviour, module.FakeOpenAI
    fake = FakeOpenAI(default=Behaviour(latency=latency, reply="Paris is the capital of France."))
    fake.set("new", reply=lambda _body: random.choice(["Paris is the capital of France.", "It is Paris."]))
    fake.set("judge", reply='{"verdict": "EQUIVALENT"}')
    uvicorn.run(
        fake._app(), host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off", backlog=2048
    )


class Conn:
    """A lean HTTP/1.1 keep-alive client on asyncio streams, so the load generator costs little CPU."""

    def __init__(self, port: int, path: str):
        self.port = port
        self.request = (
            f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"x-changeover-user: bench\r\ncontent-length: {len(BODY)}\r\n\r\n"
        ).encode() + BODY

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def post(self) -> int:
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def open_loop(port: int, path: str, rate: float, seconds: float, pool: int = 64) -> list[float]:
    """Send at a fixed rate for ``seconds``; latency of each request in ms."""
    conns: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(pool):
        conns.put_nowait(await Conn(port, path).open())
    latencies: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        conn = await conns.get()
        t0 = time.perf_counter()
        if await conn.post() != 200:
            errors += 1
        latencies.append((time.perf_counter() - t0) * 1000.0)
        conns.put_nowait(conn)

    tasks = []
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    while not conns.empty():
        conns.get_nowait().close()
    if errors:
        raise RuntimeError(f"{errors} requests failed")
    return latencies


async def closed_loop(port: int, path: str, concurrency: int, count: int) -> float:
    """``count`` requests over ``concurrency`` connections as fast as possible; requests per second."""
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        conn = await Conn(port, path).open()
        while remaining > 0:
            remaining -= 1
            await conn.post()
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - t0)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=200.0, help="open-loop requests per second")
    ap.add_argument("--seconds", type=float, default=10.0, help="open-loop duration per target")
    ap.add_argument("--concurrency", type=int, default=16, help="closed-loop connections")
    ap.add_argument("--count", type=int, default=3000, help="closed-loop requests per target")
    ap.add_argument("--latency", type=float, default=0.005, help="upstream answer latency in seconds")
    ap.add_argument("--sample", type=float, default=1.0, help="share of requests mirrored")
    ap.add_argument("--no-judge", dest="judge", action="store_false", help="no judging worker")
    ap.add_argument("--quick", action="store_true", help="5 s open loop, 1000 closed-loop requests")
    ap.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.count = 5.0, 1000
    if args.upstream:
        serve_upstream(args.upstream, args.latency)
        return

    up_port, gw_port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "migration.yaml"
        base = f"http://127.0.0.1:{up_port}/v1"
        raw = {
            "incumbent": "old",
            "candidates": ["new"],
            "dimensions": {"equivalence": {"signal": "equivalent"}},
            "gateway": {"upstreams": {"old": {"base_url": base}, "new": {"base_url": base}}},
            "shadow": {"sample": args.sample, "queue_size": 2000, "concurrency": 16},
            "rollout": {"stages": [{"weight": 0}, {"weight": 100}], "interval": 3600},
        }
        if args.judge:
            raw["models"] = {"judge": {"base_url": base, "max_retries": 0}}
            raw["judges"] = {"equivalent": {"kind": "llm", "model": "judge", "rubric": "equivalence"}}
            raw["shadow"]["judge"] = {"requests_per_minute": 100000, "usd_per_day": 100.0, "queue_size": 5000}
        spec.write_text(yaml.safe_dump(raw))
        t_start = time.monotonic()
        try:
            procs.append(
                subprocess.Popen([sys.executable, __file__, "--upstream", str(up_port), "--latency", str(args.latency)])
            )
            wait_ready(f"http://127.0.0.1:{up_port}/v1/models", procs[0])
            procs.append(
                subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "changeover"),
                        "serve",
                        "--spec",
                        str(spec),
                        "--db",
                        str(Path(tmp) / "gw.db"),
                        "--port",
                        str(gw_port),
                        "--no-controller",
                    ],
                    stdout=subprocess.DEVNULL,
                    env={**os.environ, "CHANGEOVER_ADMIN_TOKEN": "bench"},
                )
            )
            wait_ready(f"http://127.0.0.1:{gw_port}/healthz", procs[1])
            run = asyncio.run
            # warm-up both paths (connections, code paths)
            run(open_loop(up_port, "/v1/chat/completions", args.rate, 1.0))
            run(open_loop(gw_port, "/v1/chat/completions", args.rate, 1.0))
            direct = np.array(run(open_loop(up_port, "/v1/chat/completions", args.rate, args.seconds)))
            via = np.array(run(open_loop(gw_port, "/v1/chat/completions", args.rate, args.seconds)))
            rps_direct = run(closed_loop(up_port, "/v1/chat/completions", args.concurrency, args.count))
            rps_via = run(closed_loop(gw_port, "/v1/chat/completions", args.concurrency, args.count))
            status = httpx.get(
                f"http://127.0.0.1:{gw_port}/admin/status", headers={"authorization": "Bearer bench"}
            ).json()
            elapsed = time.monotonic() - t_start
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    d50, d99 = np.percentile(direct, [50, 99])
    g50, g99 = np.percentile(via, [50, 99])
    ratio = rps_via / rps_direct
    print(
        f"open loop at {args.rate:.0f} req/s for {args.seconds:.0f} s ({len(via)} requests per target), "
        f"upstream latency {args.latency * 1000:.0f} ms, mirroring {args.sample:.0%} to a candidate:"
    )
    print(f"  direct   p50 {d50:7.2f} ms   p99 {d99:7.2f} ms")
    print(f"  gateway  p50 {g50:7.2f} ms   p99 {g99:7.2f} ms")
    print(f"  added    p50 {g50 - d50:7.2f} ms   p99 {g99 - d99:7.2f} ms   (targets < 2 ms, < 10 ms)")
    print(f"closed loop, {args.concurrency} connections, {args.count} requests per target:")
    print(f"  direct {rps_direct:8.0f} req/s   gateway {rps_via:8.0f} req/s   ratio {ratio:.2f}x  (target >= 0.8x)")
    print(
        f"gateway counters: mirrors sent {status['mirror']['sent']}, dropped {status['mirror']['dropped']}; "
        f"log written {status['log']['written']}, dropped {status['log']['dropped']}"
    )
    judge = status.get("judge")
    if judge:
        pairs = judge["judged"] or 1
        print(
            f"judging worker: {judge['judged']} pairs judged in {elapsed:.0f} s ({judge['judged'] / elapsed:.1f} "
            f"pairs/s, {judge['judge_calls']} judge calls), pre-filter spared {judge['prefiltered'] / pairs:.0%} "
            f"of candidate answers; dropped {judge['dropped']}, paused {judge['paused']}, errors {judge['errors']}, "
            f"queued at the end {judge['queued']}"
        )


if __name__ == "__main__":
    main()
