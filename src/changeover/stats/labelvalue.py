"""Which human labels would move the decision most, and roughly how many are still needed.

Value of one more label: for an unlabelled response of model m in count-table
cell j, its label y is 1 with probability p_j = P(Z_m = 1 | cell j, draw t)
(``PairFit.p_acceptable``). The label's value is the expected shrinkage of the
variance of each undecided delta (overall or in a required segment), relative
to its current variance, summed over them. For one binary label this is exact
from the draws we already have (no refit): E[var(delta | y)] = var(delta) -
cov(delta, p_j)^2 / var(y), with var(y) = var(p_j) + E[p_j (1 - p_j)] (the law
of total variance; E[delta | y] is linear in a 0/1 y). Items in one cell are
exchangeable, so values are per cell.

A batch (``rank_labels``): labels chosen one after another, greedily, each
after a Bayes-linear update of the joint covariance of the deltas and every
cell's p as if the labels before it had been seen (cov <- cov - c c^T / var(y),
c = the chosen label's column). This is the exact first step above, and for the
later ones the linear (Gaussian) approximation of what the earlier labels will
teach. It replaced "the k-th label of a cell is worth 1/k of the first", which
measured wrong both ways: a well-known cell (many labels, p pinned) loses
little value per label, a barely known one (rare signal cells) loses most of
it after one or two; and labels in cells that share parameters (the same
signal cell with the other answer labelled or not, the same segment) overlap,
which 1/k ignored. On the simulated lenient-judge migration it gave intervals
~8% narrower at the same labels than 1/k (benchmarks/README.md, the queue).
What any order of single labels can gain is bounded by the data: on the
simulations (one binary judge, 3 segments), the best allocation over the signal
cells, knowing the cells' rates, needs 0.80-0.88x the labels of random single
labels for the same variance of the overall delta (labelling both answers of
items, 0.58-0.68x; a pair value in this ranking was tried and measured no
better than the greedy singles, which already complete half-labelled pairs).
Only responses that exist and can be labelled are ranked: a cell must hold
items (n > 0) whose response of that model has no label yet and whose truth
is not already known (an error response is known unacceptable and needs no
label); a cell gets at most as many slots as it has such responses.

Labels still needed (``labels_needed``, the one estimate the CLI, the
labelling app and the report show): for every undecided delta, the number of
further human labels (responses, either model) after which its credible bound
would clear the margin at the decision's threshold. Assumptions, stated:
- the posterior sd of a delta shrinks like 1/sqrt(labels in its scope), the
  labels on its segment for a segment delta and all labels for the overall
  one (the judge's confusion is what labels teach; the signals alone do not
  narrow it);
- the truth is a draw from the current posterior: for each draw delta_t the
  labels needed for a posterior centred there, L ((z sd / |delta_t + m|)^2 - 1),
  and the estimate is their posterior median. The old rule took the posterior
  mean as the truth, and near the margin (|mean + m| ~ 0) the 1/gap^2 blew
  up: on one store the CLI said ~3,439 and the labelling app (a lighter fit,
  another seed) ~20,117 - a 10x difference from Monte Carlo noise in the gap;
  the median over draws is stable against that noise;
- it is bounded by the responses that exist and are still open in that
  scope: more labels than that cannot be had (``LabelEstimate.exhausted``
  says when even labelling everything is unlikely to decide).
A comparison needs the largest of its undecided deltas' numbers (labels on a
segment also count towards the overall delta). A planning number, not a
promise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from changeover.stats.model import PairFit

__all__ = ["LabelTarget", "RankedLabel", "LabelEstimate", "open_cells", "rank_labels", "labels_needed", "estimate"]

MAX_CANDIDATES = 256  # slots (model, cell) a batch is chosen among: the best by a single label's value
MAX_PICKS = 4096  # labels a batch chooses per comparison at most (each pick updates a 256 x 256 covariance)
MIN_LABELS = 10  # the 1/sqrt(labels) law is not trusted below this many labels in scope


@dataclass
class LabelTarget:
    """An undecided comparison: which deltas are still inconclusive, and the threshold that decides them."""

    candidate: str
    dimension: str
    fit: PairFit
    shares: np.ndarray
    margin: float
    confidence: float  # the probability a call needs (the look-adjusted threshold when looks are counted)
    undecided: list[tuple[str, int | None]]  # (segment name or "overall", segment index or None)

    def quantities(self) -> np.ndarray:
        """Draws of each undecided delta, [draws, Q]."""
        f = self.fit
        cols = [
            PairFit.flat(f.overall(f.delta, self.shares)) if s is None else PairFit.flat(f.delta[..., s])
            for _, s in self.undecided
        ]
        return np.stack(cols, axis=1)


@dataclass(frozen=True)
class RankedLabel:
    candidate: str
    dimension: str
    model: int  # 0 = incumbent, 1 = candidate
    cell: int
    value: float


@dataclass(frozen=True)
class LabelEstimate:
    """Labels still needed for one comparison, and the open responses that bound it."""

    candidate: str
    dimension: str
    needed: int  # further labels, at most ``open``
    open: int  # unlabelled responses that exist and need a label (both models), in the binding scope
    exhausted: bool  # the unbounded estimate exceeded ``open``: labelling everything may not decide


def open_cells(fit: PairFit, model: int) -> np.ndarray:
    """Mask [J] of cells holding responses of ``model`` that exist, are unlabelled and of unknown truth."""
    t = fit.table
    tot = t.tot0 if model == 0 else t.tot1
    known = getattr(t, "known0" if model == 0 else "known1", None)
    mask = (tot == 0) & (t.labellable(model) > 0)
    if known is not None:
        mask &= np.asarray(known) < 0
    return mask


def _open_slots(target: LabelTarget) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The (model, cell) slots that can take a label, and P(acceptable) of each, [draws, slots]."""
    slots: list[tuple[int, int]] = []
    cols = []
    for model in (0, 1):
        cells = np.flatnonzero(open_cells(target.fit, model))
        if cells.size:
            cols.append(target.fit.p_acceptable(model)[:, cells])
            slots += [(model, int(c)) for c in cells]
    return slots, (np.concatenate(cols, axis=1) if cols else np.zeros((0, 0)))


