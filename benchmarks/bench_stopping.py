"""Optional stopping: the false-GO rate of "label in batches, refit, stop at the first GO".

The labelling app refits as labels arrive and shows the verdict live; a team
stops at the first GO. This benchmark replays that loop: labels are revealed
on random items (both models' responses of an item at once) in batches of 20,
the comparison is refitted after every batch, and the run stops at the first
GO. A run is a false GO when the truth is beyond the margin overall or in some
required segment. Three rules are compared on the same fits:

- ``p >= g`` - the rule before issue 10 (no Monte Carlo error, no look count);
- ``fixed g`` - stats.decision at ``looks=None``: P - 2 MCSE >= g at every look;
- ``looks=k`` - stats.decision with the look count: the threshold of
  stats.stopping (error spending across looks).

Each fit's probabilities and MCSEs are computed once (``judge_delta``) and the
rules applied to them, so the rules see identical posteriors. It also prints
the single-look rates (each look on its own, no stopping) for comparison.

Data: simulated migrations (stats.simulate scenarios; the hard case is the
truth just beyond the margin with a judge lenient on the candidate) and XSTest
(bundled records: 450 prompts x 5 models, human labels on all; all 20 ordered
pairs, segments safe / unsafe at the demo's 0.9 / 0.1 traffic shares).

    python benchmarks/bench_stopping.py [--quick] [--only sim,xstest] [--reps 40] [--seeds 6]
"""

from __future__ import annotations

import argparse
import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path

import _common as C  # noqa: E402  (sets one thread per process before numpy loads)
import numpy as np  # noqa: E402

from changeover.stats.decision import judge_delta  # noqa: E402
from changeover.stats.model import FitSettings, fit_pairs  # noqa: E402
from changeover.stats.simulate import LENIENT, Scenario  # noqa: E402
from changeover.stats.stopping import SPEND_FIRST, confidence_at_look  # noqa: E402
from changeover.stats.tables import build_table  # noqa: E402

MARGIN, CONF, BATCH = 0.02, 0.95, 20
CHUNK = 40  # loops per batched fit
Z_MCSE = 2.0


@dataclass
class Run:
    """One loop: per-item truth and signals of a comparison, and the order labels arrive in."""

    name: str
    seg: np.ndarray  # [N]
    segments: list[str]
    signal: np.ndarray  # [N, 2] level, -1 = missing
    truth: np.ndarray  # [N, 2] human verdict
    order: np.ndarray  # [N] labelling order
    shares: np.ndarray  # [S]
    bad: bool  # truth beyond the margin overall or in some segment
    levels: int = 2

    def table(self, labelled: int):
        lab = np.zeros(len(self.seg), bool)
        lab[self.order[:labelled]] = True
        tot = np.where(lab, 1, 0)
        pos = [np.where(lab, self.truth[:, m], 0) for m in (0, 1)]
        return build_table(
            self.segments, self.seg, self.levels, self.signal[:, 0], self.signal[:, 1], pos[0], tot, pos[1], tot
        )


