"""Shared pieces of the assessment benchmarks: one-core setup, the comparison methods, tables.

The comparison methods all estimate the same quantity as changeover's model,
delta = P(candidate acceptable) - P(incumbent acceptable), from per-item arrays:
- human-only: the paired difference H_cand - H_inc on the labelled items, t interval;
- judge alone (naive): difference of the two models' judge pass rates over all
  items, Wald (binomial) interval - it ignores the judge's errors entirely;
- PPI / PPI++: ``ppi_py.ppi_mean_ci`` on the paired differences, Y = H_cand - H_inc
  on the labelled items, Yhat = A_cand - A_inc on labelled and unlabelled items,
  alpha = 0.05 (ppi_py's default alpha is 0.1 = a 90% interval). PPI++ is lam
  tuned from the data (ppi_py's default); PPI is lam = 1.

``efficient_ratios`` gives the yardstick the width targets are read against:
the narrowest interval any estimator reaches from these signals and randomly
chosen labels without an assumption beyond them (asymptotically: many
unlabelled items), relative to human-only and to PPI++.
"""

from __future__ import annotations

import os

# one core per benchmark process: the machine is shared, and the targets are stated for one core
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = 0.95
ALPHA = 1 - CONF
Z = float(stats.norm.ppf(1 - ALPHA / 2))

METHODS = ["model", "human-only", "judge alone", "PPI (lam=1)", "PPI++"]


def header(title: str) -> None:
    """Title, date, machine and its load (the machine is shared; timings depend on it)."""
    load = os.getloadavg()
    print(f"# {title}")
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M UTC} | {platform.node()} | {os.cpu_count()} cores | "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} | python {platform.python_version()} | "
        f"numpy {np.__version__} | threads per process: {os.environ.get('OMP_NUM_THREADS')}"
    )
    sys.stdout.flush()


def load_now() -> str:
    load = os.getloadavg()
    return f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0


# --------------------------------------------------------------------------- the comparison methods


def human_only(y: np.ndarray) -> tuple[float, float]:
    """Paired differences y = H_cand - H_inc on the labelled items: mean +- t * sd / sqrt(n)."""
    n = len(y)
    if n < 2:
        return -1.0, 1.0
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * float(np.std(y, ddof=1)) / np.sqrt(n)
    m = float(np.mean(y))
    return m - half, m + half


def judge_alone(a_inc: np.ndarray, a_cand: np.ndarray) -> tuple[float, float]:
    """Difference of the judge's pass rates over all items, Wald interval for two proportions."""
    p0, p1 = float(np.mean(a_inc)), float(np.mean(a_cand))
    half = Z * np.sqrt(p0 * (1 - p0) / len(a_inc) + p1 * (1 - p1) / len(a_cand))
    return p1 - p0 - half, p1 - p0 + half


def ppi(y: np.ndarray, yhat: np.ndarray, yhat_unlabelled: np.ndarray, lam: float | None) -> tuple[float, float]:
    """ppi_py.ppi_mean_ci at 95% (alpha=0.05); lam=None is PPI++ (tuned), lam=1 plain PPI."""
    from ppi_py import ppi_mean_ci

    lo, hi = ppi_mean_ci(
        np.asarray(y, float), np.asarray(yhat, float), np.asarray(yhat_unlabelled, float), alpha=ALPHA, lam=lam
    )
    return float(np.ravel(lo)[0]), float(np.ravel(hi)[0])


def baselines(
    z_inc: np.ndarray, z_cand: np.ndarray, a_inc: np.ndarray, a_cand: np.ndarray, labelled: np.ndarray
) -> dict[str, tuple[float, float]]:
    """The four non-model intervals from per-item arrays (z only read where ``labelled``)."""
    y = (z_cand - z_inc)[labelled].astype(float)
    yhat = (a_cand - a_inc).astype(float)
    return {
        "human-only": human_only(y),
        "judge alone": judge_alone(a_inc, a_cand),
        "PPI (lam=1)": ppi(y, yhat[labelled], yhat[~labelled], 1.0),
        "PPI++": ppi(y, yhat[labelled], yhat[~labelled], None),
    }


