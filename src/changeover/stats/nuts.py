"""NUTS by nutpie on the compiled log posterior of ``stats.likelihood`` (``stats.model``'s sampler where it holds).

nutpie (PyMC's Rust NUTS: multinomial trajectories, Stan's U-turn checks, a
diagonal mass matrix adapted from the draws' and the gradients' variances
while the chain warms up) calls ``log_posterior`` through a C callback
compiled by numba, so no Python runs per gradient: the callback reads the fit
index and the packed arrays' addresses and shapes from a word array
(``user_data``) and calls the same compiled density the static HMC of
``stats.hmc`` uses. Each chain is its own nutpie run, from its own seed and
starting point, so a chain's draws depend on (seed, the fit's design, chain)
alone, as ``stats.model`` promises.

Whitening. Before sampling, each fit's mode is found (L-BFGS) and its
curvature taken there (central differences of the gradient): the Laplace
approximation N(m, L L'). Where it holds, the chains run in x with theta = m +
L x (a linear map: its Jacobian is a constant and drops out), so nutpie's
diagonal mass matrix sees a near-standard normal; the check is the spread
(a robust sd: 1.4826 x the median absolute deviation) of log posterior /
approximation over 128 of its draws (``Frame.spread``), at most ``MAX_SPREAD``.
The mode search starts at the fit's prior centre and the check's draws come
from the design's own stream, so whether a fit whitens (and is stiff, below) depends on its table
alone (not on the seed, nor on the other fits of the call). Where it does not hold, the chains run in theta
(until 2026-12-02 the default sampler "auto" gave such a fit to the static HMC instead; ``stats.model``
says why no longer).

Measured (2026-12-01, idle 2-core machine, CPU seconds; 3 candidates x 3
dimensions x 6 segments as benchmarks/bench_assess.py ``fit`` builds them;
benchmarks/README.md "2. Fit time" has the table):
- the static HMC (500 warm-up + 500 draws x 16 steps, target 0.95): 4.3-4.6 s,
  576,000 gradients.
- nutpie in theta, 200 + 250, target 0.8: 2.4-2.7 s, R-hat <= 1.008, bulk /
  tail ESS >= 697 / 496, no divergence; 420-530k gradients (a binary fit took
  20-47 leapfrog steps per draw: correlations a diagonal metric cannot take
  out). Its low-rank mass matrix halved the binary fits' gradients but cost
  2.5x per gradient; 150 warm-up or 200 draws left R-hat at 1.011-1.013.
- nutpie whitened, 150 + 300, target 0.8 (the default): 1.56-1.69 s over 10^3
  to 10^6 items per segment and 3 seeds, R-hat <= 1.008, bulk / tail ESS >=
  820 / 508, no divergence; 150-170k gradients. A gradient costs 3.3 us (D =
  64) / 11.4 us (D = 169) in theta, ~2.5 us more whitened at D = 169; the
  Laplace step ~0.15 s for the 9 fits. Targets 0.85 / 0.9 cost 1.84-2.09 /
  2.12-2.37 s; 100 or 200 warm-up left a divergence in 1-2 of 12 calls.
- The check (robust sd): the 3x3x6 fits' spread is 1.1-3.9; the six
  standard scenarios' (3 segments x 800 items, 60 labels per segment, a
  non-centred spread whose ridge with the deviations curves away from the
  mode) 9.1-19.2 or a mode search that did not converge; XSTest with safe /
  unsafe segments 12.9-27.6. Whitened regardless, the standard scenarios
  diverged 9-115 times per fit; in theta, 0-3. The plain sd had separated them
  too (1.2-6.2 against 83-370) but moved from 6 to 13 on one 3x3x6 fit between
  two mode searches.
- Not every fit that passes diverges never: at 10^6 items per segment with
  0.5% labelled (60,000 labels per table, bench_calibration 4a) the fits pass
  the check (1.6-4.2) and whitened NUTS left 0-26 divergences in each of the
  six binary fits at target acceptance 0.8, 0-13 at 0.9 and none at 0.95
  (that table; over six more, below, 6 of 24 fits at 0.95).
  There the log posterior falls below the approximation roughly as t^4 along
  the frame's axes (the columns of chol): its tails are steeper than the
  curvature at the mode says, and a step size adapted in the bulk overshoots
  them. ``Frame.stiffness`` probes each axis both ways at ``PROBE_SD`` = 3 sd
  (2D densities; the mode's own is the search's) and takes the largest fall below the approximation's
  (2026-12-03, two table draws per size, seeds 2 / 3): 10.8-37.9 nats for those
  binary fits; 8.3-9.6 for every whitened five-level fit (never divergent);
  2.8-9.7 for the binary fits at 10^3-10^6 items with ~200 labels per segment
  (benchmarks/bench_assess.py ``fit``, never divergent) and at 10^5 with 0.5%.
  A whitened fit above ``STIFF_FALL`` = 10 (``Frame.stiff``) starts at target
  acceptance ``STIFF_TARGET`` = 0.975 (``first_target``). Six stiff binary
  fits at 10^6 items (14.8-37.2 nats) x seeds 1-4: divergences in 6 of the 24
  at 0.95, 1 at 0.975, none at 0.99, for 0.21-0.31 / 0.29-0.40 / 0.39-0.48 s
  of CPU per fit; 0.975 is the cheaper bet once the retry a divergence costs
  counts (the policy's retry of such a fit runs at 0.9875). Below it
  divergences are rarer but not absent (3 x 10^5 items, 0.5% labelled, one
  table: 1-69 in 3 of its 4 unflagged binary fits, 5.9-9.0 nats, in both
  seeds); the policy's retry at 0.95 takes those.
- A fit that diverges anyway is sampled again by NUTS at 0.95 (a stiff one at
  0.9875), then by the static HMC (``assessment.sampling.after_divergences``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from changeover.stats.hmc import Run
from changeover.stats.hmc import _to_theta as to_theta  # q = L x
from changeover.stats.hmc import _to_x_grad as to_x_grad  # g_x = L' g_q
from changeover.stats.likelihood import Packed, log_posterior, log_posterior_batch

# rank and dtype of each array of ``stats.likelihood.pack``, in its order
_LAYOUT = (
    (2, np.int64), (2, np.float64), (2, np.float64), (2, np.int64), (2, np.bool_), (2, np.int64), (2, np.int64),
    (3, np.bool_), (2, np.int64), (2, np.int64), (2, np.float64), (3, np.float64), (5, np.float64),
    (5, np.float64), (1, np.bool_), (2, np.bool_), (2, np.float64), (1, np.float64), (3, np.float64),
)  # fmt: skip
# fit, scratch size, per array its address and shape, then the whitening's mean and Cholesky factor
_WORDS = 2 + sum(rank + 1 for rank, _ in _LAYOUT) + 2
CHECK_DRAWS = 128  # draws of the Laplace approximation that check it (``Frame.spread``)
MAX_SPREAD = 6.0  # the largest (robust) sd of the log importance ratio at which a fit is sampled whitened
CURVATURE_FLOOR = 1e-2  # the smallest eigenvalue of the negative Hessian the whitening takes (a sd of 10)
PROBE_SD = 3.0  # how far out along each axis of the frame ``Frame.stiffness`` probes the log posterior
STIFF_FALL = 10.0  # the stiffness (nats) above which a whitened fit starts at ``STIFF_TARGET``
STIFF_TARGET = 0.975  # the first target acceptance of a stiff fit (``first_target``)


@intrinsic
def _pointer(typingctx, address):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """The int64 ``address`` as a void pointer."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@njit(cache=True)
def _arrays(u):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled (numba types it)
    """The packed arrays, as views of the memory ``user_data`` points at."""
    return (
        numba.carray(_pointer(u[2]), (u[3], u[4]), np.int64),
        numba.carray(_pointer(u[5]), (u[6], u[7]), np.float64),
        numba.carray(_pointer(u[8]), (u[9], u[10]), np.float64),
        numba.carray(_pointer(u[11]), (u[12], u[13]), np.int64),
        numba.carray(_pointer(u[14]), (u[15], u[16]), np.bool_),
        numba.carray(_pointer(u[17]), (u[18], u[19]), np.int64),
        numba.carray(_pointer(u[20]), (u[21], u[22]), np.int64),
        numba.carray(_pointer(u[23]), (u[24], u[25], u[26]), np.bool_),
        numba.carray(_pointer(u[27]), (u[28], u[29]), np.int64),
        numba.carray(_pointer(u[30]), (u[31], u[32]), np.int64),
        numba.carray(_pointer(u[33]), (u[34], u[35]), np.float64),
        numba.carray(_pointer(u[36]), (u[37], u[38], u[39]), np.float64),
        numba.carray(_pointer(u[40]), (u[41], u[42], u[43], u[44], u[45]), np.float64),
        numba.carray(_pointer(u[46]), (u[47], u[48], u[49], u[50], u[51]), np.float64),
        numba.carray(_pointer(u[52]), (u[53],), np.bool_),
        numba.carray(_pointer(u[54]), (u[55], u[56]), np.bool_),
        numba.carray(_pointer(u[57]), (u[58], u[59]), np.float64),
        numba.carray(_pointer(u[60]), (u[61],), np.float64),
        numba.carray(_pointer(u[62]), (u[63], u[64], u[65]), np.float64),
    )


