"""Benchmark the gateway beside the peer a team would pick (LiteLLM's proxy), in one run, on loopback.

The same fake OpenAI upstream (bench_gateway's, 5 ms per answer) behind each target in
turn: the upstream directly (the baseline), changeover with mirroring off and on (SQLite),
on PostgreSQL (one replica; ``--pg URL`` or CHANGEOVER_TEST_PG), with ``serve --workers 2``
(when the installed changeover has it), and LiteLLM's proxy (``litellm[proxy]``, installed by
this script into its own venv, ``--litellm-venv``, one worker, no database) routing to the
same upstream. For each: closed loop at 16 and at 64 connections (requests answered per
second, requests refused with a 503 by admission control, CPU ms of the target's process
tree per answered request) and an open loop at ``--rate`` (added p50 / p99 against direct).

Goals printed (issue 13): changeover >= 10x LiteLLM's throughput per core (answers per CPU
second); mirroring on <= 1.3x the CPU per request of mirroring off; no throughput loss from
16 to 64 connections (>= 0.95x); 2 workers >= 1.7x one worker where cores allow (the load
generator and the upstream share this machine's cores); PostgreSQL >= 0.9x SQLite.

The PostgreSQL targets get a fresh database on the ``--pg`` server (dropped at the end), as the
SQLite ones get a fresh file; the CPU of the server's backends serving a gateway is measured
too (on this machine they take the same cores). ``--only on,pg`` measures just those targets
(and direct, the latency baseline). ``--rounds N`` measures N rounds, each target's closed loop
right after the others' at the same connection count, so they meet the same background load,
in reverse order every other round (what runs first or after whom is not one target's luck); the
PostgreSQL / SQLite ratio is the median of the rounds' ratios, each round's printed.
Run: python benchmarks/bench_gateway_peers.py [--quick] [--no-litellm] [--only on,pg --rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import bench_gateway as G  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from bench_pushdown import _Database as FreshDatabase  # noqa: E402

LITELLM_VENV = Path(tempfile.gettempdir()) / "changeover-bench-litellm"
CONNECTIONS = (16, 64)
# --only's names for the targets (direct, the baseline, is always measured)
KEYS = {
    "off": "changeover, mirroring off",
    "on": "changeover, mirroring on",
    "pg": "changeover, mirroring on, PostgreSQL",
    "pg2": "changeover, 2 workers, PostgreSQL",
    "litellm": "LiteLLM proxy",
}


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every live descendant (uvicorn workers, LiteLLM's children)."""
    stats = {int(e.name): G.proc_stat(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()}
    live = {p: s for p, s in stats.items() if s is not None}
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += live[p][1] if p in live else 0.0
        todo += [c for c, (parent, _) in live.items() if parent == p]
    return total


def backends_cpu(url: str) -> float:
    """CPU seconds so far of the PostgreSQL backends connected to ``url``'s database (a local server)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            ).scalars()
            return sum(stat[1] for stat in map(G.proc_stat, pids) if stat is not None)
    finally:
        engine.dispose()


async def closed_loop(port: int, concurrency: int, count: int) -> tuple[float, int, int]:
    """``count`` requests over ``concurrency`` connections: (seconds, answered 200, refused 503)."""
    remaining, answered, refused = count, 0, 0

    async def worker() -> None:
        nonlocal remaining, answered, refused
        conn = await G.Conn(port, G.CHAT).open()
        while remaining > 0:
            remaining -= 1
            status = await conn.post()
            answered += status == 200
            refused += status == 503
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, answered, refused


@dataclass
class Target:
    name: str
    port: int
    proc: subprocess.Popen | None = None
    rps: dict[int, float] = field(default_factory=dict)  # connections -> answers per second (median of rounds)
    rounds: dict[int, list[float]] = field(default_factory=dict)  # connections -> answers per second, each round
    refused: dict[int, int] = field(default_factory=dict)
    cpu_ms: dict[int, float] = field(default_factory=dict)  # CPU ms of the process tree per answer
    pg: str | None = None  # its PostgreSQL database: the server's backends for it are measured too
    store_cpu_ms: dict[int, float] = field(default_factory=dict)  # CPU ms of those backends per answer
    # the other processes on these cores, CPU ms per answer (median of rounds): the upstream, the load generator
    upstream_ms: dict[int, list[float]] = field(default_factory=dict)
    loadgen_ms: dict[int, list[float]] = field(default_factory=dict)
    latencies: np.ndarray | None = None

    def per_core(self, n: int) -> float:
        """Answers per CPU second of the target (inf for the upstream itself, which is not measured)."""
        return 1000.0 / self.cpu_ms[n] if self.cpu_ms.get(n) else float("inf")


def litellm_binary(venv: Path) -> Path:
    """The venv's ``litellm`` CLI, installing ``litellm[proxy]`` there first when missing (PyPI)."""
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        print(f"# installing litellm[proxy] into {venv} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"]
        subprocess.run(pip, check=True)
    return exe


def start_litellm(exe: Path, base: str, port: int, tmp: Path) -> subprocess.Popen:
    config = {
        "model_list": [
            {"model_name": "gpt", "litellm_params": {"model": "openai/old", "api_base": base, "api_key": "x"}}
        ],
        "litellm_settings": {"drop_params": True, "set_verbose": False},
    }
    path = tmp / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    # loopback only, no key: LiteLLM skips authenticating each request (cheaper for the peer, not dearer)
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    env["LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY"] = "true"
    cmd = [str(exe), "--config", str(path), "--port", str(port), "--num_workers", "1"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def start_changeover(spec: Path, db: str, port: int, workers: int = 1) -> subprocess.Popen:
    serve = [str(Path(sys.executable).parent / "changeover"), "serve", "--spec", str(spec), "--db", db]
    serve += ["--port", str(port), "--no-controller"] + (["--workers", str(workers)] if workers > 1 else [])
    env = {**os.environ, "CHANGEOVER_ADMIN_TOKEN": "bench"}
    return subprocess.Popen(serve, stdout=subprocess.DEVNULL, env=env)


def has_workers() -> bool:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "changeover"), "serve", "--help"], capture_output=True, text=True
    )
    return "--workers" in out.stdout


