"""Benchmark the gateway against its upstream, on loopback, in one run: latency, throughput, judging.

Starts an OpenAI-compatible upstream (tests/support/fake_openai.py's app, as the
incumbent, the candidate and the judge) and two `changeover serve` processes in front
of it, both mirroring every request to the candidate and logging to SQLite, one of them
also judging the mirrored pairs with a pairwise ``comparison`` judge in its background
worker. It then sends the same load to the three targets - the upstream directly (the
baseline), the mirroring gateway, the mirroring + judging gateway - in turn, round after
round, so all three meet the same background load:

- open loop at a fixed rate (default 200 requests/s) -> latency p50 / p99 / p99.9 and the
  added p50 / p99 of each gateway (per round too), and each gateway process's CPU;
- closed loop at fixed concurrency (default 16) -> throughput ratio gateway / direct;
- the judging worker's throughput (pairs judged and judge calls per second, while its
  gateway serves the open loop and while it drains its queue with no traffic), the share
  of pairs the word-similarity pre-filter settled without a judge call and the comparison
  classes, all read from the gateway's own /metrics counters.

The traffic: 400 distinct prompts sent in turn. The candidate answers 20% of them
byte-identical to the incumbent and 10% in the same words (case, punctuation), which
the pre-filter settles; the other 70% are worded differently, and the fake judge reads
each of those as its prompt's kind says (40% equivalent, 12% candidate worse, 6%
better, 12% different), wherever the judge's A/B order put the candidate.

Targets: added p50 < 2 ms, added p99 < 10 ms at 200 req/s with mirroring and judging on
(MET / NOT MET printed for the judging gateway); throughput >= 0.8x. ``--quick`` runs in
under a minute, the default in about one. Loopback only, bounded in time.
Run: python benchmarks/bench_gateway.py [--quick] [--judge-latency 0.5] [--no-judge]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402  (sets one thread per process before numpy loads)
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHAT = "/v1/chat/completions"

# ----------------------------------------------------------------------------- the traffic and its answers

CAPITALS = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Canada", "Ottawa"),
    ("Norway", "Oslo"), ("Egypt", "Cairo"), ("Chile", "Santiago"), ("India", "New Delhi"), ("Spain", "Madrid"),
]  # fmt: skip
PROMPTS = [f"Ticket {i}: what is the capital of {CAPITALS[i % 10][0]}?" for i in range(400)]
# the candidate's answer to a prompt by its kind (percent bucket of the ticket number, spread by a stride
# coprime to 100, so every 100 prompts hold the shares exactly); the first two kinds are settled by the
# pre-filter, the others go to the judge, which answers each kind as its name says
KINDS = (("identical", 20), ("same words", 10), ("equivalent", 40), ("worse", 12), ("better", 6), ("different", 12))
PREFILTERED_KINDS = ("identical", "same words")


def _ticket(prompt: str) -> int:
    return int(prompt.split()[1].rstrip(":"))


def kind_of(prompt: str) -> str:
    bucket = _ticket(prompt) * 37 % 100
    for kind, share in KINDS:
        if bucket < share:
            return kind
        bucket -= share
    raise AssertionError("the kinds' shares add up to 100")


def _country(prompt: str) -> tuple[str, str]:
    return CAPITALS[_ticket(prompt) % 10]


def incumbent_answer(prompt: str) -> str:
    country, capital = _country(prompt)
    return f"The capital of {country} is {capital}."


def candidate_answer(prompt: str) -> str:
    country, capital = _country(prompt)
    return {
        "identical": f"The capital of {country} is {capital}.",
        "same words": f"the capital of {country} is {capital}",
        "equivalent": f"{capital} is {country}'s capital city.",
        "worse": f"I am not sure which city is the capital of {country}.",
        "better": f"The capital of {country} is {capital}, which is also the seat of its government.",
        "different": f"Most visitors to {country} arrive through {capital}.",
    }[kind_of(prompt)]


def _last_user(body: dict[str, Any]) -> str:
    return next((m["content"] for m in reversed(body["messages"]) if m.get("role") == "user"), "")


_COMPARISON = re.compile(r"REQUEST:\n(.*)\n\nRESPONSE A:\n(.*)\n\nRESPONSE B:\n(.*)", re.DOTALL)


def judge_reply(body: dict[str, Any]) -> str:
    """The comparison rubric's verdict for the pair in the judge's request, from the prompt's kind."""
    found = _COMPARISON.search(_last_user(body))
    if found is None:
        return '{"verdict": "DIFFERENT", "reason": "not a comparison request"}'
    prompt, a = found.group(1), found.group(2)
    kind = kind_of(prompt)
    candidate_is_a = a.strip() == candidate_answer(prompt)
    verdict = {
        "worse": "B_BETTER" if candidate_is_a else "A_BETTER",
        "better": "A_BETTER" if candidate_is_a else "B_BETTER",
        "different": "DIFFERENT",
    }.get(kind, "EQUIVALENT")
    return json.dumps({"verdict": verdict, "reason": f"a {kind} answer"})


