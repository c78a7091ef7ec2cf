"""Rank the candidates: those that pass first, cheapest first, then those that still need labels, then the rest.

The recommendation is the cheapest GO candidate (ties broken by p95 latency).
When a cheaper candidate is still NEED-LABELS, the result says so and lists the
labels that would settle it: labelling them may make the cheaper one the pick.
Exit codes follow ``assess``: 0 a GO candidate exists, 3 none does yet but
some still need labels, 1 every candidate is NO-GO. Each candidate also carries
its quality (the overall delta of every required dimension) and whether it is on
the Pareto front of cost and quality, the incumbent included (``pick.pareto``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from changeover.assessment.pairing import index_records
from changeover.assessment.result import CandidateResult, Decision, Interval, NextLabel, Verdict
from changeover.assessment.service import Assessment
from changeover.config import MigrationSpec
from changeover.pick.costs import CostEstimate, ModelCosts, model_costs, monthly_saving
from changeover.pick.pareto import pareto_front
from changeover.records import Record

_ORDER = {Verdict.GO: 0, Verdict.NEED_LABELS: 1, Verdict.NO_GO: 2}


@dataclass(frozen=True, slots=True)
class Choice:
    """One candidate as the choice sees it."""

    candidate: str
    verdict: Verdict
    summary: str
    costs: ModelCosts
    saving: CostEstimate | None  # incumbent minus candidate per month; positive = cheaper
    labels_needed: int
    next_labels: tuple[NextLabel, ...]
    quality: dict[str, Interval] = field(default_factory=dict)  # required dimension -> overall delta
    on_front: bool = False  # not dominated on cost and quality (pick.pareto)

    @property
    def sort_key(self) -> tuple[int, float, float]:
        cost = self.costs.cost.mean if self.costs.cost is not None else float("inf")
        latency = self.costs.p95_latency_ms if self.costs.p95_latency_ms is not None else float("inf")
        return (_ORDER[self.verdict], cost, latency)


@dataclass(slots=True)
class PickResult:
    """The ranked candidates, the recommendation and the cheaper ones still undecided."""

    incumbent: ModelCosts
    per_month: bool  # costs are per month (the spec gives traffic) or per 1,000 responses
    ranked: list[Choice]
    recommended: Choice | None
    cheaper_undecided: list[Choice] = field(default_factory=list)
    incumbent_on_front: bool = False
    dimensions: list[str] = field(default_factory=list)  # the required dimensions the quality covers

    @property
    def exit_code(self) -> int:
        if self.recommended is not None:
            return 0
        if any(c.verdict == Verdict.NEED_LABELS for c in self.ranked):
            return 3
        return 1


def pick(assessment: Assessment, records: list[Record]) -> PickResult:
    """Rank ``assessment``'s candidates by verdict, cost at the spec's traffic and p95 latency."""
    return rank(assessment.spec, assessment.decision, records)


def rank(spec: MigrationSpec, decision: Decision, records: list[Record]) -> PickResult:
    """The ranking from a decision and the records behind it (what ``pick`` and the report both use)."""
    segment_of = index_records(spec, records).segment_of  # an item's segment, as the assessment gave it
    costs = model_costs(spec, records, segment_of, decision.shares)
    dimensions = [d for d, cfg in spec.dimensions.items() if cfg.required]
    names = list(decision.candidates)
    quality = {name: _quality(decision.candidates[name], dimensions) for name in names}
    # the incumbent is an option too (delta 0 on every dimension); a dimension the result lacks counts as worst
    front = pareto_front(
        [(_mean(costs[spec.incumbent].cost), [0.0] * len(dimensions))]
        + [(_mean(costs[n].cost), [_at(quality[n], d) for d in dimensions]) for n in names]
    )
    choices = []
    for name, on_front in zip(names, front[1:], strict=True):
        cand = decision.candidates[name]
        needed = sum(decision.labels_needed.get(name, {}).values())
        labels = tuple(n for n in decision.next_labels if _concerns(n, name, spec.incumbent))
        choices.append(
            Choice(
                name,
                Verdict(cand.verdict),
                cand.summary,
                costs[name],
                monthly_saving(spec, records, name, segment_of, decision.shares),
                needed,
                labels,
                quality[name],
                on_front,
            )
        )
    ranked = sorted(choices, key=lambda c: c.sort_key)
    recommended = next((c for c in ranked if c.verdict == Verdict.GO), None)
    bar = recommended.sort_key[1] if recommended is not None else float("inf")
    cheaper = [c for c in ranked if c.verdict == Verdict.NEED_LABELS and c.sort_key[1] < bar]
    return PickResult(
        costs[spec.incumbent],
        bool(spec.traffic.monthly_interactions),
        ranked,
        recommended,
        cheaper,
        front[0],
        dimensions,
    )


def _quality(candidate: CandidateResult, dimensions: list[str]) -> dict[str, Interval]:
    """The overall delta of each required dimension the candidate's result has."""
    return {d: candidate.dimensions[d].overall.delta for d in dimensions if d in candidate.dimensions}


def _at(quality: dict[str, Interval], dimension: str) -> float:
    return quality[dimension].mean if dimension in quality else float("-inf")


def _mean(cost: CostEstimate | None) -> float | None:
    return cost.mean if cost is not None else None


def _concerns(label: NextLabel, candidate: str, incumbent: str) -> bool:
    """A ranked label settles this candidate's comparison (its own responses, or the incumbent's)."""
    return label.model in (candidate, incumbent)
