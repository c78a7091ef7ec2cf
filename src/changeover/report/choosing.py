"""The report's "Choosing a candidate" section: ``changeover pick``'s ranking and the quality-cost plot.

Built from the same ranking the command prints (``changeover.pick.rank`` on the
report's decision and records), so the section and ``pick`` cannot disagree. Shown
only when some model's cost is known (records with ``cost_usd``, or tokens and a
``pricing:`` table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from changeover.assessment.result import Decision
from changeover.config import MigrationSpec
from changeover.pick.ranking import PickResult, rank
from changeover.pick.report import cost_text, latency_text, pick_json
from changeover.records import Record
from changeover.report.costplot import CostPoint, quality_cost_plot


@dataclass(frozen=True, slots=True)
class ChoiceRow:
    """One row of the section's ranking table, as ``changeover pick`` prints it."""

    rank: int
    candidate: str
    verdict: str
    cost: str
    saving: str
    p95_latency: str
    labels_needed: int
    on_front: bool


@dataclass(frozen=True, slots=True)
class QualityCostPanel:
    dimension: str
    margin: float
    svg: Markup


@dataclass(slots=True)
class ChoosingSection:
    """What the section shows: the ranking, the pick and the cheaper undecided ones, one panel per dimension."""

    result: PickResult
    rows: list[ChoiceRow]
    incumbent_cost: str
    unit: str  # "per month" or "per 1,000 responses"
    panels: list[QualityCostPanel]
    unplaced: list[str]  # candidates with no known cost (not on the plot)
    pick_saving: str | None  # the recommended candidate's saving, when there is one

    def to_json(self) -> dict[str, Any]:
        return pick_json(self.result)


def choosing_section(spec: MigrationSpec, decision: Decision, records: list[Record]) -> ChoosingSection | None:
    """The section, or None when no model's cost is known."""
    if not any(r.cost_usd is not None or r.tokens_in is not None or r.tokens_out is not None for r in records):
        return None  # nothing to price: the ranking would say only "unknown"
    result = rank(spec, decision, records)
    if result.incumbent.cost is None and all(c.costs.cost is None for c in result.ranked):
        return None
    unit = "per month" if result.per_month else "per 1,000 responses"
    rows = [
        ChoiceRow(
            i,
            c.candidate,
            c.verdict.value,
            cost_text(c.costs.cost),
            cost_text(c.saving),
            latency_text(c.costs.p95_latency_ms),
            c.labels_needed,
            c.on_front,
        )
        for i, c in enumerate(result.ranked, 1)
    ]
    traffic = spec.traffic.monthly_interactions
    xlabel = f"cost per month at {traffic:,.0f} interactions (USD)" if traffic else "cost per 1,000 responses (USD)"
    panels = [
        QualityCostPanel(
            d,
            spec.dimensions[d].margin,
            quality_cost_plot(
                _options(result, d),
                spec.dimensions[d].margin,
                label=f"{d}: quality against cost, candidates and {spec.incumbent}",
                xlabel=xlabel,
                ylabel=f"Δ {d} pass rate vs {spec.incumbent} (pts)",
            ),
        )
        for d in result.dimensions
    ]
    unplaced = [c.candidate for c in result.ranked if c.costs.cost is None]
    best = result.recommended
    saving = cost_text(best.saving) if best is not None and best.saving is not None else None
    return ChoosingSection(result, rows, cost_text(result.incumbent.cost), unit, panels, unplaced, saving)


def _options(result: PickResult, dimension: str) -> list[CostPoint]:
    """The plot's points for one dimension: the incumbent at delta 0, each priced candidate at its delta."""
    out = []
    inc = result.incumbent.cost
    if inc is not None:
        out.append(
            CostPoint(
                result.incumbent.model,
                "incumbent",
                inc.mean,
                inc.lower,
                inc.upper,
                0.0,
                0.0,
                0.0,
                result.incumbent_on_front,
            )
        )
    for c in result.ranked:
        q = c.quality.get(dimension)
        if c.costs.cost is None or q is None:
            continue
        cost = c.costs.cost
        out.append(
            CostPoint(
                c.candidate, c.verdict.value, cost.mean, cost.lower, cost.upper, q.mean, q.lower, q.upper, c.on_front
            )
        )
    return out
