"""The Markdown summary: verdict, reasons and one table, short enough for a pull-request
comment (GitHub caps comments at 65,536 characters; this stays far below)."""

from __future__ import annotations

from changeover.assessment.result import Decision, SegmentResult
from changeover.config import MigrationSpec
from changeover.pick.report import pick_markdown
from changeover.report.choosing import ChoosingSection
from changeover.report.formatting import count, failures, impact, interval_short, points, prob
from changeover.report.labels import LabelStats
from changeover.report.shadow import ShadowStats
from changeover.report.verdict import VerdictText
from changeover.shadow.report import ALL

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
    choosing: ChoosingSection | None = None,
    shadow: ShadowStats | None = None,
) -> str:
    """The PR comment: headline, reasons per candidate, a results table, the pick, the shadow period and the
    labels still needed."""
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
    lines += _pick_lines(choosing) + _shadow_lines(shadow)
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


def _pick_lines(choosing: ChoosingSection | None) -> list[str]:
    """The report's "Choosing a candidate" as ``changeover pick --markdown`` writes it: the pick and the ranking."""
    return [] if choosing is None else [pick_markdown(choosing.result)]


def _shadow_lines(shadow: ShadowStats | None) -> list[str]:
    """The gateway's shadow period: how long and which weekdays it covered, and each candidate's equivalence."""
    if shadow is None or not shadow.from_shadow_log or shadow.period is None:
        return []
    p = shadow.period
    lines = [
        f"Shadow traffic: {count(p.pairs)} mirrored pairs over {p.days:.1f} days ({', '.join(p.weekdays)}; "
        f"{p.week_hours} of the week's 168 hours)."
    ]
    for d in shadow.disagreements:
        if d.request_type != ALL:
            continue
        if d.classes:
            classes = ", ".join(f"{n} {k}" for k, n in d.classes.items())
            lines.append(f"- {d.candidate}: {count(d.judged_pairs)} pairs judged by {d.judge}: {classes}.")
        elif d.equivalence_rate is not None:
            lines.append(f"- {d.candidate}: {d.equivalence_rate:.0%} equivalent by word similarity (not judged).")
    return lines + [""]
