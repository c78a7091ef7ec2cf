"""Providers against a real HTTP server on loopback: wire protocol, retries, limits, failures, keys."""

from __future__ import annotations

import asyncio
import time

import pytest

from changeover.errors import ProviderError
from changeover.providers import ChatRequest, ModelClient, ModelConfig, Price, build_provider
from changeover.providers.anthropic import AnthropicProvider
from changeover.providers.base import CallFailed
from changeover.providers.openai_compat import OpenAIProvider

ASK = ChatRequest(
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "capital of France?"}],
    {"max_tokens": 20},
    item="q1",
)


def client_for(fake, model: str, **cfg) -> ModelClient:
    config = ModelConfig(base_url=fake.base_url, **{"backoff_s": 0.01, **cfg})
    return ModelClient(
        model,
        OpenAIProvider(model, fake.base_url, concurrency=config.concurrency, timeout_s=config.timeout_s),
        config,
        Price(input_per_1k=1.0, output_per_1k=2.0),
    )


def run(coro):
    return asyncio.run(coro)


async def _many(client: ModelClient, n: int):
    try:
        return await asyncio.gather(
            *(client.complete(ChatRequest([{"role": "user", "content": f"q{i}"}], item=str(i))) for i in range(n))
        )
    finally:
        await client.aclose()


def test_completion_text_tokens_latency_and_cost(fake):
    fake.set("m", reply="Paris.", latency=0.05)

    async def go():
        client = client_for(fake, "m")
        try:
            return await client.complete(ASK)
        finally:
            await client.aclose()

    out = run(go())
    assert out.ok and out.text == "Paris." and out.finish_reason == "stop"
    assert (out.tokens_in, out.tokens_out) == (5, 1)
    assert out.latency_ms >= 50
    assert out.cost_usd == pytest.approx((5 * 1.0 + 1 * 2.0) / 1000)
    sent = fake.log[0].body
    assert sent["model"] == "m" and sent["max_tokens"] == 20 and sent["messages"] == ASK.messages


def test_429_retry_after_is_honoured_then_succeeds(fake):
    fake.set("busy", fail_first=2, fail_status=429, retry_after=0.3)
    client = client_for(fake, "busy")
    t0 = time.monotonic()
    (out,) = run(_many(client, 1))
    assert out.ok and out.attempts == 3
    assert time.monotonic() - t0 >= 0.6
    assert fake.calls["busy"] == 3


def test_500s_exhaust_retries_into_an_error_not_an_exception(fake):
    fake.set("down", fail_rate=1.0, fail_status=500)
    (out,) = run(_many(client_for(fake, "down", max_retries=2), 1))
    assert not out.ok and "HTTP 500" in out.error and out.text is None
    assert fake.calls["down"] == 3


def test_malformed_body_is_retried_and_reported(fake):
    fake.set("bad", malformed="schema")
    (out,) = run(_many(client_for(fake, "bad", max_retries=1), 1))
    assert "malformed" in out.error and fake.calls["bad"] == 2
    fake.set("trunc", malformed="json")
    (out,) = run(_many(client_for(fake, "trunc", max_retries=0), 1))
    assert "not JSON" in out.error


def test_after_the_cool_down_only_one_probe_reaches_a_still_dead_endpoint(fake):
    fake.set("dead", fail_rate=1.0, fail_status=503, latency=0.2)
    client = client_for(fake, "dead", max_retries=0, breaker=2, breaker_cooldown_s=1.0, concurrency=4)

    async def go():
        try:
            opening = [await client.complete(ASK) for _ in range(2)]
            await asyncio.sleep(1.05)
            return opening, await asyncio.gather(*(client.complete(ASK) for _ in range(4)))
        finally:
            await client.aclose()

    opening, after = asyncio.run(go())
    assert not any("call not attempted" in o.error for o in opening)
    assert fake.calls["dead"] == 3  # two to open the breaker, then the single probe
    assert sorted("call not attempted" in o.error for o in after) == [False, True, True, True]


def test_hang_times_out(fake):
    fake.set("stuck", hang=True)
    t0 = time.monotonic()
    (out,) = run(_many(client_for(fake, "stuck", timeout_s=0.3, max_retries=1), 1))
    assert "timed out" in out.error and out.attempts == 2
    assert time.monotonic() - t0 < 3


