"""The report's plots as inline SVG: posterior densities, forest plots with the margin,
confusion heatmaps, histograms, latency box plots and the rollout timeline.

Each function takes plain numbers and returns SVG markup; none reads the store or the
assessment, so every plot can be tested (and reused) on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from markupsafe import Markup

from changeover.report.density import kde
from changeover.report.formatting import pct, points
from changeover.report.svg import Canvas, Scale, fmt, nice_ticks, padded

INCUMBENT_COLOUR = "#64748b"
CANDIDATE_COLOURS = ("#2563eb", "#d97706", "#059669", "#9333ea", "#db2777", "#0891b2")
GOOD, BAD, WARN = "#15803d", "#b91c1c", "#b45309"
VERDICT_COLOURS = {"superior": GOOD, "non-inferior": GOOD, "regression": BAD, "inconclusive": WARN}
AXIS, GRID, MUTED = "#94a3b8", "#e2e8f0", "#475569"

Formatter = Callable[[float], str]


def model_colours(incumbent: str, candidates: Sequence[str]) -> dict[str, str]:
    """One stable colour per model: slate for the incumbent, a hue per candidate."""
    out = {incumbent: INCUMBENT_COLOUR}
    for i, name in enumerate(candidates):
        out[name] = CANDIDATE_COLOURS[i % len(CANDIDATE_COLOURS)]
    return out


def _x_axis(
    c: Canvas,
    x: Scale,
    y: float,
    ticks: Sequence[float],
    tick_fmt: Formatter,
    label: str | None = None,
    grid_top: float | None = None,
) -> None:
    c.line(x.range[0], y, x.range[1], y, stroke=AXIS)
    for t in ticks:
        px = x(t)
        if grid_top is not None:
            c.line(px, grid_top, px, y, stroke=GRID)
        c.line(px, y, px, y + 4, stroke=AXIS)
        c.text(px, y + 16, tick_fmt(t), anchor="middle", class_="tick")
    if label:
        c.text((x.range[0] + x.range[1]) / 2, y + 32, label, anchor="middle", class_="axis-label")


def _pct_ticks(ticks: Sequence[float]) -> Formatter:
    """Percent labels with as many decimals as the tick step needs (40%, 42.5%)."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    digits = 0 if round(100 * step, 6) == round(100 * step) else 1
    return lambda v: pct(v, digits)


def _legend(c: Canvas, items: Sequence[tuple[str, str]], x: float, y: float) -> None:
    for label, colour in items:
        c.rect(x, y - 9, 12, 10, fill=colour, rx=2)
        c.text(x + 16, y, label, class_="legend")
        x += 24 + 6.6 * len(label)


# --------------------------------------------------------------------------- densities


@dataclass(frozen=True, slots=True)
class Series:
    """Posterior draws of one quantity, drawn in one colour."""

    label: str
    draws: np.ndarray
    colour: str


def density_plot(
    series: Sequence[Series],
    label: str,
    xlabel: str,
    bounds: tuple[float, float] | None = (0, 1),
    tick_fmt: Formatter = pct,
    width: float = 460,
    height: float = 230,
) -> Markup:
    """Overlaid, filled densities of several posteriors on one axis."""
    c = Canvas(width, height, label)
    left, right, top, bottom = 16, width - 16, 30, height - 44
    finite = [np.asarray(s.draws, float)[np.isfinite(s.draws)] for s in series]
    lows = [float(np.quantile(d, 0.0005)) for d in finite if d.size]
    highs = [float(np.quantile(d, 0.9995)) for d in finite if d.size]
    if not lows:
        c.text(width / 2, height / 2, "no draws", anchor="middle", class_="muted")
        return c.render()
    lo, hi = padded([min(lows), max(highs)], 0.08)
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    curves = [kde(d, lo, hi) for d in finite]
    peak = max((float(dens.max()) for _, dens in curves), default=1.0) or 1.0
    x = Scale((lo, hi), (left, right))
    y = Scale((0, peak * 1.08), (bottom, top))
    ticks = nice_ticks(lo, hi, 5)
    _x_axis(c, x, bottom, ticks, tick_fmt if tick_fmt is not pct else _pct_ticks(ticks), xlabel, grid_top=top)
    for s, (grid, dens) in zip(series, curves, strict=True):
        pts = [(x(g), y(d)) for g, d in zip(grid, dens, strict=True)]
        c.polygon([(x(grid[0]), bottom), *pts, (x(grid[-1]), bottom)], fill=s.colour, fill_opacity=0.18)
        c.polyline(pts, stroke=s.colour, stroke_width=2)
        mean = float(np.mean(s.draws))
        c.line(x(mean), top, x(mean), bottom, stroke=s.colour, stroke_dasharray="3 3")
    _legend(c, [(s.label, s.colour) for s in series], left, 16)
    return c.render()