def user_data(data: Packed, fit: int, frame: Frame) -> np.ndarray:
    """The words the callbacks read: the fit, its scratch size, each packed array's address and shape, and the
    addresses of the frame's mean and Cholesky factor. The arrays must outlive the sampling (the caller holds
    ``data`` and ``frame``)."""
    scratch = 4 * data[1].shape[1] + 2 * data[15].shape[1] + 2 * data[17].size
    words = [fit, scratch]
    for a, (rank, dtype) in zip(data, _LAYOUT, strict=True):
        if a.ndim != rank or a.dtype != dtype or not a.flags.c_contiguous:
            raise TypeError(f"packed array {len(words)}: {a.dtype}{a.shape}, expected a C-contiguous {rank}-d {dtype}")
        words += [a.ctypes.data, *a.shape]
    for a in (frame.mean, frame.chol):
        if a.dtype != np.float64 or not a.flags.c_contiguous:
            raise TypeError("the whitening's arrays must be C-contiguous float64")
        words.append(a.ctypes.data)
    assert len(words) == _WORDS
    return np.array(words, np.int64)


_LOGP = types.int64(types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                    types.CPointer(types.double), types.voidptr)  # fmt: skip
_EXPAND = types.int64(types.uint64, types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                      types.voidptr)  # fmt: skip


