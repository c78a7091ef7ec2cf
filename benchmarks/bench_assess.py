"""Benchmark: the assessment core - interval width and coverage against the alternatives, fit time, throughput.

1. Width and coverage of the 95% interval of delta (candidate - incumbent pass
   rate) for: this model (changeover's ``fit_pairs`` / ``assess``), human labels
   alone, the judge alone (naive), PPI (lam=1) and PPI++ (ppi_py, alpha=0.05), on
   (a) simulated migrations (the six scenarios of tests/core/test_model.py plus a
       large one), seeded replications, paired labels on a random subset;
   (b) real XSTest (bundled): llama2orig vs each other model, labels kept on a
       random 120 prompts per seed, truth = the delta that all 450 human labels give;
   (c) real M-IFEval (../shared/data/m-ifeval): instruction following per language;
       the strict checker stands in for the human verdict, the loose checker for
       the automated signal; run again with a format check (markdown / preamble,
       ``format_check``) as a second signal on the same dimension.
   Then width ratios (model / human-only, model / PPI++) against the issue's
   targets, judged on the numbers measured in this run.
2. Fit time (CPU and wall) and diagnostics of 6 segments x 3 dimensions x 3
   candidates (9 comparisons, one ``fit_pairs``) at 10^3 - 10^6 items per
   segment, assess's default settings, one core.
3. Import + aggregate throughput for 1M records: read_records, the pairing into
   count tables (assess's path), and SQLite import (import_file).

    python benchmarks/bench_assess.py [--quick] [--only sim,xstest,mifeval,fit,throughput]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402  (sets one thread per process before numpy loads)
import numpy as np  # noqa: E402

from changeover.assess import assess  # noqa: E402
from changeover.config import spec_from_dict  # noqa: E402
from changeover.records import Record, read_records  # noqa: E402
from changeover.stats.model import FitSettings, PairFit, fit_pairs  # noqa: E402

MIFEVAL = C.ROOT.parent / "shared" / "data" / "m-ifeval"
if not MIFEVAL.exists():
    MIFEVAL = Path("/work/shared/data/m-ifeval")


# --------------------------------------------------------------------------- 1a. simulated migrations


def bench_simulated(reps: int, seed: int = 20261123) -> dict:
    print(
        f"\n# 1a. Simulated migrations: {len(C.SCENARIOS) + 1} scenarios x {reps} replications (seed {seed}); "
        "the same random items labelled on both models (labels_per_segment per segment)"
    )
    rng = np.random.default_rng(seed)
    scenarios = [*C.SCENARIOS, C.LARGE]
    for sc in scenarios:
        print(
            f"  {sc.name:45s} {sc.n_segments} segments x {sc.items_per_segment:,} items, "
            f"{sc.labels_per_segment} labelled per segment; true delta by segment "
            f"{np.round(sc.true_delta()[0], 3).tolist()}, judge sens {sc.sensitivity} spec {sc.specificity}"
        )
    data = [(sc, C.draw_items(sc, rng)) for sc in scenarios for _ in range(reps)]
    tables = [C.items_table(sc, it) for sc, it in data]
    with C.Timer() as t:
        fits = []
        for start in range(0, len(tables), 64):  # chunks keep memory flat; same settings as assess
            fits += fit_pairs(tables[start : start + 64], FitSettings(seed=11 + start))
    print(f"  fitted {len(tables)} comparisons in {t.seconds:.1f} s ({C.load_now()})")

    from changeover.stats.diagnostics import ess, rhat

    overall, segment = C.Tally(), C.Tally()
    diag: dict[str, list[tuple[float, float, float]]] = {}
    bound_all, bound_seg = [], []
    for (sc, it), fit in zip(data, fits, strict=True):
        bound_all.append(C.items_bound(it))
        bound_seg += [C.items_bound(it, it.seg == s) for s in range(sc.n_segments)]
        d_seg, d_all = sc.true_delta()
        shares = np.ones(sc.n_segments)
        d = fit.overall(fit.delta, shares)
        diag.setdefault(sc.name, []).append((rhat(d), ess(d), fit.accept))
        model = {"model": C.credible(PairFit.flat(fit.overall(fit.delta, shares)))}
        overall.add_all(
            sc.name, {**model, **C.baselines(it.z[:, 0], it.z[:, 1], it.a[:, 0], it.a[:, 1], it.labelled)}, d_all
        )
        for s in range(sc.n_segments):
            m = it.seg == s
            ivs = {
                "model": C.credible(PairFit.flat(fit.delta[..., s])),
                **C.baselines(it.z[m, 0], it.z[m, 1], it.a[m, 0], it.a[m, 1], it.labelled[m]),
            }
            segment.add_all(sc.name, ivs, float(d_seg[s]))
    print("\n  sampler diagnostics of the overall delta per scenario (assess's default settings):")
    for name, rows in diag.items():
        r, e, acc = np.array(rows).T
        print(
            f"  {name:45s} R-hat max {r.max():.3f} (>1.05 in {np.mean(r > 1.05):4.0%} of fits)  "
            f"ESS min {e.min():6.0f} median {np.median(e):6.0f}  acceptance {acc.mean():.2f}"
        )
    C.print_table("1a. Simulated, overall delta: mean 95% width and coverage of the true delta", overall)
    C.print_table("1a. Simulated, per-segment deltas (every segment of every replication)", segment)
    return {
        "overall": C.verdict_on_targets("Simulated, overall delta", overall, bound=tuple(np.mean(bound_all, 0))),
        "segments": C.verdict_on_targets("Simulated, segment deltas", segment, bound=tuple(np.mean(bound_seg, 0))),
    }


def bench_judge_accuracy(reps: int, seed: int = 7) -> None:
    """How the width ratios depend on the judge: the same migration, judges of accuracy 0.75 .. 0.97."""
    print(
        f"\n# 1a'. Width vs judge accuracy: 'worse' scenario (3 x 400 items, 40 labels per segment), the judge "
        f"equally accurate on both models (sensitivity = specificity), {reps} replications each"
    )
    rng = np.random.default_rng(seed)
    base = C.SCENARIOS[2]
    scenarios = [
        dataclasses.replace(base, name=f"judge accuracy {acc:.2f}", sensitivity=(acc, acc), specificity=(acc, acc))
        for acc in (0.75, 0.85, 0.92, 0.97)
    ]
    data = [(sc, C.draw_items(sc, rng)) for sc in scenarios for _ in range(reps)]
    fits = fit_pairs([C.items_table(sc, it) for sc, it in data], FitSettings(seed=5))
    tally = C.Tally()
    bound: dict[str, list[tuple[float, float]]] = {}
    for (sc, it), fit in zip(data, fits, strict=True):
        bound.setdefault(sc.name, []).append(C.items_bound(it))
        model = {"model": C.credible(PairFit.flat(fit.overall(fit.delta, np.ones(sc.n_segments))))}
        tally.add_all(
            sc.name,
            {**model, **C.baselines(it.z[:, 0], it.z[:, 1], it.a[:, 0], it.a[:, 1], it.labelled)},
            sc.true_delta()[1],
        )
    C.print_table("1a'. Overall delta by judge accuracy", tally)
    print("  the efficient bound (C.efficient_ratios) per judge accuracy, against human-only / PPI++:")
    for name, rows in bound.items():
        b_h, b_p = np.mean(rows, 0)
        m = tally.width(name, "model")
        print(
            f"  {name}: bound {b_h:.3f}x / {b_p:.3f}x; the model {m / tally.width(name, 'human-only'):.3f}x / "
            f"{m / tally.width(name, 'PPI++'):.3f}x"
        )


# --------------------------------------------------------------------------- 1b. XSTest


def bench_xstest(seeds: list[int], n_labels: int, segment_by: list[str] | None = None) -> dict:
    """XSTest's widths and coverage; ``segment_by=["safety"]`` gives the judge one confusion per safe / unsafe
    segment (as the demo's spec does); without it, one confusion for both (a weaker model of this judge)."""
    from changeover.demo import bundled_records_path

    truth = read_records(bundled_records_path())
    inc, cands = "llama2orig", ["gpt4", "llama2new", "mistralinstruct", "mistralguard"]
    items = sorted({r.item for r in truth})
    # 11 of 2,250 responses have no judge verdict: the model sums them out; the baselines get 0.5 (no opinion)
    signal = {(r.item, r.model): 0.5 if r.signals["refusal"] is None else r.signals["refusal"] for r in truth}
    human = {(r.item, r.model): r.labels["refusal"][0] for r in truth}
    A = {m: np.array([signal[(i, m)] for i in items]) for m in [inc, *cands]}
    H = {m: np.array([human[(i, m)] for i in items]) for m in [inc, *cands]}
    full = {c: float(np.mean(H[c] - H[inc])) for c in cands}
    safety = {r.item: r.segment.get("safety", "") for r in truth}
    stratum = np.array([safety[i] == "safe" for i in items]) if segment_by else np.zeros(len(items), bool)
    bound = np.mean(
        [
            C.efficient_ratios(
                H[c] - H[inc], A[c] - A[inc], np.stack([stratum, A[inc], A[c]], 1), n_labels / len(items)
            )
            for c in cands
        ],
        0,
    )
    print(
        f"\n# 1b. XSTest (bundled; 450 prompts x 5 models; GPT-4 refusal judge vs adjudicated human labels): "
        f"{inc} -> each other model, human labels kept on {n_labels} random prompts (all models), "
        f"{len(seeds)} seeds; truth = delta from all 450 human labels; "
        + (f"segment_by: {segment_by}" if segment_by else "no segments")
    )
    for c in cands:
        print(
            f"  {c:16s} full-human delta {full[c]:+.4f}   judge-alone delta {np.mean(A[c] - A[inc]):+.4f}   "
            f"judge agreement with humans: {inc} {np.mean(A[inc] == H[inc]):.1%}, {c} {np.mean(A[c] == H[c]):.1%}"
        )
    raw: dict = {"incumbent": inc, "candidates": cands, "dimensions": {"refusal": {"margin": 0.02}}}
    spec = spec_from_dict({**raw, "segment_by": segment_by} if segment_by else raw)
    tally = C.Tally()
    rhats, unconverged, hmc = [], 0, 0
    with C.Timer() as t:
        for seed in seeds:
            keep = set(random.Random(seed).sample(items, n_labels))
            labelled = np.array([i in keep for i in items])
            masked = [dataclasses.replace(r, labels=r.labels if r.item in keep else {}) for r in truth]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a = assess(spec, masked, seed=seed)
            rhats.append(a.decision.diagnostics.rhat_max)
            unconverged += not a.decision.diagnostics.sampling.converged
            hmc += "hmc" in a.decision.diagnostics.sampling.samplers  # "auto": a fit the HMC sampled
            for c in cands:
                ivs = {
                    "model": C.credible(a.pairs[(c, "refusal")].delta_overall),
                    **C.baselines(H[inc], H[c], A[inc], A[c], labelled),
                }
                tally.add_all(c, ivs, full[c])
    print(
        f"  {len(seeds)} assessments in {t.seconds:.1f} s; R-hat max over runs {max(rhats):.3f}; {unconverged} "
        f"not converged (NEED-LABELS, 'posterior not converged'); {hmc} with a fit the static HMC sampled"
    )
    how = f", segment_by {segment_by}" if segment_by else ", no segments"
    C.print_table(
        f"1b. XSTest, {n_labels} labelled prompts{how}: mean 95% width and coverage of the 450-label delta", tally
    )
    return C.verdict_on_targets(f"XSTest ({n_labels} labels{how})", tally, bound=tuple(bound))


# --------------------------------------------------------------------------- 1c. M-IFEval

MIFEVAL_LANGS = ["en", "es", "fr", "ja"]
MIFEVAL_INCUMBENT = "gpt-4o-mini-2024-07-18"
MIFEVAL_CANDIDATES = ["claude-3-5-sonnet-20240620", "Qwen__Qwen2.5-7B-Instruct-GPTQ-Int4"]


FORMAT_CHECK = re.compile(
    r"\*\*|^#|^\s*[-*] |^(?i:sure|here|certainly|of course|voici|aquí|claro|bien sûr|はい|以下)", re.MULTILINE
)


def format_check(response: str) -> int:
    """A second automated signal anyone can compute: 0 when the response carries markdown (bold, headings, bullets)
    or opens with a preamble ("Sure", "Here is", ...), the wrapping that the loose checker strips and the
    strict one does not; 1 otherwise."""
    return int(FORMAT_CHECK.search(response or "") is None)


def _mifeval(model: str) -> dict[str, tuple[str, int, int, int, str]]:
    """item -> (language, strict verdict, loose verdict, format check, prompt); items are (language, prompt
    position)."""
    out = {}
    for lang in MIFEVAL_LANGS:
        base = MIFEVAL / "evaluations" / f"{lang}_input_response_data_{model}"
        rows = {}
        for kind in ("strict", "loose"):
            rows[kind] = [
                json.loads(x) for x in (base / f"eval_results_{kind}.jsonl").read_text().splitlines() if x.strip()
            ]
        for i, (s, lo) in enumerate(zip(rows["strict"], rows["loose"], strict=True)):
            assert s["prompt"] == lo["prompt"]
            out[f"{lang}-{i}"] = (
                lang,
                int(s["follow_all_instructions"]),
                int(lo["follow_all_instructions"]),
                format_check(s["response"]),
                s["prompt"],
            )
    return out


def bench_mifeval(seeds: list[int], share: float, signals: tuple[str, ...] = ("loose",)) -> dict | None:
    if not MIFEVAL.exists():
        print(f"\n# 1c. M-IFEval: skipped, {MIFEVAL} not found")
        return None
    models = [MIFEVAL_INCUMBENT, *MIFEVAL_CANDIDATES]
    data = {m: _mifeval(m) for m in models}
    items = sorted(set.intersection(*(set(d) for d in data.values())))
    for i in items:  # the same prompt at the same position for every model (SOURCE.md: join on prompt)
        assert len({data[m][i][4] for m in models}) == 1, i
    lang = np.array([data[MIFEVAL_INCUMBENT][i][0] for i in items])
    H = {m: np.array([data[m][i][1] for i in items]) for m in models}
    A = {m: np.array([data[m][i][2] for i in items]) for m in models}
    column = {"loose": 2, "format": 3}
    sig = {m: np.array([[data[m][i][column[g]] for g in signals] for i in items]) for m in models}
    code = np.array([MIFEVAL_LANGS.index(g) for g in lang])
    bound_all, bound_seg = [], []
    for c in MIFEVAL_CANDIDATES:
        y, yhat = H[c] - H[MIFEVAL_INCUMBENT], (A[c] - A[MIFEVAL_INCUMBENT]).astype(float)
        cells = np.concatenate([code[:, None], sig[MIFEVAL_INCUMBENT], sig[c]], 1)
        bound_all.append(C.efficient_ratios(y, yhat, cells, share))
        bound_seg += [C.efficient_ratios(y[code == k], yhat[code == k], cells[code == k], share) for k in range(4)]
    n_lab = int(round(share * len(items)))
    print(
        f"\n# 1c. M-IFEval instruction following (style dimension), language = segment "
        f"({', '.join(f'{g} {int((lang == g).sum())}' for g in MIFEVAL_LANGS)} prompts); signals: "
        f"{' + '.join(signals)}"
    )
    print(
        "  NOTE: M-IFEval has no human labels. The STRICT IFEval checker stands in for the human verdict; "
        "the LOOSE checker (lenient: passes lightly normalised responses) is the automated signal"
        + (
            "; FORMAT is a second one (0 = markdown or a preamble line, what the loose checker strips)."
            if "format" in signals
            else "."
        )
    )
    print(
        f"  incumbent {MIFEVAL_INCUMBENT}; candidates {', '.join(MIFEVAL_CANDIDATES)}; 'human' (strict) labels "
        f"on {n_lab} random prompts ({share:.0%}) for all models, {len(seeds)} seeds; "
        "truth = strict-checker delta on all prompts"
    )
    for m in models:
        sens, spec = A[m][H[m] == 1].mean(), 1 - A[m][H[m] == 0].mean()
        extra = (
            ""
            if m == MIFEVAL_INCUMBENT
            else f"   strict delta {np.mean(H[m] - H[MIFEVAL_INCUMBENT]):+.4f}   loose delta "
            f"{np.mean(A[m] - A[MIFEVAL_INCUMBENT]):+.4f}"
        )
        print(
            f"  {m:38s} strict {H[m].mean():.3f} loose {A[m].mean():.3f} (loose vs strict: "
            f"sens {sens:.3f} spec {spec:.3f}){extra}"
        )
        if "format" in signals:
            f = sig[m][:, signals.index("format")]
            fail = [1 - H[m][(A[m] == 1) & (f == k)].mean() for k in (0, 1)]
            print(
                f"  {'':38s} strict fails where loose passes: {fail[0]:.3f} with markdown / a preamble, "
                f"{fail[1]:.3f} without"
            )
    spec = spec_from_dict(
        {
            "incumbent": MIFEVAL_INCUMBENT,
            "candidates": MIFEVAL_CANDIDATES,
            "segment_by": ["language"],
            "dimensions": {"style": {"margin": 0.03, "signals": list(signals)}},
        }
    )
    overall, segment = C.Tally(), C.Tally()
    rhats = []
    with C.Timer() as t:
        for seed in seeds:
            keep = set(random.Random(seed).sample(items, n_lab))
            labelled = np.array([i in keep for i in items])
            records = [
                Record(
                    item=i,
                    model=m,
                    segment={"language": data[m][i][0]},
                    signals={g: data[m][i][column[g]] for g in signals},
                    labels={"style": [data[m][i][1]]} if i in keep else {},
                )
                for m in models
                for i in items
            ]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a = assess(spec, records, seed=seed)
            rhats.append(a.decision.diagnostics.rhat_max)
            inc = MIFEVAL_INCUMBENT
            for c in MIFEVAL_CANDIDATES:
                pp = a.pairs[(c, "style")]
                short = c.split("__")[-1][:24]
                ivs = {"model": C.credible(pp.delta_overall), **C.baselines(H[inc], H[c], A[inc], A[c], labelled)}
                overall.add_all(short, ivs, float(np.mean(H[c] - H[inc])))
                for s, g in enumerate(pp.segments):
                    m = lang == g
                    ivs = {
                        "model": C.credible(pp.delta[:, s]),
                        **C.baselines(H[inc][m], H[c][m], A[inc][m], A[c][m], labelled[m]),
                    }
                    segment.add_all(f"{short} / {g}", ivs, float(np.mean(H[c][m] - H[inc][m])))
    print(f"  {len(seeds)} assessments in {t.seconds:.1f} s; R-hat max over runs {max(rhats):.3f}")
    named = f"M-IFEval ({' + '.join(signals)}; PPI++ and the judge alone on the loose checker)"
    C.print_table(
        f"1c. {named}, overall delta ({share:.0%} labelled): mean 95% width and coverage of the "
        "all-prompt strict delta",
        overall,
    )
    C.print_table(f"1c. {named}, per-language deltas", segment)
    return {
        "overall": C.verdict_on_targets(f"{named}, overall delta", overall, bound=tuple(np.mean(bound_all, 0))),
        "segments": C.verdict_on_targets(f"{named}, language deltas", segment, bound=tuple(np.mean(bound_seg, 0))),
    }


# --------------------------------------------------------------------------- 2. fit time


def fit_tables(items: int, seed: int = 10**5) -> list:
    """9 comparisons as tests/core/test_model_scale.py builds them: 3 candidates x 3 dimensions (2 binary, one
    5-level ordinal), 6 segments x ``items`` items, about 200 labelled per segment, the production scenario's
    judge (sens 0.85-0.95, spec 0.75-0.9, 0.3 lower on the candidate); drawn as counts."""
    from changeover.stats.simulate import production_scenario, simulate_counts

    rng = np.random.default_rng(seed)
    share = min(0.2, 200 / items)
    return [
        simulate_counts(production_scenario(rng, items, share, levels=k), rng)[0] for _ in range(3) for k in (2, 2, 5)
    ]


def bench_fit(repeats: int) -> dict:
    """Fit time (CPU and wall) and diagnostics at 10^3 - 10^6 items per segment, assess's default settings, for
    the default sampler ("auto": nutpie's NUTS for every fit, whitened where its Laplace approximation holds,
    in theta elsewhere) and, side by side in the same run, the static HMC for every fit (the default before).

    The first call of the process (numba compiles the sampler, or loads it from its cache) is timed apart.
    """
    import time

    from changeover.stats.diagnostics import ess, ess_tail, rhat

    n, h = FitSettings().lengths("nuts"), FitSettings().lengths("hmc")
    print(
        "\n# 2. Fit time: 6 segments x 3 dimensions (2 binary, 1 five-level) x 3 candidates = 9 comparisons in "
        f"one fit_pairs call, 4 chains, one thread; auto = assess's default (nutpie's NUTS for every fit, whitened "
        f"where its Laplace approximation holds: {n[0]} warm-up + {n[1]} draws, target acceptance {n[2]}); "
        f"hmc = the static HMC for every fit: {h[0]} + {h[1]}, 16 leapfrog steps, {h[2]}"
    )
    out: dict = {}
    for sampler in ("auto", "hmc"):
        settings = FitSettings(sampler=sampler)
        warm = fit_tables(10**3)[:1]
        cpu0, wall0 = time.process_time(), time.time()
        fit_pairs(warm, FitSettings(warmup=20, draws=20, sampler=sampler))
        print(
            f"  {sampler}: first call of the process (import, compile or load the numba cache): "
            f"{time.process_time() - cpu0:.2f} s CPU, {time.time() - wall0:.2f} s wall"
        )
        by_items = {}
        for items in (10**3, 10**4, 10**5, 10**6):
            tables = fit_tables(items)
            cpus, walls = [], []
            for r in range(repeats):
                load = C.load_now()
                cpu0, wall0 = time.process_time(), time.time()
                fits = fit_pairs(tables, dataclasses.replace(settings, seed=r))
                cpus.append(time.process_time() - cpu0)
                walls.append(time.time() - wall0)
                qs = []
                for f in fits:
                    qs += [f.delta[..., s] for s in range(6)] + [f.delta.mean(-1)]
                    qs += [f.incumbent_rate[..., s] for s in range(6)] + [f.candidate_rate[..., s] for s in range(6)]
                worst = (max(rhat(q) for q in qs), min(ess(q) for q in qs), min(ess_tail(q) for q in qs))
                div = sum(f.divergences for f in fits)
                took = "/".join(sorted({f.sampler for f in fits}))
                print(
                    f"  {sampler} 10^{int(np.log10(items))} items/segment, seed {r}:{cpus[-1]:6.2f} s CPU, "
                    f"{walls[-1]:6.2f} s wall   R-hat max {worst[0]:.4f}, bulk ESS min {worst[1]:.0f}, tail ESS "
                    f"min {worst[2]:.0f}, {div} divergent; sampled by {took}; labelled "
                    f"cells per table {min(t.cells for t in tables)}-{max(t.cells for t in tables)}; {load} at start"
                )
            by_items[items] = {"cpu_s": float(np.median(cpus)), "wall_s": float(np.median(walls))}
        worst_cpu = max(v["cpu_s"] for v in by_items.values())
        out[sampler] = {"by_items": by_items, "cpu_s": worst_cpu}
    auto, hmc = out["auto"]["cpu_s"], out["hmc"]["cpu_s"]
    print(
        f"  -> target < 2 s CPU for 3x3x6: {'MET' if auto < 2 else 'NOT MET'} (auto, slowest median {auto:.2f} s CPU; "
        f"flat in the items: {min(v['cpu_s'] for v in out['auto']['by_items'].values()):.2f}-{auto:.2f} s); "
        f"{auto / hmc:.2f}x the static HMC's {hmc:.2f} s in the same run"
    )
    return {"by_items": out["auto"]["by_items"], "cpu_s": auto, "hmc": out["hmc"]}


# --------------------------------------------------------------------------- 3. throughput


def write_records_file(path: Path, n_records: int, seed: int = 1) -> int:
    """A JSONL of ``n_records``: items answered by an incumbent and 3 candidates, 6 regions, 3 signals
    (2 binary, one 1..5 level), human labels on ~2% of the responses."""
    rng = np.random.default_rng(seed)
    models = ["legacy", "cand-a", "cand-b", "cand-c"]
    n_items = n_records // len(models)
    regions = np.array(["emea", "na", "apac", "latam", "mena", "anz"])
    reg = rng.integers(0, 6, n_items)
    with path.open("w") as fh:
        for model in models:
            c = rng.integers(0, 2, n_items)
            r = rng.integers(0, 2, n_items)
            st = rng.integers(1, 6, n_items)
            lab = rng.random(n_items) < 0.02
            lines = []
            for i in range(n_items):
                labels = f',"labels":{{"correctness":{c[i]}}}' if lab[i] else ""
                lines.append(
                    f'{{"item":"q-{i:07d}","model":"{model}","segment":{{"region":"{regions[reg[i]]}"}},'
                    f'"signals":{{"correctness":{c[i]},"refusal":{r[i]},"style":{st[i]}}}{labels}}}\n'
                )
            fh.writelines(lines)
    return n_items * len(models)


SPEC_1M = {
    "incumbent": "legacy",
    "candidates": ["cand-a", "cand-b", "cand-c"],
    "segment_by": ["region"],
    "dimensions": {
        "correctness": {"margin": 0.02},
        "refusal": {"margin": 0.005},
        "style": {"margin": 0.03, "levels": 5},
    },
}


def bench_throughput(n_records: int, sqlite_records: int) -> dict:
    from changeover.assessment import SamplingPolicy
    from changeover.assessment.pairing import index_records, traffic_shares
    from changeover.assessment.tables import comparison, dimension_scales
    from changeover.store import open_store
    from changeover.store.responses import count_responses, import_file, load_records

    print(f"\n# 3. Import + aggregate throughput ({C.load_now()})")
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="changeover-bench-") as tmp:
        path = Path(tmp) / "records.jsonl"
        with C.Timer() as t:
            n = write_records_file(path, n_records)
        print(
            f"  wrote {n:,} records ({path.stat().st_size / 1e6:.0f} MB; 4 models x {n // 4:,} items, 6 regions, "
            f"3 signals, ~2% labelled) in {t.seconds:.1f} s"
        )
        rows = []

        def row(what: str, count: int, seconds: float) -> None:
            rows.append((what, count, seconds))
            print(f"  {what:58s} {count:>10,} records {seconds:8.2f} s {count / seconds:>12,.0f} records/s")
            sys.stdout.flush()

        with C.Timer() as t:
            records = read_records(path)
        row("read_records (parse + validate JSONL)", n, t.seconds)
        out["read_per_s"] = n / t.seconds

        spec = spec_from_dict(SPEC_1M)
        with C.Timer() as t:
            idx = index_records(spec, records)
            segments = idx.segments
            traffic_shares(spec, idx, segments)
            scales = dimension_scales(spec, idx)
            tables = [
                comparison(spec, idx, c, d, scales[d], segments).table for c in spec.candidates for d in spec.dimensions
            ]
        row("aggregate: pair + 9 count tables (assess's internals)", n, t.seconds)
        out["aggregate_per_s"] = n / t.seconds
        print(
            f"    -> {len(tables)} tables, {sum(tb.cells for tb in tables)} cells in all "
            f"(from {sum(tb.items for tb in tables):,} paired items)"
        )
        with C.Timer() as t:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assess(spec, records, draws=20, warmup=30, chains=2, policy=SamplingPolicy(extend=False))
        row("assess end to end, tiny fit (2 chains, 30+20 iterations)", n, t.seconds)
        with C.Timer() as t:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assess(spec, records)
        row("assess end to end, default fit (4 chains, 300+500, longer if needed)", n, t.seconds)
        del records, idx

        # SQLite import: one transaction, fingerprints, JSON columns
        small = Path(tmp) / "records-small.jsonl"
        with path.open() as src, small.open("w") as dst:
            for i, line in enumerate(src):
                if i >= sqlite_records:
                    break
                dst.write(line)
        store = open_store(str(Path(tmp) / "small.db"))
        with C.Timer() as t:
            res = import_file(store, small)
        row(f"import_file into SQLite ({res.added:,} added)", res.rows, t.seconds)
        out["sqlite_per_s"] = res.rows / t.seconds
        with C.Timer() as t:
            res2 = import_file(store, small)
        row(f"import_file again (idempotent: {res2.added} added)", res2.rows, t.seconds)
        with C.Timer() as t:
            back = load_records(store)
        row("load_records from SQLite", len(back), t.seconds)
        assert count_responses(store) == res.rows
        store.engine.dispose()
        del back
        if sqlite_records < n:
            est = n / out["sqlite_per_s"]
            print(
                f"  SQLite import measured at {sqlite_records:,} records, not {n:,}: extrapolated, {n:,} records "
                f"would take ~{est:.0f} s ({est / 60:.1f} min) at the measured rate (linear; the fingerprint "
                "look-ups are indexed)"
            )
    return out


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer replications and seeds (~1.5 minutes)")
    ap.add_argument(
        "--only",
        default="sim,xstest,mifeval,fit,throughput",
        help="comma-separated parts to run: sim,xstest,mifeval,fit,throughput",
    )
    ap.add_argument("--xstest-labels", type=int, default=120)
    ap.add_argument("--mifeval-share", type=float, default=0.15)
    ap.add_argument("--records", type=int, default=None, help="records for the throughput part (1M full, 40k quick)")
    ap.add_argument(
        "--sqlite-records",
        type=int,
        default=None,
        help="records imported into SQLite (100k full, 10k quick; the rate is extrapolated to --records)",
    )
    args = ap.parse_args()
    parts = set(args.only.split(","))
    q = args.quick
    C.header("bench_assess: changeover's assessment core " + ("(quick)" if q else "(full)"))
    results = {}
    with C.Timer() as total:
        if "sim" in parts:
            results["sim"] = bench_simulated(reps=3 if q else 40)
            bench_judge_accuracy(reps=2 if q else 25)
        if "xstest" in parts:
            seeds = list(range(2 if q else 25))
            results["xstest"] = bench_xstest(seeds, args.xstest_labels)
            results["xstest-segments"] = bench_xstest(seeds, args.xstest_labels, ["safety"])
        if "mifeval" in parts:
            for signals in (("loose",), ("loose", "format")):
                results[f"mifeval {'+'.join(signals)}"] = bench_mifeval(
                    list(range(2 if q else 20)), args.mifeval_share, signals
                )
        if "fit" in parts:
            results["fit"] = bench_fit(repeats=1 if q else 2)
        if "throughput" in parts:
            results["throughput"] = bench_throughput(
                n_records=args.records or (40_000 if q else 1_000_000),
                sqlite_records=args.sqlite_records or (10_000 if q else 100_000),
            )
    print(f"\n# done in {total.seconds:.0f} s ({C.load_now()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