# --------------------------------------------------------------------------- forest


@dataclass(frozen=True, slots=True)
class ForestRow:
    """One interval of the forest plot: a segment's (or the overall) delta."""

    label: str
    mean: float
    lower: float
    upper: float
    share: float | None = None
    overall: bool = False
    required: bool = True
    verdict: str | None = None  # the assessment's verdict for this row, when it gives one


def forest_plot(
    rows: Sequence[ForestRow], margin: float, label: str, width: float = 460, row_height: float = 26
) -> Markup:
    """Delta per segment with its credible interval; the margin line and regression zone drawn.

    Left of ``-margin`` is shaded red: an interval entirely there is a regression;
    an interval entirely right of it is non-inferior.
    """
    label_w = min(150.0, 14 + 7.0 * max((len(r.label) for r in rows), default=6))
    left, right, top = label_w, width - 18, 24
    bottom = top + row_height * max(len(rows), 1) + 8
    height = bottom + 40
    c = Canvas(width, height, label)
    values = [v for r in rows for v in (r.lower, r.upper) if math.isfinite(v)]
    values += [-margin * 1.6, 0.0, margin * 0.6]
    lo, hi = padded(values, 0.06)
    x = Scale((lo, hi), (left, right))
    c.rect(left, top - 6, x(-margin) - left, bottom - top + 6, fill="#fee2e2", fill_opacity=0.7)
    _x_axis(
        c,
        x,
        bottom,
        nice_ticks(lo, hi, 5),
        lambda v: points(v, 0 if abs(hi - lo) > 0.08 else 1),
        "difference in pass rate, candidate − incumbent",
        grid_top=top - 6,
    )
    c.line(x(0), top - 6, x(0), bottom, stroke=MUTED, stroke_width=1.2)
    c.line(x(-margin), top - 6, x(-margin), bottom, stroke=BAD, stroke_width=1.5, stroke_dasharray="5 3")
    room_left = x(-margin) - left > 90
    c.text(
        x(-margin) + (-4 if room_left else 4),
        top - 10,
        f"margin −{100 * margin:.1f} pts",
        anchor="end" if room_left else "start",
        class_="annot bad",
    )
    shares = [r.share for r in rows if r.share]
    biggest = max(shares) if shares else 1.0
    for i, r in enumerate(rows):
        cy = top + row_height * (i + 0.5)
        if r.overall and i:
            c.line(8, cy - row_height / 2, right, cy - row_height / 2, stroke=GRID)
        colour = VERDICT_COLOURS.get(r.verdict or "") or (
            BAD if r.upper < -margin else GOOD if r.lower > -margin else WARN
        )
        name = r.label + ("" if r.required else " (not required)")
        c.text(left - 10, cy + 4, name, anchor="end", class_="row-label strong" if r.overall else "row-label")
        c.line(x(max(r.lower, lo)), cy, x(min(r.upper, hi)), cy, stroke=colour, stroke_width=2.2)
        tip = f"{r.label}: {points(r.mean)} [{points(r.lower)}, {points(r.upper)}]"
        if r.overall:
            s = 7.0
            c.polygon([(x(r.mean) - s, cy), (x(r.mean), cy - s), (x(r.mean) + s, cy), (x(r.mean), cy + s)], fill=colour)
        else:
            radius = 3.5 + 3.0 * math.sqrt((r.share or biggest) / biggest)
            c.circle(x(r.mean), cy, radius, fill=colour)
        c.tooltip_rect(left, cy - row_height / 2, right - left, row_height, tip, fill="transparent")
    return c.render()


# --------------------------------------------------------------------------- heatmap


