"""Replay: answers recorded in a records file, so real model outputs can be re-judged offline.

A request is answered with the recorded response for its ``item``; an item
with no recording fails (not retryable) instead of inventing an answer.
"""

from __future__ import annotations

from pathlib import Path

from changeover.errors import ProviderError
from changeover.providers.base import CallFailed, ChatRequest, Completion
from changeover.records import Record, read_records


class ReplayProvider:
    """Serve ``model``'s recorded responses from ``records`` (a path or loaded records)."""

    def __init__(self, model: str, records: str | Path | list[Record]):
        self.model = model
        rows = read_records(records) if isinstance(records, (str, Path)) else records
        self._answers = {r.item: r for r in rows if r.model == model}
        if not self._answers:
            models = sorted({r.model for r in rows})
            raise ProviderError(
                f"{records if isinstance(records, (str, Path)) else 'records'}: no responses "
                f"of model '{model}' to replay; models there: {', '.join(models[:10])}"
            )

    @property
    def items(self) -> set[str]:
        return set(self._answers)

    async def complete(self, request: ChatRequest) -> Completion:
        rec = self._answers.get(request.item or "")
        if rec is None:
            raise CallFailed(f"no recorded response of '{self.model}' for item '{request.item}'", retryable=False)
        return Completion(
            text=rec.response,
            finish_reason=rec.extra.get("finish_reason", "stop"),
            tokens_in=_int(rec.tokens_in),
            tokens_out=_int(rec.tokens_out),
            latency_ms=rec.latency_ms,
            error=rec.error,
        )

    async def aclose(self) -> None:
        return None


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
