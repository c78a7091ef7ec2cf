"""Static Hamiltonian Monte Carlo with a dense adapted metric, compiled whole (``stats.model``'s second sampler).

Each chain (one comparison x one chain) runs with its own step size and
metric: static HMC, ``steps`` leapfrog steps with a jittered step size
(0.8-1.2x) tuned by dual averaging toward ``target`` acceptance; warm-up:
step size only, then a diagonal metric from 15-40% of warm-up, a dense one
(covariance of the window's draws shrunk toward its diagonal by D / (n + D),
regularised as Stan does) from 40-80%, the step size re-tuned after each. A
transition whose energy error exceeds 1000 is divergent. The chain runs in
whitened coordinates x = L^-1 theta (L the metric's Cholesky factor), so a
leapfrog step costs theta = L x and grad_x = L' grad_theta besides the density.

Everything (leapfrog loop, metric products, energy, accept / reject,
adaptation, and the log density ``stats.likelihood.log_posterior``) is one
compiled function that runs every fit x chain in turn without returning to
Python, each chain from its own seed and in its own fit's dimension D (not
padded to the largest fit's), and without BLAS / LAPACK: numba's linear
algebra calls the threaded OpenBLAS, whose spinning threads cost 4x the CPU
time at D = 169 and made the draws depend on the thread count; the Cholesky
factorisation here is written out.

Measured (3 candidates x 3 dimensions x 6 segments, 10^5 items per segment,
500 warm-up + 500 draws x 4 chains, CPU time on a loaded 2-core machine;
benchmarks/README.md "2. Fit time"): the numpy version of this sampler
(batched over fits x chains, padded to D = 171, numpy per leapfrog step) took
18.8 s; compiled, 6.7 s at 24 steps with the same diagnostics (R-hat <=
1.007, bulk ESS >= 766, tail ESS >= 915, no divergence), 4.6 s at the 16 steps
now the default (R-hat <= 1.007, ESS >= 736 / 893); 12 steps gave R-hat 1.010-1.018. A leapfrog step costs 4.5 us at
D = 64 (binary dimensions) and 15 us at D = 169 (the 5-level ordinal one):
10.5 us of it the density, whose exp / log per labelled row and cell are the
floor. The production scenario (4 fits): 1.7 s at 24 steps, 1.2 s at 16.

Why not faster (2026-12-01; a grid of settings over 3x3x6 at 10^3 and 10^5 items per segment and the
production scenario, 2 seeds each): the adapted step size is 0.07-0.13 in whitened coordinates for every fit,
binary (D = 64) or ordinal (D = 169) alike, where a Gaussian of that dimension would allow 0.3-0.5 at this
acceptance. At 20 posterior draws of a binary fit, the eigenvalues of the Hessian in the whitened coordinates
ran from -0.4 to 6.7 (a Gaussian: all 1): the curvature of the labelled cells' softmax varies along the
posterior (a truth cell's probability near 0 or 1 in one draw, not in another), its top direction the truth
profile and the signal coefficients together, so no constant metric whitens it. 16 steps x 0.1 is the
trajectory length (~1.6) the long directions need. Shorter runs trade CPU for the diagnostics' margin, at 10^5
items per segment: 12 steps at target 0.9, 3.45 s, ESS >= 536, R-hat <= 1.009; 10 steps at 0.85, 2.92 s, ESS
>= 424, R-hat <= 1.009, 2 divergences in the production fits; 300 + 300 draws, 2.68 s, R-hat 1.014-1.022
(fails). The default keeps the margin (ESS >= 570, R-hat <= 1.008, no divergence) at 4.5 s; the 2 s target
needs a parameterisation in which the curvature is even (or a Riemannian metric), not a tuning of this one.

NUTS was written and measured here too (multinomial, Stan's U-turn criterion
with the extra checks, Stan's windows; compiled the same way) and not kept: on
the good fits it needs 7-15 leapfrog steps against 24, but it did not hold the
diagnostics everywhere. With a sample covariance as metric (200 draws, D =
169) its trees grew to 35-100 steps; with the curvature at the draws' mean
(finite-difference Hessian) as metric, 15 steps, but a fit with 10^5 labels
whose log density is not concave at the mean (Hessian eigenvalue -2.2) took
300-450 steps per transition with 25-268 divergences at target 0.8, and at
target 0.95 the 3x3x6 fits gave 9 divergences in one weakly identified fit
and 12 s. nutpie (``stats.nuts``), measured after, holds the diagnostics on
the same fits at 2.4-2.7 s in theta and 1.5-1.7 s whitened by the Laplace
approximation (its adaptation from draws and gradients, and trajectories
long enough for an ESS per draw near 1). Since 2026-12-02 the default
sampler ("auto") gives NUTS every fit first (from 2026-12-01 to then: the fits whose Laplace approximation
holds, this sampler the others; ``stats.model`` says why it changed), and this sampler takes over a NUTS fit
that diverged at target acceptance 0.95 too (``assessment.sampling.after_divergences``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from changeover.stats.likelihood import Packed, log_posterior

DIVERGENCE = 1000.0
FAST = {"reassoc", "contract"}  # lets sums vectorise; no assumption about inf / nan


@dataclass
class Run:
    """Post-warm-up draws [draws, B, D], and per batch element: mean acceptance, divergences, step size, and the
    gradients evaluated (warm-up included)."""

    draws: np.ndarray
    accept: np.ndarray
    divergences: np.ndarray
    step_size: np.ndarray
    gradients: np.ndarray


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _to_theta(L, x, q, D):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled (numba types it)
    """q = L x (reassociated sums: the dot products vectorise, 1.1 us instead of 5 at D = 169)."""
    for i in range(D):
        s = 0.0
        for j in range(i + 1):
            s += L[i, j] * x[j]
        q[i] = s


@njit(cache=True, nogil=True, error_model="numpy")
def _whiten(L, q, x, D):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """x = L^-1 q."""
    for i in range(D):
        s = q[i]
        for j in range(i):
            s -= L[i, j] * x[j]
        x[i] = s / L[i, i]


@njit(cache=True, nogil=True, error_model="numpy")
def _to_x_grad(L, gq, gx, D):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    for j in range(D):
        gx[j] = 0.0
    for i in range(D):
        gi = gq[i]
        for j in range(i + 1):
            gx[j] += L[i, j] * gi


@njit(cache=True, nogil=True, error_model="numpy")
def _density(L, x, q, gq, gx, D, f, data, work):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """log p at x (whitened): sets q = L x, gx = L' grad; -inf when not finite."""
    _to_theta(L, x, q, D)
    lp = log_posterior(q, gq, f, data, work)
    if not math.isfinite(lp):
        return -math.inf
    _to_x_grad(L, gq, gx, D)
    for j in range(D):
        if not math.isfinite(gx[j]):
            return -math.inf
    return lp


