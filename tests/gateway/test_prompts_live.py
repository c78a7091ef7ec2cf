"""The prompt registry applied live: the candidate the gateway shadows and rolls out is the one evaluate measured.

The candidate's upstream names ``prompt_for: new``; evaluate renders the same
interaction for the candidate arm; the fake upstream receives the same
request from both, and answers the same.
"""

from __future__ import annotations

import json

import httpx
import pytest
import yaml
from tests.gateway.helpers import chat, write_spec
from tests.gateway.test_gateway import wait_for
from tests.gateway.test_usage import events

from changeover.config import load_spec
from changeover.errors import SpecError
from changeover.evaluate import evaluate
from changeover.prompts import read_interactions
from changeover.shadow.app import GatewayService
from changeover.shadow.report import build_report
from changeover.shadowlog.answers import load_answers, pairs

PROMPT = """\
id: capitals
variants:
  default:
    version: 2
    system: You answer geography questions.
  new:
    version: 1
    system: You are the new model. Answer with the city name only.
    params: {temperature: 0.2}
"""
QUESTION = "What is the capital of France?"


def system_echo(body: dict) -> str:
    """The fake's answer shows which prompt reached it (the system message), so variants differ visibly."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "no system prompt")
    return f"[{system}] Paris"


def spec_with_prompts(tmp_path, fake, **gateway_changes):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "capitals.yaml").write_text(PROMPT)
    path = write_spec(
        tmp_path / "migration.yaml",
        fake.base_url,
        prompts={"registry": "prompts"},
        judges={"refusal": {"kind": "refusal_phrases"}},
        models={m: {"base_url": fake.base_url, "max_retries": 0} for m in ("old", "new")},
    )
    raw = yaml.safe_load(path.read_text())
    raw["gateway"]["upstreams"]["new"]["prompt_for"] = "new"
    raw["dimensions"] = {"refusal": {"margin": 0.05}}
    for key, value in gateway_changes.items():
        raw[key] = {**raw.get(key, {}), **value}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def bodies(fake, model: str) -> list[dict]:
    return [c.body for c in fake.log if c.model == model]


def test_the_mirrored_candidate_is_the_one_evaluate_measured(tmp_path, fake, serve, gw_store):
    fake.set("new", reply=system_echo)
    fake.set("old", reply=system_echo)
    spec_path = spec_with_prompts(tmp_path, fake)
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text(
        json.dumps({"item": "q1", "prompt_id": "capitals", "messages": [{"role": "user", "content": QUESTION}]}) + "\n"
    )
    result = evaluate(load_spec(spec_path), read_interactions(traffic))
    measured = next(r for r in result.records if r.model == "new")
    (evaluated,) = bodies(fake, "new")
    fake.reset_counts()

    gw = serve(spec_path)
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json=chat(QUESTION),
        headers={"x-changeover-prompt-id": "capitals", "x-changeover-user": "ana"},
    )
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "[no system prompt] Paris"
    mirror = gw.service.gateway.mirror
    wait_for(lambda: mirror.sent["new"] == 1)
    gw.stop()

    (mirrored,) = bodies(fake, "new")
    assert mirrored["messages"] == evaluated["messages"]  # the variant's system message, then the question
    assert mirrored["messages"][0] == {
        "role": "system",
        "content": "You are the new model. Answer with the city name only.",
    }
    assert mirrored["temperature"] == evaluated["temperature"] == 0.2  # the variant's parameters
    (incumbent,) = bodies(fake, "old")
    assert incumbent["messages"] == [{"role": "user", "content": QUESTION}]  # no prompt_for: as the user sent it
    (pair,) = pairs(load_answers(gw_store), "old", "new")
    assert pair.candidate.text == measured.response == "[You are the new model. Answer with the city name only.] Paris"
    assert pair.candidate.prompt_version == measured.extra["prompt_version"] == "capitals@new:v1"
    assert pair.incumbent.prompt_version is None
    (row,) = [r for r in build_report(gw_store, "old", ["new"]).rows if r["request_type"] == "all"]
    assert row["candidate_stats"]["prompts"] == {"capitals@new:v1": 1}
    assert row["incumbent_stats"]["prompts"] == {"as sent": 1}


def test_a_rolled_out_candidate_answers_with_its_variant(tmp_path, fake, serve, gw_store):
    fake.set("new", reply=system_echo)
    spec_path = spec_with_prompts(tmp_path, fake, rollout={"stages": [{"weight": 100}], "interval": 3600})
    raw = yaml.safe_load(spec_path.read_text())
    raw["gateway"]["prompt"] = {"default": "capitals"}  # the app names no prompt: every request is this one
    spec_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    gw = serve(spec_path)
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        plain = client.post("/v1/chat/completions", json=chat(QUESTION), headers={"x-changeover-user": "bo"})
        streamed = client.post(
            "/v1/chat/completions", json=chat(QUESTION, stream=True), headers={"x-changeover-user": "bo"}
        )
    assert plain.headers["x-changeover-model"] == "new"
    assert plain.json()["choices"][0]["message"]["content"].startswith("[You are the new model.")
    pieces = [c["delta"].get("content", "") for e in events(streamed.text) for c in e["choices"]]
    assert "".join(pieces).startswith("[You are the new model.")
    assert all(b["messages"][0]["content"].startswith("You are the new model.") for b in bodies(fake, "new"))
    gw.stop()
    served = [a for a in load_answers(gw_store) if a.role == "served"]
    assert [a.prompt_version for a in served] == ["capitals@new:v1", "capitals@new:v1"]


def test_a_request_naming_an_unknown_prompt_goes_as_sent(tmp_path, fake, serve, gw_store):
    fake.set("new", reply=system_echo)
    gw = serve(spec_with_prompts(tmp_path, fake))
    r = httpx.post(gw.url + "/v1/chat/completions", json=chat(QUESTION, metadata={"prompt_id": "nope"}))
    assert r.status_code == 200
    wait_for(lambda: gw.service.gateway.mirror.sent["new"] == 1)
    gw.stop()
    (mirrored,) = bodies(fake, "new")
    assert mirrored["messages"] == [{"role": "user", "content": QUESTION}]


def test_prompt_for_without_a_registry_is_a_spec_error(tmp_path, fake, gw_store):
    path = write_spec(tmp_path / "migration.yaml", fake.base_url)
    raw = yaml.safe_load(path.read_text())
    raw["gateway"]["upstreams"]["new"]["prompt_for"] = "new"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(SpecError, match=r"gateway\.upstreams\.new\.prompt_for' needs a prompt registry"):
        GatewayService(load_spec(path), gw_store)
