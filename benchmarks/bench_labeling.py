"""What the labelling queue's order is worth: labels needed to reach a decision, queue order vs random.

The labelling app gives annotators the responses the assessment ranks first
(``Assessment.next_labels``, refitted as labels arrive). This benchmark replays
that loop without the web layer: from the same starting labels, it reveals
human labels in batches and refits ``changeover.assess.assess`` after every
batch until the decision is GO or NO-GO at the spec's confidence, in two
orders:

- ``queue``: the first ``--batch`` not-yet-labelled responses of the last
  fit's ``next_labels`` (topped up at random when it offers fewer);
- ``random``: responses in a random order (fixed per seed).

Both orders start from the same labelled items (``--start`` items, both
models' responses, chosen per seed) and use the same fit settings and seed.
A run that reaches ``--cap`` new labels undecided counts as ``--cap`` and is
reported as capped (so a capped run flatters neither side by more than the cap).
The figure printed is the ratio of labels needed, queue / random, summed over
runs, with a 95% bootstrap interval over runs (and the median of per-run
ratios); the goal is <= 0.70x (issue 15; active allocation in the literature
saves ~23%). Labels to a decision is a noisy count: a run stops at the first
look whose posterior happens to clear the threshold, so the same order can
take 40 or 400 labels from one seed to the next. Printed beside it, and much
less noisy, the width of the overall delta's interval at equal labels (the
looks both orders reached, geometric mean of queue / random): under the
1/sqrt(labels) law a width ratio r is worth ~r^2 in labels. For the simulated
scenarios it also prints what the best allocation, knowing the truth, would
need (``oracle_allocation``: single labels by Neyman allocation, and pairs).

Data:

- simulated migrations (``stats.simulate`` scenarios drawn per item with
  ``_common.draw_items``: one judge signal, the truth as the human label);
- XSTest (the bundled records built from ``../shared/data/xstest``: 450
  prompts, the GPT-4 refusal judge as signal, the adjudicated human label on
  every response, masked except on the start items and revealed in each order).

Every fit uses ``assess``'s defaults (its sampler, draws x 4 chains and convergence policy): an
unconverged fit never says GO or NO-GO, so fewer draws would only count sampling noise as labels.
A fit took 4-8 s on the shared 2-core machine when this was measured.

``--quick`` (2-6 minutes, by the machine's load): the simulated "equal, judge lenient on
candidate" migration (3 segments x 300 items: the judge's bias must be learnt
from labels; undecided at the start, GO with every label) and XSTest gpt4 ->
mistralinstruct, seeds 1 and 2, batches of 40, cap 400 (at most 44 fits per
problem). The full run (default):
three scenarios (that one, equal, worse with a judge lenient on the
candidate; 400 items per segment) and two XSTest pairs (gpt4 ->
mistralinstruct, gpt4 -> mistralguard), 5 seeds, batches of 20, cap 600 --
about 15x the quick run's fits (an hour or more on a shared core).

    python benchmarks/bench_labeling.py [--quick] [--seeds 5] [--batch 20] [--cap 600] [--only sim,xstest]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, replace

import _common as C  # noqa: E402  (sets one thread per process before numpy loads)
import numpy as np  # noqa: E402

from changeover.assess import SamplingPolicy, Verdict, assess  # noqa: E402
from changeover.config import MigrationSpec, spec_from_dict  # noqa: E402
from changeover.records import Record  # noqa: E402
from changeover.stats.simulate import STANDARD_SCENARIOS, Scenario  # noqa: E402

DIMENSION = "quality"
MARGIN = 0.05
DECIDED = (Verdict.GO, Verdict.NO_GO)


@dataclass
class Problem:
    """One migration to label: the spec, every response with its true human verdict, and its items."""

    name: str
    spec: MigrationSpec
    records: list[Record]  # labels hold the truth; the loop masks them
    dimension: str

    @property
    def items(self) -> list[str]:
        return sorted({r.item for r in self.records})

    def true_delta(self) -> float:
        """Candidate minus incumbent pass rate from every human label (a failed call counts unacceptable),
        per segment, weighted by the spec's traffic shares: what a right GO / NO-GO agrees with."""
        from changeover.assessment.pairing import failed, segment_key

        votes: dict[tuple[str, str], list[int]] = {}
        for r in self.records:
            z = 0 if failed(r) else r.labels.get(self.dimension, [None])[0]
            if z is not None:
                votes.setdefault((segment_key(r, list(self.spec.segment_by)), r.model), []).append(int(z))
        shares = self.spec.traffic.shares
        cand, inc = self.spec.candidates[0], self.spec.incumbent
        total = sum(shares.values())
        return sum(w / total * (np.mean(votes[(s, cand)]) - np.mean(votes[(s, inc)])) for s, w in shares.items())

    def wrong(self, verdict: str) -> bool:
        """A GO when the truth is beyond the margin, or a NO-GO when it is not."""
        margin = self.spec.dimensions[self.dimension].margin
        return (verdict == "GO" and self.true_delta() <= -margin) or (
            verdict == "NO-GO" and self.true_delta() > -margin
        )