def serve_upstream(port: int, latency: float, judge_latency: float) -> None:
    """Child process: the fake OpenAI app on a real uvicorn socket (host/port binding sets TCP_NODELAY)."""
    import importlib.util

    import uvicorn

    # by path: an installed package named "tests" may shadow the repo's tests/ folder
    spec = importlib.util.spec_from_file_location("fake_openai", ROOT / "tests/support/fake_openai.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_openai"] = module
    spec.loader.exec_module(module)
    fake = module.FakeOpenAI(default=module.Behaviour(latency=latency))
    fake.set("old", reply=lambda body: incumbent_answer(_last_user(body)))
    fake.set("new", reply=lambda body: candidate_answer(_last_user(body)))
    fake.set("judge", latency=judge_latency, reply=judge_reply)
    uvicorn.run(
        fake._app(), host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off", backlog=2048
    )


# ----------------------------------------------------------------------------- the load generator

_REQUESTS = [
    json.dumps({"model": "gpt", "messages": [{"role": "user", "content": p}], "max_tokens": 32}).encode()
    for p in PROMPTS
]
_NEXT = itertools.count()


class Conn:
    """A lean HTTP/1.1 keep-alive client on asyncio streams, so the load generator costs little CPU;
    each request sends the next of the prompts."""

    def __init__(self, port: int, path: str):
        self.port = port
        self.heads = [
            (
                f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                f"x-changeover-user: bench\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode()
            + body
            for body in _REQUESTS
        ]

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def post(self) -> int:
        self.writer.write(self.heads[next(_NEXT) % len(self.heads)])
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


async def open_loop(port: int, rate: float, seconds: float, pool: int = 64) -> list[float]:
    """Send at a fixed rate for ``seconds``; latency of each request in ms."""
    conns: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(pool):
        conns.put_nowait(await Conn(port, CHAT).open())
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
    for i in range(int(rate * seconds)):
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


async def closed_loop(port: int, concurrency: int, count: int) -> float:
    """``count`` requests over ``concurrency`` connections as fast as possible; requests per second."""
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        conn = await Conn(port, CHAT).open()
        while remaining > 0:
            remaining -= 1
            await conn.post()
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------- the gateway's /metrics

_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Scrape:
    """One read of the gateway's /metrics: name -> {labels: value}, and when (monotonic seconds)."""

    at: float
    series: dict[str, dict[tuple[tuple[str, str], ...], float]]

    def total(self, name: str) -> float:
        return sum(self.series.get(name, {}).values())

    def by(self, name: str, label: str) -> dict[str, float]:
        return {dict(k).get(label, ""): v for k, v in self.series.get(name, {}).items()}


def scrape(port: int) -> Scrape:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    series: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for line in text.splitlines():
        found = None if line.startswith("#") else _SAMPLE.match(line)
        if found:
            name, labels, value = found.groups()
            series.setdefault(name, {})[tuple(_LABEL.findall(labels or ""))] = float(value)
    return Scrape(time.monotonic(), series)


@dataclass(frozen=True)
class Rate:
    """Pairs judged and judge calls made between two scrapes."""

    pairs: float
    calls: float
    seconds: float
    queued: float  # pairs waiting at the end

    @classmethod
    def between(cls, a: Scrape, b: Scrape) -> Rate:
        return cls(
            b.total("changeover_judge_pairs_judged_total") - a.total("changeover_judge_pairs_judged_total"),
            b.total("changeover_judge_calls_total") - a.total("changeover_judge_calls_total"),
            b.at - a.at,
            b.total("changeover_judge_queue_depth"),
        )

    def __add__(self, other: Rate) -> Rate:
        return Rate(self.pairs + other.pairs, self.calls + other.calls, self.seconds + other.seconds, other.queued)

    def line(self) -> str:
        if self.pairs < 20 or self.seconds <= 0:
            return f"{self.pairs:.0f} pairs, too few for a rate"
        behind = "queue empty at the end" if self.queued == 0 else f"{self.queued:.0f} pairs still queued"
        return (
            f"{self.pairs:6.0f} pairs in {self.seconds:5.1f} s = {self.pairs / self.seconds:6.1f} pairs/s, "
            f"{self.calls / self.seconds:6.1f} judge calls/s   ({behind})"
        )


def drain(port: int, limit: float) -> tuple[Scrape, Scrape]:
    """With no traffic, scrape until every pair is judged (queue empty, count still) or ``limit`` seconds
    passed: (first, the scrape that saw the last judged pair)."""
    first = last = scrape(port)
    while last.at - first.at < limit:
        time.sleep(0.25)
        now = scrape(port)
        settled = now.total("changeover_judge_pairs_judged_total") == last.total("changeover_judge_pairs_judged_total")
        if settled and now.total("changeover_judge_queue_depth") == 0:
            break
        last = now
    return first, last


def settled(port: int, limit: float = 10.0) -> Scrape:
    """The gateway's /metrics once its mirror and log queues are empty and the rows written stay put
    for a scrape (or after ``limit`` seconds)."""
    last = scrape(port)
    deadline = last.at + limit
    while last.at < deadline:
        time.sleep(0.25)
        now = scrape(port)
        idle = now.total("changeover_mirror_queue_depth") + now.total("changeover_log_queue_depth") == 0
        if idle and now.total("changeover_log_written_total") == last.total("changeover_log_written_total"):
            return now
        last = now
    return last


# ----------------------------------------------------------------------------- the run


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


def migration(base: str, args: argparse.Namespace, judge: bool) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "incumbent": "old",
        "candidates": ["new"],
        "dimensions": {"agreement": {"signal": "agreement"}},
        "gateway": {"upstreams": {"old": {"base_url": base}, "new": {"base_url": base}}},
        "shadow": {"sample": args.sample, "queue_size": 2000, "concurrency": 16},
        "rollout": {"stages": [{"weight": 0}, {"weight": 100}], "interval": 3600},
    }
    if judge:
        raw["models"] = {"judge": {"base_url": base, "max_retries": 0}}
        raw["judges"] = {"agreement": {"kind": "llm", "model": "judge", "rubric": "comparison"}}
        raw["shadow"]["judge"] = {
            "sample": args.judge_sample,
            "requests_per_minute": 1_000_000,
            "usd_per_day": 100.0,
            "queue_size": 5000,
            "concurrency": args.judge_concurrency,
        }
    return raw


def proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds so far) of a live process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(proc: subprocess.Popen | None) -> float:
    """User + system CPU time the process has used so far (Linux /proc; 0 elsewhere)."""
    stat = proc_stat(proc.pid) if proc is not None else None
    return 0.0 if stat is None else stat[1]


DIRECT, MIRRORING, JUDGING = "direct", "gateway, mirroring", "gateway, mirroring + judging"


@dataclass
class Target:
    """One thing the load is sent to: the upstream itself, or a gateway process in front of it."""

    name: str
    port: int
    proc: subprocess.Popen | None = None  # a gateway's process (its CPU time is read)
    rounds: list[np.ndarray] = field(default_factory=list)  # open-loop latencies per round, in ms
    cpu: float = 0.0  # CPU seconds per wall second over its open-loop rounds
    rps: float = 0.0  # closed-loop requests per second
    end: Scrape | None = None  # its /metrics at the end (gateways)

    @property
    def latencies(self) -> np.ndarray:
        return np.concatenate(self.rounds)


@dataclass
class Measured:
    targets: dict[str, Target]
    serving: Rate | None  # the judging worker while its gateway served the open loop
    draining: Rate | None  # ... with no traffic
    elapsed: float


def start_gateway(spec: Path, db: Path, port: int) -> subprocess.Popen:
    serve = [str(Path(sys.executable).parent / "changeover"), "serve", "--spec", str(spec), "--db", str(db)]
    env = {**os.environ, "CHANGEOVER_ADMIN_TOKEN": "bench"}
    return subprocess.Popen([*serve, "--port", str(port), "--no-controller"], stdout=subprocess.DEVNULL, env=env)


