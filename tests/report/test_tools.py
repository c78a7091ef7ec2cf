"""Tool-call agreement between incumbent and candidate records (judges.tools.tool_agreement)."""

from __future__ import annotations

from changeover.judges.tools import tool_agreement
from changeover.records import Record


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
