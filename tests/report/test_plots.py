"""The SVG plotting code on its own: valid markup, the margin drawn, densities that integrate."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import numpy as np

from changeover.report import plots
from changeover.report.density import kde
from changeover.report.svg import Canvas, nice_ticks


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # well-formed XML or this raises


def test_canvas_escapes_text_and_attributes():
    c = Canvas(100, 50, 'a <b> & "c"')
    c.text(1, 2, "<script>alert(1)</script>")
    svg = str(c.render())
    assert "<script>" not in svg
    root = parse(svg)
    assert root.find("title").text == 'a <b> & "c"'


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 1, 5) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = nice_ticks(-0.047, 0.031, 5)
    assert ticks[0] >= -0.047 and ticks[-1] <= 0.031 and 0 in ticks


def test_kde_integrates_to_one_and_peaks_at_the_mode():
    draws = np.random.default_rng(0).normal(0.3, 0.02, 4000)
    grid, dens = kde(draws, 0.1, 0.5)
    assert abs(np.trapezoid(dens, grid) - 1) < 0.02
    assert abs(grid[np.argmax(dens)] - 0.3) < 0.01
    _, spike = kde(np.full(100, 0.2), 0, 1)  # degenerate draws do not crash
    assert spike.max() > 0


def test_density_plot_draws_one_curve_per_series():
    rng = np.random.default_rng(1)
    svg = str(
        plots.density_plot(
            [plots.Series("old", rng.beta(80, 20, 1000), "#111"), plots.Series("new", rng.beta(85, 15, 1000), "#222")],
            "pass rate",
            "rate",
        )
    )
    root = parse(svg)
    assert len(root.findall("polyline")) == 2 and len(root.findall("polygon")) == 2


def test_forest_plot_draws_the_margin_and_colours_by_evidence():
    rows = [
        plots.ForestRow("emea", -0.06, -0.09, -0.035, 0.3),  # regression: wholly beyond the margin
        plots.ForestRow("na", 0.01, -0.005, 0.02, 0.5),  # non-inferior
        plots.ForestRow("overall", -0.01, -0.04, 0.01, overall=True),
    ]
    svg = str(plots.forest_plot(rows, 0.02, "delta"))
    parse(svg)
    assert "margin −2.0 pts" in svg
    assert 'stroke-dasharray="5 3"' in svg  # the margin line
    assert plots.BAD in svg and plots.GOOD in svg and plots.WARN in svg
    assert svg.count("<circle") == 2 and svg.count("<title>") == 4  # plot title + one tooltip per row


def test_heatmap_histogram_box_and_timeline_render():
    parse(str(plots.heatmap(np.array([[0.9, 0.1], [0.2, 0.8]]), ["bad", "good"], ["fail", "pass"], "h", "m")))
    parse(str(plots.histogram(np.random.default_rng(2).random(100), "h", "x", bounds=(0, 1))))
    parse(str(plots.histogram(np.array([]), "empty", "x")))
    latency = np.random.default_rng(3).lognormal(6, 0.4, 500)
    svg = str(
        plots.box_plot(
            [plots.Distribution("a", latency, "#123"), plots.Distribution("b", np.array([]), "#456")], "latency", "ms"
        )
    )
    parse(svg)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    steps = [
        plots.Milestone(t0 + timedelta(hours=h), k, k, s, sev)
        for h, k, s, sev in [(0, "stage", 0.05, "good"), (5, "rollback", 0.0, "bad"), (9, "stage", 0.25, "good")]
    ]
    svg = str(plots.timeline_plot(steps, "rollout"))
    parse(svg)
    assert len(re.findall(r"<polygon", svg)) == 1  # the rollback marker