def measure(args: argparse.Namespace, tmp: Path) -> Measured:
    up_port = free_port()
    base = f"http://127.0.0.1:{up_port}/v1"
    upstream = [sys.executable, __file__, "--upstream", str(up_port), "--latency", str(args.latency)]
    procs = [subprocess.Popen([*upstream, "--judge-latency", str(args.judge_latency)])]
    t_start = time.monotonic()
    try:
        wait_ready(f"{base}/models", procs[0])
        targets = {DIRECT: Target(DIRECT, up_port)}
        for name, judge in ((MIRRORING, False), (JUDGING, True)):
            if judge and not args.judge:
                continue
            spec, port = tmp / f"migration-{judge}.yaml", free_port()
            spec.write_text(yaml.safe_dump(migration(base, args, judge)))
            procs.append(start_gateway(spec, tmp / f"gw-{judge}.db", port))
            targets[name] = Target(name, port, procs[-1])
        for t in targets.values():
            if t.proc is not None:
                wait_ready(f"http://127.0.0.1:{t.port}/healthz", t.proc)
        run = asyncio.run
        for t in targets.values():
            run(open_loop(t.port, args.rate, 1.0))  # warm-up (connections, code paths)
        # the targets in turn, round after round, so all meet the same background load
        serving = None
        for _ in range(args.rounds):
            for t in targets.values():
                before, cpu0 = (scrape(t.port), cpu_seconds(t.proc)) if t.proc else (None, 0.0)
                t.rounds.append(np.array(run(open_loop(t.port, args.rate, args.seconds / args.rounds))))
                if before is not None:
                    after = scrape(t.port)
                    t.cpu += (cpu_seconds(t.proc) - cpu0) / (after.at - before.at) / args.rounds
                if t.name == JUDGING:
                    this = Rate.between(before, after)
                    serving = this if serving is None else serving + this
        for t in targets.values():
            t.rps = run(closed_loop(t.port, args.concurrency, args.count))
            if t.proc is not None and t.name != JUDGING:
                t.end = settled(t.port)  # its mirrors and log rows written before the next target's turn
        draining = None
        if JUDGING in targets:
            draining = Rate.between(*drain(targets[JUDGING].port, args.drain))
        for t in targets.values():
            if t.proc is not None and t.end is None:
                t.end = settled(t.port)
        return Measured(targets, serving, draining, time.monotonic() - t_start)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def report_latency(args: argparse.Namespace, m: Measured) -> None:
    judging = (
        f"; judging {args.judge_sample:.0%} of mirrored pairs (comparison judge {args.judge_latency * 1000:.0f} ms, "
        f"{args.judge_concurrency} pairs at once)"
        if args.judge
        else ""
    )
    print(
        f"open loop at {args.rate:.0f} req/s for {args.seconds:.0f} s per target ({args.rounds} rounds of "
        f"{args.seconds / args.rounds:.0f} s, the targets in turn), upstream latency {args.latency * 1000:.0f} ms, "
        f"mirroring {args.sample:.0%} to a candidate{judging}:"
    )
    direct = m.targets[DIRECT]
    d50, d99 = np.percentile(direct.latencies, [50, 99])
    print(f"  {'':30s} {'p50':>8s} {'p99':>8s} {'p99.9':>8s} {'added p50':>10s} {'added p99':>10s} {'CPU':>5s}")
    for t in m.targets.values():
        p50, p99, p999 = np.percentile(t.latencies, [50, 99, 99.9])
        added = "" if t is direct else f" {p50 - d50:10.2f} {p99 - d99:10.2f} {t.cpu:5.0%}"
        print(f"  {t.name:30s} {p50:8.2f} {p99:8.2f} {p999:8.2f}{added}")
    print("  (ms; CPU = the gateway process's share of one core during its rounds)")
    for t in m.targets.values():
        if t is not direct:
            per_round = [
                np.percentile(r, 99) - np.percentile(d, 99) for r, d in zip(t.rounds, direct.rounds, strict=True)
            ]
            print(
                f"  added p99 per round, {t.name}: "
                + " ".join(f"{a:.2f}" for a in per_round)
                + f" ms (median {np.median(per_round):.2f})"
            )
    goal = m.targets.get(JUDGING, m.targets[MIRRORING])
    g50, g99 = np.percentile(goal.latencies, [50, 99])
    print(
        f"  target ({goal.name}): added p50 {g50 - d50:.2f} ms < 2 ms: {met(g50 - d50 < 2.0)}; "
        f"added p99 {g99 - d99:.2f} ms < 10 ms: {met(g99 - d99 < 10.0)}"
    )
    print(f"closed loop, {args.concurrency} connections, {args.count} requests per target:")
    for t in m.targets.values():
        ratio = (
            ""
            if t is direct
            else f"   ratio {t.rps / direct.rps:.2f}x (target >= 0.8x: {met(t.rps >= 0.8 * direct.rps)})"
        )
        print(f"  {t.name:30s} {t.rps:6.0f} req/s{ratio}")
    for t in m.targets.values():
        if t.end is not None:
            print(
                f"{t.name} counters (/metrics): mirrors sent {t.end.total('changeover_mirror_sent_total'):.0f}, "
                f"dropped {t.end.total('changeover_mirror_dropped_total'):.0f}; "
                f"log written {t.end.total('changeover_log_written_total'):.0f}, "
                f"dropped {t.end.total('changeover_log_dropped_total'):.0f}"
            )


