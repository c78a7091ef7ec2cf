"""What each model costs per month at the spec's traffic, and what a candidate saves, with 95% intervals.

A response's cost is its ``cost_usd`` when the record has one, else its
tokens priced by the spec's ``pricing:`` table, else unknown. Costs are
averaged per segment and weighted by the traffic shares the assessment used,
so a candidate is not made cheap by answering the cheap segment more often.
The saving is estimated on the items both models answered (paired), which
removes the between-item spread from its interval. Intervals are normal
approximations (mean +- 1.96 standard errors), fine at the hundreds of
responses an evaluation has; with fewer than 30 priced responses in a segment
the estimate is flagged ``rough``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from changeover.config import MigrationSpec
from changeover.providers.config import Price
from changeover.providers.factory import model_prices
from changeover.records import Record

Z95 = 1.959964
ROUGH_BELOW = 30


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """A cost (USD per month, or per 1,000 responses when the spec gives no traffic) and its 95% interval."""

    mean: float
    lower: float
    upper: float
    rough: bool = False


@dataclass(frozen=True, slots=True)
class ModelCosts:
    """One model's measured cost and latency."""

    model: str
    cost: CostEstimate | None  # None: no response carries a cost, tokens or a price
    priced: int  # responses with a known cost
    responses: int
    p95_latency_ms: float | None


def response_cost(rec: Record, price: Price | None) -> float | None:
    """USD of one response: recorded, or priced from its tokens; None when neither is known."""
    if rec.cost_usd is not None:
        return float(rec.cost_usd)
    if price is not None and (rec.tokens_in is not None or rec.tokens_out is not None):
        return price.cost(rec.tokens_in, rec.tokens_out)
    return None


def _scale(spec: MigrationSpec) -> float:
    """Responses per month, or 1,000 (cost per 1k responses) when the spec gives no traffic."""
    return float(spec.traffic.monthly_interactions or 1000.0)


def _weighted(per_segment: dict[str, list[float]], shares: dict[str, float], scale: float) -> CostEstimate | None:
    present = {s: v for s, v in per_segment.items() if v and shares.get(s, 0) > 0}
    if not present:
        return None
    total = sum(shares[s] for s in present)
    mean = var = 0.0
    rough = False
    for s, values in present.items():
        w = shares[s] / total
        x = np.asarray(values, float)
        mean += w * float(x.mean())
        # one priced response says nothing of the spread: take its own size as the error (flagged rough)
        var += w**2 * (float(x.var(ddof=1)) / x.size if x.size > 1 else float(x.mean()) ** 2)
        rough |= x.size < ROUGH_BELOW
    sd = float(np.sqrt(var))
    return CostEstimate(scale * mean, scale * (mean - Z95 * sd), scale * (mean + Z95 * sd), rough)


def model_costs(
    spec: MigrationSpec, records: list[Record], segment_of: dict[str, str], shares: dict[str, float]
) -> dict[str, ModelCosts]:
    """Cost per month and p95 latency of every model of the spec (``segment_of``: item -> segment key)."""
    prices = model_prices(spec)
    scale = _scale(spec)
    by_model: dict[str, list[Record]] = defaultdict(list)
    for rec in records:
        if rec.model in spec.models and rec.item in segment_of:
            by_model[rec.model].append(rec)
    out = {}
    for model in spec.models:
        recs = by_model.get(model, [])
        per_segment: dict[str, list[float]] = defaultdict(list)
        for rec in recs:
            cost = response_cost(rec, prices.get(model))
            if cost is not None:
                per_segment[segment_of[rec.item]].append(cost)
        latencies = [r.latency_ms for r in recs if r.latency_ms is not None]
        out[model] = ModelCosts(
            model,
            _weighted(per_segment, shares, scale),
            sum(len(v) for v in per_segment.values()),
            len(recs),
            float(np.percentile(latencies, 95)) if latencies else None,
        )
    return out


def monthly_saving(
    spec: MigrationSpec, records: list[Record], candidate: str, segment_of: dict[str, str], shares: dict[str, float]
) -> CostEstimate | None:
    """Incumbent cost minus candidate cost per month (positive = the candidate is cheaper), paired by item."""
    prices = model_prices(spec)
    costs: dict[str, dict[str, float]] = defaultdict(dict)
    for rec in records:
        if rec.model in (spec.incumbent, candidate) and rec.item in segment_of:
            cost = response_cost(rec, prices.get(rec.model))
            if cost is not None:
                costs[rec.model][rec.item] = cost
    inc, cand = costs.get(spec.incumbent, {}), costs.get(candidate, {})
    per_segment: dict[str, list[float]] = defaultdict(list)
    for item in sorted(set(inc) & set(cand)):
        per_segment[segment_of[item]].append(inc[item] - cand[item])
    return _weighted(per_segment, shares, _scale(spec))