@njit(cache=True, nogil=True, error_model="numpy")
def _leapfrog(L, x, p, g, q, gq, eps, D, f, data, work):  # type: ignore[no-untyped-def]  # pragma: no cover
    for j in range(D):
        p[j] += 0.5 * eps * g[j]
        x[j] += eps * p[j]
    lp = _density(L, x, q, gq, g, D, f, data, work)
    if lp == -math.inf:
        return lp
    for j in range(D):
        p[j] += 0.5 * eps * g[j]
    return lp


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _dot(a, b, D):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    s = 0.0
    for j in range(D):
        s += a[j] * b[j]
    return s


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _cholesky(A, D, floor):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled (numba types it)
    """(lower L with L L' = A, True), or (_, False) if A is not positive definite; each pivot (the conditional
    precision of coordinate i given those before it) raised to at least floor[i].

    Written out rather than LAPACK's: numba's linear algebra calls the threaded BLAS, whose spinning threads
    cost 4x the sampler's CPU time at D = 169 (and made the draws depend on the thread count).
    """
    L = np.zeros((D, D))
    for i in range(D):
        for j in range(i + 1):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                s = max(s, floor[i])
                if not s > 0.0:
                    return L, False
                L[i, i] = math.sqrt(s)
            else:
                L[i, j] = s / L[j, j]
    return L, True


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _adapt(buf, n, D, dense):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled (numba types it)
    """The metric's Cholesky factor from warm-up draws buf[:n]: their covariance (dense: shrunk toward its
    diagonal by D / (n + D); else its diagonal), regularised as Stan does."""
    mean = np.zeros(D)
    for t in range(n):
        for j in range(D):
            mean[j] += buf[t, j]
    mean /= n
    cov = np.zeros((D, D))
    for t in range(n):
        for i in range(D):
            di = buf[t, i] - mean[i]
            if dense:
                for j in range(i + 1):
                    cov[i, j] += di * (buf[t, j] - mean[j])
            else:
                cov[i, i] += di * di
    lam = D / (n + D)
    a, b = n / (n + 5.0), 1e-3 * 5.0 / (n + 5.0)
    for i in range(D):
        for j in range(i + 1):
            v = cov[i, j] / max(n - 1, 1)
            if j < i:
                v *= 1.0 - lam
            cov[i, j] = a * v + (b if i == j else 0.0)
            cov[j, i] = cov[i, j]
    L, ok = _cholesky(cov, D, np.zeros(D))
    return L, ok


