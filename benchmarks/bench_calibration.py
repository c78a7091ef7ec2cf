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
4. Convergence and fit time at scale: 3 candidates x 3 dimensions (two binary,
   one 5-level) x 6 segments in one ``fit_pairs`` call at 10^3 .. 10^6 items per
   segment (production judge: sens 0.85-0.95, spec 0.75-0.9, half the time 0.3
   lower on the candidate), wall and CPU time, worst R-hat / bulk and tail ESS /
   divergences; and the production scenario alone at 0.05% .. 1% labelled.
5. XSTest: coverage of the safe / unsafe segment deltas and the overall delta
   over all 20 ordered pairs of the 5 models with 40 / 80 / 120 random prompts
   labelled (several seeds), the estimated judge-error dependence per pair;
   llama2orig -> each candidate over 25 seeds; widths against human-only and
   PPI++ with the GPT-4 judge alone and with the refusal-phrase check as a
   second signal; and the width gain of a second signal on simulations.

    python benchmarks/bench_calibration.py [--quick] [--only coverage,margin,sbc,scale,xstest]
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
from changeover.stats.diagnostics import ess, ess_tail, rhat  # noqa: E402
from changeover.stats.model import FitSettings, PairFit, fit_pairs  # noqa: E402
from changeover.stats.simulate import (  # noqa: E402
    Scenario,
    draw_prior,
    production_scenario,
    simulate,
    simulate_counts,
    simulate_from,
    simulate_judges,
)

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
    print(f"  divergent transitions: {sum(f.divergences for f in fits)} in {len(fits)} fits")
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
        naive = np.mean(
            [((t.a1[:, 0] == 1) * t.n).sum() / t.n.sum() - ((t.a0[:, 0] == 1) * t.n).sum() / t.n.sum() for t in ts]
        )
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


# --------------------------------------------------------------------------- 4. scale


def _worst(fits: list[PairFit]) -> tuple[float, float, float, int]:
    qs = []
    for f in fits:
        S = f.delta.shape[-1]
        qs += [f.delta[..., s] for s in range(S)] + [f.delta.mean(-1)]
        qs += [f.incumbent_rate[..., s] for s in range(S)] + [f.candidate_rate[..., s] for s in range(S)]
    return max(map(rhat, qs)), min(map(ess, qs)), min(map(ess_tail, qs)), sum(f.divergences for f in fits)


def grid_tables(n: int, seed: int) -> list:
    """3 candidates x 3 dimensions (binary, binary, 5-level) of the production scenario at ``n`` items per
    segment, 0.5% labelled (3% below 10^4 items), from the stream ``seed``."""
    rng = np.random.default_rng(seed)
    share = 0.005 if n >= 10**4 else 0.03
    return [simulate_counts(production_scenario(rng, n, share, levels=k), rng)[0] for _ in range(3) for k in (2, 2, 5)]


def bench_policy(sizes: list[int], reps: int = 2) -> None:
    """4c. The same 3x3x6 tables as assess samples them: fit_pairs under the default sampling policy."""
    import time

    from changeover.assessment.sampling import SamplingPolicy, sample

    print(
        "\n# 4c. The same shape (new tables per repetition) under assess's default sampling policy "
        "(assessment.sampling.sample: refits until R-hat <= 1.01, ESS >= 400, no divergences); CPU s per call"
    )
    print(
        f"{'items/segment':>13s} | {'rep':>3s} | {'CPU s':>6s} | {'rounds':>6s} | converged | "
        "final fits (sampler, length)"
    )
    cpus = []
    for n in sizes:
        for rep in range(reps):
            tables = grid_tables(n, n + 1000 * rep)  # rep 0: 4a's tables
            c0 = time.process_time()
            out, rounds = sample(tables, np.full(6, 1 / 6), FitSettings(seed=2), SamplingPolicy())
            cpus.append(time.process_time() - c0)
            took = " ".join(f"{s.fit.sampler}:{s.scale}x" for s in out)
            print(
                f"{n:13,d} | {rep:3d} | {cpus[-1]:6.2f} | {rounds:6d} | {sum(s.converged for s in out):5d} / 9 | {took}"
            )
    print(f"  CPU {min(cpus):.2f}-{max(cpus):.2f} s, median {np.median(cpus):.2f} s ({C.load_now()})")


