"""OpenAI Batch API files: the input JSONL (``custom_id``, ``method``, ``url``, ``body``), joined with the
output JSONL (``custom_id``, ``response.body``) when given, by ``custom_id``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from changeover.traffic.common import TrafficError, TrafficRow, json_objects, need, shape_errors
from changeover.traffic.openai_chat import row_from_body

NAME = "openai-batch"
CHAT_URL = "/v1/chat/completions"


def detect(record: Any) -> bool:
    return isinstance(record, dict) and "custom_id" in record and ("body" in record or "response" in record)


def _responses(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for loc, record in json_objects(path, "a batch output line"):
        with shape_errors(loc):
            cid = need(record, "custom_id", loc, str)
            response = record.get("response")
            if isinstance(response, dict) and response.get("status_code") == 200:
                out[cid] = response.get("body")
            elif record.get("error") or isinstance(response, dict):
                out[cid] = {"error": record.get("error") or (response or {}).get("body")}
    return out


def convert(path: Path, responses: Path | None = None, **_: Any) -> Iterator[TrafficRow]:
    answers = _responses(responses) if responses is not None else {}
    for loc, record in json_objects(path, "a batch line"):
        if "body" not in record and "response" in record:
            raise TrafficError(
                f"{loc}: this is a Batch *output* line (it has 'response', no 'body'); import the batch input "
                "file and pass this file with --responses"
            )
        cid = need(record, "custom_id", loc, str)
        url = record.get("url", CHAT_URL)
        if url != CHAT_URL:
            raise TrafficError(f"{loc.field('url')}: only {CHAT_URL} requests are traffic, got {url!r}")
        body = need(record, "body", loc, dict)
        with shape_errors(loc):
            yield row_from_body(body, cid, loc.at("body"), record, answers.get(cid))