@njit(cache=True, nogil=True, error_model="numpy")
def _chain(theta0, seed, W, T, steps, target, f, D, data, draws, stats):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Warm up and draw one chain of fit f from theta0 [D]; draws [T, D]; stats = accept, divergences, eps."""
    np.random.seed(seed)
    work = np.empty(4 * data[1].shape[1] + 2 * data[15].shape[1] + 2 * data[17].size)
    L = np.eye(D)
    q = theta0[:D].copy()
    x = q.copy()
    g = np.empty(D)
    gq = np.empty(D)
    xc, pc, gc, qc, p0 = np.empty(D), np.empty(D), np.empty(D), np.empty(D), np.empty(D)
    lp = _density(L, x, q, gq, g, D, f, data, work)
    log_eps, mu, h_bar, log_eps_bar, t_da = math.log(0.1), 0.0, 0.0, 0.0, 0
    windows = ((int(W * 0.15), int(W * 0.4), False), (int(W * 0.4), int(W * 0.8), True))
    buf = np.empty((max(W, 1), D))
    n_buf = 0
    acc_sum, div = 0.0, 0
    for it in range(W + T):
        eps = math.exp(log_eps) * np.random.uniform(0.8, 1.2)
        for j in range(D):
            p0[j] = np.random.standard_normal()
            xc[j], pc[j], gc[j] = x[j], p0[j], g[j]
        lp_c = lp
        for _ in range(steps):
            lp_c = _leapfrog(L, xc, pc, gc, qc, gq, eps, D, f, data, work)
            if lp_c == -math.inf:
                break
        h0 = lp - 0.5 * _dot(p0, p0, D)
        h1 = lp_c - 0.5 * _dot(pc, pc, D) if lp_c > -math.inf else -math.inf
        if not math.isfinite(h1):
            h1 = -math.inf
        log_a = min(0.0, h1 - h0)
        divergent = h0 - h1 > DIVERGENCE
        if math.log(np.random.random()) < log_a:
            lp = lp_c
            for j in range(D):
                x[j], g[j], q[j] = xc[j], gc[j], qc[j]
        a_prob = math.exp(log_a)
        if it < W:
            t_da += 1
            w = 1.0 / (t_da + 10.0)
            h_bar = (1.0 - w) * h_bar + w * (target - a_prob)
            log_eps = mu - math.sqrt(t_da) / 0.05 * h_bar
            k = t_da ** (-0.75)
            log_eps_bar = k * log_eps + (1.0 - k) * log_eps_bar
            for start, end, dense in windows:
                if start <= it < end:
                    buf[n_buf] = q
                    n_buf += 1
                if it == end - 1 and n_buf > 10:
                    L_new, ok = _adapt(buf, n_buf, D, dense)
                    n_buf = 0
                    if ok:
                        L = L_new
                        _whiten(L, q, x, D)
                        lp = _density(L, x, q, gq, g, D, f, data, work)
                    mu = math.log(math.exp(log_eps) * 2.0)
                    h_bar, log_eps_bar, t_da = 0.0, 0.0, 0
            if it == W - 1:
                log_eps = log_eps_bar
        else:
            draws[it - W, :D] = q
            acc_sum += a_prob
            div += divergent
    stats[0] = acc_sum / max(T, 1)
    stats[1] = div
    stats[2] = math.exp(log_eps)


@njit(cache=True, nogil=True, error_model="numpy")
def _run(theta0, seeds, fit_of, dims, W, T, steps, target, data):  # type: ignore[no-untyped-def]  # pragma: no cover
    B, Dmax = theta0.shape
    draws = np.zeros((B, T, Dmax))
    stats = np.zeros((B, 3))
    for b in range(B):
        _chain(theta0[b], seeds[b], W, T, steps, target, fit_of[b], dims[b], data, draws[b], stats[b])
    return draws, stats


def sample(
    data: Packed,
    theta: np.ndarray,
    fit_of: np.ndarray,
    dims: np.ndarray,
    seeds: np.ndarray,
    warmup: int,
    draws: int,
    steps: int,
    target: float = 0.65,
) -> Run:
    """Warm up and draw each chain b: fit ``fit_of[b]``, ``dims[b]`` parameters from ``theta[b]``, seed ``seeds[b]``."""
    out, stats = _run(np.ascontiguousarray(theta, float), np.asarray(seeds, np.int64), np.asarray(fit_of, np.int64),
                      np.asarray(dims, np.int64), int(warmup), int(draws), int(steps), float(target), data)  # fmt: skip
    gradients = np.full(len(seeds), (int(warmup) + int(draws)) * int(steps), np.int64)
    return Run(np.moveaxis(out, 1, 0), stats[:, 0], stats[:, 1].astype(int), stats[:, 2], gradients)