def spec_file(tmp: Path, base: str, sample: float, name: str) -> Path:
    args = argparse.Namespace(sample=sample)
    raw = G.migration(base, args, judge=False)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def wanted(args: argparse.Namespace, name: str) -> bool:
    return args.only is None or name in {KEYS[k] for k in args.only}


def targets_of(args: argparse.Namespace, tmp: Path, base: str, up_port: int, pg: str | None) -> list[Target]:
    out = [Target("direct", up_port)]
    plan: list[tuple[str, float, str, int]] = [
        (KEYS["off"], 0.0, f"sqlite:///{tmp / 'off.db'}", 1),
        (KEYS["on"], 1.0, f"sqlite:///{tmp / 'on.db'}", 1),
    ]
    if pg:
        plan.append((KEYS["pg"], 1.0, pg, 1))
        if wanted(args, KEYS["pg2"]) and has_workers():
            plan.append((KEYS["pg2"], 1.0, pg, 2))
    for name, sample, db, workers in plan:
        if not wanted(args, name):
            continue
        port = G.free_port()
        proc = start_changeover(spec_file(tmp, base, sample, f"s{port}"), db, port, workers)
        out.append(Target(name, port, proc, pg=db if db.startswith("postgresql") else None))
    if args.litellm and wanted(args, KEYS["litellm"]):
        port = G.free_port()
        out.append(Target(KEYS["litellm"], port, start_litellm(litellm_binary(args.litellm_venv), base, port, tmp)))
    return out


def ready_url(t: Target) -> str:
    return f"http://127.0.0.1:{t.port}" + ("/health/liveliness" if t.name.startswith("LiteLLM") else "/healthz")


def open_round(args: argparse.Namespace, t: Target) -> None:
    """One round of the open loop on one target (latencies kept from every round)."""
    asyncio.run(G.open_loop(t.port, args.rate, 1.0))  # warm-up
    latencies = np.array(asyncio.run(G.open_loop(t.port, args.rate, args.seconds)))
    t.latencies = latencies if t.latencies is None else np.concatenate([t.latencies, latencies])


