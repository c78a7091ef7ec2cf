"""Disagreements classified by the comparison judge: counts per class and a few examples of each.

The judging worker stores each compared pair's class with the candidate's
record (``extra.comparison``, see ``shadow.judging``); this module reads them
back for a group of mirrored pairs: how many pairs are equivalent, candidate
better, candidate worse or different, how many the judge could not classify
(``failed``: no readable verdict, never counted as equivalent), how many the
word-similarity pre-filter settled without a judge call, the share equivalent
or better, and up to N examples per class (the request and both answers,
truncated). It also renders them for ``changeover shadow report``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from changeover.judges.comparison import ACCEPTABLE, CLASSES
from changeover.records import Record
from changeover.shadowlog.answers import Pair

FAILED = "failed"
EXAMPLES = 3  # per class, by default
TRUNCATE = 160  # characters of a request or an answer in an example


def truncate(text: str | None, limit: int = TRUNCATE) -> str | None:
    """One line of at most ``limit`` characters (an ellipsis where cut)."""
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _example(pair: Pair, record: Record, compared: dict[str, Any]) -> dict[str, Any]:
    out = {
        "request_id": pair.incumbent.request_id,
        "at": pair.incumbent.at.isoformat(),
        "by": compared.get("by"),
        "request": truncate(record.prompt),
        "incumbent": truncate(pair.incumbent.text),
        "candidate": truncate(pair.candidate.text),
    }
    note = (record.extra.get("unscorable") or {}).get(compared.get("signal"))
    if compared.get("class") is None and note:
        out["note"] = truncate(note)
    return out


def comparison_summary(
    group: Sequence[Pair], records: Mapping[tuple[str, str], Record], examples: int = EXAMPLES
) -> dict[str, Any] | None:
    """The comparison classes of these pairs' judged records; None when none was compared by a judge.
    Examples favour pairs the judge itself classified over those the pre-filter settled."""
    compared: list[tuple[Pair, Record, dict[str, Any]]] = []
    for p in group:
        rec = records.get((p.candidate.request_id, p.candidate.model))
        if rec is not None and isinstance(rec.extra.get("comparison"), dict):
            compared.append((p, rec, rec.extra["comparison"]))
    if not compared:
        return None
    classes = dict.fromkeys(CLASSES, 0)
    shown: dict[str, list[dict[str, Any]]] = {c: [] for c in (*CLASSES, FAILED)}
    failed = prefiltered = 0
    for p, rec, c in sorted(compared, key=lambda x: x[2].get("by") == "prefilter"):
        label = c.get("class")
        prefiltered += c.get("by") == "prefilter"
        if label in classes:
            classes[label] += 1
        else:
            label, failed = FAILED, failed + 1
        if len(shown[label]) < examples:
            shown[label].append(_example(p, rec, c))
    classified = sum(classes.values())
    return {
        "judge": compared[0][2].get("signal"),
        "pairs": len(compared),
        "classes": classes,
        "failed": failed,
        "prefiltered": prefiltered,
        "equivalent_or_better": sum(classes[c] for c in ACCEPTABLE) / classified if classified else None,
        "examples": {k: v for k, v in shown.items() if v},
    }


# ---------------------------------------------------------------------- rendering (shadow report)


def _cell(row: Mapping[str, Any], get: Any) -> str:
    comparison = row.get("comparison")
    return "-" if not comparison else get(comparison)


def _share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


TABLE_LINES: list[tuple[str, Any]] = [
    (
        "judged equivalent / better / worse / different",
        lambda r: _cell(r, lambda c: " / ".join(str(c["classes"][k]) for k in CLASSES)),
    ),
    ("judged equivalent or better", lambda r: _cell(r, lambda c: _share(c["equivalent_or_better"]))),
    ("comparison failed (no readable verdict)", lambda r: _cell(r, lambda c: str(c["failed"]))),
    ("pre-filtered (no judge call)", lambda r: _cell(r, lambda c: f"{c['prefiltered']} of {c['pairs']}")),
]
"""The shadow report table's lines for the comparison judge (a cell per request type)."""


def example_lines(row: Mapping[str, Any], incumbent: str) -> list[str]:
    """The examples of one report row (a candidate's ``all`` row), class by class, as plain text lines."""
    comparison = row.get("comparison")
    if not comparison or not comparison.get("examples"):
        return []
    candidate = row["candidate"]
    counts = {**comparison["classes"], FAILED: comparison["failed"]}
    lines = [f"Disagreements of {candidate} with {incumbent}, classified by the judge '{comparison['judge']}':"]
    for label in (*CLASSES, FAILED):
        shown = comparison["examples"].get(label) or []
        if not shown:
            continue
        n = counts[label]
        lines.append(f"  {label} ({n} pair{'' if n == 1 else 's'}, {len(shown)} shown):")
        for ex in shown:
            by = " (pre-filter)" if ex.get("by") == "prefilter" else ""
            lines.append(f"    {ex['request_id']}{by}  request: {ex['request']}")
            lines.append(f"      {incumbent}: {ex['incumbent']}")
            lines.append(f"      {candidate}: {ex['candidate']}")
            if ex.get("note"):
                lines.append(f"      judge: {ex['note']}")
    return lines
