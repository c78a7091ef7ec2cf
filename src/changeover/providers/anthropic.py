"""Anthropic's messages API, reached with the same OpenAI-style requests as every provider."""

from __future__ import annotations

from typing import Any

from changeover.providers.base import CallFailed, ChatRequest, Completion
from changeover.providers.http import make_client, post_json
from changeover.providers.toolcalls import tool_calls

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
API_VERSION = "2023-06-01"
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
_PARAMS = {"max_tokens", "temperature", "top_p", "top_k", "metadata"}


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-style turns as Anthropic's: assistant ``tool_calls`` become ``tool_use`` blocks and
    ``tool`` results ``tool_result`` blocks of the next user turn (consecutive results share it)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.get("tool_call_id"), "content": m.get("content") or ""}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif role == "assistant" and m.get("tool_calls"):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m["content"]}] if m.get("content") else []
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments if c.arguments_json else {}}
                for c in tool_calls(m["tool_calls"])
            ]
            out.append({"role": "assistant", "content": blocks})
        elif role in ("user", "assistant"):
            out.append({"role": role, "content": m.get("content") or ""})
    return out


def to_anthropic(model: str, request: ChatRequest) -> dict[str, Any]:
    """OpenAI-style messages -> an Anthropic messages body (system text pulled out, tool turns converted)."""
    # OpenAI's newer models take the system prompt as "developer": to Anthropic it is the system text too
    system = [str(m.get("content") or "") for m in request.messages if m.get("role") in ("system", "developer")]
    messages = _messages(request.messages)
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        **{k: v for k, v in request.params.items() if k in _PARAMS},
    }
    body.setdefault("max_tokens", int(request.params.get("max_completion_tokens") or 1024))
    if "stop" in request.params:
        stop = request.params["stop"]
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if system:
        body["system"] = "\n\n".join(system)
    if request.tools:
        body["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters", {"type": "object"}),
            }
            if "function" in t
            else t
            for t in request.tools
        ]
    return body


class AnthropicProvider:
    """``POST {base_url}/messages`` with the key in ``x-api-key``."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 60.0,
    ):
        self.model = model
        headers = {"anthropic-version": API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self._client = make_client(base_url or DEFAULT_BASE_URL, headers, concurrency, timeout_s)

    async def complete(self, request: ChatRequest) -> Completion:
        data, latency_ms = await post_json(self._client, "messages", to_anthropic(self.model, request))
        content = data.get("content")
        if not isinstance(content, list):
            raise CallFailed("malformed response body (no 'content')", retryable=True)
        text = "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
        tools = [
            {"type": "function", "id": b.get("id"), "function": {"name": b.get("name"), "arguments": b.get("input")}}
            for b in content
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        stop = data.get("stop_reason")
        return Completion(
            text=text,
            finish_reason=_FINISH.get(stop, stop),
            tokens_in=usage.get("input_tokens"),
            tokens_out=usage.get("output_tokens"),
            latency_ms=latency_ms,
            tool_calls=tools or None,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