@dataclass
class Outcome:
    labels: int  # new labels revealed when the decision came (or the cap)
    verdict: str
    capped: bool
    fits: int
    widths: dict[int, float]  # new labels -> width of the overall delta's interval at that fit
    wrong: bool = False  # GO with the truth beyond the margin, or NO-GO with it within


def _width(a, problem: Problem) -> float:
    """Width of the one candidate's overall delta interval on the problem's dimension."""
    (cand,) = a.decision.candidates.values()
    delta = cand.dimensions[problem.dimension].overall.delta
    return float(delta.upper - delta.lower)


@dataclass
class Settings:
    batch: int
    start: int
    cap: int
    draws: int
    chains: int


def masked(problem: Problem, revealed: set[tuple[str, str]]) -> list[Record]:
    """The records with human labels only on ``revealed`` (item, model) responses."""
    out = []
    for r in problem.records:
        copy = Record(**{f: getattr(r, f) for f in r.__slots__})
        copy.labels = dict(r.labels) if (r.item, r.model) in revealed else {}
        out.append(copy)
    return out


def run_order(problem: Problem, order: str, seed: int, s: Settings) -> Outcome:
    """Reveal labels in ``order`` ('queue' or 'random') until GO / NO-GO or the cap."""
    rng = np.random.default_rng(seed)
    items = problem.items
    start = {items[i] for i in rng.choice(len(items), size=s.start, replace=False)}
    keys = [(r.item, r.model) for r in problem.records]
    revealed = {k for k in keys if k[0] in start}
    shuffled = [keys[i] for i in np.random.default_rng(seed + 10_000).permutation(len(keys))]
    policy = SamplingPolicy()
    fits = 0
    widths: dict[int, float] = {}
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = assess(
                problem.spec,
                masked(problem, revealed),
                seed=seed,
                draws=s.draws,
                warmup=200,
                chains=s.chains,
                next_count=4 * s.batch,
                policy=policy,
            )
        fits += 1
        new = len(revealed) - 2 * s.start
        widths[new] = _width(a, problem)
        if a.verdict in DECIDED or new >= s.cap or len(revealed) == len(keys):
            return Outcome(new, str(a.verdict), a.verdict not in DECIDED, fits, widths)
        batch: list[tuple[str, str]] = []
        if order == "queue":
            for nl in a.next_labels:
                key = (str(nl["item"]), str(nl["model"]))
                if nl["dimension"] == problem.dimension and key not in revealed and key not in batch:
                    batch.append(key)
                if len(batch) == s.batch:
                    break
        for key in shuffled:  # the random order, and the queue's top-up
            if len(batch) == s.batch:
                break
            if key not in revealed and key not in batch:
                batch.append(key)
        revealed |= set(batch)


# --------------------------------------------------------------------------- problems


def simulated(sc: Scenario, seed: int) -> Problem:
    """A simulated migration as records: per item a segment, the judge's verdict and the truth."""
    it = C.draw_items(sc, np.random.default_rng(seed))
    names = sc.segment_names or [f"s{i}" for i in range(sc.n_segments)]
    shares = sc.shares or [1.0] * sc.n_segments
    recs = []
    for k in range(len(it.seg)):
        for m, model in enumerate(("incumbent_model", "candidate_model")):
            recs.append(
                Record(
                    item=f"i{k:05d}",
                    model=model,
                    segment={"seg": names[int(it.seg[k])]},
                    signals={"judge": int(it.a[k, m])},
                    labels={DIMENSION: [int(it.z[k, m])]},
                )
            )
    spec = spec_from_dict(
        {
            "incumbent": "incumbent_model",
            "candidates": ["candidate_model"],
            "segment_by": ["seg"],
            "traffic": {"shares": {n: w / sum(shares) for n, w in zip(names, shares, strict=True)}},
            "confidence": 0.95,
            "dimensions": {DIMENSION: {"signal": "judge", "margin": MARGIN}},
            "required_segments": [],
            "seed": seed,
        },
        f"{sc.name}.yaml",
    )
    return Problem(f"sim: {sc.name}", spec, recs, DIMENSION)


