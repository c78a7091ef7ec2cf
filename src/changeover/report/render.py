"""Render a built report to one self-contained HTML page (Jinja2 templates, inline CSS
and SVG; nothing is fetched when the page is opened)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from changeover.report import formatting, plots

if TYPE_CHECKING:
    from changeover.report.build import Report


FILTERS = ("pct", "points", "prob", "count", "failures", "failures_short", "interval_short", "impact", "impact_range")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("changeover.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters.update({name: getattr(formatting, name) for name in FILTERS})
    return env


def section_plots(report: Report) -> dict[str, Markup | None]:
    """The plots of the optional sections (the assessment's own are drawn in ``results``)."""
    inputs = report.inputs
    out: dict[str, Markup | None] = {"shadow_latency_svg": None, "rollout_svg": None, "embedding_svg": None}
    if inputs.shadow is not None and inputs.shadow.has_metrics:
        out["shadow_latency_svg"] = plots.box_plot(
            [
                plots.Distribution(t.label, t.latency_ms, report.colours.get(t.model, plots.INCUMBENT_COLOUR))
                for t in inputs.shadow.models
            ],
            label="Latency per model",
            xlabel="latency (ms, log scale)",
        )
    if inputs.rollout is not None:
        out["rollout_svg"] = plots.timeline_plot(inputs.rollout.milestones, label="Rollout timeline")
    if inputs.embeddings is not None:
        out["embedding_svg"] = plots.histogram(
            inputs.embeddings.overlap,
            label="Top-k overlap old vs new index",
            xlabel=f"top-{inputs.embeddings.k} overlap",
            bins=10,
            bounds=(0, 1),
            tick_fmt=lambda v: formatting.pct(v, 0),
        )
    return out


def render_html(report: Report) -> str:
    """The whole page as a string."""
    context: dict[str, Any] = {
        "title": report.title,
        "generated_at": report.generated_at,
        "spec": report.spec,
        "verdict": report.verdict,
        "candidates": report.candidates,
        "judges": report.judges,
        "labels": report.inputs.labels,
        "tools": report.tools,
        "choosing": report.choosing,
        "shadow": report.inputs.shadow,
        "rollout": report.inputs.rollout,
        "embeddings": report.inputs.embeddings,
        "appendix": report.appendix,
        "colours": report.colours,
        **section_plots(report),
    }
    return environment().get_template("report.html.j2").render(context)