def bench_scale(sizes: list[int], production: bool = True) -> None:
    import time

    settings = FitSettings()
    nuts = settings.lengths("nuts")
    print(
        f"\n# 4a. 3 candidates x 3 dimensions (binary, binary, 5-level) x 6 segments, one fit_pairs call, default "
        f"settings ({settings.chains} chains; sampler {settings.sampler}: NUTS {nuts[0]} warm-up + {nuts[1]} draws "
        "for every fit, whitened where its Laplace approximation holds); 0.5% labelled (3% at 10^3); worst over 9 x "
        "(6 segment deltas, the mean delta, 12 pass rates); without the sampling policy (``sampling.sample``: what "
        "assess adds, section 4c); the process's first call (imports, the numba cache) is made before the timings"
    )
    fit_pairs(grid_tables(10**3, 0)[:1], FitSettings(warmup=20, draws=20))
    print(
        f"{'items/segment':>13s} | {'labelled':>8s} | {'cells':>6s} | {'wall s':>6s} | {'CPU s':>6s} | "
        f"{'R-hat max':>9s} | "
        f"{'bulk ESS min':>12s} | {'tail ESS min':>12s} | {'divergent':>9s}"
    )
    cpus = []
    for n in sizes:
        tables = grid_tables(n, n)
        w0, c0 = time.perf_counter(), time.process_time()
        fits = fit_pairs(tables, dataclasses.replace(settings, seed=2))
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        cpus.append(cpu)
        r, e, et, div = _worst(fits)
        print(
            f"{n:13,d} | {sum(t.labelled(0) + t.labelled(1) for t in tables):8,d} | "
            f"{sum(t.cells for t in tables):6d} | {wall:6.2f} | {cpu:6.2f} | {r:9.4f} | {e:12.0f} | {et:12.0f} | "
            f"{div:9d}"
        )
    print(
        f"  targets: R-hat <= 1.01, ESS >= 400, no divergences; CPU < 2 s -> "
        f"{'MET' if max(cpus) < 2 else 'NOT MET'} (max {max(cpus):.2f} s, {C.load_now()}); "
        f"flat in N: CPU at the largest / smallest size = {cpus[-1] / cpus[0]:.2f}"
    )
    bench_policy(sizes)
    if not production:
        return
    print("\n# 4b. The production scenario (6 segments, one comparison per row, default settings)")
    print(
        f"{'items/segment':>13s} | {'share':>6s} | {'labelled':>8s} | {'R-hat max':>9s} | {'bulk ESS':>8s} | "
        f"{'tail ESS':>8s} | div"
    )
    rng = np.random.default_rng(3)
    rows = [(n, share) for n in sizes for share in (0.0005, 0.002, 0.01)]
    tables = [simulate_counts(production_scenario(rng, n, share), rng)[0] for n, share in rows]
    fits = fit_pairs(tables, dataclasses.replace(settings, seed=1))
    for (n, share), t, f in zip(rows, tables, fits, strict=True):
        r, e, et, div = _worst([f])
        print(
            f"{n:13,d} | {share:6.2%} | {t.labelled(0) + t.labelled(1):8,d} | {r:9.4f} | {e:8.0f} | {et:8.0f} | {div}"
        )


# --------------------------------------------------------------------------- 5. XSTest and several signals


