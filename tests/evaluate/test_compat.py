"""Request compatibility: a parameter the candidate refuses is classified (not an ordinary error),
reported by ``evaluate --check`` / ``changeover doctor`` before the run, and fixed by a ``param_map``."""

from __future__ import annotations

import json

import yaml
from tests.support.fake_openai import UNSUPPORTED_MAX_TOKENS, UNSUPPORTED_TEMPERATURE

from changeover.cli import run
from changeover.config import spec_from_dict
from changeover.evaluate import check_requests, evaluate
from changeover.prompts import read_interactions
from changeover.providers.params import apply_param_map
from changeover.providers.rejection import classify_rejection
from changeover.store import open_store

from .helpers import setup_fake, spec_dict, traffic_rows, write_traffic


def newer_api(fake) -> None:
    """new-model refuses max_tokens, as OpenAI's reasoning models do."""
    setup_fake(fake)
    fake.set("new-model", reject_params={"max_tokens": UNSUPPORTED_MAX_TOKENS})


def write_spec(tmp_path, fake, param_map=None):
    raw = spec_dict(fake.base_url)
    raw["models"]["new-model"].update(
        breaker=2, concurrency=1
    )  # a refusal says the endpoint is up: it must not open the breaker
    if param_map is not None:
        raw["models"]["new-model"]["param_map"] = param_map
    path = tmp_path / "migration.yaml"
    path.write_text(yaml.safe_dump(raw))
    return spec_from_dict(raw, path), path


def test_a_refused_parameter_is_classified_then_fixed_by_a_mapping(fake, tmp_path):
    newer_api(fake)
    spec, _ = write_spec(tmp_path, fake)
    rows = traffic_rows(12)
    rows[0]["params"] = {"max_tokens": 32, "temperature": 0.2}  # a second parameter set
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", rows))

    report = check_requests(spec, inters)
    by = {(c.arm, json.dumps(c.params, sort_keys=True)): c for c in report.checks}
    assert len(report.checks) == 5 and not report.ok  # 2 parameter sets x 2 models, and the judge's request
    assert by[("judge:correctness", '{"max_tokens": 200, "temperature": 0.0}')].status == "accepted"
    refused = by[("new-model", '{"max_tokens": 32}')]
    assert refused.status == "rejected" and refused.items == 11
    assert refused.rejection.param == "max_tokens" and refused.rejection.suggest == "max_completion_tokens"
    assert refused.rejection.reason == "unsupported_parameter"
    assert refused.fix == "models.new-model.param_map: {max_tokens: max_completion_tokens}"
    assert by[("old-model", '{"max_tokens": 32}')].status == "accepted"
    assert fake.calls["new-model"] == 2 and fake.calls["old-model"] == 2 and fake.calls["judge-model"] == 1

    # a run without the mapping: the refusals are a class of their own, not model failures
    broken = evaluate(spec, inters)
    new = [r for r in broken.records if r.model == "new-model"]
    assert all(r.error is None and r.response is None and r.extra["rejected"]["param"] == "max_tokens" for r in new)
    arm = next(a for a in broken.summary()["arms"] if a["name"] == "new-model")
    assert arm["rejected"] == 12 and arm["errors"] == 0
    assert arm["rejections"] == [
        {"param": "max_tokens", "reason": "unsupported_parameter", "suggest": "max_completion_tokens", "records": 12}
    ]
    assert broken.arm_stats["old-model"].rejected == 0

    # the mapping: every request to new-model carries max_completion_tokens instead
    fixed_spec, _ = write_spec(tmp_path, fake, {"max_tokens": "max_completion_tokens"})
    assert check_requests(fixed_spec, inters).ok
    fake.reset_counts()
    fixed = evaluate(fixed_spec, inters)
    sent = [c.body for c in fake.log if c.model == "new-model"]
    assert len(sent) == 12 and all("max_tokens" not in b and b["max_completion_tokens"] == 32 for b in sent)
    assert all(r.error is None and r.response and "rejected" not in r.extra for r in fixed.records)