def test_client_errors_are_not_retried(fake):
    fake.set("locked", api_key="right-key", fail_message="Incorrect API key provided: {key}.")
    provider = OpenAIProvider("locked", fake.base_url, api_key="wrong-key-1234")
    client = ModelClient("locked", provider, ModelConfig(backoff_s=0.01))
    (out,) = run(_many(client, 1))
    assert "HTTP 401: Incorrect API key provided: [redacted]" in out.error and fake.calls["locked"] == 1
    assert "wrong-key" not in out.error


def test_breaker_stops_calling_a_dead_endpoint(fake):
    fake.set("dead", fail_rate=1.0, fail_status=503)
    outs = run(_many(client_for(fake, "dead", max_retries=0, breaker=3, concurrency=1), 10))
    assert all(not o.ok for o in outs)
    assert fake.calls["dead"] == 3
    assert sum("call not attempted" in o.error for o in outs) == 7


def test_breaker_lets_a_probe_through_after_the_cool_down(fake):
    fake.set("flaky", fail_rate=1.0, fail_status=503)
    client = client_for(fake, "flaky", max_retries=0, breaker=2, breaker_cooldown_s=1.0, concurrency=1)

    async def go():
        try:
            first = [await client.complete(ASK) for _ in range(4)]
            fake.set("flaky", fail_rate=0.0)
            still_open = await client.complete(ASK)
            await asyncio.sleep(1.05)
            return first, still_open, await client.complete(ASK), await client.complete(ASK)
        finally:
            await client.aclose()

    first, still_open, probe, after = asyncio.run(go())
    assert [("call not attempted" in o.error) for o in first] == [False, False, True, True]
    assert "call not attempted" in still_open.error
    assert probe.ok and after.ok and fake.calls["flaky"] == 4


def test_rate_limit_spreads_requests(fake):
    """The bucket spaces the calls it lets through: 5 at once, then one every 0.2 s.

    Timed where the limit acts (the call to the provider), not where the server sees it: on a
    loaded machine the first connections can arrive late and bunch up with the next calls.
    """
    fake.set("rl")
    client = client_for(fake, "rl", rpm=300, concurrency=50)  # 5/s, burst of 5
    released: list[float] = []
    complete = client.provider.complete

    async def timed(request):
        released.append(time.monotonic())
        return await complete(request)

    client.provider.complete = timed
    outs = run(_many(client, 10))
    assert all(o.ok for o in outs) and len(fake.log) == 10
    t = sorted(released)
    # a token bucket's promise, whatever the scheduler does: any window of T seconds holds at
    # most the burst plus T x the rate (so the 10 calls span at least 1 s)
    for i in range(len(t)):
        for j in range(i, len(t)):
            assert j - i + 1 <= 5 + 5 * (t[j] - t[i]) + 0.05, (i, j, t[j] - t[i])
    assert t[-1] - t[0] >= 0.99


def test_concurrency_limit(fake):
    fake.set("slow", latency=0.2)
    t0 = time.monotonic()
    outs = run(_many(client_for(fake, "slow", concurrency=2), 6))
    assert all(o.ok for o in outs) and time.monotonic() - t0 >= 0.6


def test_anthropic_messages_with_key_from_environment(fake, monkeypatch):
    fake.set("claude-x", reply="Bonjour", api_key="sk-test-123")
    monkeypatch.setenv("ANTHROPIC_TEST_KEY", "sk-test-123")
    config = ModelConfig(provider="anthropic", base_url=fake.base_url, api_key_env="ANTHROPIC_TEST_KEY")
    provider = build_provider("claude-x", config)
    assert isinstance(provider, AnthropicProvider)
    (out,) = run(_many(ModelClient("claude-x", provider, config), 1))
    assert out.ok and out.text == "Bonjour" and out.finish_reason == "stop" and out.tokens_out == 1
    body = fake.log[-1].body
    assert body["max_tokens"] == 1024 and body["messages"][0]["role"] == "user"
    assert all("sk-test-123" not in str(v) for c in fake.log for v in c.headers.values())


def test_missing_key_and_key_in_spec_are_user_errors(monkeypatch):
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(ProviderError, match="NOPE_KEY is not set"):
        build_provider("m", ModelConfig(api_key_env="NOPE_KEY"))
    with pytest.raises(ValueError, match="api_key_env"):
        ModelConfig.model_validate({"api_key": "sk-123"})


