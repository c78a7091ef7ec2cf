"""Logged production interactions (the prompts the product sent), read and validated line by line.

One JSON object per line (or a CSV / Parquet row):

    {"item": "t-0001", "segment": {"region": "emea", "type": "billing"},
     "messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}],
     "tools": [...], "params": {"temperature": 0.2, "max_tokens": 300},
     "prompt_id": "support-answer", "variables": {"question": "..."},
     "reference": "...", "expect_refusal": false}

``prompt`` (a plain string) may replace ``messages``; ``prompt_id`` +
``variables`` may replace both when the prompt registry has a template.
A bad line raises ``RecordsError`` naming file:line and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from changeover.config import format_validation_error
from changeover.errors import RecordsError, where
from changeover.records import iter_rows


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str = Field(pattern="^(system|developer|user|assistant|tool)$")
    content: Any = None


class LoggedInteraction(BaseModel):
    """The validation model of one line; unknown fields are kept (``meta``)."""

    model_config = ConfigDict(extra="allow")

    item: str = Field(min_length=1)
    segment: dict[str, str] = Field(default_factory=dict)
    messages: list[Message] | None = None
    prompt: str | None = None
    tools: list[dict[str, Any]] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    prompt_id: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    reference: str | None = None
    expect_refusal: bool | None = None
    weight: float | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "item" not in data and "id" in data:
                data["item"] = data.pop("id")
            for key in ("messages", "tools", "params", "variables", "segment"):
                if isinstance(data.get(key), str) and data[key].strip()[:1] in "[{":
                    try:
                        data[key] = json.loads(data[key])
                    except json.JSONDecodeError:
                        pass
            if data.get("item") is not None and not isinstance(data["item"], str):
                data["item"] = str(data["item"])
        return data

    @field_validator("segment", mode="before")
    @classmethod
    def _segment_text(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): str(x) for k, x in v.items() if x is not None}
        return v

    @model_validator(mode="after")
    def _has_a_request(self) -> LoggedInteraction:
        if not self.messages and not self.prompt and not (self.prompt_id and self.variables):
            raise ValueError("a line needs 'messages', 'prompt', or 'prompt_id' with 'variables'")
        if self.messages is not None and not any(m.role == "user" for m in self.messages):
            raise ValueError("'messages' has no user message")
        check_tool_turns(self.messages or [])
        return self


def check_tool_turns(messages: list[Message]) -> None:
    """Assistant ``tool_calls`` are calls with an id and a function name; every ``tool`` message
    answers one of them by ``tool_call_id`` (what the replay of an agent's turn relies on)."""
    ids: set[str] = set()
    for i, m in enumerate(messages):
        extra = m.model_extra or {}
        calls = extra.get("tool_calls")
        if m.role == "assistant" and calls is not None:
            if not isinstance(calls, list):
                raise ValueError(f"messages.{i}.tool_calls must be a list of calls")
            for j, call in enumerate(calls):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not fn.get("name") or not call.get("id"):
                    raise ValueError(
                        f"messages.{i}.tool_calls.{j} needs 'id' and 'function': {{'name', 'arguments'}} "
                        "(the OpenAI chat format)"
                    )
                ids.add(str(call["id"]))
        if m.role == "tool":
            answered = extra.get("tool_call_id")
            if not answered:
                raise ValueError(f"messages.{i}: a 'tool' message needs 'tool_call_id' (the call it answers)")
            if str(answered) not in ids:
                raise ValueError(f"messages.{i}.tool_call_id '{answered}' answers no earlier assistant tool call")


@dataclass(slots=True)
class Interaction:
    """One logged production interaction, ready to be sent to any model."""

    item: str
    messages: list[dict[str, Any]]
    segment: dict[str, str] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    prompt_id: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    expect_refusal: bool | None = None
    weight: float | None = None
    source: str = ""  # file:line, for messages

    @property
    def prompt_text(self) -> str:
        """The last user turn as text (what judges and annotators read as the request)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return content_text(m.get("content"))
        return ""


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def interaction_from_row(row: dict[str, Any], loc: str) -> Interaction:
    try:
        parsed = LoggedInteraction.model_validate(row)
    except ValidationError as exc:
        raise RecordsError(format_validation_error(exc, loc)) from None
    if parsed.messages:
        messages = [m.model_dump(exclude_none=True) for m in parsed.messages]
    elif parsed.prompt:
        messages = [{"role": "user", "content": parsed.prompt}]
    else:
        messages = []  # rendered from the registry template
    return Interaction(
        parsed.item,
        messages,
        parsed.segment,
        parsed.tools,
        parsed.params,
        parsed.prompt_id,
        parsed.variables,
        parsed.reference,
        parsed.expect_refusal,
        parsed.weight,
        loc,
    )


def read_interactions(path: str | Path) -> list[Interaction]:
    """Read a logged-traffic file; the first bad line raises with file:line; items must be unique."""
    path = Path(path)
    out: list[Interaction] = []
    seen: dict[str, str] = {}
    for lineno, row in iter_rows(path, required=("item",)):
        loc = where(path, lineno)
        if not isinstance(row, dict):
            raise RecordsError(f"{loc}: a line must be a JSON object, got {type(row).__name__}")
        interaction = interaction_from_row(row, loc)
        if interaction.item in seen:
            raise RecordsError(
                f"{loc}: field 'item': '{interaction.item}' is already used at "
                f"{seen[interaction.item]}; give every interaction its own id"
            )
        seen[interaction.item] = loc
        out.append(interaction)
    if not out:
        raise RecordsError(f"{path}: no interactions in the file")
    return out
