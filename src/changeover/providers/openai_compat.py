"""OpenAI-compatible endpoints: hosted APIs, vLLM, Ollama, llama.cpp, any base URL.

``api="chat"`` posts to ``/chat/completions``; ``api="completions"`` posts a
plain-text transcript to ``/completions``, for base models without a chat
template (and legacy completion models), stopping at the next user turn.
"""

from __future__ import annotations

from typing import Any

from changeover.providers.base import CallFailed, ChatRequest, Completion
from changeover.providers.http import make_client, post_json, post_sse

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider:
    """``POST {base_url}/chat/completions`` with httpx; one call per ``complete``."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        api: str = "chat",
        stream: bool = False,
    ):
        self.model = model
        self.api = api
        self.stream = stream
        self.base_url = base_url or DEFAULT_BASE_URL
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = make_client(self.base_url, headers, concurrency, timeout_s)

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": request.messages, **request.params}
        body.pop("stream", None)
        if request.tools:
            body["tools"] = request.tools
        return body

    async def complete(self, request: ChatRequest) -> Completion:
        if self.api == "completions":
            body = {
                "model": self.model,
                "prompt": transcript(request.messages),
                "stop": ["\nUser:", "\nSystem:"],
                **request.params,
            }
            body.pop("stream", None)
            data, latency_ms = await post_json(self._client, "completions", body)
            return parse_text_completion(data, latency_ms)
        if self.stream:
            body = {**self.body(request), "stream": True, "stream_options": {"include_usage": True}}
            events, latency_ms, ttft_ms = await post_sse(self._client, "chat/completions", body)
            return parse_chat_stream(events, latency_ms, ttft_ms)
        data, latency_ms = await post_json(self._client, "chat/completions", self.body(request))
        return parse_chat_completion(data, latency_ms)

    async def aclose(self) -> None:
        await self._client.aclose()


_SPEAKER = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def transcript(messages: list[dict[str, Any]]) -> str:
    """Chat messages as a plain dialogue ending in 'Assistant:', for a text completion model."""
    lines = [f"{_SPEAKER.get(m.get('role', 'user'), 'User')}: {m.get('content') or ''}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def parse_text_completion(data: dict[str, Any], latency_ms: float) -> Completion:
    """A text_completion JSON object -> Completion (leading space of the answer stripped)."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CallFailed("malformed response body (no 'choices')", retryable=True)
    usage = _mapping(data.get("usage"))
    text = choices[0].get("text")
    return Completion(
        text=text.strip() if isinstance(text, str) else None,
        finish_reason=choices[0].get("finish_reason"),
        tokens_in=usage.get("prompt_tokens"),
        tokens_out=usage.get("completion_tokens"),
        latency_ms=latency_ms,
    )


def parse_chat_completion(data: dict[str, Any], latency_ms: float) -> Completion:
    """A chat.completion JSON object -> Completion; a body without a choice is malformed."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CallFailed("malformed response body (no 'choices')", retryable=True)
    choice = choices[0]
    if not isinstance(choice.get("message"), dict):  # not an answer with no text: a body that is no answer
        raise CallFailed("malformed response body (choices[0].message is not an object)", retryable=True)
    message = choice["message"]
    usage = _mapping(data.get("usage"))
    return Completion(
        text=message.get("content") if isinstance(message.get("content"), str) else None,
        finish_reason=choice.get("finish_reason"),
        tokens_in=usage.get("prompt_tokens"),
        tokens_out=usage.get("completion_tokens"),
        latency_ms=latency_ms,
        tool_calls=message.get("tool_calls") or None,
    )


def parse_chat_stream(events: list[dict[str, Any]], latency_ms: float, ttft_ms: float | None) -> Completion:
    """chat.completion.chunk events -> one Completion (text joined, tool calls assembled from their
    pieces by index, last finish reason, usage if sent)."""
    parts: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    usage: dict[str, Any] = {}
    for event in events:
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = _mapping(choice.get("delta"))
            content = delta.get("content")
            if isinstance(content, str):
                parts.append(content)
            for piece in delta.get("tool_calls") or []:
                if isinstance(piece, dict):
                    _add_call_piece(calls, piece)
            finish = choice.get("finish_reason") or finish
        usage = _mapping(event.get("usage")) or usage
    if not events:
        raise CallFailed("malformed stream (no events)", retryable=True)
    return Completion(
        text="".join(parts) if parts or not calls else None,
        finish_reason=finish,
        tokens_in=usage.get("prompt_tokens"),
        tokens_out=usage.get("completion_tokens"),
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        tool_calls=[calls[i] for i in sorted(calls)] or None,
    )


def _add_call_piece(calls: dict[int, dict[str, Any]], piece: dict[str, Any]) -> None:
    """One streamed fragment of a tool call: the first carries its id and name, later ones more arguments."""
    given = piece.get("index")
    index = given if isinstance(given, int) else len(calls)
    call = calls.setdefault(index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if piece.get("id"):
        call["id"] = piece["id"]
    fn = _mapping(piece.get("function"))
    if fn.get("name"):
        call["function"]["name"] += str(fn["name"])
    if isinstance(fn.get("arguments"), str):
        call["function"]["arguments"] += fn["arguments"]


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else empty: an odd body is read as missing, never a crash."""
    return value if isinstance(value, dict) else {}
