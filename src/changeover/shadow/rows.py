"""Turn an ``Exchange`` into store rows: parse the answer, detect refusals, cost it, redact it.

Runs in the background writer thread. An answer whose upstream gave no token
counts (a stream without its usage chunk) gets rough counts (characters / 4)
flagged ``tokens_estimated``, never a silent zero. A candidate's answer that
reached a user also yields a contamination-ledger row; a candidate that failed
before answering (the incumbent answered as the fallback) does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from changeover.shadow.config import Upstream
from changeover.shadow.exchange import Exchange
from changeover.shadow.redact import Redactor
from changeover.shadow.wire import estimate_tokens, messages_text, parse_completion, parse_stream
from changeover.shadowlog.checks import is_refusal


def deprecation_row(ex: Exchange) -> dict[str, Any] | None:
    """What the shadow log keeps of a deprecation notice: where it came from, its dates and link."""
    if ex.deprecation is None:
        return None
    notice = ex.deprecation.to_dict()
    return {k: notice[k] for k in ("source", "deprecated_at", "sunset", "link")}


def reached_user(ex: Exchange) -> bool:
    """The model's own answer (whole, or a stream cut short) went to the user: not a transport
    failure, an error status (after a 5xx the incumbent answers as the fallback) or an empty stream."""
    return ex.role == "served" and ex.status is not None and ex.status < 400 and bool(ex.body)


@dataclass
class RowMaker:
    """Knows the prices, the candidates and the redaction rules; makes rows for two tables."""

    upstreams: Mapping[str, Upstream]
    candidates: set[str]
    redactor: Redactor = field(default_factory=lambda: Redactor([]))
    log_requests: bool = True

    def cost(self, model: str, tokens_in: int | None, tokens_out: int | None) -> float | None:
        up = self.upstreams.get(model)
        if up is None or (up.input_per_mtok is None and up.output_per_mtok is None):
            return None
        if tokens_in is None and tokens_out is None:
            return None
        return ((tokens_in or 0) * (up.input_per_mtok or 0.0) + (tokens_out or 0) * (up.output_per_mtok or 0.0)) / 1e6

    def __call__(self, ex: Exchange) -> tuple[dict[str, Any], dict[str, Any] | None]:
        text = tokens_in = tokens_out = finish = None
        error = ex.error
        if ex.body is not None and ex.status is not None and ex.status < 400 and error is None:
            answer = parse_stream(ex.body) if ex.stream else parse_completion(ex.body)
            text, tokens_in, tokens_out, finish = (
                answer.text,
                answer.tokens_in,
                answer.tokens_out,
                answer.finish_reason,
            )
            if answer.malformed:
                error = "malformed: the answer is not a valid chat completion"
        estimated = None
        if text is not None and error is None:
            estimated = tokens_in is None or tokens_out is None
            if tokens_in is None:
                tokens_in = estimate_tokens(messages_text(ex.payload))
            if tokens_out is None:
                tokens_out = estimate_tokens(text)
        elif ex.status is not None and ex.status >= 400 and error is None:
            error = f"http_{ex.status}"
        request = None
        if self.log_requests and ex.payload is not None:
            request = self.redactor.value(ex.payload)
        row = {
            "at": ex.at,
            "request_id": ex.request_id,
            "model": ex.model,
            "role": ex.role,
            "request_type": ex.request_type,
            "subject": ex.subject,
            "stage": ex.stage,
            "weight": ex.weight,
            "stream": ex.stream,
            "request": request,
            "response_text": self.redactor.text(text),
            "status": ex.status,
            "error": error,
            "latency_ms": ex.latency_ms,
            "ttft_ms": ex.ttft_ms,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "tokens_estimated": estimated,
            "cost_usd": self.cost(ex.model, tokens_in, tokens_out),
            "refusal": None if text is None else is_refusal(text),
            "finish_reason": finish,
            "prompt_version": ex.prompt,
            "deprecation": deprecation_row(ex),
        }
        ledger = None
        if ex.model in self.candidates and reached_user(ex):
            ledger = {
                "at": ex.at,
                "subject": ex.subject,
                "candidate": ex.model,
                "request_id": ex.request_id,
                "stage": ex.stage,
                "weight": ex.weight,
            }
        return row, ledger
