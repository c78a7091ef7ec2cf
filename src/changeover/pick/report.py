"""The pick result as JSON (written once, at the edge), as a Markdown section for a pull-request comment,
and the money formats the CLI table and the report's "Choosing a candidate" section share."""

from __future__ import annotations

from typing import Any

from changeover.pick.costs import CostEstimate
from changeover.pick.ranking import Choice, PickResult


def money(x: float) -> str:
    """USD as the ranking prints it: whole dollars from $100 up, cents below."""
    return f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"


def cost_text(c: CostEstimate | None) -> str:
    """A cost or saving with its 95% interval: '$4,003 [$3,957, $4,049]', 'rough' when few responses were priced."""
    if c is None:
        return "unknown"
    return f"{money(c.mean)} [{money(c.lower)}, {money(c.upper)}]" + (" rough" if c.rough else "")


def latency_text(ms: float | None) -> str:
    return f"{ms:,.0f} ms" if ms is not None else "-"


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
        "on_pareto_front": c.on_front,
        "quality": {d: {"mean": q.mean, "lower": q.lower, "upper": q.upper} for d, q in c.quality.items()},
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
            "on_pareto_front": result.incumbent_on_front,
        },
        "dimensions": result.dimensions,
        "ranked": [_choice(c, i) for i, c in enumerate(result.ranked, 1)],
        "cheaper_undecided": [c.candidate for c in result.cheaper_undecided],
    }


def pick_markdown(result: PickResult) -> str:
    """A short Markdown table of the ranking (for a PR comment or a job summary)."""
    unit = "/ month" if result.per_month else "/ 1k responses"
    lines = [
        f"| rank | candidate | verdict | cost {unit} | saving {unit} | p95 latency | Pareto front |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(result.ranked, 1):
        lat, front = latency_text(c.costs.p95_latency_ms), "yes" if c.on_front else ""
        lines.append(
            f"| {i} | {c.candidate} | {c.verdict.value} | {cost_text(c.costs.cost)} | {cost_text(c.saving)} "
            f"| {lat} | {front} |"
        )
    head = (
        f"**pick: {result.recommended.candidate}**" if result.recommended is not None else "**no candidate is GO yet**"
    )
    return "\n".join([head, "", *lines]) + "\n"