def xstest(incumbent: str, candidate: str) -> Problem:
    """XSTest, ``incumbent`` -> ``candidate``: the demo's spec (segments safe / unsafe at 0.9 / 0.1 of
    traffic) with the overall comparison required at a margin of 0.05."""
    from changeover.demo import DIMENSION as XDIM
    from changeover.demo import bundled_records_path, demo_spec_dict
    from changeover.records import read_records

    models = {incumbent, candidate}
    recs = [r for r in read_records(bundled_records_path()) if r.model in models]
    raw = demo_spec_dict()
    raw |= {"incumbent": incumbent, "candidates": [candidate], "required_segments": []}
    raw["dimensions"][XDIM]["margin"] = MARGIN
    return Problem(f"xstest: {incumbent} -> {candidate}", spec_from_dict(raw, "xstest.yaml"), recs, XDIM)


def oracle_allocation(sc: Scenario) -> tuple[float, float]:
    """What the best order could save on a simulated migration, knowing its true rates: the labels needed
    for the same variance of the overall delta, relative to random single labels, (a) allocating single
    labels over (segment, judge verdicts of both answers, model) in proportion to share x sd (Neyman), and
    (b) labelling both answers of items (paired differences), allocated the same way. A reference for the
    figure (the model pools across cells, so it is not a strict bound), not part of it."""
    pi = sc.cell_probs()
    S = len(pi)
    single, pair = [], []  # (share, sd) of each stratum
    for s in range(S):
        p = pi[s] / pi[s].sum()
        for a0 in (0, 1):
            for a1 in (0, 1):
                joint = np.zeros(4)
                for c in range(4):
                    z0, z1 = c // 2, c % 2
                    p0 = sc.sensitivity[0] if z0 else 1 - sc.specificity[0]
                    p1 = sc.sensitivity[1] if z1 else 1 - sc.specificity[1]
                    joint[c] = p[c] * (p0 if a0 else 1 - p0) * (p1 if a1 else 1 - p1)
                w, j = joint.sum() / S, joint / joint.sum()
                r0, r1 = j[2] + j[3], j[1] + j[3]
                diff = np.array([0.0, 1.0, -1.0, 0.0])  # Z1 - Z0 per truth cell
                single += [(w, np.sqrt(r0 * (1 - r0))), (w, np.sqrt(r1 * (1 - r1)))]
                pair.append((w, np.sqrt(j @ diff**2 - (j @ diff) ** 2)))
    w, sd = np.array(single).T
    wp, sdp = np.array(pair).T
    random = 2 * float(np.sum(w * sd**2))  # x 1/labels: each model's responses get half of them
    return float(np.sum(w * sd) ** 2) / random, 2 * float(np.sum(wp * sdp) ** 2) / random