def test_key_like_tokens_are_redacted_from_error_messages():
    from changeover.providers.http import redact

    assert redact("Incorrect API key provided: sk-proj-abcdef123456.", []) == "Incorrect API key provided: [redacted]."
    assert redact("bad token my-secret-value", ["my-secret-value"]) == "bad token [redacted]"
    assert redact("HTTP 500: upstream overloaded", []) == "HTTP 500: upstream overloaded"


def test_text_completions_api_for_base_models(fake):
    fake.set("base-model")
    config = ModelConfig(base_url=fake.base_url, api="completions")
    client = ModelClient("base-model", build_provider("base-model", config), config)
    (out,) = run(_many(client, 1))
    assert out.ok and out.text == "echo: q0" and out.tokens_out == 2
    body = fake.log[-1].body
    assert body["prompt"] == "User: q0\nAssistant:" and body["stop"] == ["\nUser:", "\nSystem:"]
    assert fake.log[-1].path == "/v1/completions"


def test_streaming_records_time_to_first_token(fake):
    fake.set("s", reply="one two three four", latency=0.1, stream_chunk_delay=0.05)
    config = ModelConfig(base_url=fake.base_url, stream=True)
    (out,) = run(_many(ModelClient("s", build_provider("s", config), config), 1))
    assert out.ok and out.text == "one two three four" and out.finish_reason == "stop"
    assert out.tokens_out == 4 and out.tokens_in == 1
    assert 100 <= out.ttft_ms < out.latency_ms and out.latency_ms - out.ttft_ms >= 140
    assert fake.log[-1].body["stream"] is True


def test_a_broken_stream_is_retried_then_reported(fake):
    fake.set("s", reply="one two three four", malformed="sse")
    config = ModelConfig(base_url=fake.base_url, stream=True, max_retries=1, backoff_s=0.01)
    (out,) = run(_many(ModelClient("s", build_provider("s", config), config), 1))
    assert "malformed stream event" in out.error and fake.calls["s"] == 2


def test_token_budget_waits_for_refill():
    from changeover.providers.limits import RateLimits

    limits = RateLimits(tpm=60_000)  # 1,000 tokens/s, bursts up to 10 s worth

    async def go():
        t0 = time.monotonic()
        await limits.acquire(5_500)  # from the full bucket: no wait
        t1 = time.monotonic()
        await limits.acquire(5_500)  # 1,000 short: about one second
        return t1 - t0, time.monotonic() - t1

    first, second = asyncio.run(go())
    assert first < 0.5 and 0.9 <= second < 5  # lower bounds are the rule; upper ones only catch a hang


def test_odd_json_shapes_are_read_as_missing_never_a_crash():
    """A body that is JSON but not shaped like a completion must not escape as AttributeError:
    ModelClient only turns CallFailed into an error record, anything else would stop the run."""
    from changeover.providers.openai_compat import parse_chat_completion, parse_chat_stream

    odd = parse_chat_completion({"choices": [{"message": {"content": 5}, "finish_reason": "stop"}], "usage": 7}, 1.0)
    assert odd.text is None and odd.finish_reason == "stop" and odd.tokens_in is None
    # a message that is not an object is no answer at all: a failed call (retried, never cached), not an empty one
    with pytest.raises(CallFailed, match="choices\\[0\\].message is not an object") as failed:
        parse_chat_completion({"choices": [{"message": "hi", "finish_reason": "stop"}]}, 1.0)
    assert failed.value.retryable
    stream = parse_chat_stream(
        [{"choices": ["x", {"delta": "y"}, {"delta": {"content": "ok"}}]}, {"choices": [], "usage": [1]}], 1.0, None
    )
    assert stream.text == "ok" and stream.tokens_out is None


def test_a_developer_message_reaches_anthropic_as_the_system_prompt():
    """OpenAI traffic logged with the "developer" role (o1 and later) lost its system prompt on the way to Claude."""
    from changeover.providers.anthropic import to_anthropic

    messages = [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Capital of Peru?"},
    ]
    body = to_anthropic("claude-x", ChatRequest(messages, {"max_tokens": 20}))
    assert body["system"] == "Answer in French."
    assert body["messages"] == [{"role": "user", "content": "Capital of Peru?"}]
