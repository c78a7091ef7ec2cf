"""Convergence diagnostics for [chains, draws] arrays: split R-hat, bulk and tail ESS, MCSE.

Rank-normalised split R-hat, bulk ESS and tail ESS as in Vehtari et al. (2021),
the definitions ArviZ and Stan use, and the Monte Carlo standard error of a
posterior mean (e.g. of an indicator: a probability such as P(delta > -m)).
Kept here rather than depending on ArviZ for four numbers.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata


def _split(x: np.ndarray) -> np.ndarray:
    c, t = x.shape
    half = t // 2
    return np.concatenate([x[:, :half], x[:, t - half :]], axis=0)


def _rank_normal(x: np.ndarray) -> np.ndarray:
    r = rankdata(x, method="average").reshape(x.shape)
    return ndtri((r - 0.375) / (x.size + 0.25))


def rhat(x: np.ndarray) -> float:
    """Rank-normalised split R-hat of one scalar quantity, x: [chains, draws]."""
    z = _rank_normal(_split(np.asarray(x, float)))
    if np.ptp(z) == 0:
        return 1.0
    m, n = z.shape
    w = z.var(axis=1, ddof=1).mean()
    b = n * z.mean(axis=1).var(ddof=1)
    var = (n - 1) / n * w + b / n
    return float(np.sqrt(var / w)) if w > 0 else float("inf")


def _ess_raw(z: np.ndarray) -> float:
    """ESS of [chains, draws] values (already split or not), Geyer's initial monotone sequence."""
    m, n = z.shape
    if np.ptp(z) == 0:
        return float(m * n)
    zc = z - z.mean(axis=1, keepdims=True)
    f = np.fft.rfft(zc, n=2 * n, axis=1)
    acov = np.fft.irfft(f * np.conj(f), axis=1)[:, :n] / n
    w = z.var(axis=1, ddof=1).mean()
    var = (n - 1) / n * w + z.mean(axis=1).var(ddof=1) if m > 1 else w
    rho = 1.0 - (w - acov.mean(axis=0)) / var
    rho[0] = 1.0
    total, prev = 0.0, np.inf
    for t in range(0, n - 1, 2):
        pair = rho[t] + rho[t + 1]
        if pair < 0:
            break
        pair = min(pair, prev)
        total += pair
        prev = pair
    tau = -1.0 + 2.0 * total
    return float(m * n / max(tau, 1.0 / np.log10(m * n)))


def ess(x: np.ndarray) -> float:
    """Bulk effective sample size: rank-normalised split chains."""
    return _ess_raw(_rank_normal(_split(np.asarray(x, float))))


def ess_tail(x: np.ndarray) -> float:
    """Tail ESS: the smaller ESS of the indicators of the 5% and 95% quantiles (split chains)."""
    x = _split(np.asarray(x, float))
    out = []
    for q in (0.05, 0.95):
        ind = (x <= np.quantile(x, q)).astype(float)
        out.append(_ess_raw(ind))
    return float(min(out))


def mcse_mean(x: np.ndarray) -> float:
    """Monte Carlo standard error of the posterior mean of x [chains, draws] (split chains, no ranks)."""
    x = _split(np.asarray(x, float))
    sd = float(x.std(ddof=1))
    if sd == 0:
        return 0.0
    return sd / float(np.sqrt(_ess_raw(x)))