@njit(cache=True)
def _to_theta(m, L, x, theta, D):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled (numba types it)
    """theta = m + L x (L lower triangular)."""
    to_theta(L, x, theta, D)
    for i in range(D):
        theta[i] += m[i]


@njit(cache=True)
def _returned(lp, grad, logp_, dim):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Store the density for nutpie; its return code: 0, or 3 / 4 when the gradient / the density is not finite."""
    numba.carray(logp_, (1,))[0] = lp
    for i in range(dim):
        if not np.isfinite(grad[i]):
            return 3
    return 0 if np.isfinite(lp) else 4


@njit(cache=True)
def _frame(u, dim):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled (numba types it)
    """The whitening's mean [dim] and Cholesky factor [dim, dim] that ``user_data`` points at."""
    m = numba.carray(_pointer(u[_WORDS - 2]), (dim,), np.float64)
    return m, numba.carray(_pointer(u[_WORDS - 1]), (dim, dim), np.float64)


@numba.cfunc(_LOGP, cache=True)
def _logp_plain(dim, x_, grad_, logp_, user_):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """nutpie's log density callback at theta itself: 0, or 3 / 4 when the gradient / density is not finite."""
    u = numba.carray(user_, (_WORDS,), np.int64)
    x, grad = numba.carray(x_, (dim,)), numba.carray(grad_, (dim,))
    return _returned(log_posterior(x, grad, u[0], _arrays(u), np.empty(u[1])), grad, logp_, dim)


@numba.cfunc(_EXPAND, cache=True)
def _expand_plain(dim, expanded, x_, out_, user_):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """nutpie's draw callback at theta itself: the draw is the parameter vector."""
    x, out = numba.carray(x_, (dim,)), numba.carray(out_, (expanded,))
    for i in range(dim):
        out[i] = x[i]
    return 0


@numba.cfunc(_LOGP, cache=True)
def _logp(dim, x_, grad_, logp_, user_):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """nutpie's log density callback at whitened x: 0, or 3 / 4 when the gradient / density is not finite."""
    u = numba.carray(user_, (_WORDS,), np.int64)
    m, L = _frame(u, dim)
    x, grad = numba.carray(x_, (dim,)), numba.carray(grad_, (dim,))
    theta, g_theta = np.empty(dim), np.empty(dim)
    _to_theta(m, L, x, theta, dim)
    lp = log_posterior(theta, g_theta, u[0], _arrays(u), np.empty(u[1]))
    to_x_grad(L, g_theta, grad, dim)
    return _returned(lp, grad, logp_, dim)


