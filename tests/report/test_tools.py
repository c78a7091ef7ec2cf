"""Tool-call agreement between incumbent and candidate records (judges.tools.tool_agreement)."""

from __future__ import annotations

from changeover.judges.tools import tool_agreement
from changeover.records import Record
from changeover.report import build_report


def calls(*names: str) -> dict:
    return {"tool_calls": [{"name": n, "arguments": {"city": "Paris"}} for n in names], "tool_status": "complete"}


def test_a_candidate_dropping_one_of_two_calls_is_counted_as_a_drop():
    records = [
        Record("trip", "old", extra=calls("get_weather", "book_table")),
        Record("trip", "new", extra=calls("get_weather")),  # drops book_table
        Record("hello", "old", extra=calls()),
        Record("hello", "new", extra=calls()),
        Record("ask", "old", extra=calls()),
        Record("ask", "new", extra=calls("search")),
        Record("swap", "old", extra=calls("a", "b")),
        Record("swap", "new", extra=calls("b", "a")),
        Record("text-only", "old"),  # no tool calls recorded: not a pair
        Record("text-only", "new"),
    ]
    got = tool_agreement(records, "old")
    assert got == {"new": {"pairs": 4, "same": 0.25, "dropped": 0.25, "added": 0.25, "different": 0.25}}


def test_no_tool_calls_means_no_agreement_section():
    assert tool_agreement([Record("a", "old"), Record("a", "new")], "old") == {}


def test_the_report_shows_a_dropped_tool_call_only_when_records_have_tool_calls(spec, assessment, records):
    plain = build_report(assessment, spec, records)
    assert plain.tools == [] and 'id="tools"' not in plain.html()
    candidate = spec.candidates[0]
    agent = [
        Record("agent-trip", spec.incumbent, extra=calls("get_weather", "book_table")),
        Record("agent-trip", candidate, extra=calls("get_weather")),  # silently stops booking
    ]
    report = build_report(assessment, spec, [*records, *agent])
    html = report.html()
    section = html[html.index('<section id="tools">') : html.index("</section>", html.index('<section id="tools">'))]
    row = f"<tr><td>{candidate}</td><td>1</td><td>0.0%</td><td>100.0%</td><td>0.0%</td><td>0.0%</td></tr>"
    assert "Tool calls" in section and row in section
    assert report.to_json()["report"]["tools"][0]["dropped"] == 1.0