def heatmap(
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    label: str,
    title: str | None = None,
    cell: float = 46,
) -> Markup:
    """A probability matrix as coloured cells with their values written in."""
    matrix = np.asarray(matrix, float)
    label_w = 14 + 6.4 * max(len(s) for s in row_labels)
    top = 40 if title else 22
    width = label_w + cell * matrix.shape[1] + 10
    height = top + cell * matrix.shape[0] + 8
    c = Canvas(width, height, label, css_class="plot heatmap")
    if title:
        c.text(label_w, 14, title, class_="legend strong")
    for j, name in enumerate(col_labels):
        c.text(label_w + cell * (j + 0.5), top - 6, name, anchor="middle", class_="tick")
    for i, name in enumerate(row_labels):
        c.text(label_w - 6, top + cell * (i + 0.5) + 4, name, anchor="end", class_="tick")
        for j in range(matrix.shape[1]):
            v = float(matrix[i, j])
            shade = 0.08 + 0.85 * min(max(v, 0.0), 1.0)
            c.tooltip_rect(
                label_w + cell * j,
                top + cell * i,
                cell - 2,
                cell - 2,
                f"{row_labels[i]}, signal {col_labels[j]}: {pct(v)}",
                fill="#1d4ed8",
                fill_opacity=round(shade, 3),
                rx=3,
            )
            c.text(
                label_w + cell * (j + 0.5) - 1,
                top + cell * (i + 0.5) + 4,
                f"{100 * v:.0f}%",
                anchor="middle",
                class_="cell-value light" if shade > 0.5 else "cell-value",
            )
    return c.render()


# --------------------------------------------------------------------------- distributions


def histogram(
    values: np.ndarray,
    label: str,
    xlabel: str,
    colour: str = CANDIDATE_COLOURS[0],
    bins: int = 20,
    bounds: tuple[float, float] | None = None,
    tick_fmt: Formatter = fmt,
    width: float = 460,
    height: float = 210,
) -> Markup:
    """Counts of ``values`` in equal-width bins."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    c = Canvas(width, height, label)
    left, right, top, bottom = 40, width - 14, 14, height - 44
    if values.size == 0:
        c.text(width / 2, height / 2, "no values", anchor="middle", class_="muted")
        return c.render()
    lo, hi = bounds if bounds else (float(values.min()), float(values.max()) or 1.0)
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi if hi > lo else lo + 1))
    x = Scale((edges[0], edges[-1]), (left, right))
    y = Scale((0, max(int(counts.max()), 1) * 1.1), (bottom, top))
    for t in nice_ticks(0, max(int(counts.max()), 1), 4):
        c.line(left, y(t), right, y(t), stroke=GRID)
        c.text(left - 6, y(t) + 4, f"{t:g}", anchor="end", class_="tick")
    for n, a, b in zip(counts, edges[:-1], edges[1:], strict=True):
        c.tooltip_rect(
            x(a) + 0.5,
            y(n),
            x(b) - x(a) - 1,
            bottom - y(n),
            f"{tick_fmt(a)} – {tick_fmt(b)}: {n}",
            fill=colour,
            fill_opacity=0.85,
        )
    _x_axis(c, x, bottom, nice_ticks(edges[0], edges[-1], 5), tick_fmt, xlabel)
    return c.render()


@dataclass(frozen=True, slots=True)
class Distribution:
    """Raw values of one model (latencies, costs) for a box plot row."""

    label: str
    values: np.ndarray
    colour: str


def box_plot(
    rows: Sequence[Distribution], label: str, xlabel: str, log: bool = True, width: float = 700, row_height: float = 34
) -> Markup:
    """Per model: whiskers p5-p95, box p25-p75, median line, p99 tick; log axis by default."""
    label_w = 16 + 7.0 * max((len(r.label) for r in rows), default=6)
    left, right, top = label_w, width - 20, 10
    bottom = top + row_height * max(len(rows), 1)
    c = Canvas(width, bottom + 40, label)
    stats = []
    for r in rows:
        v = np.asarray(r.values, float)
        v = v[np.isfinite(v) & ((v > 0) if log else True)]
        stats.append(np.percentile(v, [5, 25, 50, 75, 95, 99]) if v.size else None)
    present = [s for s in stats if s is not None]
    if not present:
        c.text(width / 2, bottom / 2, "no values", anchor="middle", class_="muted")
        return c.render()
    lo, hi = min(s[0] for s in present), max(s[5] for s in present)
    tf: Callable[[float], float] = (lambda v: math.log10(max(v, 1e-9))) if log else float
    a, b = padded([tf(lo), tf(hi)], 0.06)
    x = Scale((a, b), (left, right))
    if log:
        ticks = [t for t in _log_ticks(10**a, 10**b)]
        _x_axis(
            c,
            Scale((a, b), (left, right)),
            bottom,
            [math.log10(t) for t in ticks],
            lambda v: f"{10**v:,.0f}" if 10**v >= 1 else f"{10**v:.2g}",
            xlabel,
            grid_top=top,
        )
    else:
        _x_axis(c, x, bottom, nice_ticks(a, b, 5), fmt, xlabel, grid_top=top)
    for i, (r, s) in enumerate(zip(rows, stats, strict=True)):
        cy = top + row_height * (i + 0.5)
        c.text(left - 10, cy + 4, r.label, anchor="end", class_="row-label")
        if s is None:
            continue
        p5, p25, p50, p75, p95, p99 = (x(tf(v)) for v in s)
        c.line(p5, cy, p95, cy, stroke=r.colour, stroke_width=1.5)
        c.tooltip_rect(
            p25,
            cy - 9,
            p75 - p25,
            18,
            f"{r.label}: median {s[2]:,.0f}, p25-p75 {s[1]:,.0f}-{s[3]:,.0f}, p95 {s[4]:,.0f}",
            fill=r.colour,
            fill_opacity=0.25,
            stroke=r.colour,
            rx=2,
        )
        c.line(p50, cy - 9, p50, cy + 9, stroke=r.colour, stroke_width=2.5)
        c.line(p99, cy - 5, p99, cy + 5, stroke=r.colour, stroke_width=1.5)
    return c.render()


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for exp in range(math.floor(math.log10(max(lo, 1e-9))), math.ceil(math.log10(max(hi, 1e-9))) + 1):
        for m in (1, 2, 5):
            t = m * 10.0**exp
            if lo <= t <= hi:
                ticks.append(t)
    return ticks if len(ticks) <= 8 else [t for t in ticks if str(t).lstrip("0.").startswith("1")]


# --------------------------------------------------------------------------- timeline


@dataclass(frozen=True, slots=True)
class Milestone:
    """One event on the rollout timeline; ``share`` is the candidate's traffic share after it."""

    at: datetime
    kind: str
    text: str
    share: float | None = None
    severity: str = "info"  # info | good | bad


