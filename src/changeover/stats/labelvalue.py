"""Which human labels would move the decision most, and roughly how many are still needed.

Value of one more label: for an unlabelled response of model m in count-table
cell j, the label's two outcomes reweight the posterior draws by
P(Z_m = h | cell j, draw t). The expected shrinkage of the variance of each
undecided delta (overall or in a required segment), relative to its current
variance, is the label's value. This is exact preposterior analysis by
importance reweighting of the draws we already have: no refit per candidate
label. Items in one cell are exchangeable, so values are per cell, with the
k-th item taken from a cell discounted by 1/k (its information overlaps).

Labels still needed: assumes the posterior sd of an undecided delta shrinks
like 1/sqrt(labels) while its mean stays put, and asks how many labels would
bring the interval clear of the margin. A rough planning number, reported as
such.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from changeover.stats.model import PairFit

MAX_PER_CELL = 8
MAX_NEEDED = 100_000


@dataclass
class LabelTarget:
    """An undecided comparison: which deltas are still inconclusive."""

    candidate: str
    dimension: str
    fit: PairFit
    shares: np.ndarray
    margin: float
    confidence: float
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


def _p_acceptable(fit: PairFit, model: int) -> np.ndarray:
    return fit.p_acceptable(model)


def _values(target: LabelTarget) -> list[RankedLabel]:
    q = target.quantities()  # [T, Q]
    var = q.var(axis=0)
    out = []
    for model in (0, 1):
        tot = target.fit.table.tot0 if model == 0 else target.fit.table.tot1
        open_cells = np.flatnonzero((tot == 0) & (target.fit.table.n > 0))
        if open_cells.size == 0:
            continue
        p1 = _p_acceptable(target.fit, model)[:, open_cells]  # [T, J']
        gain = np.zeros(open_cells.size)
        for p in (p1, 1.0 - p1):
            ph = p.mean(axis=0)  # P(h)
            w = p / np.maximum(p.sum(axis=0, keepdims=True), 1e-300)
            mean_w = w.T @ q  # [J', Q]
            var_w = w.T @ (q**2) - mean_w**2
            gain += (ph[:, None] * (var[None, :] - var_w) / np.maximum(var, 1e-12)).sum(1)
        for cell, g in zip(open_cells, gain, strict=True):
            out.append(RankedLabel(target.candidate, target.dimension, model, int(cell), float(max(g, 0.0))))
    return out


def rank_labels(targets: list[LabelTarget], count: int) -> list[RankedLabel]:
    """The most valuable (comparison, model, cell) slots, best first, with diminishing returns per cell."""
    slots: list[RankedLabel] = []
    for target in targets:
        if not target.undecided:
            continue
        for r in _values(target):
            n_open = int(target.fit.table.n[r.cell])
            for k in range(min(n_open, MAX_PER_CELL)):
                slots.append(RankedLabel(r.candidate, r.dimension, r.model, r.cell, r.value / (k + 1)))
    slots.sort(key=lambda r: -r.value)
    return slots[: count * 2]


def labels_needed(targets: list[LabelTarget]) -> dict[str, dict[str, int]]:
    """Rough number of further labels per candidate and dimension (0 when decided)."""
    out: dict[str, dict[str, int]] = {}
    for target in targets:
        needed = 0
        if target.undecided:
            q = target.quantities()
            z = float(ndtri(target.confidence))
            t = target.fit.table
            have = max(t.labelled(0) + t.labelled(1), 10)
            for j in range(q.shape[1]):
                mu, sd = float(q[:, j].mean()), float(q[:, j].std())
                gap = abs(mu + target.margin)
                sd_goal = gap / z
                if sd_goal <= 1e-6:
                    n = MAX_NEEDED
                else:
                    n = int(np.ceil(have * max((sd / sd_goal) ** 2 - 1.0, 0.0)))
                needed = max(needed, min(n, MAX_NEEDED))
        out.setdefault(target.candidate, {})[target.dimension] = needed
    return out
