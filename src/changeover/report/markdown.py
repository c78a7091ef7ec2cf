"""The Markdown summary: verdict, reasons and one table, short enough for a pull-request
comment (GitHub caps comments at 65,536 characters; this stays far below)."""

from __future__ import annotations

from changeover.assessment.result import Decision, SegmentResult
from changeover.config import MigrationSpec
from changeover.report.formatting import count, failures, impact, interval_short, points, prob
from changeover.report.labels import LabelStats
from changeover.report.verdict import VerdictText

ICONS = {"GO": "🟢", "NO-GO": "🔴", "NEED-LABELS": "🟡"}
MAX_CHARS = 60_000


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _row(cand: str, dim: str, where: str, b: SegmentResult, verdict: str) -> str:
    cells = (
        cand,
        dim,
        where,
        verdict,
        f"{points(b.delta.mean)} {interval_short(b.delta)}",
        prob(b.p_noninferior.value),
        prob(b.p_regression.value),
        failures(impact(b)),
    )
    return "| " + " | ".join(_cell(x) for x in cells) + " |"


def summary_markdown(
    decision: Decision,
    spec: MigrationSpec,
    text: VerdictText,
    labels: LabelStats | None,
    report_name: str | None = None,
    with_segments: bool = False,
) -> str:
    """The PR comment: headline, reasons per candidate, a results table, labels still needed."""
    icon = ICONS.get(text.verdict, "")
    lines = [f"### {icon} changeover: **{text.verdict}** — replacing `{spec.incumbent}`", "", text.headline, ""]
    for cand in text.candidates:
        lines.append(f"**{cand.name}: {cand.verdict}**")
        lines += [f"- {r}" for r in cand.reasons]
        lines.append("")
    lines += [
        "| candidate | dimension | where | verdict | Δ pass rate "
        f"({spec.confidence:.0%} CrI) | P(non-inferior) | P(regression) | failures / month |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in decision.candidates.items():
        for dim, d in c.dimensions.items():
            lines.append(_row(name, dim, "overall", d.overall, str(d.call)))
            for seg, s in d.segments.items():
                # the segments that drive the verdict are always listed; the rest on request
                if with_segments or s.call != d.overall.call:
                    lines.append(_row("", "", seg, s, str(s.call)))
    lines.append("")
    if labels is not None:
        needed = f"; about **{count(labels.total_needed)}** more needed" if labels.total_needed else ""
        lines.append(
            f"Human labels: {count(labels.total_verdicts)} verdicts on "
            f"{count(labels.labelled_responses)} responses{needed}."
        )
    if report_name:
        lines.append(f"Full report with plots, judge calibration and appendix: `{report_name}`.")
    out = "\n".join(lines).rstrip() + "\n"
    if len(out) > MAX_CHARS:  # a pathological number of candidates x dimensions
        out = out[:MAX_CHARS].rsplit("\n", 1)[0] + "\n\n… (truncated; see the full report)\n"
    return out
