"""The pick result as JSON (written once, at the edge) and as a Markdown section for a pull-request comment."""

from __future__ import annotations

from typing import Any

from changeover.pick.costs import CostEstimate
from changeover.pick.ranking import Choice, PickResult


def _estimate(c: CostEstimate | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"mean": c.mean, "lower": c.lower, "upper": c.upper, "rough": c.rough}


def _choice(c: Choice, rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "candidate": c.candidate,
        "verdict": c.verdict.value,
        "summary": c.summary,
        "cost": _estimate(c.costs.cost),
        "saving": _estimate(c.saving),
        "priced_responses": c.costs.priced,
        "responses": c.costs.responses,
        "p95_latency_ms": c.costs.p95_latency_ms,
        "labels_needed": c.labels_needed,
        "next_labels": [{"item": n.item, "model": n.model, "dimension": n.dimension} for n in c.next_labels[:20]],
    }


def pick_json(result: PickResult) -> dict[str, Any]:
    return {
        "recommended": result.recommended.candidate if result.recommended is not None else None,
        "exit_code": result.exit_code,
        "cost_unit": "usd_per_month" if result.per_month else "usd_per_1k_responses",
        "incumbent": {
            "model": result.incumbent.model,
            "cost": _estimate(result.incumbent.cost),
            "p95_latency_ms": result.incumbent.p95_latency_ms,
        },
        "ranked": [_choice(c, i) for i, c in enumerate(result.ranked, 1)],
        "cheaper_undecided": [c.candidate for c in result.cheaper_undecided],
    }


def pick_markdown(result: PickResult) -> str:
    """A short Markdown table of the ranking (for a PR comment or a job summary)."""
    unit = "/ month" if result.per_month else "/ 1k responses"

    def money(c: CostEstimate | None) -> str:
        return "unknown" if c is None else f"${c.mean:,.0f} (${c.lower:,.0f} to ${c.upper:,.0f})"

    lines = [
        f"| rank | candidate | verdict | cost {unit} | saving {unit} | p95 latency |",
        "|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(result.ranked, 1):
        lat = f"{c.costs.p95_latency_ms:,.0f} ms" if c.costs.p95_latency_ms is not None else "-"
        lines.append(f"| {i} | {c.candidate} | {c.verdict.value} | {money(c.costs.cost)} | {money(c.saving)} | {lat} |")
    head = (
        f"**pick: {result.recommended.candidate}**" if result.recommended is not None else "**no candidate is GO yet**"
    )
    return "\n".join([head, "", *lines]) + "\n"
