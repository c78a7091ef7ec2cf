"""Batched static Hamiltonian Monte Carlo with a dense, adapted metric (the sampler of ``stats.model``).

Every batch element (one comparison x one chain) runs its own chain with its
own step size and metric, but the log density and its gradient are evaluated
for the whole batch at once, so numpy's overhead per leapfrog step is paid once
for all candidates x dimensions x chains.

Static HMC with a jittered step size (0.8-1.2x), tuned by dual averaging
toward 65% acceptance. Warm-up: step size only, then a diagonal metric from
15-40% of warm-up, a dense one from 40-80%, the step size re-tuned after each
(Stan's windows, shortened). A transition whose energy error exceeds 1000 is
counted as divergent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LogDensity = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class Metric:
    """The HMC metric per batch element: inverse mass = an estimate of the posterior covariance."""

    def __init__(self, B: int, P: int):
        self.inv = np.broadcast_to(np.eye(P), (B, P, P)).copy()
        self.chol = self.inv.copy()  # Cholesky factor of the mass matrix (for momenta)

    def momentum(self, rng: np.random.Generator) -> np.ndarray:
        B, P, _ = self.inv.shape
        return (self.chol @ rng.standard_normal((B, P, 1)))[..., 0]

    def velocity(self, p: np.ndarray) -> np.ndarray:
        return (self.inv @ p[..., None])[..., 0]

    def kinetic(self, p: np.ndarray) -> np.ndarray:
        return 0.5 * (p * self.velocity(p)).sum(-1)

    def adapt(self, samples: np.ndarray, dense: bool) -> None:
        """Set the metric from warm-up samples [n, B, P] (regularised as Stan does, plus shrinkage)."""
        n, B, P = samples.shape
        x = samples - samples.mean(axis=0)
        if dense:
            cov = np.einsum("nbi,nbj->bij", x, x) / max(n - 1, 1)
            lam = P / (n + P)
            diag = np.einsum("bii->bi", cov)
            cov = (1 - lam) * cov + lam * diag[..., None] * np.eye(P)
        else:
            cov = np.eye(P) * x.var(axis=0)[:, None, :]
        cov = (n / (n + 5.0)) * cov + 1e-3 * (5.0 / (n + 5.0)) * np.eye(P)
        self.inv = cov
        self.chol = np.linalg.cholesky(np.linalg.inv(cov))


@dataclass
class Run:
    """Post-warm-up draws [draws, B, P], mean acceptance and divergent transitions per batch element."""

    draws: np.ndarray
    accept: np.ndarray
    divergences: np.ndarray


def sample(
    logp: LogDensity,
    theta: np.ndarray,
    rng: np.random.Generator,
    warmup: int,
    draws: int,
    steps: int,
    target: float = 0.65,
) -> Run:
    """Warm up (step size and metric) and draw; ``target`` is the acceptance rate dual averaging aims at."""
    B, P = theta.shape
    lp, grad = logp(theta)
    with np.errstate(over="ignore", invalid="ignore"):
        return _run(logp, theta, lp, grad, Metric(B, P), rng, warmup, draws, steps, target)


def _run(
    logp: LogDensity,
    theta: np.ndarray,
    lp: np.ndarray,
    grad: np.ndarray,
    metric: Metric,
    rng: np.random.Generator,
    W: int,
    T: int,
    L: int,
    target: float,
) -> Run:
    B, P = theta.shape
    log_eps = np.full(B, np.log(0.1))
    mu_da, t0, gamma, k_da = np.log(1.0), 10, 0.05, 0.75
    h_bar, log_eps_bar = np.zeros(B), np.zeros(B)
    da_iter = 0
    window: list[np.ndarray] = []
    windows = [(int(W * 0.15), int(W * 0.4), False), (int(W * 0.4), int(W * 0.8), True)]
    out = np.empty((T, B, P))
    accepts, divergences = np.zeros(B), np.zeros(B, int)
    for it in range(W + T):
        eps = np.exp(log_eps) * rng.uniform(0.8, 1.2, B)
        p0 = metric.momentum(rng)
        th, g, p = theta.copy(), grad.copy(), p0 + 0.5 * eps[:, None] * grad
        bad = np.zeros(B, bool)
        new_lp = lp
        for step in range(L):
            th = th + eps[:, None] * metric.velocity(p)
            new_lp, g = logp(th)
            bad |= ~np.isfinite(new_lp)
            g = np.where(np.isfinite(g), g, 0.0)
            if step < L - 1:
                p = p + eps[:, None] * g
        p = p + 0.5 * eps[:, None] * g
        h0 = lp - metric.kinetic(p0)
        h1 = new_lp - metric.kinetic(p)
        log_a = np.where(bad | ~np.isfinite(h1), -np.inf, np.minimum(0.0, h1 - h0))
        divergent = bad | (h0 - h1 > 1000)
        acc = np.log(rng.random(B)) < log_a
        theta = np.where(acc[:, None], th, theta)
        lp = np.where(acc, new_lp, lp)
        grad = np.where(acc[:, None], g, grad)
        a_prob = np.exp(log_a)
        if it < W:
            da_iter += 1
            w = 1.0 / (da_iter + t0)
            h_bar = (1 - w) * h_bar + w * (target - a_prob)
            log_eps = mu_da - np.sqrt(da_iter) / gamma * h_bar
            eta = da_iter ** (-k_da)
            log_eps_bar = eta * log_eps + (1 - eta) * log_eps_bar
            for start, end, dense in windows:
                if start <= it < end:
                    window.append(theta.copy())
                if it == end - 1 and len(window) > 10:
                    metric.adapt(np.stack(window), dense)
                    window = []
                    mu_da = np.log(np.exp(log_eps) * 2.0)
                    h_bar, log_eps_bar, da_iter = np.zeros(B), np.zeros(B), 0
            if it == W - 1:
                log_eps = log_eps_bar
        else:
            accepts += a_prob
            divergences += divergent
            out[it - W] = theta
    return Run(out, accepts / max(T, 1), divergences)