def report_judging(args: argparse.Namespace, m: Measured) -> None:
    end = m.targets[JUDGING].end
    assert end is not None and m.serving is not None and m.draining is not None
    judged = end.total("changeover_judge_pairs_judged_total")
    prefiltered = end.total("changeover_judge_prefiltered_total")
    classes = end.by("changeover_judge_compared_total", "class")
    compared = sum(classes.values())
    calls = end.total("changeover_judge_calls_total")
    paused = end.by("changeover_judge_pairs_paused_total", "budget")
    print("judging worker (/metrics of the judging gateway):")
    print(f"  while serving {args.rate:.0f} req/s  {m.serving.line()}")
    print(f"  draining, no traffic     {m.draining.line()}")
    print(
        f"  pre-filter: {prefiltered:.0f} of {judged:.0f} judged pairs settled without a judge call = "
        f"{prefiltered / max(judged, 1):.1%} (the candidate answers {configured_prefilter():.1%} of the prompts "
        f"identically or in the same words)"
    )
    print(
        f"  comparison classes ({compared:.0f} pairs): "
        + ", ".join(f"{c} {classes.get(c, 0):.0f}" for c in ("equivalent", "better", "worse", "different", "failed"))
        + f"; judge calls {calls:.0f} ({calls / max(compared - prefiltered, 1):.2f} per pair sent to the judge)"
    )
    print("  (the fake candidate's answers: " + ", ".join(f"{k} {share}%" for k, share in KINDS) + ")")
    print(
        f"  dropped {end.total('changeover_judge_pairs_dropped_total'):.0f} (queue full), paused "
        f"{sum(paused.values()):.0f} (budget), errors {end.total('changeover_judge_errors_total'):.0f}, "
        f"queued at the end {end.total('changeover_judge_queue_depth'):.0f}; whole run {m.elapsed:.0f} s"
    )


def configured_prefilter() -> float:
    kinds = Counter(kind_of(p) for p in PROMPTS)
    return sum(kinds[k] for k in PREFILTERED_KINDS) / len(PROMPTS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=200.0, help="open-loop requests per second")
    ap.add_argument("--seconds", type=float, default=10.0, help="open-loop duration per target")
    ap.add_argument("--rounds", type=int, default=5, help="open-loop rounds, the targets in turn in each")
    ap.add_argument("--concurrency", type=int, default=16, help="closed-loop connections")
    ap.add_argument("--count", type=int, default=3000, help="closed-loop requests per target")
    ap.add_argument("--latency", type=float, default=0.005, help="upstream answer latency in seconds")
    ap.add_argument("--judge-latency", type=float, default=0.005, help="judge answer latency in seconds")
    ap.add_argument("--judge-sample", type=float, default=1.0, help="share of mirrored pairs judged")
    ap.add_argument("--judge-concurrency", type=int, default=4, help="pairs judged at once (shadow.judge)")
    ap.add_argument("--drain", type=float, default=15.0, help="longest wait for the judging queue to empty (s)")
    ap.add_argument("--sample", type=float, default=1.0, help="share of requests mirrored")
    ap.add_argument("--no-judge", dest="judge", action="store_false", help="no judging worker")
    ap.add_argument("--quick", action="store_true", help="5 s open loop, 1000 closed-loop requests, 5 s drain")
    ap.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.upstream:
        serve_upstream(args.upstream, args.latency, args.judge_latency)
        return
    if args.quick:
        args.seconds, args.count, args.drain = 5.0, 1000, 5.0
    C.header("bench_gateway" + (" --quick" if args.quick else ""))
    with tempfile.TemporaryDirectory() as tmp:
        measured = measure(args, Path(tmp))
    report_latency(args, measured)
    if JUDGING in measured.targets:
        report_judging(args, measured)
    print(f"# done, {C.load_now()}")


if __name__ == "__main__":
    main()