def efficient_ratios(y: np.ndarray, yhat: np.ndarray, cells: np.ndarray, share: float) -> tuple[float, float]:
    """The efficient estimator's width over human-only's and over PPI++'s, from the full truth of every item.

    With n random labels among N items in all (``share`` = n / N), the smallest
    asymptotic variance of an estimate of E[Y] (Y = H_cand - H_inc) that uses
    the signals and nothing else is (E[Var(Y | cell)] + share Var(E[Y | cell])) / n,
    the cell being everything the signals (and the segment) say about an item:
    what stratifying by the judge's verdicts reaches, and what a model that
    assumes nothing more can reach. Human-only's variance is Var(Y) / n, PPI++'s
    at its best lambda (Var(Y) - (1 - share) Cov(Y, Yhat)^2 / Var(Yhat)) / n
    (ppi_py's lambda, Cov / ((1 + n / (N - n)) Var(Yhat)), with the N - n
    unlabelled items as its unlabelled set, as ``baselines`` calls it).
    Plug-in on all items (cells with one item are left out of the within-cell
    variance); widths scale with the square roots.
    """
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    var_y = float(np.var(y))
    cov = float(np.cov(y, yhat, bias=True)[0, 1])
    var_ppi = var_y - (1 - share) * cov * cov / max(float(np.var(yhat)), 1e-300)
    _, inv, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    means = np.bincount(inv, y) / counts
    squares = np.bincount(inv, (y - means[inv]) ** 2)  # per cell: sum of squared deviations from its mean
    big = counts > 1
    within = float(np.sum(counts[big] * squares[big] / (counts[big] - 1)))  # sum of n_k Var_k (ddof=1)
    between = float(np.sum(counts * (means - y.mean()) ** 2) / counts.sum())
    eff = within / counts[big].sum() + share * between
    return float(np.sqrt(eff / var_y)), float(np.sqrt(eff / var_ppi))


def credible(draws: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(draws, [ALPHA / 2, 1 - ALPHA / 2])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- collecting and printing


@dataclass
class Tally:
    """Interval outcomes per (group, method): widths and whether the truth was covered."""

    widths: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    hits: dict[tuple[str, str], list[bool]] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)

    def add(self, group: str, method: str, interval: tuple[float, float], truth: float) -> None:
        if group not in self.groups:
            self.groups.append(group)
        lo, hi = interval
        self.widths.setdefault((group, method), []).append(hi - lo)
        self.hits.setdefault((group, method), []).append(lo <= truth <= hi)

    def add_all(self, group: str, intervals: dict[str, tuple[float, float]], truth: float) -> None:
        for method, iv in intervals.items():
            self.add(group, method, iv, truth)

    def pooled(self, method: str, groups: list[str] | None = None) -> tuple[float, float, int]:
        groups = groups or self.groups
        w = [x for g in groups for x in self.widths.get((g, method), [])]
        h = [x for g in groups for x in self.hits.get((g, method), [])]
        return float(np.mean(w)), float(np.mean(h)), len(h)

    def width(self, group: str, method: str) -> float:
        return float(np.mean(self.widths[(group, method)]))

    def coverage(self, group: str, method: str) -> float:
        return float(np.mean(self.hits[(group, method)]))


def print_table(title: str, tally: Tally, methods: list[str] = METHODS, total_label: str = "all") -> None:
    """Rows = groups (+ pooled); per method: mean 95% width and coverage; then the model's width ratios."""
    print(f"\n## {title}")
    name_w = max(len(total_label), *(len(g) for g in tally.groups))
    cols = " | ".join(f"{m:>17s}" for m in methods)
    print(f"{'':{name_w}s} | {'n':>4s} | {cols} | {'model/human':>11s} | {'model/PPI++':>11s}")
    print(f"{'':{name_w}s} | {'':>4s} | " + " | ".join(f"{'width  cover':>17s}" for _ in methods) + " |")
    for g in [*tally.groups, total_label]:
        groups = tally.groups if g == total_label else [g]
        cells, widths = [], {}
        n = 0
        for m in methods:
            w, c, n = tally.pooled(m, groups)
            widths[m] = w
            cells.append(f"{w:8.4f} {c:7.1%}")
        r_h = widths["model"] / widths["human-only"]
        r_p = widths["model"] / widths["PPI++"]
        if g == total_label:
            print("-" * (name_w + 40 + 20 * len(methods)))
        print(f"{g:{name_w}s} | {n:4d} | " + " | ".join(f"{c:>17s}" for c in cells) + f" | {r_h:11.3f} | {r_p:11.3f}")


