"""The confidence a decision needs when it is read again and again as labels arrive (optional stopping).

(The docstring with the measurement is completed below once measured.)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["SPEND_FIRST", "MAX_LOOKS", "spent", "boundaries", "confidence_at_look"]

SPEND_FIRST = 0.5  # share of the error budget the first look may spend
MAX_LOOKS = 400  # looks beyond this use the last boundary (the budget left there is negligible)
_GRID = 0.02  # grid step of the numerical integration, in units of one look's increment


def spent(look: int, first: float = SPEND_FIRST) -> float:
    """Share of the error budget spent by look ``look`` (1-based): 1 - (1 - first) / look."""
    return 1.0 - (1.0 - first) / look


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
    kernel = ndtr((np.arange(-half, half + 1) + 0.5) * step) - ndtr((np.arange(-half, half + 1) - 0.5) * step)
    lo = -9.0 * np.sqrt(looks) - 9.0
    out: list[float] = []
    x = np.array([0.0])
    mass = np.array([1.0])  # sub-density (as point masses on the grid) of paths still running
    start = 0  # grid index of x[0] relative to lo
    x0 = int(round(lo / step))
    idx0 = 0 - x0  # W(0) = 0 sits at grid index -x0
    start = idx0
    prev_spent = 0.0
    for k in range(1, looks + 1):
        mass = np.convolve(mass, kernel)
        start -= half
        if start < 0:  # drop the far lower tail (negligible mass)
            mass, start = mass[-start:], 0
        x = (x0 + start + np.arange(mass.size)) * step
        target = alpha * (spent(k, first) - prev_spent)
        tail = np.cumsum(mass[::-1])[::-1]  # P(W_k >= x_i, not crossed before)
        i = int(np.searchsorted(-tail, -target))  # first index with tail <= target
        i = min(i, mass.size - 1)
        b = x[i]
        out.append(float(b / np.sqrt(k)))
        prev_spent = spent(k, first)
        mass = mass[:i].copy()
        if mass.size == 0:
            break
    return tuple(out)


def confidence_at_look(confidence: float, looks: int | None, first: float = SPEND_FIRST) -> float:
    """The posterior probability a call needs at look ``looks`` (1-based); ``None`` = fixed sample: ``confidence``."""
    if looks is None:
        return float(confidence)
    if looks < 1:
        raise ValueError(f"looks counts the reads of the decision so far and starts at 1, got {looks}")
    alpha = round(1.0 - float(confidence), 12)
    k = min(int(looks), MAX_LOOKS)
    c = boundaries(alpha, k, first)[k - 1]
    return float(ndtr(c))


def z_at_look(confidence: float, looks: int | None, first: float = SPEND_FIRST) -> float:
    return float(ndtri(confidence_at_look(confidence, looks, first)))
