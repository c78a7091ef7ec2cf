"""Benchmark: repeated samples per item, the larger version of tests/core/test_repeated_samples.py.

For k = 1, 3 and 5 answers per (item, model), seeded simulated migrations
(``stats.repeated``: items' pass probabilities vary, every answer judged, the
first answer of 40 items per segment and model labelled) are fitted three ways:
``weighted`` (what ``assess`` does: every answer, each item weighing one),
``first`` (the first answer only) and ``as_items`` (every answer counted as an
item of its own, the naive use). Prints the coverage of the 95% delta
intervals (overall and per segment) and their mean width, each way against
``first`` measured in the same run.

    python benchmarks/bench_repeated_samples.py [--reps 120] [--seed 0]
"""

from __future__ import annotations

import argparse

from _common import Timer, header  # noqa: I001  (sets one thread per process first)

from changeover.stats.repeated import WAYS, run_simulation


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=120, help="simulated migrations per k (3 intervals each)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    header("Repeated samples per item")
    print("| k | way | coverage | mean width | width / first |")
    print("|---|---|---|---|---|")
    for k in (1, 3, 5):
        with Timer() as t:
            out = run_simulation(args.reps, k=k, seed=args.seed, ways=WAYS)
        base = out["first"][1]
        for way in WAYS:
            coverage, width = out[way]
            print(f"| {k} | {way} | {coverage:.3f} | {width:.4f} | {width / base:.3f} |")
        print(f"| {k} | ({args.reps * 3} intervals per way, {t.seconds:.0f} s wall) | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