# --------------------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few minutes: 1 scenario + 1 XSTest pair, 2 seeds")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--start", type=int, default=30, help="items labelled (both responses) before the loop")
    ap.add_argument("--first-seed", type=int, default=1, help="seeds run: first-seed .. first-seed + seeds - 1")
    ap.add_argument("--cap", type=int, default=None, help="new labels after which a run counts as undecided")
    ap.add_argument("--only", default="sim,xstest")
    args = ap.parse_args(argv)
    quick = args.quick
    s = Settings(
        batch=args.batch or (40 if quick else 20),
        start=args.start,
        cap=args.cap or (400 if quick else 600),
        draws=500,
        chains=4,
    )
    seeds = list(range(args.first_seed, args.first_seed + (args.seeds or (2 if quick else 5))))
    only = set(args.only.split(","))
    C.header("bench_labeling: labels to a decision, queue order vs random")
    print(
        f"mode {'quick' if quick else 'full'}: seeds {seeds}, batch {s.batch}, start {s.start} items, cap {s.cap}, "
        f"{s.draws} draws x {s.chains} chains"
    )
    by_name = {sc.name: sc for sc in STANDARD_SCENARIOS}
    lenient = "equal, judge lenient on candidate"
    scenarios = [lenient] if quick else [lenient, "equal", "worse, judge lenient on candidate"]
    pairs = [("gpt4", "mistralinstruct")] if quick else [("gpt4", "mistralinstruct"), ("gpt4", "mistralguard")]
    builders = []
    if "sim" in only:
        for name in scenarios:
            sc = by_name[name]
            sc = replace(sc, items_per_segment=300 if quick else 400)
            builders += [(lambda seed, sc=sc: simulated(sc, seed))]
    if "xstest" in only:
        for inc, cand in pairs:
            problem = xstest(inc, cand)
            builders += [(lambda seed, p=problem: p)]
    if "sim" in only:
        print("best allocations, knowing the truth (labels for equal variance, x random single labels):")
        for name in scenarios:
            singles, pairs = oracle_allocation(by_name[name])
            print(f"  sim: {name:<38} single labels {singles:.2f}x, pairs {pairs:.2f}x")
    rows: list[tuple[str, int, Outcome, Outcome]] = []
    t0 = time.monotonic()
    for build in builders:
        for seed in seeds:
            problem = build(seed)
            q = run_order(problem, "queue", seed, s)
            r = run_order(problem, "random", seed, s)
            q.wrong, r.wrong = problem.wrong(q.verdict), problem.wrong(r.verdict)
            rows.append((problem.name, seed, q, r))
            print(
                f"  {problem.name:<42} seed {seed} (truth {problem.true_delta():+.3f}): "
                f"queue {q.labels:>4}{'+' if q.capped else ' '} ({q.verdict}"
                f"{' WRONG' if q.wrong else ''}, "
                f"{q.fits} fits)  random {r.labels:>4}{'+' if r.capped else ' '} ({r.verdict}"
                f"{' WRONG' if r.wrong else ''}, {r.fits} fits)  "
                + (f"ratio {q.labels / r.labels:.2f}" if r.labels else "decided at the start"),
                flush=True,
            )
    print(f"\n({time.monotonic() - t0:.0f} s; '+' = reached the cap undecided)")
    names = list(dict.fromkeys(name for name, *_ in rows))
    groups = names + sorted({name.split(":")[0] for name in names}) + ["all"]
    for group in groups:
        sel = [row for row in rows if group == "all" or row[0] == group or row[0].startswith(group + ":")]
        if sel:
            print(summary(group, sel))
    return 0


def summary(group: str, sel: list[tuple[str, int, Outcome, Outcome]]) -> str:
    """Labels to a decision, queue / random (sum over runs; 95% bootstrap interval over runs), the median
    per-run ratio, and the overall interval's width at equal labels (the looks both orders reached)."""
    q = np.array([x[2].labels for x in sel], float)
    r = np.array([x[3].labels for x in sel], float)
    ratios = [a / b for a, b in zip(q, r, strict=True) if b]  # runs decided at the start: no ratio
    med = statistics.median(ratios) if ratios else float("nan")
    boot = np.random.default_rng(0).integers(0, len(sel), (2000, len(sel)))
    rb = q[boot].sum(1) / np.maximum(r[boot].sum(1), 1)
    lo, hi = np.percentile(rb, [2.5, 97.5])
    logs = [np.log(x[2].widths[k] / x[3].widths[k]) for x in sel for k in x[2].widths if k > 0 and k in x[3].widths]
    width = float(np.exp(np.mean(logs))) if logs else float("nan")
    capped = sum(x[2].capped for x in sel), sum(x[3].capped for x in sel)
    wrong = sum(x[2].wrong for x in sel), sum(x[3].wrong for x in sel)
    ratio = q.sum() / max(r.sum(), 1)
    return (
        f"{group:<42} runs {len(sel):>2}: queue {q.sum():>5.0f} labels, random {r.sum():>5.0f} -> ratio {ratio:.2f}x "
        f"[{lo:.2f}, {hi:.2f}] (median per run {med:.2f}x; capped {capped[0]}/{capped[1]}, "
        f"wrong {wrong[0]}/{wrong[1]}); width at equal labels {width:.2f}x over {len(logs)} looks "
        f"-> goal <= 0.70x {'MET' if ratio <= 0.7 else 'NOT MET'}"
    )


if __name__ == "__main__":
    sys.exit(main())