def test_doctor_and_evaluate_check_exit_1_on_a_refusal_and_0_once_mapped(fake, tmp_path, capsys):
    newer_api(fake)
    _, spec_path = write_spec(tmp_path, fake)
    traffic = write_traffic(tmp_path / "traffic.jsonl", traffic_rows(6))
    db = str(tmp_path / "c.db")
    code = run(["doctor", "--spec", str(spec_path), "--prompts", str(traffic), "--db", db])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "rejected" in out and "max_tokens (unsupported_parameter)" in out
    assert "new-model: HTTP 400: Unsupported parameter: 'max_tokens'" in out
    assert "fix: models.new-model.param_map: {max_tokens: max_completion_tokens}" in out
    code = run(
        [
            "evaluate",
            "--check",
            "--spec",
            str(spec_path),
            "--prompts",
            str(traffic),
            "--db",
            db,
            "--json",
            str(tmp_path / "c.json"),
        ]
    )
    assert code == 1
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["rejected"] == 1 and saved["checks"][1]["fix"].endswith("{max_tokens: max_completion_tokens}")
    _, spec_path = write_spec(tmp_path, fake, {"max_tokens": "max_completion_tokens"})
    assert run(["doctor", "--spec", str(spec_path), "--prompts", str(traffic), "--db", db]) == 0
    assert "all requests accepted" in capsys.readouterr().out
    # the accepted check calls were cached: the run that follows does not repeat them
    before = dict(fake.calls)
    code = run(
        [
            "evaluate",
            "--spec",
            str(spec_path),
            "--prompts",
            str(traffic),
            "--db",
            db,
            "--no-progress",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 0
    assert fake.calls["new-model"] - before["new-model"] == 5
    assert not [k for k in fake.duplicates() if "max_completion_tokens" in k]  # only the refused ones were resent


def test_temperature_refusal_is_a_value_rejection_and_a_drop_fixes_it(fake, tmp_path):
    setup_fake(fake)
    fake.set("new-model", reject_params={"temperature": UNSUPPORTED_TEMPERATURE})
    spec, _ = write_spec(tmp_path, fake)
    rows = [{**r, "params": {"max_tokens": 32, "temperature": 0}} for r in traffic_rows(3)]
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", rows))
    (refused,) = check_requests(spec, inters).rejected
    assert refused.rejection.param == "temperature" and refused.rejection.reason == "unsupported_value"
    assert refused.fix == "models.new-model.param_map: {temperature: null}"
    fixed, _ = write_spec(tmp_path, fake, {"temperature": None})
    start = len(fake.log)
    assert check_requests(fixed, inters).ok
    sent = [c.body for c in fake.log[start:] if c.model == "new-model"]
    assert len(sent) == 1 and "temperature" not in sent[0] and sent[0]["max_tokens"] == 32


def test_rejections_read_from_other_servers_error_bodies():
    vllm = {
        "object": "error",
        "message": "[{'type': 'extra_forbidden', 'loc': ('body', 'max_completion_tokens'), 'msg': "
        "'Extra inputs are not permitted', 'input': 32}]",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    assert classify_rejection(400, vllm).param == "max_completion_tokens"
    anthropic = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "top_k: Extra inputs are not permitted"},
    }
    assert classify_rejection(400, anthropic).param == "top_k"
    legacy = {
        "error": {
            "message": "Unrecognized request argument supplied: reasoning_effort",
            "type": "invalid_request_error",
        }
    }
    assert classify_rejection(400, legacy).param == "reasoning_effort"
    tools = {"error": {"message": "This model does not support tools.", "type": "invalid_request_error"}}
    assert classify_rejection(400, tools).param == "tools"
    quoted = {"error": {"message": "Invalid type for 'logit_bias': expected an object"}}
    assert classify_rejection(400, quoted, sent=["logit_bias", "max_tokens"]).param == "logit_bias"
    assert classify_rejection(400, {"error": {"message": "messages: too long"}}, sent=["max_tokens"]) is None
    assert classify_rejection(500, {"error": {"message": "Unsupported parameter: 'x'"}}) is None
    assert classify_rejection(401, {"error": {"message": "invalid api key"}}) is None


def test_apply_param_map_renames_drops_and_never_overwrites():
    body = {"model": "m", "max_tokens": 10, "temperature": 0, "top_p": 1}
    out = apply_param_map(body, {"max_tokens": "max_completion_tokens", "temperature": None, "absent": "x"})
    assert out == {"model": "m", "max_completion_tokens": 10, "top_p": 1} and body["max_tokens"] == 10
    both = apply_param_map({"max_tokens": 10, "max_completion_tokens": 20}, {"max_tokens": "max_completion_tokens"})
    assert both == {"max_completion_tokens": 20}
    assert apply_param_map(body, None) == body


def test_a_param_map_changes_the_cache_key(fake, tmp_path):
    """Adding a mapping is a new call: a completion cached under the old request is not served for it."""
    setup_fake(fake)
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", traffic_rows(4)))
    url = f"sqlite:///{tmp_path / 'c.db'}"
    spec, _ = write_spec(tmp_path, fake)
    with open_store(url) as store:
        evaluate(spec, inters, store=store)
    before = fake.calls["new-model"]
    mapped, _ = write_spec(tmp_path, fake, {"max_tokens": "max_completion_tokens"})
    with open_store(url) as store:
        evaluate(mapped, inters, store=store)
    assert fake.calls["new-model"] == before + 4


def test_the_gateway_applies_the_same_mapping_to_the_bodies_it_forwards():
    from changeover.shadow.config import Upstream
    from changeover.shadow.upstream import UpstreamClient

    upstream = Upstream(base_url="http://127.0.0.1:9/v1", params={"max_tokens": "max_completion_tokens", "top_p": None})
    sent = json.loads(UpstreamClient("new-model", upstream).encode({"model": "x", "max_tokens": 5, "top_p": 1}))
    assert sent == {"model": "new-model", "max_completion_tokens": 5}


def test_a_judge_model_refusing_response_format_is_caught_before_the_run(fake, tmp_path):
    setup_fake(fake)
    fake.set(
        "judge-model",
        reject_params={
            "response_format": "Invalid parameter: 'response_format' of type 'json_schema' is not supported "
            "with this model."
        },
    )
    raw = spec_dict(fake.base_url)
    raw["judges"]["correctness"]["structured"] = True
    spec = spec_from_dict(raw, tmp_path / "migration.yaml")
    inters = read_interactions(write_traffic(tmp_path / "traffic.jsonl", traffic_rows(4)))
    (refused,) = check_requests(spec, inters).rejected
    assert refused.arm == "judge:correctness" and refused.rejection.param == "response_format"
    assert refused.params["response_format"]["type"] == "json_schema" and refused.items == 8
    assert fake.calls["judge-model"] == 1  # one request, not re-asked


def test_doctor_prints_the_endpoints_message_as_sent(fake, tmp_path, capsys):
    """The refusal message is the server's text: brackets in it are not rich markup."""
    setup_fake(fake)
    message = (
        "Unsupported parameter: 'max_tokens' is not supported with [o1-family] models. "
        "Use 'max_completion_tokens' instead."
    )
    fake.set("new-model", reject_params={"max_tokens": message})
    _, spec_path = write_spec(tmp_path, fake)
    traffic = write_traffic(tmp_path / "traffic.jsonl", traffic_rows(2))
    assert run(["doctor", "--spec", str(spec_path), "--prompts", str(traffic), "--db", str(tmp_path / "c.db")]) == 1
    assert "with [o1-family] models" in " ".join(capsys.readouterr().out.split())
