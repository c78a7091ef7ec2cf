"""The report's "Choosing a candidate" section, from real records with costs (tests/pick's migration: a
cheaper candidate that still needs labels, a dearer GO one, a NO-GO one): pick's ranking, and the
quality-cost plot with one marker per candidate, the incumbent, the Pareto front and labelled axes."""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree

import pytest
import yaml
from tests.pick.test_pick import SPEC, _records
from tests.report.test_browser import browser_page  # noqa: F401 (the fixture)

from changeover.assess import assess
from changeover.cli import run
from changeover.config import spec_from_dict
from changeover.pick import pick
from changeover.pick.report import cost_text, pick_json, pick_markdown
from changeover.records import Record, write_records
from changeover.report import build_report, write_report
from changeover.report.costplot import CostPoint, quality_cost_plot

QC_SVG = re.compile(r'<svg class="plot quality-cost".*?</svg>', re.S)


@pytest.fixture(scope="module")
def chosen():
    spec = spec_from_dict(dict(SPEC), "migration.yaml")
    records = _records()
    assessment = assess(spec, records)
    return spec, records, assessment, build_report(assessment, spec, records)


def _plot(html: str) -> ElementTree.Element:
    found = QC_SVG.findall(html)
    assert len(found) == 1, "one panel for the one required dimension"
    return ElementTree.fromstring(found[0])


def _markers(root: ElementTree.Element, kind: str) -> dict[str, ElementTree.Element]:
    return {e.get("data-option"): e for e in root.iter() if f"marker {kind}" in (e.get("class") or "")}


def test_the_section_lists_picks_ranking(chosen, sections):
    spec, records, assessment, report = chosen
    html = report.html()
    expected = pick(assessment, records)
    assert "choosing" in sections(html)
    # after the verdict, before the first candidate's section
    assert html.index('id="verdict"') < html.index('id="choosing"') < html.index('<section id="dear"')
    section = html[html.index('id="choosing"') : html.index("</section>", html.index('id="choosing"'))]
    rows = re.findall(r'<tr data-candidate="([^"]+)">(.*?)</tr>', section, re.S)
    assert [name for name, _ in rows] == [c.candidate for c in expected.ranked] == ["dear", "cheap", "broken"]
    for (_, cells), c in zip(rows, expected.ranked, strict=True):
        assert c.verdict.value in cells and cost_text(c.costs.cost) in cells and cost_text(c.saving) in cells
        assert f"{c.costs.p95_latency_ms:,.0f} ms" in cells
        assert ("<td>yes</td>" in cells) == c.on_front
    assert "<b>Pick: dear</b>" in section and f"saving {cost_text(expected.recommended.saving)} per month" in section
    assert pick_markdown(expected) in report.markdown()  # the pull-request summary: pick's own ranking
    assert "Cheaper but undecided: <b>cheap</b>" in section and "label next: q" in section
    assert f"costs {cost_text(expected.incumbent.cost)} per month" in section
    assert report.to_json()["report"]["choosing"] == pick_json(expected)


def test_the_section_matches_the_pick_command(chosen, tmp_path, monkeypatch, capsys):
    spec, records, _, report = chosen
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(SPEC))
    write_records(records, tmp_path / "r.jsonl")
    assert run(["pick", "--spec", "m.yaml", "--records", "r.jsonl", "--json", "pick.json"]) == 0
    out = capsys.readouterr().out
    command = json.loads((tmp_path / "pick.json").read_text())
    section = report.to_json()["report"]["choosing"]
    assert [c["candidate"] for c in command["ranked"]] == [c["candidate"] for c in section["ranked"]]
    for a, b in zip(command["ranked"], section["ranked"], strict=True):
        assert (a["verdict"], a["on_pareto_front"]) == (b["verdict"], b["on_pareto_front"])
        assert a["cost"] == pytest.approx(b["cost"]) and a["saving"] == pytest.approx(b["saving"])
    assert command["recommended"] == section["recommended"] == "dear"
    row = next(r for r in report.choosing.rows if r.candidate == "dear")
    printed = " ".join(out.split())  # the same numbers, printed the same way (lines joined where rich wrapped)
    assert f"pick: dear (GO, saving {row.saving} per month)" in printed
    assert f"incumbent old: {report.choosing.incumbent_cost} per month" in printed


