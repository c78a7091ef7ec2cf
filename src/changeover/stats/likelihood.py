"""The labelled cells' likelihood of the measurement model and its gradient, as a compiled kernel.

Only labelled cells enter: the unlabelled items inform P(signal cell |
segment) alone, whose posterior is a Dirichlet drawn exactly (``stats.model``).
For a labelled cell j (row e = segment x signal cell) the likelihood is

    sum_c softmax(eta[e])_c * P(labels of j | c)

where eta[e, c] (c = 1..3; eta[e, 0] = 0) is a sum of effective parameters
``w`` listed in CSR form (``stats.design``). The gradient with respect to ``w``
is n_j (r_c - p_c) added to each listed index (r = the truth cell's posterior
given the labels, p = its prior), and with several annotators per response a
term for the logit of each annotator's noise: P(labels of j | c) is the
product over annotators a of (1 - e_a)^agree * e_a^disagree (an exact
annotator, a settled answer, has e_a = 0). ``eta_rows`` gives softmax(eta) for
every row, for the derived quantities. Both are batched over a leading axis.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_TINY = 1e-300


@njit(cache=True, nogil=True, error_model="numpy")
def _loglik(w, ptr, idx, allowed, row, n, agree, disagree, noise, noisy):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled (numba types it)
    """(ll [B], d ll / d w [B, P], d ll / d logit(noise) [B, A]) for w [B, P] and per-b padded cell arrays.

    agree / disagree: [B, J, 2 (model), 2 (z), A]; noise: [B, A]; noisy: [B].
    """
    B, P = w.shape
    J = n.shape[1]
    A = noise.shape[1]
    ll = np.zeros(B)
    g_w = np.zeros((B, P))
    g_u = np.zeros((B, A))
    eta = np.empty(4)
    lab = np.empty(4)
    le = np.zeros(A)
    l1e = np.zeros(A)
    zc0 = (0, 0, 1, 1)
    zc1 = (0, 1, 0, 1)
    for b in range(B):
        if noisy[b]:
            for a in range(A):
                le[a] = math.log(max(noise[b, a], _TINY))
                l1e[a] = math.log1p(-noise[b, a])
        for j in range(J):
            nj = n[b, j]
            if nj <= 0:
                continue
            r = row[b, j]
            mx = -1e300
            for c in range(4):
                if not allowed[b, r, c]:
                    eta[c] = -1e300
                    continue
                v = 0.0
                if c > 0:
                    k = r * 3 + c - 1
                    for q in range(ptr[b, k], ptr[b, k + 1]):
                        v += w[b, idx[b, q]]
                eta[c] = v
                mx = max(mx, v)
            tot = 0.0
            for c in range(4):
                if allowed[b, r, c]:
                    eta[c] = math.exp(eta[c] - mx)
                    tot += eta[c]
                else:
                    eta[c] = 0.0
            P_j = 0.0
            for c in range(4):
                eta[c] /= tot
                lk = 1.0
                for m in range(2):
                    z = zc0[c] if m == 0 else zc1[c]
                    if noisy[b]:
                        s = 0.0
                        for a in range(A):
                            ag = agree[b, j, m, z, a]
                            dis = disagree[b, j, m, z, a]
                            if ag > 0 or dis > 0:
                                s += ag * l1e[a] + dis * le[a]
                        lk *= math.exp(s)
                    else:
                        for a in range(A):
                            if disagree[b, j, m, z, a] > 0:
                                lk = 0.0
                lab[c] = lk
                P_j += eta[c] * lk
            if P_j < _TINY:
                P_j = _TINY
            ll[b] += nj * math.log(P_j)
            for c in range(4):
                rc = eta[c] * lab[c] / P_j
                if c > 0:
                    gc = nj * (rc - eta[c])
                    k = r * 3 + c - 1
                    for q in range(ptr[b, k], ptr[b, k + 1]):
                        g_w[b, idx[b, q]] += gc
                if noisy[b] and rc > 0.0:
                    for m in range(2):
                        z = zc0[c] if m == 0 else zc1[c]
                        for a in range(A):
                            ag = agree[b, j, m, z, a]
                            dis = disagree[b, j, m, z, a]
                            if ag > 0 or dis > 0:
                                g_u[b, a] += nj * rc * (dis * (1 - noise[b, a]) - ag * noise[b, a])
    return ll, g_w, g_u


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


def loglik(
    w: np.ndarray,
    ptr: np.ndarray,
    idx: np.ndarray,
    allowed: np.ndarray,
    row: np.ndarray,
    n: np.ndarray,
    agree: np.ndarray,
    disagree: np.ndarray,
    noise: np.ndarray,
    noisy: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched log likelihood of the labelled cells and its gradients (see ``_loglik``)."""
    return _loglik(np.ascontiguousarray(w), ptr, idx, allowed, row, n, agree, disagree, noise, noisy)


def eta_rows(w: np.ndarray, ptr: np.ndarray, idx: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """P(truth cell | row) for every draw, [N, E, 4]."""
    return _eta_rows(np.ascontiguousarray(w), ptr, idx, allowed)
