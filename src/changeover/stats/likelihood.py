"""The count-table likelihood of the measurement model and its sufficient gradients.

For every cell (segment, two signal levels, two label states) the likelihood
is sum over the four truth cells c of pi[s, c] * P(signals, labels | c). The
gradient of the log likelihood needs only expected counts: N[s, c] (truth
cells per segment), M[m, z, k] (signal levels per model and truth) and, with
several annotators, a term for the noise.

Two implementations with one contract: a fused numba kernel (one pass over
the cells, no temporaries; ~5x faster than numpy at 500 cells x 36 chains)
and the numpy reference that the tests check it against. ``_log_posterior``
adds the priors and the chain rule to the model's unconstrained parameters in
the same compiled pass; its gradient is checked against finite differences.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

Z0 = np.array([0, 0, 1, 1])  # incumbent truth in cell c = (z0, z1)
Z1 = np.array([0, 1, 0, 1])  # candidate truth
_TINY = 1e-300


@njit(cache=True, nogil=True, error_model="numpy")
def _kernel(pi, phi, noise, noisy, seg, n, a, agree, disagree):  # pragma: no cover - compiled
    B, J = n.shape
    S = pi.shape[1]
    K = phi.shape[3]
    ll = np.zeros(B)
    N = np.zeros((B, S, 4))
    M = np.zeros((B, 2, 2, K))
    g_u = np.zeros(B)
    f = np.empty((2, 2))
    w = np.empty(4)
    for b in range(B):
        e = noise[b]
        if noisy[b]:
            le = math.log(max(e, _TINY))
            l1e = math.log1p(-e)
        for j in range(J):
            nj = n[b, j]
            if nj <= 0:
                continue
            s = seg[b, j]
            for m in range(2):
                k = a[b, m, j]
                for z in range(2):
                    lk = phi[b, m, z, k] if k < K else 1.0
                    ag = agree[b, m, j, z]
                    dis = disagree[b, m, j, z]
                    if noisy[b]:
                        lab = math.exp(ag * l1e + dis * le) if (ag > 0 or dis > 0) else 1.0
                    else:
                        lab = 1.0 if dis == 0 else 0.0
                    f[m, z] = lk * lab
            P = 0.0
            for c in range(4):
                w[c] = pi[b, s, c] * f[0, c // 2] * f[1, c % 2]
                P += w[c]
            if P < _TINY:
                P = _TINY
            ll[b] += nj * math.log(P)
            scale = nj / P
            r00 = w[0] * scale
            r01 = w[1] * scale
            r10 = w[2] * scale
            r11 = w[3] * scale
            N[b, s, 0] += r00
            N[b, s, 1] += r01
            N[b, s, 2] += r10
            N[b, s, 3] += r11
            # expected counts of each model's truth: model 0 from c // 2, model 1 from c % 2
            rz00, rz01 = r00 + r01, r10 + r11
            rz10, rz11 = r00 + r10, r01 + r11
            k0 = a[b, 0, j]
            k1 = a[b, 1, j]
            if k0 < K:
                M[b, 0, 0, k0] += rz00
                M[b, 0, 1, k0] += rz01
            if k1 < K:
                M[b, 1, 0, k1] += rz10
                M[b, 1, 1, k1] += rz11
            if noisy[b]:
                g_u[b] += (
                    rz00 * (disagree[b, 0, j, 0] * (1 - e) - agree[b, 0, j, 0] * e)
                    + rz01 * (disagree[b, 0, j, 1] * (1 - e) - agree[b, 0, j, 1] * e)
                    + rz10 * (disagree[b, 1, j, 0] * (1 - e) - agree[b, 1, j, 0] * e)
                    + rz11 * (disagree[b, 1, j, 1] * (1 - e) - agree[b, 1, j, 1] * e)
                )
    return ll, N, M, g_u


def likelihood(pi, phi, noise, noisy, seg, n, a, agree, disagree):
    """(log likelihood [B], N [B,S,4], M [B,2,2,K], d ll / d logit(noise) [B]) via the kernel."""
    return _kernel(np.ascontiguousarray(pi), np.ascontiguousarray(phi), noise, noisy, seg, n, a, agree, disagree)


def likelihood_numpy(pi, phi, noise, noisy, seg, n, a, agree, disagree):
    """The same as ``likelihood``, in plain numpy: the reference for tests."""
    B, J = n.shape
    S, K = pi.shape[1], phi.shape[3]
    phi_ext = np.concatenate([phi, np.ones(phi.shape[:-1] + (1,))], axis=-1)
    idx = np.broadcast_to(a[:, :, None, :], a.shape[:2] + (2, J))
    lik = np.transpose(np.take_along_axis(phi_ext, idx, axis=-1), (0, 1, 3, 2))  # [B,m,J,z]
    e = noise[:, None, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        noisy_lab = np.exp(
            np.where(agree > 0, agree * np.log1p(-e), 0.0) + np.where(disagree > 0, disagree * np.log(e), 0.0)
        )
    lab = np.where(noisy[:, None, None, None], noisy_lab, (disagree == 0).astype(float))
    f = lik * lab
    q = f[:, 0][..., Z0] * f[:, 1][..., Z1]
    pi_j = np.take_along_axis(pi, seg[..., None], axis=1)  # [B,J,4]
    w = pi_j * q
    P = np.maximum(w.sum(-1), _TINY)
    live = n > 0
    ll = np.where(live, n * np.log(P), 0.0).sum(-1)
    R = np.where(live[..., None], (n / P)[..., None] * w, 0.0)
    N = np.zeros((B, S, 4))
    for b in range(B):
        np.add.at(N[b], seg[b], R[b])
    Rz = np.stack(
        [
            np.stack([R[..., 0] + R[..., 1], R[..., 2] + R[..., 3]], -1),
            np.stack([R[..., 0] + R[..., 2], R[..., 1] + R[..., 3]], -1),
        ],
        axis=1,
    )  # [B,m,J,z]
    onehot = np.zeros((B, 2, J, K + 1))
    np.put_along_axis(onehot, a[..., None], 1.0, axis=-1)
    M = (np.swapaxes(Rz, 2, 3) @ onehot)[..., :K]
    g_u = np.where(noisy, (Rz * (disagree * (1 - e) - agree * e)).sum(axis=(1, 2, 3)), 0.0)
    return ll, N, M, g_u


@njit(cache=True, nogil=True, error_model="numpy")
def _log_posterior(
    theta,
    S,
    K,
    kvalid,
    loc,
    noisy,
    seg,
    n,
    a,
    agree,
    disagree,
    seg_spread,
    judge_spread,
    pi_sd,
    phi_sd,
    noise_a,
    noise_b,
):  # pragma: no cover - compiled
    """Log posterior and gradient for every batch element, theta [B, P] (layout: see model._Posterior)."""
    B, P = theta.shape
    o_raw = 4
    o_phi0 = o_raw + S * 4
    o_rphi = o_phi0 + 2 * K
    o_u = o_rphi + 4 * K
    pi = np.empty((B, S, 4))
    phi = np.zeros((B, 2, 2, K))
    noise = np.zeros(B)
    for b in range(B):
        for s in range(S):
            mx = -1e300
            for c in range(4):
                v = theta[b, c] + seg_spread * theta[b, o_raw + s * 4 + c]
                pi[b, s, c] = v
                mx = max(mx, v)
            tot = 0.0
            for c in range(4):
                pi[b, s, c] = math.exp(pi[b, s, c] - mx)
                tot += pi[b, s, c]
            for c in range(4):
                pi[b, s, c] /= tot
        kv = kvalid[b]
        for m in range(2):
            for z in range(2):
                mx = -1e300
                for k in range(kv):
                    v = theta[b, o_phi0 + z * K + k] + judge_spread * theta[b, o_rphi + (m * 2 + z) * K + k]
                    phi[b, m, z, k] = v
                    mx = max(mx, v)
                tot = 0.0
                for k in range(kv):
                    phi[b, m, z, k] = math.exp(phi[b, m, z, k] - mx)
                    tot += phi[b, m, z, k]
                for k in range(kv):
                    phi[b, m, z, k] /= tot
        if noisy[b]:
            u = min(max(theta[b, o_u], -50.0), 50.0)
            noise[b] = 1.0 / (1.0 + math.exp(-u))
    ll, N, M, g_ll_u = _kernel(pi, phi, noise, noisy, seg, n, a, agree, disagree)
    lp = np.zeros(B)
    grad = np.zeros((B, P))
    for b in range(B):
        acc = ll[b]
        g_m = np.zeros(4)
        for s in range(S):
            ns = N[b, s, 0] + N[b, s, 1] + N[b, s, 2] + N[b, s, 3]
            for c in range(4):
                g = N[b, s, c] - pi[b, s, c] * ns
                g_m[c] += g
                r = theta[b, o_raw + s * 4 + c]
                grad[b, o_raw + s * 4 + c] = seg_spread * g - r
                acc -= 0.5 * r * r
        for c in range(4):
            mc = theta[b, c]
            grad[b, c] = g_m[c] - mc / pi_sd**2
            acc -= 0.5 * mc * mc / pi_sd**2
        kv = kvalid[b]
        for z in range(2):
            for k in range(K):
                p0 = theta[b, o_phi0 + z * K + k]
                if k < kv:
                    g0 = 0.0
                    for m in range(2):
                        mz = M[b, m, z, 0:kv].sum()
                        g = M[b, m, z, k] - phi[b, m, z, k] * mz
                        g0 += g
                        r = theta[b, o_rphi + (m * 2 + z) * K + k]
                        grad[b, o_rphi + (m * 2 + z) * K + k] = judge_spread * g - r
                        acc -= 0.5 * r * r
                    dev = p0 - loc[b, z, k]
                    grad[b, o_phi0 + z * K + k] = g0 - dev / phi_sd**2
                    acc -= 0.5 * dev * dev / phi_sd**2
                else:  # padded level: its parameters are independent N(0, 1)
                    grad[b, o_phi0 + z * K + k] = -p0
                    acc -= 0.5 * p0 * p0
                    for m in range(2):
                        r = theta[b, o_rphi + (m * 2 + z) * K + k]
                        grad[b, o_rphi + (m * 2 + z) * K + k] = -r
                        acc -= 0.5 * r * r
        u = theta[b, o_u]
        if noisy[b]:
            e = noise[b]
            acc += noise_a * math.log(max(e, _TINY)) + noise_b * math.log(max(1.0 - e, _TINY))
            grad[b, o_u] = g_ll_u[b] + noise_a * (1.0 - e) - noise_b * e
        else:
            acc -= 0.5 * u * u
            grad[b, o_u] = -u
        lp[b] = acc
    return lp, grad
