"""The quality-cost plot of the "Choosing a candidate" section, as inline SVG.

One panel per required dimension: each option (the candidates and the incumbent) is a
marker at its cost per month (x, with the cost's 95% interval) and its delta against the
incumbent (y, candidate - incumbent in points, with its credible interval, as in the
forest plot), coloured by its verdict. The margin is the dashed red line with the
regression zone below it, the incumbent sits on the zero line, and the options on the
Pareto front (``changeover.pick.pareto``) are ringed and joined by a dashed line.
Like ``plots``, it takes plain numbers and returns SVG markup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from changeover.report.formatting import points
from changeover.report.plots import AXIS, BAD, GOOD, GRID, INCUMBENT_COLOUR, MUTED, WARN, _legend, _log_ticks, _x_axis
from changeover.report.svg import Canvas, Scale, nice_ticks, padded

VERDICT_COLOURS = {"GO": GOOD, "NEED-LABELS": WARN, "NO-GO": BAD}
FRONT = "#0f172a"


@dataclass(frozen=True, slots=True)
class CostPoint:
    """One option on the plot: its cost per month (or per 1k responses) and its delta, each with an interval."""

    label: str
    verdict: str  # GO | NEED-LABELS | NO-GO, or "incumbent"
    cost: float
    cost_lower: float
    cost_upper: float
    delta: float
    delta_lower: float
    delta_upper: float
    on_front: bool = False

    @property
    def incumbent(self) -> bool:
        return self.verdict == "incumbent"


def short_money(value: float) -> str:
    """A tick label in USD: '$90', '$2.5', '$4k', '$1.2M'."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"${value / size:,.3g}{suffix}"
    return f"${value:,.3g}" if abs(value) < 100 else f"${value:,.0f}"


def quality_cost_plot(
    options: Sequence[CostPoint],
    margin: float,
    label: str,
    xlabel: str,
    ylabel: str,
    width: float = 480,
    height: float = 300,
) -> Markup:
    """Delta against cost for every option, the margin drawn, verdicts coloured, the Pareto front ringed."""
    c = Canvas(width, height, label, css_class="plot quality-cost")
    left, right, top, bottom = 58, width - 18, 50, height - 46
    if not options:
        c.text(width / 2, height / 2, "no option with a known cost", anchor="middle", class_="muted")
        return c.render()
    log = min(o.cost for o in options) > 0 and max(o.cost for o in options) / min(o.cost for o in options) > 8
    tf: Callable[[float], float] = (lambda v: math.log10(max(v, 1e-12))) if log else float
    costs = [o.cost for o in options] + [v for o in options for v in (o.cost_lower, o.cost_upper) if v > 0 or not log]
    x0, x1 = padded([tf(v) for v in costs], 0.08)
    x = Scale((x0, x1), (left, right))
    deltas = [v for o in options for v in (o.delta_lower, o.delta_upper) if math.isfinite(v)]
    y0, y1 = padded([*deltas, -margin * 1.6, 0.0, margin * 0.6], 0.06)
    y = Scale((y0, y1), (bottom, top))
    # the regression zone and the margin, as in the forest plot; zero is the incumbent's level
    c.rect(left, y(-margin), right - left, bottom - y(-margin), fill="#fee2e2", fill_opacity=0.7)
    step = (y1 - y0) / 5
    for t in nice_ticks(y0, y1, 5):
        c.line(left, y(t), right, y(t), stroke=GRID)
        tick = "0" if abs(t) < 1e-12 else points(t, 0 if step > 0.015 else 1).removesuffix(" pts")
        c.text(left - 6, y(t) + 4, tick, anchor="end", class_="tick")
    c.line(left, y(0), right, y(0), stroke=MUTED, stroke_width=1.2)
    c.line(left, y(-margin), right, y(-margin), stroke=BAD, stroke_width=1.5, stroke_dasharray="5 3")
    c.text(right - 4, y(-margin) + 13, f"margin −{100 * margin:.1f} pts", anchor="end", class_="annot bad")
    mid = (top + bottom) / 2
    c.text(14, mid, ylabel, anchor="middle", class_="axis-label", transform=f"rotate(-90 14 {mid:.1f})")
    c.line(left, top, left, bottom, stroke=AXIS)
    if log:
        ticks = [math.log10(t) for t in _log_ticks(10**x0, 10**x1)] or [x0, x1]
        _x_axis(c, x, bottom, ticks, lambda v: short_money(10**v), xlabel, grid_top=top)
    else:
        _x_axis(c, x, bottom, nice_ticks(x0, x1, 5), short_money, xlabel, grid_top=top)
    front = sorted((o for o in options if o.on_front), key=lambda o: o.cost)
    if len(front) > 1:
        c.polyline([(x(tf(o.cost)), y(o.delta)) for o in front], stroke=FRONT, stroke_width=1.2, stroke_dasharray="2 3")
    for o in options:
        _option(c, o, x, y, tf)
    present = [v for v in VERDICT_COLOURS if any(o.verdict == v for o in options)]
    items = [(v, VERDICT_COLOURS[v]) for v in present] + [("incumbent", INCUMBENT_COLOUR)]
    _spaced_legend(c, [*items, ("ringed: Pareto front", FRONT)] if front else items, 16, 16)
    return c.render()


