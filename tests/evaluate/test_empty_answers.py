"""A candidate that answers with no content (``content: null``) gave the user nothing: the record says so
(an empty response, ``extra.empty_answer``) and assess counts it as a failure, not as a record without text."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.support.serving import serve_in_thread

from changeover.assessment.pairing import failed
from changeover.config import spec_from_dict
from changeover.evaluate import evaluate
from changeover.prompts import read_interactions

from .helpers import setup_fake, spec_dict, traffic_rows, write_traffic


@pytest.fixture
def thinking_model() -> Iterator[str]:
    """An OpenAI-compatible endpoint whose model spends its whole budget reasoning: content null, "length"."""

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        message = {"role": "assistant", "content": None}
        usage = {"prompt_tokens": 12, "completion_tokens": body.get("max_tokens", 32), "total_tokens": 44}
        choice = {"index": 0, "message": message, "finish_reason": "length"}
        return JSONResponse({"id": "c1", "object": "chat.completion", "choices": [choice], "usage": usage})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    server, thread, port = serve_in_thread(app, name="thinking-model")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join()


def test_an_answer_with_no_content_is_an_empty_response_that_assess_counts_as_failed(fake, thinking_model, tmp_path):
    setup_fake(fake)
    raw = spec_dict(fake.base_url)
    raw["models"]["new-model"]["base_url"] = thinking_model
    spec = spec_from_dict(raw, tmp_path / "migration.yaml")
    result = evaluate(spec, read_interactions(write_traffic(tmp_path / "t.jsonl", traffic_rows(4))))
    new = [r for r in result.records if r.model == "new-model"]
    old = [r for r in result.records if r.model == "old-model"]
    assert len(new) == 4 and all(r.response == "" and r.error is None for r in new)
    assert all(r.extra["empty_answer"] == "length" and r.tokens_out == 32 for r in new)
    assert all(failed(r) for r in new) and not any(failed(r) for r in old)
    assert all(v is None for r in new for v in r.signals.values())  # nothing to judge, no judge call spent
    assert sum(c.model == "judge-model" for c in fake.log) == 4  # the incumbent's answers only
    arms = {a["name"]: a for a in result.summary()["arms"]}
    assert arms["new-model"]["empty_answers"] == {"length": 4} and "empty_answers" not in arms["old-model"]


def test_the_cli_says_how_many_answers_were_empty(fake, thinking_model, tmp_path, capsys):
    import yaml

    from changeover.cli import run

    setup_fake(fake)
    raw = spec_dict(fake.base_url)
    raw["models"]["new-model"]["base_url"] = thinking_model
    spec = tmp_path / "migration.yaml"
    spec.write_text(yaml.safe_dump(raw))
    traffic = write_traffic(tmp_path / "t.jsonl", traffic_rows(3))
    argv = ["evaluate", "--spec", str(spec), "--prompts", str(traffic), "--out", str(tmp_path / "o")]
    assert run([*argv, "--db", str(tmp_path / "c.db"), "--no-progress"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "new-model: empty answers (3 length), counted as failures by assess" in printed
