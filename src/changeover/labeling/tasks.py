"""The catalogue of labelling tasks: one task per (item, model) response of the spec's models.

A task is shown blind, so it is addressed by an opaque id (a keyed hash of
item and model) that reveals neither the model nor the import order. A
configurable share of items is marked for two annotators, to measure
agreement.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from changeover.store import Store
from changeover.store.schema import responses

TaskKey = tuple[str, str]  # (item, model)


def response_hash(text: str | None) -> str:
    """sha256 of the exact response text an annotator judged."""
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


def unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts`` (stable across processes and runs)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    item: str
    model: str
    prompt: str | None
    response: str | None
    reference: str | None
    response_hash: str
    external: int  # verdicts already carried by the imported record (fewest over the dimensions)
    needed: int  # annotators wanted: 1, or 2 for the double-labelled share

    @property
    def key(self) -> TaskKey:
        return (self.item, self.model)

    def messages(self) -> list[Message]:
        """The interaction as a conversation: a JSON list of {role, content} or one user turn."""
        if not self.prompt:
            return []
        try:
            raw = json.loads(self.prompt)
        except (json.JSONDecodeError, TypeError):
            raw = None
        if isinstance(raw, list) and all(isinstance(m, dict) and ("content" in m or "tool_calls" in m) for m in raw):
            return [_message(m) for m in raw]
        if isinstance(raw, dict) and isinstance(raw.get("messages"), list):
            out = [Message("system", str(raw["system"]))] if raw.get("system") else []
            return out + [_message(m) for m in raw["messages"] if isinstance(m, dict)]
        return [Message("user", self.prompt)]


def _message(m: dict[str, Any]) -> Message:
    """One chat message; an assistant's tool calls are appended as a JSON block, a tool's result is its content."""
    text = _text(m.get("content") or "")
    if m.get("tool_calls"):
        calls = json.dumps(m["tool_calls"], indent=2, ensure_ascii=False)
        text = (text + "\n\n" if text else "") + f"Tool calls:\n\n```json\n{calls}\n```"
    role = str(m.get("role", "user"))
    if role == "tool" and m.get("name"):
        role = f"tool {m['name']}"
    return Message(role, text)


def _text(content: object) -> str:
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return "\n".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return str(content)


class Catalogue:
    """All tasks, by opaque id and by (item, model)."""

    def __init__(self, tasks: Iterable[Task]):
        self.by_key: dict[TaskKey, Task] = {t.key: t for t in tasks}
        self.by_id: dict[str, Task] = {t.id: t for t in self.by_key.values()}
        self.items: set[str] = {t.item for t in self.by_key.values()}

    def __len__(self) -> int:
        return len(self.by_key)

    @classmethod
    def build(
        cls,
        responses: Iterable[StoredResponse],
        models: list[str],
        dimensions: list[str],
        secret: str,
        double_share: float,
        seed: object,
    ) -> Catalogue:
        """Tasks from stored responses (the last stored response of each (item, model) wins).

        ``external`` counts the verdicts that came with the imported record itself
        (the ``responses.labels`` column), never the app's labels: those are read
        with the claims, in one snapshot, by the queue.
        """
        wanted = set(models)
        latest: dict[TaskKey, StoredResponse] = {}
        for rec in responses:
            if rec.model in wanted:
                latest[(rec.item, rec.model)] = rec
        tasks = []
        for (item, model), rec in latest.items():
            tid = hmac.new(secret.encode(), f"{item}\x00{model}".encode(), "sha256").hexdigest()[:20]
            external = max(0, min((len(rec.labels.get(d) or []) for d in dimensions), default=0))
            needed = 2 if unit_hash("double", seed, item) < double_share else 1
            tasks.append(
                Task(
                    tid,
                    item,
                    model,
                    rec.prompt,
                    rec.response,
                    rec.reference,
                    response_hash(rec.response),
                    external,
                    needed,
                )
            )
        return cls(tasks)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One stored response as the catalogue needs it: its text and the labels imported with it."""

    item: str
    model: str
    prompt: str | None
    response: str | None
    reference: str | None
    labels: dict[str, list[int]]


def stored_responses(store: Store, models: list[str]) -> list[StoredResponse]:
    """The stored responses of ``models`` in import order (an item's first sample only), in one query."""
    q = (
        select(responses.c.item, responses.c.model, responses.c.labels, responses.c.payload)
        .where(responses.c.model.in_(models))
        .order_by(responses.c.id)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    out = []
    for r in rows:
        payload = r.payload or {}
        if (payload.get("extra") or {}).get("sample", 0) != 0:
            continue  # an item's repeated samples: annotators judge its first (the one store labels join)
        out.append(
            StoredResponse(
                r.item,
                r.model,
                payload.get("prompt"),
                payload.get("response"),
                payload.get("reference"),
                r.labels or {},
            )
        )
    return out
