"""Benchmark: the measurement model's calibration, the larger versions of tests/core/test_model.py's checks.

1. Coverage of the 95% intervals of the overall and segment deltas across the six
   simulated scenarios (equal, better, worse, worse with a judge lenient on the
   candidate, one segment worse, equal with a lenient judge), many seeded
   replications each (``stats.simulate.simulate``: labels on a random subset per model).
2. False-GO rate: among the replications whose truth regresses beyond the margin,
   and at the margin with a judge lenient on the candidate (truth exactly at
   -margin and just beyond), with Clopper-Pearson upper bounds; and the power
   (GO rate) on the "better" scenario.
3. Simulation-based calibration (Talts et al. 2018): parameters drawn from the
   prior, data from them, ranks of the truth among posterior draws; rank
   histograms and chi-square p-values (uniform ranks = a calibrated sampler).

    python benchmarks/bench_calibration.py [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402  (sets one thread per process before numpy loads)
import numpy as np  # noqa: E402
from scipy.stats import beta, binomtest, chisquare  # noqa: E402

from changeover.stats import decision as dec  # noqa: E402
from changeover.stats.diagnostics import ess, rhat  # noqa: E402
from changeover.stats.model import FitSettings, PairFit, fit_pairs  # noqa: E402
from changeover.stats.simulate import Scenario, draw_prior, simulate, simulate_from  # noqa: E402

MARGIN, CONF = 0.02, 0.95


def fit_chunked(tables, settings: FitSettings, chunk: int = 64) -> list[PairFit]:
    fits: list[PairFit] = []
    for start in range(0, len(tables), chunk):
        fits += fit_pairs(tables[start : start + chunk], dataclasses.replace(settings, seed=settings.seed + start))
    return fits


def verdict(fit: PairFit, shares: np.ndarray) -> str:
    overall = dec.judge_delta(PairFit.flat(fit.overall(fit.delta, shares)), MARGIN, CONF).verdict
    segs = [dec.judge_delta(PairFit.flat(fit.delta[..., s]), MARGIN, CONF).verdict for s in range(fit.delta.shape[-1])]
    return dec.combine([overall, *segs])


def clopper_pearson_upper(k: int, n: int, conf: float = 0.95) -> float:
    return 1.0 if k == n else float(beta.ppf(conf, k + 1, n - k))


def se(p: float, n: int) -> float:
    return float(np.sqrt(max(p * (1 - p), 1e-12) / n))


# --------------------------------------------------------------------------- 1 + 2a. scenarios


def bench_scenarios(reps: int, seed: int = 20261123) -> tuple[list, list]:
    print(
        f"\n# 1. Coverage of 95% intervals: 6 scenarios x {reps} replications (seed {seed}; 3 segments x 400 items, "
        "40 random labels per segment per model; assess's default sampler settings)"
    )
    rng = np.random.default_rng(seed)
    data = [(sc, *simulate(sc, rng)) for sc in C.SCENARIOS for _ in range(reps)]
    with C.Timer() as t:
        fits = fit_chunked([d[1] for d in data], FitSettings(seed=11))
    print(f"  fitted {len(fits)} comparisons in {t.seconds:.1f} s ({C.load_now()})")
    rows = []
    print(
        f"\n{'scenario':36s} | {'overall cover':>13s} | {'segment cover':>13s} | {'both':>6s} | "
        f"{'mean width':>10s} | {'R-hat>1.05':>10s} | {'ESS min':>7s}"
    )
    all_hits, all_overall, all_seg = [], [], []
    for sc in C.SCENARIOS:
        ov, sg, widths, rh, es = [], [], [], [], []
        for (s2, _, d_seg, d_all), fit in zip(data, fits, strict=True):
            if s2 is not sc:
                continue
            shares = np.ones(sc.n_segments)
            d = fit.overall(fit.delta, shares)
            lo, hi = C.credible(PairFit.flat(d))
            ov.append(lo <= d_all <= hi)
            widths.append(hi - lo)
            rh.append(rhat(d))
            es.append(ess(d))
            for s in range(sc.n_segments):
                lo, hi = C.credible(PairFit.flat(fit.delta[..., s]))
                sg.append(lo <= d_seg[s] <= hi)
        both = ov + sg
        all_overall += ov
        all_seg += sg
        all_hits += both
        rows.append((sc.name, np.mean(ov), np.mean(sg), np.mean(both)))
        print(
            f"{sc.name:36s} | {np.mean(ov):6.1%} ±{se(np.mean(ov), len(ov)):4.1%} | "
            f"{np.mean(sg):6.1%} ±{se(np.mean(sg), len(sg)):4.1%} | {np.mean(both):6.1%} | {np.mean(widths):10.4f} | "
            f"{np.mean(np.array(rh) > 1.05):10.1%} | {min(es):7.0f}"
        )
    print("-" * 110)
    cov = float(np.mean(all_hits))
    print(
        f"{'all':36s} | {np.mean(all_overall):6.1%} ±{se(np.mean(all_overall), len(all_overall)):4.1%} | "
        f"{np.mean(all_seg):6.1%} ±{se(np.mean(all_seg), len(all_seg)):4.1%} | {cov:6.1%} |"
    )
    worst = min(r[3] for r in rows)
    print(
        f"  (± = one binomial standard error) target: coverage >= 93% overall -> "
        f"{'MET' if cov >= 0.93 else 'NOT MET'} ({cov:.1%} of {len(all_hits)} intervals); "
        f"no scenario below 85% -> {'MET' if worst >= 0.85 else 'NOT MET'} (worst {worst:.1%})"
    )

    print(
        f"\n# 2a. Verdicts on the same fits (margin {MARGIN}, confidence {CONF}; GO needs non-inferiority "
        "overall and in every segment)"
    )
    print(f"{'scenario':36s} | {'truth':>20s} | {'GO':>6s} | {'NO-GO':>6s} | {'NEED-LABELS':>11s}")
    verdicts = {}
    for sc in C.SCENARIOS:
        vs = [verdict(fit, np.ones(sc.n_segments)) for (s2, *_), fit in zip(data, fits, strict=True) if s2 is sc]
        verdicts[sc.name] = vs
        d_seg = sc.true_delta()[0]
        truth = "regression" if d_seg.min() < -MARGIN else "not a regression"
        print(
            f"{sc.name:36s} | {truth:>20s} | {np.mean([v == dec.GO for v in vs]):6.1%} | "
            f"{np.mean([v == dec.NO_GO for v in vs]):6.1%} | {np.mean([v == dec.NEED_LABELS for v in vs]):11.1%}"
        )
    regress = [v for sc in C.SCENARIOS if sc.true_delta()[0].min() < -MARGIN for v in verdicts[sc.name]]
    k = sum(v == dec.GO for v in regress)
    power = np.mean([v == dec.GO for v in verdicts["better"]])
    print(
        f"  false GO among regressions: {k}/{len(regress)} = {k / len(regress):.1%} (95% upper bound "
        f"{clopper_pearson_upper(k, len(regress)):.1%}); target <= {1 - CONF:.0%} -> "
        f"{'MET' if k / len(regress) <= 1 - CONF else 'NOT MET'}; GO rate when better (power): {power:.1%}"
    )
    return rows, regress


# --------------------------------------------------------------------------- 2b. at the margin


def bench_margin(reps: int) -> list:
    print(
        f"\n# 2b. False GO at the margin with a judge lenient on the candidate (sens {C.LENIENT['sensitivity']}, "
        f"spec {C.LENIENT['specificity']}), one segment, 1,500 items, 150 labels per model, {reps} replications"
    )
    cases = [
        Scenario(
            "at the margin (delta = -0.02)", [0.80], [0.78], items_per_segment=1500, labels_per_segment=150, **C.LENIENT
        ),
        Scenario(
            "just beyond (delta = -0.03)", [0.80], [0.77], items_per_segment=1500, labels_per_segment=150, **C.LENIENT
        ),
    ]
    rng = np.random.default_rng(5)
    tables = [simulate(sc, rng)[0] for sc in cases for _ in range(reps)]
    with C.Timer() as t:
        fits = fit_chunked(tables, FitSettings(seed=3))
    print(f"  fitted {len(fits)} comparisons in {t.seconds:.1f} s")
    print(
        f"{'case':32s} | {'judge-alone delta':>17s} | {'GO':>14s} | {'95% upper':>9s} | {'target':>14s} | "
        f"{'mean P(non-inferior)':>20s}"
    )
    out = []
    for i, sc in enumerate(cases):
        fs = fits[i * reps : (i + 1) * reps]
        ts = tables[i * reps : (i + 1) * reps]
        gos = [verdict(f, np.ones(1)) == dec.GO for f in fs]
        p_ni = np.mean([np.mean(PairFit.flat(f.delta[..., 0]) > -MARGIN) for f in fs])
        naive = np.mean([((t.a1 == 1) * t.n).sum() / t.n.sum() - ((t.a0 == 1) * t.n).sum() / t.n.sum() for t in ts])
        k = int(sum(gos))
        out.append((sc.name, k, reps))
        p = binomtest(k, reps, 1 - CONF, alternative="greater").pvalue
        if i == 0:  # exactly at the margin is not "beyond" it: a calibrated rule says GO about 5% of the time
            judged = f"p={p:.2f} vs 5%"
        else:
            judged = f"{'MET' if k / reps <= 1 - CONF else 'NOT MET'}, p={p:.2f}"
        print(
            f"{sc.name:32s} | {naive:+17.3f} | {k:4d}/{reps} {k / reps:6.1%} | "
            f"{clopper_pearson_upper(k, reps):9.1%} | {judged:>14s} | {p_ni:20.3f}"
        )
    print(
        "  target (issue): GO in at most 5% of cases when the truth regresses beyond the margin (row 2; MET/NOT MET "
        "on the point estimate). Row 1 sits exactly on the margin, where a calibrated 95% rule gives GO about 5% "
        "of the time. p: one-sided binomial test of 'GO rate > 5%'. The judge alone sees an improvement in both."
    )
    return out


# --------------------------------------------------------------------------- 3. SBC


def sbc_quantities(S: int, K: int, noisy: bool) -> dict:
    """name -> (posterior draws [C, T] from a fit, true value from a prior draw)."""
    q = {
        "delta (mean over segments)": (lambda f: f.delta.mean(-1), lambda d: (d.pi[:, 1] - d.pi[:, 2]).mean()),
        "delta, last segment": (lambda f: f.delta[..., S - 1], lambda d: d.pi[S - 1, 1] - d.pi[S - 1, 2]),
        "incumbent rate, segment 0": (lambda f: f.incumbent_rate[..., 0], lambda d: d.pi[0, 2] + d.pi[0, 3]),
        "candidate rate, segment 0": (lambda f: f.candidate_rate[..., 0], lambda d: d.pi[0, 1] + d.pi[0, 3]),
        "judge P(top | acceptable), candidate": (lambda f: f.phi[..., 1, 1, K - 1], lambda d: d.phi[1, 1, K - 1]),
        "judge P(top | not acceptable), incumbent": (lambda f: f.phi[..., 0, 0, K - 1], lambda d: d.phi[0, 0, K - 1]),
    }
    if S == 1:
        del q["delta, last segment"]
    if noisy:
        q["annotator noise"] = (lambda f: f.noise, lambda d: d.noise)
    return q


def bench_sbc(n_sims: int, bins: int) -> list:
    configs = [
        dict(
            name="S=2 segments, K=3 levels, 80 items/segment, 25% labelled",
            S=2,
            K=3,
            items=80,
            share=0.25,
            annotators=1,
        ),
        dict(
            name="S=3 segments, binary, 150 items/segment, 10% labelled", S=3, K=2, items=150, share=0.10, annotators=1
        ),
        dict(
            name="S=1, binary, 200 items, 30% labelled by 3 noisy annotators",
            S=1,
            K=2,
            items=200,
            share=0.30,
            annotators=3,
        ),
    ]
    print(
        f"\n# 3. Simulation-based calibration: {n_sims} simulations per configuration; ranks of the truth among "
        f"100 thinned posterior draws (every 10th of 4 x 250), {bins}-bin histograms, chi-square test of uniformity"
    )
    rng = np.random.default_rng(99)
    results = []
    for cfg in configs:
        draws, tables = [], []
        for _ in range(n_sims):
            d = draw_prior(cfg["S"], cfg["K"], rng, noisy=cfg["annotators"] > 1)
            draws.append(d)
            tables.append(
                simulate_from(
                    d, items_per_segment=cfg["items"], label_share=cfg["share"], rng=rng, annotators=cfg["annotators"]
                )
            )
        with C.Timer() as t:
            fits = fit_chunked(tables, FitSettings(seed=7, draws=250, warmup=300))
        K, S = cfg["K"], cfg["S"]
        quantities = sbc_quantities(S, K, noisy=cfg["annotators"] > 1)
        bad = sum(max(rhat(f.delta[..., s]) for s in range(S)) > 1.05 for f in fits)
        print(f"\n## {cfg['name']}  (fit {t.seconds:.1f} s; {bad} of {n_sims} fits with an R-hat > 1.05)")
        print(f"{'quantity':42s} | {'rank histogram (' + str(bins) + ' bins)':{6 * bins}s} | {'chi2 p':>7s}")
        for qname, (post_fn, truth_fn) in quantities.items():
            ranks = []
            for d, fit in zip(draws, fits, strict=True):
                post = post_fn(fit)[:, ::10].ravel()
                ranks.append(np.mean(post < truth_fn(d)))
            hist = np.histogram(ranks, bins=bins, range=(0, 1))[0]
            p = float(chisquare(hist).pvalue)
            results.append((cfg["name"], qname, p))
            flag = "" if p > 0.01 else "  <- not uniform at 1%"
            print(f"{qname:42s} | {' '.join(f'{h:5d}' for h in hist):{6 * bins}s} | {p:7.4f}{flag}")
    ps = [r[2] for r in results]
    print(
        f"\n  {len(ps)} rank tests; {sum(p < 0.01 for p in ps)} with p < 0.01 "
        f"(~{0.01 * len(ps):.1f} expected by chance), smallest p {min(ps):.4f}; "
        f"{sum(p < 0.05 for p in ps)} with p < 0.05 (~{0.05 * len(ps):.1f} expected); Bonferroni: smallest p x "
        f"{len(ps)} tests = {min(1.0, min(ps) * len(ps)):.3f} ({'passes' if min(ps) * len(ps) > 0.05 else 'fails'} "
        "at 5%)"
    )
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer replications (< 1 minute)")
    ap.add_argument("--only", default="coverage,margin,sbc", help="comma-separated parts: coverage,margin,sbc")
    args = ap.parse_args()
    q = args.quick
    parts = set(args.only.split(","))
    C.header(
        "bench_calibration: coverage, false-GO rate and SBC of the measurement model " + ("(quick)" if q else "(full)")
    )
    with C.Timer() as total:
        if "coverage" in parts:
            bench_scenarios(reps=4 if q else 50)
        if "margin" in parts:
            bench_margin(reps=16 if q else 160)
        if "sbc" in parts:
            bench_sbc(n_sims=40 if q else 300, bins=5 if q else 10)
    print(f"\n# done in {total.seconds:.0f} s ({C.load_now()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