def bench_xstest(seeds: int, long_seeds: int) -> None:
    import itertools

    X = C.load_xstest()
    pairs = list(itertools.permutations(C.XSTEST_MODELS, 2))
    print(
        f"\n# 5a. XSTest: all {len(pairs)} ordered pairs of {len(C.XSTEST_MODELS)} models, 40 / 80 / 120 random "
        f"prompts labelled (both answers), {seeds} seeds; truth = the all-human delta; segments safe / unsafe "
        "weighted by prompts for the overall delta"
    )
    print(
        f"{'labels':>6s} | {'signals':>18s} | {'segment cover':>13s} | {'overall cover':>13s} | seg width | all width"
    )
    dep: dict[tuple[str, str], list[float]] = {}
    for budget in (40, 80, 120):
        for sig, name in (((0,), "judge"), ((0, 1), "judge + phrase check")):
            tables, truths, keys = [], [], []
            for seed in range(seeds):
                rng = np.random.default_rng(1000 * budget + seed)
                lab = np.zeros(len(X.items), bool)
                lab[rng.choice(len(X.items), budget, replace=False)] = True
                for inc, cand in pairs:
                    tables.append(X.table(inc, cand, lab, sig))
                    truths.append(X.truth(inc, cand))
                    keys.append((inc, cand))
            fits = fit_chunked(tables, FitSettings(seed=budget))
            sh, oh, sw, ow = [], [], [], []
            for f, (d_seg, d_all), key in zip(fits, truths, keys, strict=True):
                lo, hi = np.quantile(PairFit.flat(f.delta), [0.025, 0.975], axis=0)
                sh += list((lo <= d_seg) & (d_seg <= hi))
                sw += list(hi - lo)
                lo, hi = C.credible(PairFit.flat(f.overall(f.delta, X.shares)))
                oh.append(lo <= d_all <= hi)
                ow.append(hi - lo)
                if len(sig) == 1 and budget == 120:
                    dep.setdefault(key, []).append(float(f.error_dependence(0).mean()))
            print(
                f"{budget:6d} | {name:>18s} | {np.mean(sh):6.1%} ±{se(np.mean(sh), len(sh)):4.1%} | "
                f"{np.mean(oh):6.1%} ±{se(np.mean(oh), len(oh)):4.1%} | {np.mean(sw):9.4f} | {np.mean(ow):9.4f}"
            )
    print("  target: segment coverage >= 93% at every budget (was 65% / 75% / 76%), overall coverage kept")
    print(
        "\n  estimated judge-error dependence P(both wrong) / (independence given the truth), posterior mean, "
        "120 labels (mean over seeds):"
    )
    print("  " + ", ".join(f"{a}->{b} {np.mean(v):.2f}" for (a, b), v in sorted(dep.items()) if a < b))

    inc = "llama2orig"
    print(
        f"\n# 5b. XSTest, {inc} -> each candidate, 120 labelled prompts, {long_seeds} seeds: coverage and 95% width "
        "of the overall and segment deltas, against human-only and PPI++ on the same labels"
    )
    print(
        f"{'candidate':>16s} | {'signals':>18s} | {'seg cover':>9s} | {'all cover':>9s} | {'model':>7s} | "
        f"{'human':>7s} | {'PPI++':>7s} | model/human | model/PPI++ | bound: /human / /PPI++"
    )
    pooled: dict[str, list[tuple[float, float, float]]] = {}
    for cand in [m for m in C.XSTEST_MODELS if m != inc]:
        for sig, name in (((0,), "judge"), ((0, 1), "judge + phrase check")):
            tables, labs = [], []
            for seed in range(long_seeds):
                rng = np.random.default_rng(7000 + seed)
                lab = np.zeros(len(X.items), bool)
                lab[rng.choice(len(X.items), 120, replace=False)] = True
                tables.append(X.table(inc, cand, lab, sig))
                labs.append(lab)
            fits = fit_chunked(tables, FitSettings(seed=77))
            d_seg, d_all = X.truth(inc, cand)
            sh, oh, wm, wh, wp = [], [], [], [], []
            for f, lab in zip(fits, labs, strict=True):
                lo, hi = np.quantile(PairFit.flat(f.delta), [0.025, 0.975], axis=0)
                sh += list((lo <= d_seg) & (d_seg <= hi))
                lo, hi = C.credible(PairFit.flat(f.overall(f.delta, X.shares)))
                oh.append(lo <= d_all <= hi)
                wm.append(hi - lo)
                a0 = np.where(X.signals[inc][:, 0] < 0, 0.5, X.signals[inc][:, 0])
                a1 = np.where(X.signals[cand][:, 0] < 0, 0.5, X.signals[cand][:, 0])
                b = C.baselines(X.human[inc], X.human[cand], a0, a1, lab)
                wh.append(b["human-only"][1] - b["human-only"][0])
                wp.append(b["PPI++"][1] - b["PPI++"][0])
            m, h, p = np.mean(wm), np.mean(wh), np.mean(wp)
            y = X.human[cand] - X.human[inc]
            cells = np.concatenate([X.seg[:, None], X.signals[inc][:, list(sig)], X.signals[cand][:, list(sig)]], 1)
            b_h, b_p = C.efficient_ratios(y, a1 - a0, cells, 120 / len(X.items))
            pooled.setdefault(name, []).append((m, h, p, b_h, b_p))
            print(
                f"{cand:>16s} | {name:>18s} | {np.mean(sh):9.1%} | {np.mean(oh):9.1%} | {m:7.4f} | {h:7.4f} | "
                f"{p:7.4f} | {m / h:11.3f} | {m / p:11.3f} | {b_h:.3f} / {b_p:.3f}"
            )
    for name, rows in pooled.items():
        m, h, p, b_h, b_p = np.mean(rows, axis=0)
        print(
            f"  pooled, {name}: model/human {m / h:.3f} (target <= 0.75), model/PPI++ {m / p:.3f} (target <= 0.9); "
            f"the efficient bound (no assumption beyond the signals and the segments) {b_h:.3f} / {b_p:.3f}"
        )
    print("  target: llama2new (the judge wrong on both answers 2.5x as often as independence) coverage >= 93%")


