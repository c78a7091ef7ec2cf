"""Mirrored pairs as records for ``changeover assess``: one record per model per request.

Each request becomes an item answered by the incumbent and the candidate, in
segment ``request_type``, with the gateway's deterministic signals:
``equivalent`` (the candidate's answer matches the incumbent's), ``answered``
(no error, no refusal) and ``format_kept`` (no format drift), plus ``refused``
in the record's extra fields. A spec dimension
whose ``signal`` names one of these can be assessed on live traffic.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from changeover.records import Record, write_records
from changeover.shadowlog.answers import Answer, Pair
from changeover.shadowlog.checks import equivalent, format_drift
from changeover.shadowlog.requests import last_user_message

GATEWAY_SIGNALS = ("equivalent", "answered", "format_kept")
JUDGED_SOURCE = "gateway:shadow"  # the store source of the judging worker's records (shadow.judging)


def _record(a: Answer, signals: dict[str, int], prompt: str | None) -> Record:
    return Record(
        item=a.request_id,
        model=a.model,
        segment={"request_type": a.request_type},
        signals=signals,
        prompt=prompt,
        response=a.text,
        latency_ms=a.latency_ms,
        tokens_in=None if a.tokens_in is None else float(a.tokens_in),
        tokens_out=None if a.tokens_out is None else float(a.tokens_out),
        cost_usd=a.cost_usd,
        error=a.error,
        # the plain facts: refusal for the report's refusal rates, whether the token counts are estimates
        extra={
            "refused": bool(a.refusal),
            "tokens_estimated": bool(a.tokens_estimated),
            "prompt_version": a.prompt_version,  # as evaluate's records name it (None: sent as the user's)
        },
    )


def _prompt(a: Answer) -> str | None:
    return (last_user_message(a.request) or None) if a.request else None


def pair_records(pairs: Iterable[Pair]) -> list[Record]:
    out: list[Record] = []
    for p in pairs:
        inc, cand = p.incumbent, p.candidate
        answered = {m: int(a.ok and not a.refusal) for m, a in (("i", inc), ("c", cand))}
        same = int(inc.ok and cand.ok and equivalent(inc.text, cand.text))
        kept = int(not (inc.ok and cand.ok and format_drift(inc.text, cand.text)))
        prompt = _prompt(inc)
        out.append(_record(inc, {"equivalent": 1, "answered": answered["i"], "format_kept": 1}, prompt))
        out.append(_record(cand, {"equivalent": same, "answered": answered["c"], "format_kept": kept}, prompt))
    return out


def export_pairs(pairs: Iterable[Pair], path: str | Path) -> int:
    """Write the pairs as a JSONL records file; returns the number of records."""
    return write_records(pair_records(pairs), path)