def _batch(target: LabelTarget, count: int) -> list[RankedLabel]:
    """Up to ``count`` slots of one comparison, chosen greedily under the Bayes-linear update (module doc)."""
    slots, p = _open_slots(target)
    if not slots:
        return []
    q = target.quantities()  # [T, Q]
    T, Q = q.shape
    qc, pc = q - q.mean(axis=0), p - p.mean(axis=0)
    var = np.maximum((qc**2).mean(axis=0), 1e-12)  # the deltas' current variances: values are relative to them
    noise = (p * (1.0 - p)).mean(axis=0)  # E[p (1 - p)]: the label's own Bernoulli spread
    first = ((qc.T @ pc / T) ** 2 / var[:, None]).sum(axis=0) / np.maximum((pc**2).mean(axis=0) + noise, 1e-12)
    keep = np.argsort(-first, kind="stable")[:MAX_CANDIDATES]  # the batch is chosen among the best single labels
    x = np.concatenate([qc, pc[:, keep]], axis=1)
    cov = x.T @ x / T  # [Q + K, Q + K]
    t = target.fit.table
    left = np.array([t.labellable(slots[k][0])[slots[k][1]] for k in keep], np.int64)  # open responses per slot
    out: list[RankedLabel] = []
    for _ in range(min(count, MAX_PICKS)):
        var_y = np.maximum(np.diag(cov)[Q:] + noise[keep], 1e-12)
        value = (cov[:Q, Q:] ** 2 / var[:, None]).sum(axis=0) / var_y
        value[left <= 0] = -np.inf
        j = int(np.argmax(value))
        if not value[j] > 0:
            break
        model, cell = slots[keep[j]]
        out.append(RankedLabel(target.candidate, target.dimension, model, cell, float(value[j])))
        left[j] -= 1
        c = cov[:, Q + j].copy()
        cov -= np.outer(c, c) / var_y[j]
    return out


def rank_labels(targets: list[LabelTarget], count: int) -> list[RankedLabel]:
    """The most valuable (comparison, model, cell) slots, best first: per comparison a greedy batch (each
    label valued after the ones before it, module doc), merged by value across comparisons.

    A cell appears at most as many times as it has open responses; ``2 * count`` slots are returned
    (the expansion into items may skip some that another comparison already took), at most
    ``MAX_PICKS`` per comparison.
    """
    slots: list[RankedLabel] = []
    for target in targets:
        if target.undecided:
            slots += _batch(target, 2 * count)
    slots.sort(key=lambda r: -r.value)
    return slots[: count * 2]


def _scope_counts(fit: PairFit, segment: int | None) -> tuple[int, int]:
    """(labelled responses, open responses) of both models, in one segment or overall."""
    t = fit.table
    in_scope = np.ones(t.cells, bool) if segment is None else (t.seg == segment)
    labelled = int(t.n[in_scope & (t.tot0 > 0)].sum() + t.n[in_scope & (t.tot1 > 0)].sum())
    open_ = sum(int(t.labellable(m)[in_scope & open_cells(fit, m)].sum()) for m in (0, 1))
    return labelled, open_


def estimate(target: LabelTarget) -> LabelEstimate:
    """Labels still needed for one comparison (see the module docstring for what and why)."""
    if not target.undecided:
        return LabelEstimate(target.candidate, target.dimension, 0, 0, False)
    q = target.quantities()
    z = float(ndtri(min(max(target.confidence, 0.5), 1 - 1e-12)))
    best = (0, 0, False)
    for col, (_, s) in enumerate(target.undecided):
        d = q[:, col]
        sd = float(d.std())
        have, open_ = _scope_counts(target.fit, s)
        gap = np.abs(d + target.margin)
        ratio = np.where(gap > 0, (z * sd / np.maximum(gap, 1e-12)) ** 2, np.inf)
        raw = float(np.median(max(have, MIN_LABELS) * np.maximum(ratio - 1.0, 0.0)))
        need = int(min(np.ceil(raw), open_)) if np.isfinite(raw) else open_
        exhausted = bool(not np.isfinite(raw) or raw > open_)
        if need > best[0] or (need == best[0] and exhausted):
            best = (need, open_, exhausted)
    return LabelEstimate(target.candidate, target.dimension, *best)


def labels_needed(targets: list[LabelTarget]) -> dict[str, dict[str, int]]:
    """Further labels per candidate and dimension (0 when decided), bounded by the open responses."""
    out: dict[str, dict[str, int]] = {}
    for target in targets:
        out.setdefault(target.candidate, {})[target.dimension] = estimate(target).needed
    return out