def closed_round(args: argparse.Namespace, t: Target, n: int, upstream: int) -> None:
    """One closed loop at ``n`` connections on one target: answers per second, its CPU and its store's,
    and the upstream's and the load generator's CPU per answer (they share the machine's cores)."""
    cpu0 = tree_cpu(t.proc.pid) if t.proc else 0.0
    store0 = backends_cpu(t.pg) if t.pg else 0.0
    up0, gen0 = G.proc_stat(upstream)[1], time.process_time()
    seconds, answered, refused = asyncio.run(closed_loop(t.port, n, args.count))
    up1, gen1 = G.proc_stat(upstream)[1], time.process_time()
    t.rounds.setdefault(n, []).append(answered / seconds)
    t.rps[n] = float(np.median(t.rounds[n]))
    t.refused[n] = t.refused.get(n, 0) + refused
    if not answered:
        return
    t.upstream_ms.setdefault(n, []).append((up1 - up0) * 1000.0 / answered)
    t.loadgen_ms.setdefault(n, []).append((gen1 - gen0) * 1000.0 / answered)
    if t.proc is not None:
        cpu_ms = (tree_cpu(t.proc.pid) - cpu0) * 1000.0 / answered
        t.cpu_ms[n] = min(cpu_ms, t.cpu_ms.get(n, cpu_ms))  # best round
    if t.pg:
        store_ms = (backends_cpu(t.pg) - store0) * 1000.0 / answered
        t.store_cpu_ms[n] = min(store_ms, t.store_cpu_ms.get(n, store_ms))