def timeline_plot(milestones: Sequence[Milestone], label: str, width: float = 940, height: float = 220) -> Markup:
    """Candidate traffic share over time as a step line, events as markers (rollbacks in red)."""
    c = Canvas(width, height, label)
    left, right, top, bottom = 52, width - 20, 16, height - 46
    if not milestones:
        c.text(width / 2, height / 2, "no events", anchor="middle", class_="muted")
        return c.render()
    t0 = min(m.at for m in milestones).timestamp()
    t1 = max(m.at for m in milestones).timestamp()
    span = (t1 - t0) or 3600.0
    x = Scale((t0 - 0.03 * span, t1 + 0.03 * span), (left, right))
    y = Scale((0, 1), (bottom, top))
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        c.line(left, y(t), right, y(t), stroke=GRID)
        c.text(left - 6, y(t) + 4, pct(t, 0), anchor="end", class_="tick")
    c.text(
        14,
        (top + bottom) / 2,
        "share",
        anchor="middle",
        class_="axis-label",
        transform=f"rotate(-90 14 {fmt((top + bottom) / 2)})",
    )
    steps: list[tuple[float, float]] = []
    share = 0.0
    for m in sorted(milestones, key=lambda m: m.at):
        if m.share is not None:
            steps += [(x(m.at.timestamp()), y(share)), (x(m.at.timestamp()), y(m.share))]
            share = m.share
    if steps:
        steps.append((right, y(share)))
        c.polyline([(left, y(0)), *steps], stroke=CANDIDATE_COLOURS[0], stroke_width=2.2)
    colours = {"good": GOOD, "bad": BAD, "info": MUTED}
    for m in milestones:
        px = x(m.at.timestamp())
        colour = colours.get(m.severity, MUTED)
        c.line(px, bottom, px, bottom + 6, stroke=colour)
        if m.severity == "bad":
            c.polygon([(px, bottom - 14), (px - 7, bottom - 2), (px + 7, bottom - 2)], fill=colour)
        c.circle(px, y(m.share) if m.share is not None else bottom, 4.5, fill=colour, stroke="#fff")
    ticks = np.linspace(t0, t1, 5) if t1 > t0 else [t0]
    for t in ticks:
        stamp = datetime.fromtimestamp(float(t), tz=milestones[0].at.tzinfo)
        c.text(x(float(t)), bottom + 20, stamp.strftime("%b %d %H:%M"), anchor="middle", class_="tick")
    c.line(left, bottom, right, bottom, stroke=AXIS)
    return c.render()
