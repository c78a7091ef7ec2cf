"""Deterministic checks over an agent's tool use, against the tool definitions and the incumbent's calls.

The incumbent's calls are those recorded in the traffic for the evaluated
turn (else the incumbent's own calls in this run). Each check gives 1/0, or
None with the reason when it does not apply, so each can be a dimension and
calibrated against human labels like any other signal:

- ``tool_called``: the expected tool was called (``tool:`` names it; default:
  every tool the incumbent called); None where the request does not offer the named tool;
- ``tool_arguments``: every call names a defined tool and its arguments
  validate against that tool's JSON schema (``parameters``);
- ``tool_abstain``: no tool calls where the incumbent made none;
- ``tool_count``: as many calls as the incumbent;
- ``tool_order``: the same tools in the same order (``arguments: true``: with
  equivalent arguments too).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from changeover.judges.base import Case, Verdict
from changeover.providers.toolcalls import ToolCall, same_call, tool_calls, tool_names


def _names(calls: list[ToolCall]) -> list[str]:
    return [c.name for c in calls]


def _reference(case: Case) -> list[ToolCall] | None:
    return case.incumbent_tool_calls


def tool_called(case: Case, cfg: dict[str, Any]) -> Verdict:
    if cfg.get("tool"):
        defined = tool_names(case.tools)
        if cfg["tool"] not in defined:  # the model could not have called it (or 'tool:' is misspelled)
            offered = ", ".join(defined) or "no tools"
            return Verdict(None, f"the request does not define '{cfg['tool']}' (it offers: {offered})")
    expected = [cfg["tool"]] if cfg.get("tool") else list(dict.fromkeys(_names(_reference(case) or [])))
    if not expected:
        return Verdict(None, "no tool expected: the incumbent called none (name one with 'tool:')")
    missing = [t for t in expected if t not in _names(case.tool_calls)]
    if missing:
        return Verdict(0, f"did not call {', '.join(missing)} (called: {', '.join(_names(case.tool_calls)) or 'none'})")
    return Verdict(1, f"called {', '.join(expected)}")


def tool_arguments(case: Case, _cfg: dict[str, Any]) -> Verdict:
    import jsonschema

    if not case.tool_calls:
        return Verdict(None, "no tool calls to check")
    defined = tool_names(case.tools)
    for i, call in enumerate(case.tool_calls):
        if call.name not in defined:
            return Verdict(0, f"call {i + 1}: '{call.name}' is not a defined tool")
        if not call.arguments_json:
            return Verdict(0, f"call {i + 1} ({call.name}): arguments are not valid JSON")
        schema = defined[call.name].get("parameters") or defined[call.name].get("input_schema") or {}
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(call.arguments), key=str)
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
            return Verdict(0, f"call {i + 1} ({call.name}): schema violation at {where}: {errors[0].message[:120]}")
    return Verdict(1, f"{len(case.tool_calls)} call(s) valid")


def tool_abstain(case: Case, _cfg: dict[str, Any]) -> Verdict:
    ref = _reference(case)
    if ref is None:
        return Verdict(None, "no incumbent calls to compare with")
    if ref:
        return Verdict(None, "the incumbent called tools here")
    if case.tool_calls:
        return Verdict(0, f"called {', '.join(_names(case.tool_calls))} where the incumbent called none")
    return Verdict(1, "no calls, like the incumbent")


def tool_count(case: Case, _cfg: dict[str, Any]) -> Verdict:
    ref = _reference(case)
    if ref is None or (not case.tools and not ref and not case.tool_calls):
        return Verdict(None, "no tools in the request")
    ok = len(case.tool_calls) == len(ref)
    return Verdict(int(ok), f"{len(case.tool_calls)} call(s), the incumbent {len(ref)}")


def tool_order(case: Case, cfg: dict[str, Any]) -> Verdict:
    ref = _reference(case)
    if ref is None or (not case.tools and not ref and not case.tool_calls):
        return Verdict(None, "no tools in the request")
    mine, theirs = _names(case.tool_calls), _names(ref)
    if mine != theirs:
        return Verdict(0, f"called [{', '.join(mine)}], the incumbent [{', '.join(theirs)}]")
    if cfg.get("arguments"):
        for i, (a, b) in enumerate(zip(case.tool_calls, ref, strict=True)):
            if not same_call(a, b):
                return Verdict(0, f"call {i + 1} ({a.name}): arguments differ from the incumbent's")
    return Verdict(1, f"same calls in the same order: [{', '.join(mine)}]")


TOOL_CHECKS: dict[str, Callable[[Case, dict[str, Any]], Verdict]] = {
    "tool_called": tool_called,
    "tool_arguments": tool_arguments,
    "tool_abstain": tool_abstain,
    "tool_count": tool_count,
    "tool_order": tool_order,
}


def _recorded_calls(record: Any) -> list[str] | None:
    """The tool names a record's model called (``extra.tool_calls``), or None when it records none."""
    raw = (record.extra or {}).get("tool_calls")
    return None if raw is None else [c.name for c in tool_calls(raw)]


def _within(short: list[str], long: list[str]) -> bool:
    """``short`` is ``long`` with some calls left out (order kept)."""
    it = iter(long)
    return len(short) < len(long) and all(name in it for name in short)


def tool_agreement(records: Iterable[Any], incumbent: str) -> dict[str, dict[str, Any]]:
    """Per candidate, over the items both it and the incumbent answered with recorded tool calls: the
    share that called the same tools in the same order (``same``), left out some of the incumbent's
    calls (``dropped``; none where it called some included), made calls beyond the incumbent's
    (``added``; some where it called none included), or called others (``different``).
    Empty when no record carries tool calls."""
    mine: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for r in records:
        if (names := _recorded_calls(r)) is not None:
            mine[r.model].setdefault(r.item, names)
    reference = mine.pop(incumbent, {})
    out: dict[str, dict[str, Any]] = {}
    for candidate, calls in sorted(mine.items()):
        counts = {"same": 0, "dropped": 0, "added": 0, "different": 0}
        for item, names in calls.items():
            if item not in reference:
                continue
            ref = reference[item]
            kind = (
                "same"
                if names == ref
                else "dropped"
                if _within(names, ref)
                else "added"
                if _within(ref, names)
                else "different"
            )
            counts[kind] += 1
        paired = sum(counts.values())
        if paired:
            out[candidate] = {"pairs": paired, **{k: v / paired for k, v in counts.items()}}
    return out