def _spaced_legend(c: Canvas, items: Sequence[tuple[str, str]], x: float, y: float) -> None:
    """``plots._legend`` one entry at a time, spaced for upper-case labels (NEED-LABELS is wide), in rows."""
    start = x
    for text, colour in items:
        room = 26 + 7.4 * len(text)
        if x > start and x + room > c.width:  # next row
            x, y = start, y + 17
        _legend(c, [(text, colour)], x, y)
        x += room


def _option(c: Canvas, o: CostPoint, x: Scale, y: Scale, tf: Callable[[float], float]) -> None:
    """One option's intervals, marker, name and tooltip (``tf``: the x transform, log10 or identity)."""
    colour = INCUMBENT_COLOUR if o.incumbent else VERDICT_COLOURS.get(o.verdict, MUTED)
    lo, hi = x.domain
    px, py = x(tf(o.cost)), y(o.delta)
    c.line(x(max(tf(max(o.cost_lower, 1e-12)), lo)), py, x(min(tf(o.cost_upper), hi)), py, stroke=colour)
    if not o.incumbent:
        y_lo, y_hi = y.domain
        c.line(px, y(max(o.delta_lower, y_lo)), px, y(min(o.delta_upper, y_hi)), stroke=colour, stroke_width=2.2)
    css = "marker incumbent" if o.incumbent else "marker candidate"
    css += " front" if o.on_front else ""
    ring = {"stroke": FRONT, "stroke_width": 2.5} if o.on_front else {"stroke": "#fff", "stroke_width": 1}
    if o.incumbent:
        s = 7.0
        c.polygon(
            [(px - s, py), (px, py - s), (px + s, py), (px, py + s)],
            fill=colour,
            class_=css,
            data_option=o.label,
            **ring,
        )
    else:
        c.circle(px, py, 6.0, fill=colour, class_=css, data_option=o.label, **ring)
    right_side = px < x.range[1] - 90
    c.text(
        px + (10 if right_side else -10), py - 8, o.label, anchor="start" if right_side else "end", class_="row-label"
    )
    what = "incumbent" if o.incumbent else o.verdict
    tip = f"{o.label} ({what}): {short_money(o.cost)} [{short_money(o.cost_lower)}, {short_money(o.cost_upper)}]"
    if not o.incumbent:
        tip += f", Δ {points(o.delta)} [{points(o.delta_lower)}, {points(o.delta_upper)}]"
    tip += ", on the Pareto front" if o.on_front else ""
    c.tooltip_rect(px - 9, py - 9, 18, 18, tip, fill="transparent")
