"""The test servers themselves: the fake OpenAI server speaks the real protocol; the local LLM answers."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest


def test_fake_chat_json_usage_and_counts(fake):
    fake.set("m1", reply="Paris is the capital.")
    client = openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
    out = client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "capital?"}])
    assert out.choices[0].message.content == "Paris is the capital."
    assert out.usage.completion_tokens == 4 and out.usage.prompt_tokens == 1
    echo = client.chat.completions.create(model="m2", messages=[{"role": "user", "content": "hi there"}])
    assert echo.choices[0].message.content == "echo: hi there"
    assert fake.calls == {"m1": 1, "m2": 1}
    client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "capital?"}])
    assert len(fake.duplicates()) == 1
    models = httpx.get(fake.base_url + "/models").json()
    assert {m["id"] for m in models["data"]} == {"m1", "m2"}


def test_fake_streaming_sse_ends_with_done(fake):
    fake.set("s", reply="one two three")
    with httpx.stream(
        "POST",
        fake.base_url + "/chat/completions",
        json={
            "model": "s",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "x"}],
        },
    ) as resp:
        lines = [ln for ln in resp.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "one two three"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_fake_failures_429_retry_after_and_malformed(fake):
    fake.set("busy", fail_first=1, fail_status=429, retry_after=0.5)
    fake.set("bad", malformed="json")
    body = {"model": "busy", "messages": [{"role": "user", "content": "x"}]}
    first = httpx.post(fake.base_url + "/chat/completions", json=body)
    assert first.status_code == 429 and first.headers["retry-after"] == "0.5"
    assert httpx.post(fake.base_url + "/chat/completions", json=body).status_code == 200
    bad = httpx.post(fake.base_url + "/chat/completions", json={**body, "model": "bad"})
    with pytest.raises(json.JSONDecodeError):
        bad.json()
    assert fake.failures == {"busy": 1, "bad": 1}


def test_fake_latency_and_hang(fake):
    fake.set("slow", latency=0.2)
    fake.set("stuck", hang=True)
    body = {"messages": [{"role": "user", "content": "x"}]}
    t0 = time.monotonic()
    httpx.post(fake.base_url + "/chat/completions", json={**body, "model": "slow"})
    assert time.monotonic() - t0 >= 0.2
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(fake.base_url + "/chat/completions", json={**body, "model": "stuck"}, timeout=0.3)


def test_fake_anthropic_messages(fake):
    fake.set("claude", reply="Bonjour", api_key="sekret")
    body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(fake.base_url + "/messages", json=body).status_code == 401
    out = httpx.post(fake.base_url + "/messages", json=body, headers={"x-api-key": "sekret"}).json()
    assert out["content"][0]["text"] == "Bonjour" and out["usage"]["output_tokens"] == 1
    assert out["stop_reason"] == "end_turn"


@pytest.mark.llm
def test_local_llm_answers_over_the_openai_protocol(local_llm):
    client = openai.OpenAI(base_url=local_llm.base_url, api_key="none")
    out = client.chat.completions.create(
        model=local_llm.model, max_tokens=8, messages=[{"role": "user", "content": "Say hello."}]
    )
    assert out.choices[0].message.content.strip()
    assert out.usage.prompt_tokens > 0 and 0 < out.usage.completion_tokens <= 8