def verdict_on_targets(
    label: str, tally: Tally, min_coverage: float = 0.93, bound: tuple[float, float] | None = None
) -> dict[str, object]:
    """The issue's targets, judged on pooled numbers measured in this run; printed in words. ``bound``: the
    efficient estimator's width over human-only's and over PPI++'s on the same data (``efficient_ratios``)."""
    wm, cm, n = tally.pooled("model")
    wh, ch, _ = tally.pooled("human-only")
    wp, cp, _ = tally.pooled("PPI++")
    se = np.sqrt(0.95 * 0.05 / n)
    cov_ok_h = cm >= min(ch, CONF) - 2 * se
    cov_ok_p = cm >= min(cp, CONF) - 2 * se
    r_h, r_p = wm / wh, wm / wp
    print(
        f"\n{label}: model coverage {cm:.1%} (n={n}; human-only {ch:.1%}, PPI++ {cp:.1%}; 2 s.e. at 95% = {2 * se:.1%})"
    )
    print(
        f"  width vs human-only: {r_h:.3f}x  (target <= 0.75x at equal or better coverage) -> "
        f"{'MET' if r_h <= 0.75 and cov_ok_h else 'NOT MET'}"
        f"{'' if cov_ok_h else ' (coverage below human-only)'}"
    )
    print(
        f"  width vs PPI++:      {r_p:.3f}x  (target <= 0.90x at equal or better coverage, issue 10; "
        f"issue 2's was 1.00x) -> {'MET' if r_p <= 0.9 and cov_ok_p else 'NOT MET'}"
        f"{'' if cov_ok_p else ' (coverage below PPI++)'}"
    )
    out = {"ratio_human": r_h, "ratio_ppi": r_p, "coverage_model": cm, "coverage_human": ch, "coverage_ppi": cp}
    if bound is not None:
        print(
            f"  the efficient bound on these data (no estimator without further assumptions is narrower, "
            f"asymptotically): {bound[0]:.3f}x human-only, {bound[1]:.3f}x PPI++; the model is "
            f"{r_h / bound[0]:.3f}x the bound"
        )
        out |= {"bound_human": bound[0], "bound_ppi": bound[1]}
    sys.stdout.flush()
    return out


# --------------------------------------------------------------------------- simulated migrations

from changeover.stats.simulate import LENIENT, STANDARD_SCENARIOS, Scenario  # noqa: E402

SCENARIOS = STANDARD_SCENARIOS  # the six the tests check, shared with them
LARGE = Scenario(
    "large (3x10k items), worse, lenient judge",
    [0.80, 0.75, 0.85],
    [0.77, 0.72, 0.82],
    items_per_segment=10_000,
    labels_per_segment=40,
    **LENIENT,
)


@dataclass
class Items:
    """One simulated migration, per item: segment, true verdicts z[:, m], judge verdicts a[:, m], labelled."""

    seg: np.ndarray
    z: np.ndarray
    a: np.ndarray
    labelled: np.ndarray


