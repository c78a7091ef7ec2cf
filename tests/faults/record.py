"""How many times each fault is injected, and a ledger of what each run measured.

The tests run a few seeds (CI-fast); ``benchmarks/bench_faults.py`` sets
``CHANGEOVER_FAULT_SEEDS`` / ``CHANGEOVER_FAULT_REPEAT`` to run many more and
``CHANGEOVER_FAULT_LEDGER`` to collect what each run measured (one JSON line per run).
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

DEFAULT_SEEDS = [11, 23]


def seeds() -> list[int]:
    """The kill-point seeds: ``CHANGEOVER_FAULT_SEEDS=N`` draws N of them (seeded), else two fixed ones."""
    n = os.environ.get("CHANGEOVER_FAULT_SEEDS")
    return random.Random(0).sample(range(1, 10_000), int(n)) if n else DEFAULT_SEEDS


def repeats() -> list[int]:
    """How often each unseeded fault (outage, cut, lock) runs: ``CHANGEOVER_FAULT_REPEAT``, default once."""
    return list(range(int(os.environ.get("CHANGEOVER_FAULT_REPEAT", "1"))))


def note(fault: str, **measured: Any) -> None:
    """Append what one run measured to the ledger, when a benchmark asked for one."""
    path = os.environ.get("CHANGEOVER_FAULT_LEDGER")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"fault": fault, **measured}, default=str) + "\n")