def _table_items(t) -> tuple[np.ndarray, ...]:
    """A simulated table back to per-item arrays: (z0, z1, a0, a1, labelled), signals [items, G]."""
    idx = np.repeat(np.arange(len(t.n)), np.asarray(t.n, int))
    return t.pos0[idx], t.pos1[idx], t.a0[idx], t.a1[idx], t.tot0[idx] > 0


def bench_signals(reps: int) -> None:
    print(
        f"\n# 5c. A second signal on simulations: 2 segments x 2,000 items, 50 labelled per segment, {reps} "
        "replications; both signals of accuracy 0.8, independent given the truth; overall delta; human-only and "
        "PPI++ on the same labels (PPI++ on signal 0, and on the mean of both signals' differences)"
    )
    pi = np.array([[0.15, 0.1, 0.15, 0.6]] * 2)
    conf = np.broadcast_to(np.array([[0.8, 0.2], [0.2, 0.8]])[None, None, None], (2, 2, 2, 2, 2)).copy()
    rng = np.random.default_rng(5)
    out = C.Tally()
    for _ in range(reps):
        state = rng.bit_generator.state
        for sig, name in (((0,), "model, one signal"), ((0, 1), "model, two signals")):
            rng.bit_generator.state = state
            t, d = simulate_judges(pi, conf, 2000, 50, rng, signals=sig)
            (f,) = fit_pairs([t], FitSettings(seed=1))
            out.add("simulated", name, C.credible(PairFit.flat(f.overall(f.delta, np.ones(2)))), float(d.mean()))
            if len(sig) == 2:  # same items, labels and signals as the one-signal table; the baselines once
                z0, z1, a0, a1, lab = _table_items(t)
                y = (z1 - z0)[lab].astype(float)
                for method, yhat in (
                    ("PPI++, signal 0", a1[:, 0] - a0[:, 0]),
                    ("PPI++, both signals", (a1.sum(1) - a0.sum(1)) / 2),
                ):
                    out.add("simulated", method, C.ppi(y, yhat[lab], yhat[~lab], None), float(d.mean()))
                out.add("simulated", "human-only", C.human_only(y), float(d.mean()))
    w = {m: out.width("simulated", m) for _, m in out.widths}
    for m in w:
        print(f"  {m:20s}: mean width {w[m]:.4f}, coverage {out.coverage('simulated', m):.1%}")
    for m in ("model, one signal", "model, two signals"):
        print(
            f"  {m}: /human-only {w[m] / w['human-only']:.3f} (target <= 0.75), /PPI++ on signal 0 "
            f"{w[m] / w['PPI++, signal 0']:.3f}, /PPI++ on both {w[m] / w['PPI++, both signals']:.3f} "
            "(target <= 0.9)"
        )
    print(f"  width with two signals / one: {w['model, two signals'] / w['model, one signal']:.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer replications (a few minutes on a loaded machine)")
    ap.add_argument(
        "--only",
        default="coverage,margin,sbc,scale,xstest",
        help="comma-separated parts: coverage,margin,sbc,scale,xstest",
    )
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
        if "scale" in parts:
            bench_scale(sizes=[10**3, 10**6] if q else [10**3, 10**4, 10**5, 10**6], production=not q)
        if "xstest" in parts:
            bench_xstest(seeds=1 if q else 6, long_seeds=2 if q else 25)
            bench_signals(reps=2 if q else 20)
    print(f"\n# done in {total.seconds:.0f} s ({C.load_now()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