@numba.cfunc(_EXPAND, cache=True)
def _expand(dim, expanded, x_, out_, user_):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """nutpie's draw callback: the parameter vector theta = m + L x of the whitened draw x."""
    u = numba.carray(user_, (_WORDS,), np.int64)
    m, L = _frame(u, dim)
    _to_theta(m, L, numba.carray(x_, (dim,)), numba.carray(out_, (expanded,)), dim)
    return 0


@dataclass
class Frame:
    """The whitening of one fit: theta = mean + chol x, from the Laplace approximation at the posterior mode
    (``laplace``). Any such frame gives the same posterior; a good one makes it close to a standard normal."""

    mean: np.ndarray
    chol: np.ndarray
    curvature: tuple[float, float]  # smallest and largest eigenvalue of the negative Hessian at the mode
    spread: float  # robust sd (1.4826 x MAD) of log posterior / approximation over CHECK_DRAWS of its draws
    # the most the log posterior falls below the approximation PROBE_SD out along an axis (a column of chol,
    # either way), in nats: where the posterior narrows faster than a normal away from the mode
    stiffness: float

    @property
    def whitens(self) -> bool:
        """Whether the approximation is good enough to sample in its coordinates (else theta itself)."""
        return self.spread <= MAX_SPREAD

    @property
    def stiff(self) -> bool:
        """Whether whitened NUTS should start with smaller steps: the posterior's edges are steeper than the
        step size adapted in its bulk can cross (``STIFF_FALL``)."""
        return self.whitens and self.stiffness > STIFF_FALL


def first_target(frame: Frame | None, target: float) -> float:
    """The target acceptance a fit's first NUTS round runs at: ``target``, raised to ``STIFF_TARGET`` for a
    stiff frame (a target set higher stays)."""
    return max(target, STIFF_TARGET) if frame is not None and frame.stiff else target