def draw_items(sc: Scenario, rng: np.random.Generator) -> Items:
    """Like ``stats.simulate.simulate`` but per item, with the *same* items labelled on both models.

    Paired labels are what human-only and PPI on paired differences need (and
    what a team does: show the annotator both answers); ``labels_per_segment``
    items per segment get a human label on the incumbent's and the candidate's answer.
    """
    S, n = sc.n_segments, sc.items_per_segment
    pi = sc.cell_probs()
    seg = np.repeat(np.arange(S), n)
    cells = np.concatenate([rng.choice(4, size=n, p=pi[s] / pi[s].sum()) for s in range(S)])
    z = np.stack([cells // 2, cells % 2], axis=1)
    a = np.empty_like(z)
    for m in range(2):
        p_pass = np.where(z[:, m] == 1, sc.sensitivity[m], 1.0 - sc.specificity[m])
        a[:, m] = (rng.random(len(z)) < p_pass).astype(int)
    labelled = np.zeros(len(z), bool)
    for s in range(S):
        labelled[rng.choice(np.flatnonzero(seg == s), size=sc.labels_per_segment, replace=False)] = True
    return Items(seg, z, a, labelled)


def items_bound(it: Items, where: np.ndarray | None = None) -> tuple[float, float]:
    """``efficient_ratios`` of one simulated migration (cells: segment and both judge verdicts), on all items or
    on those ``where`` selects (one segment)."""
    where = np.ones(len(it.seg), bool) if where is None else where
    y, yhat = it.z[:, 1] - it.z[:, 0], it.a[:, 1] - it.a[:, 0]
    cells = np.stack([it.seg, it.a[:, 0], it.a[:, 1]], 1)
    return efficient_ratios(y[where], yhat[where], cells[where], float(it.labelled.mean()))


def items_table(sc: Scenario, it: Items):
    from changeover.stats.tables import build_table

    lab = it.labelled.astype(int)
    names = sc.segment_names or [f"s{i}" for i in range(sc.n_segments)]
    return build_table(names, it.seg, 2, it.a[:, 0], it.a[:, 1], it.z[:, 0] * lab, lab, it.z[:, 1] * lab, lab)


# --------------------------------------------------------------------------- XSTest as arrays

XSTEST_MODELS = ["llama2orig", "llama2new", "gpt4", "mistralinstruct", "mistralguard"]
XSTEST_SIGNALS = ["refusal", "refusal_strmatch"]  # the GPT-4 judge, and a refusal-phrase check on the text


@dataclass
class XSTest:
    """The bundled XSTest records as arrays: 450 prompts, segment = safety (safe / unsafe)."""

    items: list[str]
    seg: np.ndarray  # [items] 0 = safe, 1 = unsafe
    signals: dict[str, np.ndarray]  # model -> [items, 2] levels (judge, string match), -1 = missing
    human: dict[str, np.ndarray]  # model -> [items] the human verdict

    def table(self, incumbent: str, candidate: str, labelled: np.ndarray, signals: tuple[int, ...] = (0,)):
        """The count table of one pair with human labels on ``labelled`` prompts (both answers)."""
        from changeover.stats.tables import build_table

        lab = labelled.astype(int)
        a0 = self.signals[incumbent][:, list(signals)]
        a1 = self.signals[candidate][:, list(signals)]
        h0, h1 = self.human[incumbent], self.human[candidate]
        return build_table(["safe", "unsafe"], self.seg, [2] * len(signals), a0, a1, h0 * lab, lab, h1 * lab, lab)

    def truth(self, incumbent: str, candidate: str) -> tuple[np.ndarray, float]:
        """All-human delta per segment and overall (segments weighted by their prompts)."""
        d = self.human[candidate] - self.human[incumbent]
        return np.array([d[self.seg == s].mean() for s in (0, 1)]), float(d.mean())

    @property
    def shares(self) -> np.ndarray:
        return np.bincount(self.seg, minlength=2).astype(float)


def load_xstest() -> XSTest:
    from changeover.demo import bundled_records_path
    from changeover.records import read_records

    recs = read_records(bundled_records_path())
    items = sorted({r.item for r in recs})
    pos = {i: k for k, i in enumerate(items)}
    seg = np.zeros(len(items), np.int64)
    sig = {m: np.full((len(items), 2), -1, np.int64) for m in XSTEST_MODELS}
    hum = {m: np.zeros(len(items), np.int64) for m in XSTEST_MODELS}
    for r in recs:
        k = pos[r.item]
        seg[k] = 0 if r.segment["safety"] == "safe" else 1
        for g, name in enumerate(XSTEST_SIGNALS):
            v = r.signals.get(name)
            sig[r.model][k, g] = -1 if v is None else int(v)
        hum[r.model][k] = int(r.labels["refusal"][0])
    return XSTest(items, seg, sig, hum)
