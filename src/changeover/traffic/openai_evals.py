"""OpenAI Evals samples (the ``evals`` registry's JSONL): ``{"input": [messages] or "prompt", "ideal": ...}``.

``ideal`` (a string, or a list of acceptable answers of which the first is kept)
becomes the reference; any other string field is a variable and, by --segment path,
a segment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from changeover.traffic.common import Loc, TrafficError, TrafficRow, need, read_json_records, shape_errors
from changeover.traffic.openai_chat import messages_from

NAME = "openai-evals"


def detect(record: Any) -> bool:
    return isinstance(record, dict) and "input" in record and ("ideal" in record or isinstance(record["input"], list))


def convert(path: Path, **_: Any) -> Iterator[TrafficRow]:
    for line, record in read_json_records(path):
        loc = Loc(path, line)
        inp = need(record, "input", loc, (list, str))
        with shape_errors(loc):
            messages = (
                [{"role": "user", "content": inp}] if isinstance(inp, str) else messages_from(inp, loc.at("input"))
            )
        ideal = record.get("ideal")
        if isinstance(ideal, list):
            ideal = str(ideal[0]) if ideal else None
        elif ideal is not None and not isinstance(ideal, str):
            raise TrafficError(f"{loc.field('ideal')} must be a string or a list of strings")
        variables = {k: v for k, v in record.items() if k not in ("input", "ideal", "id")}
        yield TrafficRow(
            item=str(record.get("id") or f"{path.stem}-{line}"),
            messages=messages,
            segment={"request_type": "eval"},
            reference=ideal,
            variables=variables,
            source=str(loc),
            raw=record,
        )