def test_the_plot_has_a_marker_per_candidate_the_incumbent_the_front_and_axis_labels(chosen):
    _, _, _, report = chosen
    root = _plot(report.html())
    candidates = _markers(root, "candidate")
    assert set(candidates) == {"dear", "cheap", "broken"} and len(_markers(root, "candidate")) == 3
    assert sum("marker candidate" in (e.get("class") or "") for e in root.iter()) == 3
    incumbent = _markers(root, "incumbent")
    assert list(incumbent) == ["old"] and incumbent["old"].tag == "polygon"
    on_front = {name for name, e in candidates.items() if "front" in e.get("class").split()}
    assert on_front == {"dear", "cheap"}  # broken: dearer and worse than cheap; old: dearer and no better
    assert "front" not in incumbent["old"].get("class").split()
    # cost on x (log scale: cheap < broken < dear < old), delta on y (broken far below)
    x = {name: float(e.get("cx")) for name, e in candidates.items()}
    y = {name: float(e.get("cy")) for name, e in candidates.items()}
    old_x = float(incumbent["old"].get("points").split()[0].split(",")[0]) + 7
    assert x["cheap"] < x["broken"] < x["dear"] < old_x
    assert y["broken"] > y["cheap"] > y["dear"]
    texts = [t.text for t in root.iter("text")]
    assert "cost per month at 1,000,000 interactions (USD)" in texts
    assert "Δ correctness pass rate vs old (pts)" in texts
    assert {"GO", "NEED-LABELS", "NO-GO", "incumbent", "ringed: Pareto front"} <= set(texts)
    assert "margin −5.0 pts" in texts and {"$100", "$1k", "$10k"} <= set(texts)
    assert len(root.findall("polyline")) == 1  # the front, joined
    tips = [t.text for t in root.iter("title")]
    assert any(t.startswith("cheap (NEED-LABELS): $90") and "on the Pareto front" in t for t in tips)


def test_no_costs_no_section(chosen, sections):
    spec, records, assessment, _ = chosen
    bare = [Record(item=r.item, model=r.model, signals=r.signals, labels=r.labels) for r in records]
    report = build_report(assessment, spec, bare)
    assert report.choosing is None and "choosing" not in sections(report.html())
    assert report.to_json()["report"]["choosing"] is None


def test_close_costs_use_a_linear_axis_and_an_empty_plot_says_so():
    options = [
        CostPoint("old", "incumbent", 100.0, 95.0, 105.0, 0.0, 0.0, 0.0, False),
        CostPoint("a", "GO", 80.0, 78.0, 82.0, 0.02, -0.01, 0.05, True),
        CostPoint("b", "NO-GO", 120.0, 110.0, 130.0, -0.08, -0.11, -0.05, False),
    ]
    root = ElementTree.fromstring(str(quality_cost_plot(options, 0.02, "q", "cost", "delta")))
    ticks = [t.text for t in root.iter("text") if t.get("class") == "tick" and t.text.startswith("$")]
    assert ticks and all(t in {"$80", "$90", "$100", "$110", "$120", "$130", "$75", "$125"} for t in ticks)
    assert "NEED-LABELS" not in [t.text for t in root.iter("text")]  # only the verdicts present
    empty = str(quality_cost_plot([], 0.02, "q", "cost", "delta"))
    assert "no option with a known cost" in empty


@pytest.mark.browser
def test_the_plot_is_visible_and_fits_a_400px_screen(chosen, browser_page, tmp_path):  # noqa: F811
    spec, records, assessment, _ = chosen
    out = write_report(assessment, spec, tmp_path / "report.html", records=records)
    page = browser_page
    page.goto(out.as_uri(), wait_until="load")
    plot = page.locator("svg.quality-cost")
    assert plot.count() == 1 and plot.is_visible()
    box = plot.bounding_box()
    assert box and box["width"] > 400 and box["height"] > 200
    assert page.locator("svg.quality-cost .marker.candidate").count() == 3
    page.set_viewport_size({"width": 400, "height": 900})
    plot.scroll_into_view_if_needed()
    assert plot.is_visible()
    fit = page.evaluate(
        """() => { const s = document.querySelector('#choosing');
                   const r = s.querySelector('svg').getBoundingClientRect();
                   return {scroll: s.scrollWidth, client: s.clientWidth, right: r.right, width: r.width}; }"""
    )
    assert fit["scroll"] <= fit["client"], fit  # nothing in the section overflows sideways (the table scrolls)
    assert fit["right"] <= 400 and fit["width"] > 300, fit


def test_one_panel_per_required_dimension(sections):
    """The rendering fixture's three dimensions, one of them not required: two panels, front over both."""
    from tests.report.conftest import SPEC as REPORT_SPEC
    from tests.report.conftest import make_assessment, make_records

    raw = {**REPORT_SPEC, "dimensions": {**REPORT_SPEC["dimensions"]}}
    raw["dimensions"]["style"] = {**raw["dimensions"]["style"], "required": False}
    spec = spec_from_dict(raw, "migration.yaml")
    report = build_report(make_assessment(spec), spec, make_records(spec, shadow=True))
    html = report.html()
    panels = QC_SVG.findall(html)
    assert [p.dimension for p in report.choosing.panels] == ["correctness", "refusal"] and len(panels) == 2
    for svg, dim in zip(panels, ["correctness", "refusal"], strict=True):
        root = ElementTree.fromstring(svg)
        assert set(_markers(root, "candidate")) == {"cand-a", "cand-b"} and list(_markers(root, "incumbent")) == [
            "legacy-model"
        ]
        assert f"Δ {dim} pass rate vs legacy-model (pts)" in [t.text for t in root.iter("text")]
    # cand-a costs a third of cand-b per response and is better: cand-b is dominated
    assert {r.candidate: r.on_front for r in report.choosing.rows} == {"cand-a": True, "cand-b": False}
    assert "choosing" in sections(html)
