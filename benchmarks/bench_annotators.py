"""One noise rate per annotator against one shared rate: coverage, width and the recovered noise rates.

Simulated migrations (3 segments x 2,000 items, 300 labelled responses per segment and model, 20% of them
judged twice, 15 gold answers per annotator) labelled by four annotators, one of whom flips 35% of
verdicts (the others 3%). The same verdicts are fitted twice: with each annotator's own rate, and with
every verdict the unnamed annotator's (one shared rate, the model before issue 15). Cases:

- ``bad annotator, candidate-heavy``: the bad one does half of the candidate's first labels and none of
  the incumbent's (stats.simulate.BAD_ANNOTATOR) - annotators who specialise (a queue, a shift);
- ``bad annotator, even load``: the same annotators, every one on every segment and model alike
  (a shared rate is then about right on average);
- ``all good``: four annotators at 3% (what a rate each costs when nobody is bad).

    python benchmarks/bench_annotators.py [--quick] [--reps 24] [--seed 1000] [--cases 1,3]

Measured (2 cores shared with other jobs, FitSettings(warmup=300, draws=250, steps=16); 95% intervals):

    case (seeds)                         model          seg cov  all cov  width  recovered noise
    candidate-heavy (1000-1063, 64)      per annotator   0.948    0.938   0.113  a0 0.345, others 0.032-0.036
                                         one shared      0.500    0.172   0.133  0.10 (one for all)
    even load (1000-1015, 16)            per annotator   0.938    0.875   0.107  a0 0.331, others 0.034-0.040
                                         one shared      0.938    0.875   0.117  0.115
    all good (1000-1015, 16)             per annotator   0.917    0.812   0.099  0.032-0.039
                                         one shared      0.917    0.750   0.099  0.034
    all good (5000-5031, 32)             per annotator   0.958    1.000   0.098
                                         one shared      0.958    1.000   0.099

(seeds 1000-1015 are a low draw for every model alike: the same items and truths in all three cases.)
A rate each costs nothing when nobody is bad or the load is even, and is what keeps coverage when the
bad annotator's share differs between the models: one shared rate then misreads the candidate.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import _common as C  # noqa: E402  (sets one thread per process before numpy loads)
import numpy as np  # noqa: E402

from changeover.stats.model import FitSettings, PairFit, fit_pairs  # noqa: E402
from changeover.stats.simulate import BAD_ANNOTATOR, Annotators, Scenario, simulate_annotators  # noqa: E402

SCENARIO = Scenario(
    "one bad annotator", [0.80, 0.75, 0.85], [0.78, 0.73, 0.83], items_per_segment=2000, labels_per_segment=300
)
CASES = {
    "bad annotator, candidate-heavy": BAD_ANNOTATOR,
    "bad annotator, even load": dataclasses.replace(BAD_ANNOTATOR, load=None),
    "all good": Annotators(noise=[0.03] * 4),
}
SETTINGS = FitSettings(warmup=300, draws=250, steps=16, sampler="hmc")  # as measured below


def summarise(fits: list[PairFit], truths: list[tuple[np.ndarray, float]]) -> dict[str, float]:
    seg_hit, all_hit, width = [], [], []
    for fit, (d_seg, d_all) in zip(fits, truths, strict=True):
        delta = PairFit.flat(fit.delta)
        lo, hi = np.quantile(delta, [0.025, 0.975], axis=0)
        seg_hit.extend((lo <= d_seg) & (d_seg <= hi))
        width.extend(hi - lo)
        o_lo, o_hi = np.quantile(delta.mean(1), [0.025, 0.975])
        all_hit.append(o_lo <= d_all <= o_hi)
    return {
        "segment coverage": float(np.mean(seg_hit)),
        "overall coverage": float(np.mean(all_hit)),
        "segment width": float(np.mean(width)),
        "divergences": float(sum(f.divergences for f in fits)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=24)
    ap.add_argument("--quick", action="store_true", help="8 seeds")
    ap.add_argument("--seed", type=int, default=1000, help="the first seed")
    ap.add_argument("--cases", default="", help="which cases, by number (1-3; default all)")
    args = ap.parse_args()
    wanted = {int(c) for c in args.cases.split(",") if c} or set(range(1, len(CASES) + 1))
    reps = 8 if args.quick else args.reps
    C.header(f"Annotator noise: one rate each vs one shared rate ({reps} seeds per case; {C.load_now()})")
    print(f"{'case':34} {'model':14} {'seg cov':>8} {'all cov':>8} {'width':>7} {'div':>4}  noise (mean over seeds)")
    for k, (case, annotators) in enumerate(CASES.items(), 1):
        if k not in wanted:
            continue
        per, shared, truths = [], [], []
        for r in range(reps):
            t_per, t_shared, d_seg, d_all = simulate_annotators(
                SCENARIO, annotators, np.random.default_rng(args.seed + r)
            )
            per.append(t_per)
            shared.append(t_shared)
            truths.append((d_seg, d_all))
        for name, tables in (("per annotator", per), ("one shared", shared)):
            started = time.perf_counter()
            fits = fit_pairs(tables, SETTINGS)
            s = summarise(fits, truths)
            rates = np.array([[a.noise_mean for a in f.annotator_noise()] for f in fits]).mean(0)
            shown = " ".join(f"{a.name}={x:.3f}" for a, x in zip(fits[0].annotator_noise(), rates, strict=True))
            print(
                f"{case:34} {name:14} {s['segment coverage']:8.3f} {s['overall coverage']:8.3f} "
                f"{s['segment width']:7.3f} {s['divergences']:4.0f}  {shown}  ({time.perf_counter() - started:.0f}s)"
            )
    print(f"true noise: {', '.join(f'a{k}={x}' for k, x in enumerate(BAD_ANNOTATOR.noise))} (all good: 0.03 each)")


if __name__ == "__main__":
    main()
