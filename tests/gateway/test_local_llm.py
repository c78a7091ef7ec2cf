"""The gateway in front of a real local LLM (SmolLM2-135M on llama.cpp's server), streaming included."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from tests.gateway.helpers import write_spec
from tests.gateway.test_gateway import wait_for

from changeover.shadowlog.answers import load_answers

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_real_llm_behind_the_gateway_plain_and_streaming(tmp_path, local_llm, fake, serve, gw_store):
    spec = write_spec(
        tmp_path / "migration.yaml",
        fake.base_url,
        gateway={
            "upstreams": {
                "old": {"base_url": local_llm.base_url, "model": local_llm.model, "timeout": 120},
                "new": {"base_url": fake.base_url},
            }
        },
    )
    gw = serve(spec)
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    messages = [{"role": "user", "content": "Name one colour."}]
    plain = client.chat.completions.create(model="whatever", messages=messages, max_tokens=12, temperature=0)
    assert plain.choices[0].message.content.strip() and plain.usage.completion_tokens > 0

    pieces = []
    stream = client.chat.completions.create(
        model="whatever",
        messages=messages,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
    streamed = "".join(pieces)
    assert streamed.strip()

    raw = httpx.post(
        gw.url + "/v1/chat/completions", content=b"{not json", timeout=60, headers={"content-type": "application/json"}
    )
    direct = httpx.post(
        local_llm.base_url + "/chat/completions",
        content=b"{not json",
        timeout=60,
        headers={"content-type": "application/json"},
    )
    assert (raw.status_code, json.loads(raw.content)) == (direct.status_code, json.loads(direct.content))
    wait_for(lambda: gw.service.gateway.mirror.sent["new"] == 2)
    gw.stop()
    served = [a for a in load_answers(gw_store) if a.role == "served" and a.model == "old" and a.text]
    assert {a.text for a in served} == {plain.choices[0].message.content, streamed}
    assert all(a.tokens_out and a.tokens_out > 0 for a in served)
    assert sum(1 for a in load_answers(gw_store) if a.role == "mirror") == 2
