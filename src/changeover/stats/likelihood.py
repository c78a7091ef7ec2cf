"""The log posterior of the measurement model (labelled cells' likelihood, transforms, priors) as compiled kernels.

Only labelled cells enter: the unlabelled items inform P(signal cell |
segment) alone, whose posterior is a Dirichlet drawn exactly (``stats.model``).
For a labelled cell j (row e = segment x signal cell) the likelihood is

    sum_c softmax(eta[e])_c * P(labels of j | c)

where eta[e, c] (c = 1..3; eta[e, 0] = 0) is a sum of effective parameters
``w`` listed in CSR form (``stats.design``). The labelled cells are grouped by
row: softmax(eta[e]) is computed once per row (a row has about four labelled
cells, one per label outcome), and the gradient with respect to ``w``,
sum_j n_j (r_jc - p_c) (r = the truth cell's posterior given the labels, p =
its prior), is scattered once per row. With several annotators per response
P(labels of j | c) is the product over annotators a of (1 - e_a)^agree *
e_a^disagree (an exact annotator, a settled answer, has e_a = 0), and the
gradient has a term for the logit of each annotator's noise.

``log_posterior`` is the whole density the sampler (``stats.hmc``) sees, for
one parameter vector of one fit: theta = raw parameters [P] | log tau [N_TAU] |
logit noise [A]; w = theta scaled by its group's tau (non-centred) or theta
itself with the prior sd scaled (centred); the priors of ``stats.design`` and
Beta(NOISE_A, NOISE_B) on each annotator's noise. The fits of one call are
packed into padded arrays (``pack``, a tuple the kernels index by fit), so one
compiled sampler runs every fit and chain without returning to Python.
``eta_rows`` gives softmax(eta) for every row, for the derived quantities.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from changeover.stats.design import N_TAU, TAU_MEDIAN, Design, label_likelihood

_TINY = 1e-300
FAST = {"reassoc", "contract"}  # lets sums vectorise; no assumption about inf / nan
NOISE_A, NOISE_B = 1.0, 9.0  # Beta prior of the annotator noise (with several annotators per response)

Packed = tuple[Any, ...]  # the arrays of ``pack``, in its order


def pack(designs: list[Design]) -> Packed:
    """The fits' constants as padded arrays [F, ...], in the order ``log_posterior`` unpacks them."""
    F = len(designs)
    P0 = max(d.P for d in designs)
    A = max(d.A for d in designs)
    E = max(d.E for d in designs)
    nnz = max(1, max(d.idx.size for d in designs))
    J = max(1, max(int(d.labelled.sum()) for d in designs))
    dims = np.zeros((F, 3), np.int64)  # P, A, labelled rows
    loc, sd, group = np.zeros((F, P0)), np.ones((F, P0)), np.zeros((F, P0), np.int64)
    centered = np.zeros((F, P0), np.bool_)
    ptr = np.zeros((F, 3 * E + 1), np.int64)
    idx = np.zeros((F, nnz), np.int64)
    allowed = np.ones((F, E, 4), np.bool_)
    rows = np.zeros((F, J), np.int64)  # labelled rows
    cptr = np.zeros((F, J + 1), np.int64)  # their cells
    n = np.zeros((F, J))
    lab0 = np.zeros((F, J, 4))  # P(labels | c) without noise
    agree, disagree = np.zeros((F, J, 2, 2, A)), np.zeros((F, J, 2, 2, A))
    noisy = np.zeros(F, np.bool_)
    active = np.zeros((F, A), np.bool_)  # annotators with a noise rate of their own
    tau_log_sd = np.ones((F, N_TAU))
    onehot = np.zeros((F, J, 4))  # per labelled row: items whose labels name one truth cell (no noise)
    for f, d in enumerate(designs):
        lab = np.flatnonzero(d.labelled)
        lab = lab[np.argsort(d.row_of_cell[lab], kind="stable")]
        urows, row_at = np.unique(d.row_of_cell[lab], return_inverse=True)
        dims[f] = d.P, d.A, urows.size
        loc[f, : d.P], sd[f, : d.P], group[f, : d.P] = d.loc, d.sd, d.group
        centered[f, : d.P] = d.centered
        ptr[f, : d.ptr.size] = d.ptr
        ptr[f, d.ptr.size :] = d.ptr[-1]
        idx[f, : d.idx.size] = d.idx
        allowed[f, : d.E] = d.allowed
        rows[f, : urows.size] = urows
        keep = np.ones(lab.size, bool)
        if not d.noisy:
            l0 = label_likelihood(d, np.zeros((1, d.A)))[0][lab]  # [cells, 4] of 0 / 1
            one = (l0.sum(1) == 1) & (l0 * d.allowed[d.row_of_cell[lab]]).any(1)
            np.add.at(onehot[f], row_at[one], l0[one] * d.n[lab[one], None])
            keep = ~one
            lab0[f, : keep.sum()] = l0[keep]
        cells = lab[keep]
        cptr[f, : urows.size + 1] = np.searchsorted(row_at[keep], np.arange(urows.size + 1))
        cptr[f, urows.size + 1 :] = cells.size
        n[f, : cells.size] = d.n[cells]
        agree[f, : cells.size, ..., : d.A], disagree[f, : cells.size, ..., : d.A] = d.agree[cells], d.disagree[cells]
        noisy[f] = d.noisy
        active[f, : d.A] = d.noisy & ~d.exact
        tau_log_sd[f] = d.tau_log_sd
    log_median = np.log(np.asarray(TAU_MEDIAN, float))
    return (dims, loc, sd, group, centered, ptr, idx, allowed, rows, cptr, n, lab0, agree, disagree, noisy, active,
            tau_log_sd, log_median, onehot)  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _loglik(w, noise, f, data, g_w, g_u):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled (numba types it)
    """ll of fit f's labelled cells for w [P], noise [A]; writes d ll / d w into g_w, d ll / d logit(noise) into g_u."""
    dims, _, _, _, _, ptr, idx, allowed, rows, cptr, n, lab0, agree, disagree, noisy, _, _, _, onehot = data
    P, A, R = dims[f, 0], dims[f, 1], dims[f, 2]
    for i in range(P):
        g_w[i] = 0.0
    for a in range(A):
        g_u[a] = 0.0
    p = np.empty(4)
    eta = np.empty(4)
    lab = np.empty(4)
    rs = np.empty(4)
    le = np.empty(A)
    l1e = np.empty(A)
    nz = noisy[f]
    if nz:
        for a in range(A):
            le[a] = math.log(max(noise[a], _TINY))
            l1e[a] = math.log1p(-noise[a])
    ll = 0.0
    for i in range(R):
        r = rows[f, i]
        mx = 0.0 if allowed[f, r, 0] else -1e300
        for c in range(4):
            v = 0.0
            if c > 0:
                k = r * 3 + c - 1
                for q in range(ptr[f, k], ptr[f, k + 1]):
                    v += w[idx[f, q]]
                if allowed[f, r, c]:
                    mx = max(mx, v)
            eta[c] = v
        if mx < 30.0 and allowed[f, r, 0]:
            mx = 0.0  # no overflow: p_0 = exp(0) needs no exp
        tot = 0.0
        for c in range(4):
            if allowed[f, r, c]:
                p[c] = 1.0 if c == 0 and mx == 0.0 else math.exp(eta[c] - mx)
                tot += p[c]
            else:
                p[c] = 0.0
        inv = 1.0 / tot
        log_tot = math.log(tot)
        ns = 0.0
        for c in range(4):
            p[c] *= inv
            o = onehot[f, i, c]
            rs[c] = o
            ns += o
            if o > 0.0:
                ll += o * (eta[c] - mx - log_tot)  # log p_c
        for j in range(cptr[f, i], cptr[f, i + 1]):
            nj = n[f, j]
            if nz:
                for c in range(4):
                    s = 0.0
                    for m in range(2):
                        z = c // 2 if m == 0 else c % 2
                        for a in range(A):
                            ag = agree[f, j, m, z, a]
                            dis = disagree[f, j, m, z, a]
                            if ag > 0 or dis > 0:
                                s += ag * l1e[a] + dis * le[a]
                    lab[c] = math.exp(s)
            else:
                for c in range(4):
                    lab[c] = lab0[f, j, c]
            P_j = 0.0
            for c in range(4):
                P_j += p[c] * lab[c]
            if P_j < _TINY:
                P_j = _TINY
            ll += nj * math.log(P_j)
            ns += nj
            inv = nj / P_j
            for c in range(4):
                rs[c] += inv * p[c] * lab[c]
            if nz:
                for c in range(4):
                    rc = p[c] * lab[c] * inv  # n_j P(c | labels of j)
                    if rc <= 0.0:
                        continue
                    for m in range(2):
                        z = c // 2 if m == 0 else c % 2
                        for a in range(A):
                            ag = agree[f, j, m, z, a]
                            dis = disagree[f, j, m, z, a]
                            if ag > 0 or dis > 0:
                                g_u[a] += rc * (dis * (1 - noise[a]) - ag * noise[a])
        for c in range(1, 4):
            gc = rs[c] - ns * p[c]
            k = r * 3 + c - 1
            for q in range(ptr[f, k], ptr[f, k + 1]):
                g_w[idx[f, q]] += gc
    return ll


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def _effective(theta, f, data, w, noise, tau, mult, prior_tau):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Fill w [P], noise [A], tau [N_TAU], and per parameter its multiplier and its prior's tau, from theta."""
    dims, _, _, group, centered, _, _, _, _, _, _, _, _, _, _, active, _, _, _ = data
    P, A = dims[f, 0], dims[f, 1]
    for k in range(tau.size):
        tau[k] = math.exp(min(max(theta[P + k], -30.0), 5.0))
    for i in range(P):
        g = group[f, i]
        per = 1.0 if g == 0 else tau[g - 1]
        if centered[f, i]:
            mult[i], prior_tau[i] = 1.0, per
        else:
            mult[i], prior_tau[i] = per, 1.0
        w[i] = theta[i] * mult[i]
    for a in range(A):
        u = min(max(theta[P + tau.size + a], -50.0), 50.0)
        noise[a] = 1.0 / (1.0 + math.exp(-u)) if active[f, a] else 0.0


@njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST)
def log_posterior(theta, grad, f, data, work):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Log posterior of fit f at theta [P + N_TAU + A] (unconstrained); writes its gradient into grad.

    ``work``: scratch of at least 4 P + 2 A + 2 N_TAU floats.
    """
    dims, loc, sd, group, centered, _, _, _, _, _, _, _, _, _, _, active, tau_log_sd, log_median, _ = data
    P, A = dims[f, 0], dims[f, 1]
    NT = log_median.size
    w, g_w = work[:P], work[P : 2 * P]
    mult, prior_tau = work[2 * P : 3 * P], work[3 * P : 4 * P]
    noise, g_u = work[4 * P : 4 * P + A], work[4 * P + A : 4 * P + 2 * A]
    tau, g_tau = work[4 * P + 2 * A : 4 * P + 2 * A + NT], work[4 * P + 2 * A + NT : 4 * P + 2 * A + 2 * NT]
    _effective(theta, f, data, w, noise, tau, mult, prior_tau)
    lp = _loglik(w, noise, f, data, g_w, g_u)
    for k in range(NT):
        z = (theta[P + k] - log_median[k]) / tau_log_sd[f, k]
        lp -= 0.5 * z * z
        g_tau[k] = -z / tau_log_sd[f, k]
    for i in range(P):
        s = sd[f, i] * prior_tau[i]
        dev = (theta[i] - loc[f, i]) / s
        lp -= 0.5 * dev * dev
        grad[i] = g_w[i] * mult[i] - dev / s
        g = group[f, i]
        if g > 0:
            if centered[f, i]:
                g_tau[g - 1] += dev * dev - 1.0
                lp -= min(max(theta[P + g - 1], -30.0), 5.0)  # log of the prior's tau
            else:
                g_tau[g - 1] += g_w[i] * w[i]
    for k in range(NT):
        grad[P + k] = g_tau[k]
    for a in range(A):
        u = theta[P + NT + a]
        if active[f, a]:
            e = noise[a]
            lp += NOISE_A * math.log(max(e, _TINY)) + NOISE_B * math.log1p(-e)
            grad[P + NT + a] = g_u[a] + NOISE_A * (1.0 - e) - NOISE_B * e
        else:
            lp -= 0.5 * u * u
            grad[P + NT + a] = -u
    return lp


@njit(cache=True, nogil=True, error_model="numpy")
def _batch(theta, fit_of, data):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled (numba types it)
    B, D = theta.shape
    lp = np.empty(B)
    grad = np.zeros((B, D))
    work = np.empty(4 * data[1].shape[1] + 2 * data[15].shape[1] + 2 * data[17].size)
    for b in range(B):
        lp[b] = log_posterior(theta[b], grad[b], fit_of[b], data, work)
    return lp, grad


@njit(cache=True, nogil=True, error_model="numpy")
def _batch_loglik(w, noise, fit_of, data):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    B = w.shape[0]
    ll = np.empty(B)
    g_w, g_u = np.empty(w.shape[1]), np.empty(noise.shape[1])
    for b in range(B):
        ll[b] = _loglik(w[b], noise[b], fit_of[b], data, g_w, g_u)
    return ll


def log_posterior_batch(theta: np.ndarray, fit_of: np.ndarray, data: Packed) -> tuple[np.ndarray, np.ndarray]:
    """``log_posterior`` for a batch of parameter vectors [B, D] (padded), fit ``fit_of[b]`` each: (lp, grad)."""
    return _batch(np.ascontiguousarray(theta, float), np.asarray(fit_of, np.int64), data)


def loglik(w: np.ndarray, noise: np.ndarray, fit_of: np.ndarray, data: Packed) -> np.ndarray:
    """The labelled cells' log likelihood for effective parameters w [B, P] and noise [B, A] (padded)."""
    return _batch_loglik(np.ascontiguousarray(w, float), np.ascontiguousarray(noise, float),
                         np.asarray(fit_of, np.int64), data)  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy")
def _eta_rows(w, ptr, idx, allowed):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled (numba types it)
    """softmax(eta) for every row of one design and every draw: w [N, P] -> [N, E, 4]."""
    N = w.shape[0]
    E = allowed.shape[0]
    out = np.zeros((N, E, 4))
    eta = np.empty(4)
    for t in range(N):
        for r in range(E):
            mx = -1e300
            for c in range(4):
                if not allowed[r, c]:
                    continue
                v = 0.0
                if c > 0:
                    k = r * 3 + c - 1
                    for q in range(ptr[k], ptr[k + 1]):
                        v += w[t, idx[q]]
                eta[c] = v
                mx = max(mx, v)
            tot = 0.0
            for c in range(4):
                if allowed[r, c]:
                    out[t, r, c] = math.exp(eta[c] - mx)
                    tot += out[t, r, c]
            for c in range(4):
                out[t, r, c] /= tot
    return out


def eta_rows(w: np.ndarray, ptr: np.ndarray, idx: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """P(truth cell | row) for every draw, [N, E, 4]."""
    return _eta_rows(np.ascontiguousarray(w), ptr, idx, allowed)