def laplace(data: Packed, fit: int, start: np.ndarray, seed: int) -> Frame:
    """The mode (L-BFGS from ``start``) and the curvature there (central differences of the gradient), checked
    on ``CHECK_DRAWS`` draws of the approximation from the stream ``seed`` (the fit's own, so the check does not
    depend on the fit's place in the call).

    Eigenvalues of the negative Hessian below ``CURVATURE_FLOOR`` (a direction the data and the priors leave
    flat) are raised to it; nutpie's mass matrix adapts the scales left on top. A mode search that did not
    converge, or a curvature that is not finite, gives a frame that does not whiten (spread inf).
    """
    from scipy.optimize import minimize

    D = start.size
    fit_of = np.array([fit], np.int64)

    def negative(theta: np.ndarray) -> tuple[float, np.ndarray]:
        lp, grad = log_posterior_batch(theta[None, :], fit_of, data)
        return -float(lp[0]), -grad[0]

    found = minimize(negative, start, jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": 1e-6})
    mode = np.asarray(found.x, float)
    h = 1e-5
    steps = np.concatenate([mode + h * np.eye(D), mode - h * np.eye(D)])
    _, grads = log_posterior_batch(steps, np.full(2 * D, fit, np.int64), data)
    H = -(grads[:D] - grads[D:]) / (2 * h)
    if not (found.success and np.isfinite(H).all()):
        return Frame(mode, np.eye(D), (math.nan, math.nan), math.inf, math.inf)
    lam, V = np.linalg.eigh((H + H.T) / 2)
    clipped = np.maximum(lam, CURVATURE_FLOOR)
    # the covariance V diag(1 / clipped) V' = A'A with A = (V / sqrt(clipped))'; A = QR gives its Cholesky
    # factor R' without forming the covariance (whose condition number can exceed what cholesky takes)
    r = np.linalg.qr((V / np.sqrt(clipped)).T, mode="r")
    chol = np.ascontiguousarray((r * np.sign(np.diag(r))[:, None]).T)
    z = np.random.default_rng([seed, 17]).standard_normal((CHECK_DRAWS, D))
    lp, _ = log_posterior_batch(mode + z @ chol.T, np.full(CHECK_DRAWS, fit, np.int64), data)
    log_ratio = lp + 0.5 * (z * z).sum(1)
    # a robust sd (1.4826 x the median absolute deviation): the plain sd of 128 heavy-tailed log ratios moved
    # 6 -> 13 on one fit between two mode searches
    deviation = np.abs(log_ratio - np.median(log_ratio))
    spread = float(1.4826 * np.median(deviation)) if np.isfinite(lp).all() else math.inf
    # probe both ways along each axis (the mode's log posterior is the search's -found.fun): a normal falls by
    # PROBE_SD^2 / 2 there
    probes = np.concatenate([mode + PROBE_SD * chol.T, mode - PROBE_SD * chol.T])
    lp_probe, _ = log_posterior_batch(probes, np.full(2 * D, fit, np.int64), data)
    fall = -float(found.fun) - lp_probe - PROBE_SD**2 / 2
    stiffness = float(fall.max()) if np.isfinite(lp_probe).all() else math.inf
    return Frame(mode, chol, (float(lam[0]), float(lam[-1])), spread, stiffness)


def _model(words: np.ndarray, start: np.ndarray, whitened: bool) -> object:
    """A nutpie model of one fit (the packed arrays ``words`` points at) whose chain starts at ``start``, in the
    frame's coordinates or (``whitened`` False) in theta's."""
    from nutpie.compile_pymc import CompiledPyMCModel

    D = start.size
    return CompiledPyMCModel(
        dims={},
        compiled_logp_func=_logp if whitened else _logp_plain,
        compiled_expand_func=_expand if whitened else _expand_plain,
        initial_point_func=lambda _seed: start.copy(),
        shared_data={},
        user_data=words,
        n_expanded=D,
        shape_info=(["theta"], [slice(0, D)], [(D,)]),
        logp_func=None,
        expand_func=None,
        _n_dim=D,
        _shapes={"theta": (D,)},
        _coords={},
    )


def sample(
    data: Packed,
    theta: np.ndarray,
    fit_of: np.ndarray,
    dims: np.ndarray,
    seeds: np.ndarray,
    warmup: int,
    draws: int,
    target: float,
    frames: dict[int, Frame],
) -> Run:
    """Warm up and draw each chain b: fit ``fit_of[b]``, ``dims[b]`` parameters, seed ``seeds[b]``.

    The same contract as ``stats.hmc.sample``, with each fit's Laplace approximation (``frames``, from
    ``laplace``): where it whitens, the chain runs in its coordinates and starts at its own draw of it (from
    ``seeds[b]``); elsewhere in theta, from ``theta[b]``. A chain adapts its step size toward
    ``first_target(frames[f], target)``. ``Run.step_size`` is the chain's final step size.
    """
    import nutpie
    import pyarrow as pa

    B, P = theta.shape
    out = np.zeros((draws, B, P))
    accept, divergences, step, gradients = np.zeros(B), np.zeros(B, np.int64), np.zeros(B), np.zeros(B, np.int64)
    words = {f: user_data(data, f, frames[f]) for f in np.unique(fit_of).tolist()}
    for b in range(B):
        D, f = int(dims[b]), int(fit_of[b])
        # whitened, the chain starts at a draw of the Laplace approximation, from its own stream
        white = frames[f].whitens
        start = np.random.default_rng(int(seeds[b])).standard_normal(D) if white else theta[b, :D]
        trace = nutpie.sample(
            _model(words[f], np.ascontiguousarray(start, float), white),
            draws=draws,
            tune=warmup,
            chains=1,
            cores=1,
            seed=int(seeds[b]) % 2**63,
            progress_bar=False,
            save_warmup=False,
            target_accept=first_target(frames[f], target),
            return_raw_trace=True,
        )
        (drawn,), (stats,) = trace.get_arrow_trace()
        drawn, stats = pa.record_batch(drawn), pa.record_batch(stats)
        kept = ~stats.column("tuning").to_numpy(zero_copy_only=False)
        if drawn.num_rows != warmup + draws or kept.sum() != draws:
            raise RuntimeError(
                f"nutpie returned {drawn.num_rows} draws ({kept.sum()} after warm-up), not {warmup + draws}"
            )
        out[:, b, :D] = drawn.column("theta").flatten().to_numpy().reshape(-1, D)[kept]
        accept[b] = stats.column("mean_tree_accept").to_numpy()[kept].mean()
        divergences[b] = stats.column("diverging").to_numpy(zero_copy_only=False)[kept].sum()
        step[b] = stats.column("step_size").to_numpy()[-1]
        gradients[b] = stats.column("n_steps").to_numpy().sum()
    return Run(out, accept, divergences, step, gradients)
