"""One line a person can read per candidate: 'cand-a: GO — correctness non-inferior (P=0.98) in all 3 regions'."""

from __future__ import annotations

from changeover.assessment.result import NOT_CONVERGED, Call, CandidateResult, Verdict


def round_count(x: float) -> str:
    """2 significant figures, with thousands separators: 2,347,332 -> '2,300,000'."""
    if x < 100:
        return f"{x:,.0f}"
    digits = len(str(int(x))) - 2
    return f"{round(x, -digits):,.0f}"


def plain_words(candidate: CandidateResult, segments: list[str], segment_by: list[str]) -> str:
    """The candidate's verdict and, per dimension, what decided it."""
    parts = []
    where = f"overall and in all {len(segments)} segments ({'/'.join(segment_by)})" if len(segments) > 1 else "overall"
    net_total, have_net = 0.0, False
    for name, d in candidate.dimensions.items():
        o = d.overall
        if not d.converged:
            parts.append(f"{name} not decided: {NOT_CONVERGED} (R-hat/ESS/divergences off target)")
        elif d.call in (Call.SUPERIOR, Call.NONINFERIOR):
            parts.append(f"{name} {d.call} (P={o.p_noninferior.value:.2f}) {where}")
        elif d.call == Call.REGRESSION:
            worst = min(d.segments.values(), key=lambda b: b.delta.mean)
            at = f" (worst: {worst.name}, {worst.delta.mean:+.1%})" if len(segments) > 1 else ""
            parts.append(f"{name} regresses by {-o.delta.mean:.1%}{at}")
        else:
            weak = [b for b in d.segments.values() if b.call == Call.INCONCLUSIVE]
            close = " — borderline, too close to call" if d.borderline else ""
            if o.call == Call.INCONCLUSIVE or not weak or len(segments) == 1:
                parts.append(f"{name} undecided overall (P(non-inferior)={o.p_noninferior.value:.2f}){close}")
            else:
                detail = ", ".join(f"{b.name} (P(non-inferior)={b.p_noninferior.value:.2f})" for b in weak[:3])
                parts.append(f"{name} undecided in {detail}{close}")
        if o.net_failures_per_month is not None:
            net_total += o.net_failures_per_month.mean
            have_net = True
    line = f"{candidate.name}: {Verdict(candidate.verdict)} — " + "; ".join(parts)
    if have_net:
        word = "more" if net_total > 0 else "fewer"
        line += f"; ~{round_count(abs(net_total))} {word} failures/month"
    return line


def unstable_words(candidate: CandidateResult, incumbent: str) -> str | None:
    """A sentence naming the items whose repeated samples both pass and fail, per model and dimension."""
    parts = []
    for name, d in candidate.dimensions.items():
        for model in (incumbent, candidate.name):
            n = d.unstable.get(model, 0)
            if n:
                shown = ", ".join(d.unstable_items.get(model, [])[:5])
                parts.append(
                    f"{model} on {name}: {n:,} of {d.paired_items:,} items ({d.samples.get(model, 1)} samples; "
                    f"e.g. {shown})"
                )
    if not parts:
        return None
    return "unstable items (passing some samples and failing others): " + "; ".join(parts) + "."
