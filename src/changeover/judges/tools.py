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

from collections.abc import Callable
from typing import Any

from changeover.judges.base import Case, Verdict
from changeover.providers.toolcalls import ToolCall, same_call, tool_names


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
