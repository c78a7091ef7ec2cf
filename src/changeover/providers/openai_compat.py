"""OpenAI-compatible chat completions: hosted APIs, vLLM, Ollama, llama.cpp, any base URL."""

from __future__ import annotations

from typing import Any

from changeover.providers.base import CallFailed, ChatRequest, Completion
from changeover.providers.http import make_client, post_json

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider:
    """``POST {base_url}/chat/completions`` with httpx; one call per ``complete``."""

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, timeout_s: float = 60.0):
        self.model = model
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
        data, latency_ms = await post_json(self._client, "chat/completions", self.body(request))
        return parse_chat_completion(data, latency_ms)

    async def aclose(self) -> None:
        await self._client.aclose()


def parse_chat_completion(data: dict[str, Any], latency_ms: float) -> Completion:
    """A chat.completion JSON object -> Completion; a body without a choice is malformed."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CallFailed("malformed response body (no 'choices')", retryable=True)
    choice = choices[0]
    message = choice.get("message") or {}
    usage = data.get("usage") or {}
    return Completion(
        text=message.get("content") if isinstance(message.get("content"), str) else None,
        finish_reason=choice.get("finish_reason"),
        tokens_in=usage.get("prompt_tokens"),
        tokens_out=usage.get("completion_tokens"),
        latency_ms=latency_ms,
        tool_calls=message.get("tool_calls") or None,
    )
