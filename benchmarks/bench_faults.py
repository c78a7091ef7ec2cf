"""The fault-injection suite at scale: every fault of tests/faults, many more seeds and repeats, one table.

Runs ``pytest tests/faults`` with ``CHANGEOVER_FAULT_SEEDS`` (SIGKILL points per
job: gateway writer, evaluate, re-embed) and ``CHANGEOVER_FAULT_REPEAT`` (runs of
each store outage: PostgreSQL crash, cut connections, SQLite lock, rollbacks with
the database down), collects what every run measured (``tests/faults/record.py``)
and the pass/fail of every run (JUnit XML), and prints per fault: runs, passed,
and the measured figures (min / median / max). Nothing is hard-coded; the
figures depend on the machine's load, which is printed.

Needs what the suite needs: root (tmpfs mounts), Debian's PostgreSQL binaries,
the fake upstream, the MiniLM encoder. Run:
``python benchmarks/bench_faults.py [--seeds 10] [--repeat 3]`` (~10 min on a loaded 2-core machine);
``--quick`` is 4 seeds and 1 repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def outcomes(junit: Path) -> dict[str, list[str]]:
    """Test function -> outcome of each of its runs (passed / failed / xfailed / skipped)."""
    out: dict[str, list[str]] = defaultdict(list)
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "").split("[", 1)[0]
        if case.find("failure") is not None or case.find("error") is not None:
            result = "failed"
        elif (skipped := case.find("skipped")) is not None:
            result = "xfailed" if "xfail" in (skipped.get("type", "") + skipped.get("message", "")) else "skipped"
        else:
            result = "passed"
        out[f"{case.get('classname', '').rsplit('.', 1)[-1]}::{name}"].append(result)
    return out


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    if min(values) == max(values):
        return f"{values[0]:g}"
    return f"{min(values):g} / {statistics.median(values):g} / {max(values):g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="SIGKILL points per long job")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each store outage")
    ap.add_argument("--quick", action="store_true", help="4 seeds, 1 repeat")
    args = ap.parse_args()
    seeds, repeat = (4, 1) if args.quick else (args.seeds, args.repeat)
    load = os.getloadavg()
    print("# fault injection: tests/faults at scale")
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M UTC} | {os.cpu_count()} cores | load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} | {seeds} kill points per job, {repeat} run(s) per outage"
    )
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        ledger, junit = Path(tmp) / "ledger.jsonl", Path(tmp) / "junit.xml"
        env = {
            **os.environ,
            "CHANGEOVER_FAULT_SEEDS": str(seeds),
            "CHANGEOVER_FAULT_REPEAT": str(repeat),
            "CHANGEOVER_FAULT_LEDGER": str(ledger),
        }
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/faults", f"--junitxml={junit}"]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        runs = outcomes(junit)
        measured: dict[str, list[dict]] = defaultdict(list)
        if ledger.exists():
            for line in ledger.read_text().splitlines():
                row = json.loads(line)
                measured[row.pop("fault")].append(row)
    print(f"\n## outcomes ({elapsed:.0f} s)\n")
    print(f"{'test':78} {'runs':>5} {'passed':>7} {'xfailed':>8} {'failed':>7}")
    for name, results in sorted(runs.items()):
        print(
            f"{name:78} {len(results):5d} {results.count('passed'):7d} {results.count('xfailed'):8d} "
            f"{results.count('failed'):7d}"
        )
    print("\n## what each fault measured (min / median / max over its runs)\n")
    for fault, rows in sorted(measured.items()):
        keys = [k for k in rows[0] if k != "seed"]
        figures = ", ".join(
            f"{k} {spread([float(r[k]) for r in rows if isinstance(r.get(k), int | float)])}" for k in keys
        )
        print(f"- {fault} ({len(rows)} runs): {figures}")
    gateway = measured.get("sigkill.gateway", [])
    if gateway:
        share = [r["lost_unflushed"] / r["acknowledged"] for r in gateway if r["acknowledged"]]
        print(
            f"\nSIGKILL of the gateway: acknowledged answers not yet flushed and lost: "
            f"{100 * statistics.median(share):.1f}% median of those acknowledged in the run; the oldest lost "
            f"answer was acknowledged {max(r['oldest_lost_ms'] for r in gateway)} ms before the kill "
            "(SIGTERM loses none: tests/gateway/test_processes.py)"
        )
    failed = sum(r.count("failed") for r in runs.values())
    if failed or done.returncode not in (0, 1):
        print("\n" + done.stdout[-4000:])
    print(f"\n{failed} failed run(s)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