def _true_deltas(seg: np.ndarray, truth: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """[overall, per segment] truth deltas from the human verdicts."""
    S = len(shares)
    per = np.array([truth[seg == s, 1].mean() - truth[seg == s, 0].mean() for s in range(S)])
    return np.concatenate([[per @ (shares / shares.sum())], per])


# --------------------------------------------------------------------------- simulated migrations


def sim_run(sc: Scenario, rng: np.random.Generator) -> Run:
    """Draw a migration's items from a scenario (population truth decides ``bad``)."""
    S, n = sc.n_segments, sc.items_per_segment
    pi = sc.cell_probs()
    seg = np.repeat(np.arange(S), n)
    cells = np.concatenate([rng.choice(4, size=n, p=pi[s] / pi[s].sum()) for s in range(S)])
    z = np.stack([cells // 2, cells % 2], axis=1)
    a = np.empty_like(z)
    for m in range(2):
        p_pass = np.where(z[:, m] == 1, sc.sensitivity[m], 1.0 - sc.specificity[m])
        a[:, m] = (rng.random(len(z)) < p_pass).astype(int)
    d_seg, d_all = sc.true_delta()
    shares = np.asarray(sc.shares if sc.shares else [1.0] * S, float)
    bad = bool(min(d_all, d_seg.min()) < -MARGIN)
    return Run(sc.name, seg, [f"s{i}" for i in range(S)], a, z, rng.permutation(len(seg)), shares, bad)


SIM_SCENARIOS = [
    Scenario("just worse, judge lenient", [0.80], [0.77], items_per_segment=1500, **LENIENT),
    Scenario("at the margin (counts as bad), lenient", [0.80], [0.78], items_per_segment=1500, **LENIENT),
    Scenario("one segment just worse, lenient", [0.80, 0.75, 0.85], [0.80, 0.72, 0.85], **LENIENT),
    Scenario("worse, judge lenient", [0.80, 0.75, 0.85], [0.73, 0.68, 0.78], **LENIENT),
    Scenario("equal, judge lenient", [0.80], [0.80], items_per_segment=1500, **LENIENT),
    Scenario("better", [0.75, 0.70, 0.80], [0.82, 0.78, 0.86]),
]


# --------------------------------------------------------------------------- XSTest


XSTEST_MODELS = ["gpt4", "llama2new", "llama2orig", "mistralguard", "mistralinstruct"]
XSTEST_SHARES = {"safe": 0.9, "unsafe": 0.1}


def xstest_runs(seeds: list[int], pairs: list[tuple[str, str]] | None = None) -> list[Run]:
    from changeover.demo import bundled_records_path
    from changeover.records import read_records

    recs = read_records(bundled_records_path())
    items = sorted({r.item for r in recs})
    pos = {i: k for k, i in enumerate(items)}
    segments = sorted(XSTEST_SHARES)
    seg = np.zeros(len(items), int)
    sig = {m: np.full(len(items), -1) for m in XSTEST_MODELS}
    hum = {m: np.zeros(len(items), int) for m in XSTEST_MODELS}
    for r in recs:
        k = pos[r.item]
        seg[k] = segments.index(r.segment["safety"])
        s = r.signals.get("refusal")
        sig[r.model][k] = -1 if s is None else int(s)
        hum[r.model][k] = int(r.labels["refusal"][0])
    shares = np.array([XSTEST_SHARES[s] for s in segments])
    out = []
    for inc, cand in pairs or list(itertools.permutations(XSTEST_MODELS, 2)):
        truth = np.stack([hum[inc], hum[cand]], axis=1)
        d = _true_deltas(seg, truth, shares)
        for seed in seeds:
            order = np.random.default_rng(seed).permutation(len(items))
            a = np.stack([sig[inc], sig[cand]], axis=1)
            out.append(Run(f"{inc}->{cand}", seg, segments, a, truth, order, shares, bool(d.min() < -MARGIN)))
    return out


# --------------------------------------------------------------------------- the loop


@dataclass
class Paths:
    """P(non-inferior) and its MCSE for every run, look and required quantity (overall + segments)."""

    p: np.ndarray  # [R, K, Q]
    se: np.ndarray  # [R, K, Q]
    labels: np.ndarray  # [K] labelled items at each look


def replay(runs: list[Run], looks: int, settings: FitSettings) -> Paths:
    """Refit every run after each batch (all runs of one look in one batched fit)."""
    R, S = len(runs), len(runs[0].shares)
    Q = 1 + (S if S > 1 else 0)
    p, se = np.zeros((R, looks, Q)), np.zeros((R, looks, Q))
    labels = np.array([min(BATCH * (k + 1), len(runs[0].seg)) for k in range(looks)])
    for k in range(looks):
        for lo in range(0, R, CHUNK):  # chunks keep the draws of one batched fit in memory at a time
            chunk = runs[lo : lo + CHUNK]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits = fit_pairs([r.table(int(labels[k])) for r in chunk], settings)
            _judge(chunk, fits, p[lo : lo + CHUNK, k], se[lo : lo + CHUNK, k])
    return Paths(p, se, labels)


def _judge(runs: list[Run], fits: list, p: np.ndarray, se: np.ndarray) -> None:
    S = len(runs[0].shares)
    for i, (run, fit) in enumerate(zip(runs, fits, strict=True)):
        qs = [fit.overall(fit.delta, run.shares)] + ([fit.delta[..., s] for s in range(S)] if S > 1 else [])
        for q, d in enumerate(qs):
            j = judge_delta(d, MARGIN, CONF)
            p[i, q], se[i, q] = j.p_noninferior, j.mcse_noninferior


def go_matrix(paths: Paths, thresholds: np.ndarray, z: float) -> np.ndarray:
    """GO at each look [R, K]: every required quantity clears its look's threshold (judge_delta's rule)."""
    return (paths.p - z * paths.se >= thresholds[None, :, None]).all(axis=-1)


RULES = {
    "p >= g (before)": (0.0, lambda k: CONF),
    "fixed g, P-2MCSE": (Z_MCSE, lambda k: CONF),
    "looks=k (spending)": (Z_MCSE, lambda k: confidence_at_look(CONF, k)),
}


def summarise(title: str, runs: list[Run], paths: Paths) -> dict[str, dict[str, float]]:
    K = paths.p.shape[1]
    bad = np.array([r.bad for r in runs])
    groups = sorted({r.name for r in runs}, key=[r.name for r in runs].index)
    print(f"\n## {title}: {len(runs)} loops, batches of {BATCH} items, up to {K} looks ({paths.labels[-1]} labelled)")
    print(
        "thresholds at looks 1, 2, 5, 10, 20: "
        + ", ".join(f"{confidence_at_look(CONF, k):.4f}" for k in (1, 2, 5, 10, 20))
    )
    print(
        "| group | bad | rule | GO at first look | GO at one look (mean over looks) | stop at first GO: GO "
        "| labels at GO |"
    )
    print("|---|---|---|---|---|---|---|")
    out: dict[str, dict[str, float]] = {}
    for rule, (z, thr) in RULES.items():
        go = go_matrix(paths, np.array([thr(k + 1) for k in range(K)]), z)
        ever = go.any(axis=1)
        first = np.where(ever, go.argmax(axis=1), -1)
        for g in groups:
            sel = np.array([r.name == g for r in runs])
            at = paths.labels[first[sel & ever]]
            print(
                f"| {g} | {'yes' if bad[sel][0] else 'no'} | {rule} | {go[sel, 0].mean():.1%} | {go[sel].mean():.1%} | "
                f"{ever[sel].mean():.1%} | {np.median(at) if at.size else float('nan'):.0f} |"
            )
        fixed = fixed_sample_rule(paths, go_matrix(paths, np.full(K, CONF), Z_MCSE))
        out[rule] = {
            "false_go_loop": float(ever[bad].mean()) if bad.any() else float("nan"),
            "false_go_single": float(go[bad].mean()) if bad.any() else float("nan"),
            "go_when_good_loop": float(ever[~bad].mean()) if (~bad).any() else float("nan"),
            "n_bad": int(bad.sum()),
            "fixed": fixed,
        }
    print("\nAll bad loops (truth beyond the margin somewhere required):")
    for rule, o in out.items():
        k = round(o["false_go_loop"] * o["n_bad"])
        print(
            f"  {rule:22s} stop at first GO: false GO {k}/{o['n_bad']} = {o['false_go_loop']:.1%} "
            f"(95% upper {upper(k, o['n_bad']):.1%});  single look: {o['false_go_single']:.1%};  "
            f"good loops reaching GO: {o['go_when_good_loop']:.1%}"
        )
    return out


def fixed_sample_rule(paths: Paths, go: np.ndarray) -> float:
    return float(go.mean())


def upper(k: int, n: int) -> float:
    from scipy.stats import beta

    return float(beta.ppf(0.95, k + 1, n - k)) if n else float("nan")


def save(folder: Path | None, name: str, runs: list[Run], paths: Paths) -> None:
    """Keep the paths, so other thresholds can be evaluated on the same fits without refitting."""
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / f"{name}.npz",
        p=paths.p,
        se=paths.se,
        labels=paths.labels,
        bad=np.array([r.bad for r in runs]),
        names=np.array([r.name for r in runs]),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="sim,xstest")
    ap.add_argument("--reps", type=int, default=40, help="simulated loops per scenario")
    ap.add_argument("--seeds", type=int, default=6, help="label orders per XSTest pair")
    ap.add_argument("--looks", type=int, default=15)
    ap.add_argument("--segments", default="1,3", help="which simulated groups to run (segment counts)")
    ap.add_argument("--seed", type=int, default=0, help="0 = the seeds the rule was chosen on; others validate")
    ap.add_argument("--save", type=Path, default=None, help="write the probability paths (.npz) here")
    ap.add_argument("--draws", type=int, default=500, help="draws per chain (4 chains)")
    args = ap.parse_args()
    reps, seeds = (6, 2) if args.quick else (args.reps, args.seeds)
    C.header(f"bench_stopping: optional stopping in the batch-labelling loop (spend_first={SPEND_FIRST})")
    settings = FitSettings(seed=1 + args.seed, draws=args.draws)
    parts = set(args.only.split(","))
    if "sim" in parts:
        rng = np.random.default_rng(20261201 + args.seed)
        runs = [sim_run(sc, rng) for sc in SIM_SCENARIOS for _ in range(reps)]
        for S in sorted({len(r.shares) for r in runs} & {int(x) for x in args.segments.split(",")}):
            sub = [r for r in runs if len(r.shares) == S]
            with C.Timer() as t:
                paths = replay(sub, args.looks, settings)
            summarise(f"Simulated, {S} segment(s)", sub, paths)
            save(args.save, f"sim{S}", sub, paths)
            print(f"  ({len(sub)} loops x {args.looks} fits in {t.seconds:.0f} s)")
    if "xstest" in parts:
        runs = xstest_runs(list(range(100 * args.seed, 100 * args.seed + seeds)))
        looks = min(args.looks + 7, 450 // BATCH)
        with C.Timer() as t:
            paths = replay(runs, looks, settings)
        summarise("XSTest, all 20 ordered pairs", runs, paths)
        save(args.save, "xstest", runs, paths)
        print(f"  ({len(runs)} loops x {looks} fits in {t.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