def measure(args: argparse.Namespace, tmp: Path, pg: str | None) -> list[Target]:
    up_port = G.free_port()
    base = f"http://127.0.0.1:{up_port}/v1"
    upstream = [sys.executable, G.__file__, "--upstream", str(up_port), "--latency", str(args.latency)]
    up = subprocess.Popen([*upstream, "--judge-latency", "0.005"])
    targets: list[Target] = []
    try:
        G.wait_ready(f"{base}/models", up)
        targets = targets_of(args, tmp, base, up_port, pg)
        for t in targets:
            if t.proc is not None:
                G.wait_ready(ready_url(t), t.proc, timeout=180)
        for r in range(args.rounds):  # each closed loop right after the other targets' (the same background load)
            order = targets if r % 2 == 0 else targets[:1] + targets[:0:-1]  # odd rounds: the gateways reversed
            for t in order:
                open_round(args, t)
            for n in CONNECTIONS:
                for t in order:
                    closed_round(args, t, n, up.pid)
            print(f"# measured round {r + 1} of {args.rounds}", flush=True)
        return targets
    finally:
        for proc in [t.proc for t in reversed(targets) if t.proc] + [up]:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def report(targets: list[Target]) -> None:
    direct = next(t for t in targets if t.name == "direct")
    base50, base99 = np.percentile(direct.latencies, [50, 99])
    print(
        f"{'target':40} {'req/s @16':>10} {'req/s @64':>10} {'503 @64':>8} {'CPU ms/req @16':>15} "
        f"{'@64':>6} {'added p50':>10} {'added p99':>10}"
    )
    for t in targets:
        p50, p99 = np.percentile(t.latencies, [50, 99])
        cpu = [f"{t.cpu_ms[n]:.2f}" if n in t.cpu_ms else "-" for n in CONNECTIONS]
        added = ("-", "-") if t is direct else (f"{p50 - base50:.2f} ms", f"{p99 - base99:.2f} ms")
        print(
            f"{t.name:40} {t.rps[16]:10.0f} {t.rps[64]:10.0f} {t.refused[64]:8d} {cpu[0]:>15} {cpu[1]:>6} "
            f"{added[0]:>10} {added[1]:>10}"
        )
    by = {t.name: t for t in targets}
    off, on, peer = by.get(KEYS["off"]), by.get(KEYS["on"]), by.get(KEYS["litellm"])
    if on and peer:
        r = on.per_core(16) / peer.per_core(16)
        print(f"throughput per core, changeover (mirroring on) / LiteLLM: {r:.1f}x (goal >= 10x): {G.met(r >= 10)}")
        print(f"req/s at 16 connections, changeover / LiteLLM: {on.rps[16] / peer.rps[16]:.1f}x")
    if on and off:
        r = on.cpu_ms[16] / off.cpu_ms[16]
        print(f"CPU per request, mirroring on / off: {r:.2f}x (goal <= 1.3x): {G.met(r <= 1.3)}")
    for t in (x for x in (off, on) if x):
        r = t.rps[64] / t.rps[16]
        print(f"{t.name}: req/s at 64 / at 16 connections {r:.2f}x (goal >= 0.95x, no loss): {G.met(r >= 0.95)}")
    pg, two = by.get(KEYS["pg"]), by.get(KEYS["pg2"])
    if pg and on:
        ratios = {n: [a / b for a, b in zip(pg.rounds[n], on.rounds[n], strict=True)] for n in CONNECTIONS}
        r = float(np.median(ratios[16]))  # of the rounds' ratios: each round's two loops ran back to back
        if len(ratios[16]) > 1:
            each = {n: ", ".join(f"{x:.2f}x" for x in ratios[n]) for n in CONNECTIONS}
            print(f"PostgreSQL / SQLite req/s each round, @16: {each[16]}; @64: {each[64]}")
        print(f"PostgreSQL / SQLite, one replica, mirroring on: {r:.2f}x (goal >= 0.9x): {G.met(r >= 0.9)}")
        if pg.store_cpu_ms.get(16):
            whole = on.cpu_ms[16] / (pg.cpu_ms[16] + pg.store_cpu_ms[16])
            print(
                f"CPU per request, SQLite / PostgreSQL (the gateway's, plus its PostgreSQL backends'): "
                f"{on.cpu_ms[16]:.2f} / ({pg.cpu_ms[16]:.2f} + {pg.store_cpu_ms[16]:.2f} ms) = {whole:.2f}x"
            )
    for t in (x for x in (on, pg) if x and x.upstream_ms.get(16)):
        parts = [("load generator", np.median(t.loadgen_ms[16])), ("upstream", np.median(t.upstream_ms[16]))]
        parts += [("gateway", t.cpu_ms[16])] + ([("PostgreSQL", t.store_cpu_ms[16])] if t.store_cpu_ms.get(16) else [])
        whole = sum(ms for _, ms in parts)
        print(
            f"{t.name}: CPU ms per request @16 on this machine's cores: "
            + ", ".join(f"{name} {ms:.2f}" for name, ms in parts)
            + f"; {whole:.2f} in all"
        )
    for t in (x for x in (pg, two) if x and x.store_cpu_ms):
        ms = ", ".join(f"@{n} {t.store_cpu_ms[n]:.2f}" for n in CONNECTIONS if n in t.store_cpu_ms)
        print(f"{t.name}: the PostgreSQL server's CPU ms per request (its backends, not in the column above): {ms}")
    if pg and two:
        r = two.rps[64] / pg.rps[64]
        cores = os.cpu_count() or 1
        print(
            f"2 workers / 1 worker (PostgreSQL, 64 connections): {r:.2f}x (goal >= 1.7x where cores allow; "
            f"{cores} cores here, shared with the load generator and the upstream): {G.met(r >= 1.7)}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=200.0, help="open-loop requests per second")
    ap.add_argument("--seconds", type=float, default=5.0, help="open-loop seconds per target")
    ap.add_argument("--count", type=int, default=3000, help="closed-loop requests per target and connection count")
    ap.add_argument("--latency", type=float, default=0.005, help="upstream answer latency in seconds")
    ap.add_argument("--pg", default=os.environ.get("CHANGEOVER_TEST_PG"), help="PostgreSQL URL (one replica)")
    ap.add_argument("--no-litellm", dest="litellm", action="store_false", help="leave the peer out")
    ap.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV, help="venv for litellm[proxy]")
    ap.add_argument("--quick", action="store_true", help="2 s open loop, 600 closed-loop requests")
    ap.add_argument(
        "--only",
        type=lambda v: v.split(","),
        help=f"comma-separated targets to measure besides direct: {','.join(KEYS)} (default: all)",
    )
    ap.add_argument("--rounds", type=int, default=1, help="measure every target this many times, in turn")
    args = ap.parse_args()
    unknown = set(args.only or ()) - set(KEYS)
    if unknown:
        ap.error(f"--only: unknown target(s) {', '.join(sorted(unknown))}; choose from {', '.join(KEYS)}")
    if args.quick:
        args.seconds, args.count = 2.0, 600
    C.header("bench_gateway_peers " + " ".join(sys.argv[1:]))
    use_pg = args.pg and any(wanted(args, KEYS[k]) for k in ("pg", "pg2"))
    with tempfile.TemporaryDirectory() as tmp, FreshDatabase(args.pg, "gateway") if use_pg else nullcontext() as pg:
        targets = measure(args, Path(tmp), pg)
    report(targets)
    print(f"# done, {C.load_now()}")


if __name__ == "__main__":
    main()
