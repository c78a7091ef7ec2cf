"""In-app mirroring with the openai client: answers unchanged, mirrors in the background, both logged."""

from __future__ import annotations

import time

import openai

from changeover.shadow.sdk import MirroredOpenAI
from changeover.shadowlog.answers import load_answers


def clients(fake, timeout: float = 10.0):
    return (
        openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0),
        openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0, timeout=timeout),
    )


def test_the_app_gets_the_incumbents_answer_and_the_candidate_is_mirrored(fake, store):
    primary, cand = clients(fake)
    client = MirroredOpenAI(primary, cand, incumbent="old", candidate="new", store=store)
    msgs = [{"role": "user", "content": "capital of France?"}]
    answers = [client.chat.completions.create(model="old", messages=msgs).choices[0].message.content for _ in range(5)]
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="old", messages=msgs, stream=True)
        if c.choices
    )
    client.close()
    assert answers == ["Paris is the capital of France."] * 5 and streamed == "Paris is the capital of France."
    assert fake.calls["new"] == 6 and client.mirrored == 6
    logged = load_answers(store)
    assert sorted((a.model, a.role) for a in logged).count(("new", "mirror")) == 6
    assert {a.text for a in logged if a.role == "served"} == {"Paris is the capital of France."}
    assert {a.text for a in logged if a.role == "mirror"} == {"The capital of France is Paris."}


def test_a_hanging_candidate_never_slows_the_app(fake):
    fake.set("new", hang=True)
    primary, cand = clients(fake, timeout=0.5)
    client = MirroredOpenAI(primary, cand, incumbent="old", candidate="new", queue_size=2, workers=1)
    msgs = [{"role": "user", "content": "hi"}]
    t0 = time.perf_counter()
    for _ in range(10):
        client.chat.completions.create(model="old", messages=msgs)
    assert time.perf_counter() - t0 < 2.0
    assert client.dropped >= 5  # one in flight, two queued, the rest dropped and counted
    client.close()
    assert client.failed >= 1
