"""The confidence a decision needs when it is read again and again as labels arrive (optional stopping).

The labelling app refits as labels arrive and shows the verdict live; a team
stops labelling at the first GO. Reading a fixed threshold g after every batch
gives the data many chances to cross it: measured before this module
(benchmarks/bench_stopping.py, batches of 20 labelled items, stop at the first
GO), false GO among loops whose truth is at or beyond the margin was 13/80 =
16% on simulated migrations with a judge lenient on the candidate (25% of
loops with the truth exactly at the margin, 8% just beyond it), against 3.4%
for a single look at the same fits; on XSTest (all 20 ordered pairs, 6 label
orders each) 4/96 loops, e.g. llama2orig -> mistralguard reached GO at 180
labels although all 450 human labels put it 3.5 points worse on unsafe
prompts.

The rule: an error-spending boundary across looks (Lan and DeMets 1983, on
the scale of looks). At the margin the posterior z-statistic of a delta
behaves like a Brownian motion observed at equally spaced information times,
Z_k = W(k) / sqrt(k) (labels arrive in equal batches). The budget alpha = 1 - g
is spent over looks k = 1, 2, ... as alpha * spent(k), spent(k) = k / (k + h)
with h = 1 / SPEND_FIRST - 1, so it is never exhausted however long a team
keeps labelling; ``boundaries`` finds z-boundaries c_k with P(first crossing
at look k) = alpha * (spent(k) - spent(k-1)) by recursive numerical
integration, and the call at look k needs posterior probability Phi(c_k).
With g = 0.95 that is 0.993 for each of the first five looks, 0.994 at the
tenth, 0.996 at the twentieth, 0.998 at the fiftieth: nearly flat early (like
a Pocock boundary), rising slowly after.

Why this one: a threshold calibrated for a fixed number of looks (Pocock)
needs the horizon in advance, which the app does not know; an anytime-valid
mixture boundary over all information times starts at z ~ 3.7 (P ~ 0.9999)
and loses most of the power. Spending over looks keeps the fixed-sample
decision exactly as it was (``looks=None``: threshold g) and is valid for an
unbounded number of looks. The first-look share was chosen on the measured
paths (benchmarks/README.md): the early looks (20-60 labels) are where the
posterior is least reliable, so spending much there (0.5: threshold 0.976
at the first look) let GO through there and left less for later; 0.15 had the
lowest false GO and the most power of 0.05-0.5 (0.05 and 0.1 spend too little
overall; 0.25-0.5 let a look-1 GO through).

Measured with the rule, on the fits where it was chosen: false GO of "stop at
the first GO" 2/80 = 2.5% on simulated 1-segment migrations with a judge
lenient on the candidate (truth at the margin 2/40, just beyond it 0/40),
0/80 with 3 segments, 0/96 on XSTest. On fresh seeds (validation run):
2/80 = 2.5% (fixed g: 16/80 = 20%; the old p >= g: 22/80 = 27.5%), 0/80
(3/80), 0/96 (7/96; old 8/96). Its cost is power: XSTest pairs that are truly
non-inferior still all reached GO, at a median of 80-160 labelled prompts
instead of 40; within 300 labels a candidate truly better in 3 segments
reached GO in 10-20% of loops (60-68% reading g at every look). Re-measured
on the reparameterised model (a smaller run): 1/40 simulated (fixed g: 5/40)
and 0/48 on XSTest (fixed g: 1/48). What it cannot fix: a single posterior that is
already overconfident (with 20-60 labels and a lenient judge a few loops read
P >= 0.99 at the margin) - that is the model's calibration, not the rule.

``looks`` is the number of times the decision has been read after new labels
arrived (the service/app passes the count of label batches or assessments
recorded; ``looks_from_labels`` turns a label count into looks of
``LOOK_BATCH``). Refreshing more often than once per batch does not need a
new look: the boundary assumes equal batches, and reads closer together are
more correlated, so counting them as looks only makes the rule stricter.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["SPEND_FIRST", "MAX_LOOKS", "LOOK_BATCH", "spent", "boundaries", "confidence_at_look", "looks_from_labels"]

SPEND_FIRST = 0.15  # share of the error budget the first look may spend (measured choice, see above)
LOOK_BATCH = 20  # labelled items per look that the measurements used
MAX_LOOKS = 250  # looks beyond this use the last boundary (the budget left there is negligible)
_GRID = 0.02  # grid step of the numerical integration, in units of one look's increment


def spent(look: int, first: float = SPEND_FIRST) -> float:
    """Share of the error budget spent by look ``look`` (1-based): k / (k + h), h = 1 / first - 1.

    The first look spends ``first``; each later look spends less than the one
    before (h / ((k + h)(k + h - 1))), and what is left after look k is h / (k + h).
    """
    h = 1.0 / first - 1.0
    return look / (look + h)


@lru_cache(maxsize=16)
def boundaries(alpha: float, looks: int, first: float = SPEND_FIRST) -> tuple[float, ...]:
    """z-boundaries c_1..c_looks: crossing c_k at look k, for the first time, has probability
    alpha * (spent(k) - spent(k-1)) when the statistic is a Brownian motion at the margin
    observed at equally spaced information times (Z_k = W(k) / sqrt(k)).

    Computed by recursive numerical integration of the density of W over the
    paths that have not yet crossed (Armitage, McPherson and Rowe 1969).
    """
    step = _GRID
    half = int(np.ceil(9.0 / step))
    edges = (np.arange(-half, half + 2) - 0.5) * step
    kernel = np.diff(ndtr(edges))  # one look's N(0, 1) increment, as masses on the grid
    floor = -int(np.ceil((9.0 * np.sqrt(looks) + 9.0) / step))  # grid index below which mass is dropped
    mass = np.array([1.0])  # masses of W on the grid over the paths that have not crossed yet
    first_index = 0  # grid index of mass[0]; W(0) = 0
    out: list[float] = []
    prev = 0.0
    for k in range(1, looks + 1):
        mass = np.convolve(mass, kernel)
        first_index -= half
        if first_index < floor:  # the far lower tail carries no mass that matters
            mass, first_index = mass[floor - first_index :], floor
        target = alpha * (spent(k, first) - prev)
        tail = np.cumsum(mass[::-1])[::-1]  # P(W_k >= grid point, not crossed before)
        i = min(int(np.searchsorted(-tail, -target)), mass.size - 1)  # first point whose tail is <= target
        out.append(float((first_index + i) * step / np.sqrt(k)))
        prev = spent(k, first)
        mass = mass[:i]
    return tuple(out)


def confidence_at_look(confidence: float, looks: int | None, first: float = SPEND_FIRST) -> float:
    """The posterior probability a call needs at look ``looks`` (1-based); ``None`` = fixed sample: ``confidence``."""
    if looks is None:
        return float(confidence)
    if looks < 1:
        raise ValueError(f"looks counts the reads of the decision so far and starts at 1, got {looks}")
    alpha = round(1.0 - float(confidence), 12)
    k = min(int(looks), MAX_LOOKS)
    c = boundaries(alpha, MAX_LOOKS, first)[k - 1]  # a look's boundary does not depend on later looks
    return float(ndtr(c))


def z_at_look(confidence: float, looks: int | None, first: float = SPEND_FIRST) -> float:
    """The same threshold on the z scale (Phi^-1)."""
    return float(ndtri(confidence_at_look(confidence, looks, first)))


def looks_from_labels(labelled: int, batch: int = LOOK_BATCH) -> int:
    """Looks so far when the decision is read after every ``batch`` labelled items: ceil(labelled / batch), >= 1.

    ``labelled`` counts items with human labels in force (an item counts once,
    however many of its responses are labelled), as in the measurements, where
    a batch labelled both answers of 20 items. Labels that were there before
    the loop began count too, which only makes the threshold stricter.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1 label, got {batch}")
    return max(1, -(-int(labelled) // batch))
