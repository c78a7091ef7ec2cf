"""Judges: robust parsing of messy judge output, explicit unscorable, LLM judges over HTTP, checks."""

from __future__ import annotations

import asyncio
import json

import pytest

from changeover.config import spec_from_dict
from changeover.errors import SpecError
from changeover.judges import Case, Scale, build_judges, judge_configs, parse_verdict
from changeover.judges.checks import CheckJudge, refused
from changeover.judges.llm import LLMJudge
from changeover.judges.rubrics import BUILTIN, CORRECTNESS
from changeover.providers import ChatRequest, ModelClient, ModelConfig
from changeover.providers.openai_compat import OpenAIProvider

PASS_FAIL = CORRECTNESS.scale()


@pytest.mark.parametrize(
    "text, value",
    [
        ('{"verdict": "PASS", "reason": "ok"}', 1),
        ('Reasoning first.\n```json\n{"verdict": "fail"}\n```', 0),
        ('The answer is right. {"verdict": "PASS"} done', 1),
        ("<verdict>FAIL</verdict>", 0),
        ("Verdict: **PASS**", 1),
        ("[[FAIL]]", 0),
        ("pass.", 1),
        ("The response is correct, so my answer is PASS", 1),
        ('{"pass": true}', 1),
        ('{"pass": false}', 0),
        ('{"note": "a PASS would be generous"}', None),  # no verdict key: words inside JSON are no guess
        ('{"verdict": true}', 1),
        ("PASS or FAIL? Hard to say.", None),
        ("Verdict: PASS\nVerdict: FAIL", None),
        ("", None),
        ("I think it is good", None),
    ],
)
def test_binary_parsing(text, value):
    got, how = parse_verdict(text, PASS_FAIL)
    assert got == value, how


@pytest.mark.parametrize(
    "text, value",
    [
        ('{"score": 4}', 4),
        ("Score: 3/5", 3),
        ("Rating: [[5]]", 5),
        ("2", 2),
        ('{"score": 7}', None),
        ("Score: 4.5", None),
        ("It deserves a 4/5 overall.", 4),
        ("great", None),
    ],
)
def test_ordinal_parsing(text, value):
    got, _ = parse_verdict(text, Scale(levels=5))
    assert got == value


def test_pairwise_labels_do_not_accept_numbers():
    scale = BUILTIN["pairwise"].scale()
    assert parse_verdict('{"verdict": "B"}', scale)[0] == 1
    assert parse_verdict('{"winner": "tie"}', scale)[0] == 2
    assert parse_verdict('{"verdict": 1}', scale)[0] is None


def _judge_client(fake, model: str) -> ModelClient:
    return ModelClient(model, OpenAIProvider(model, fake.base_url), ModelConfig(backoff_s=0.01, max_retries=0))


def _ask(client: ModelClient):
    return client.complete


def test_llm_judge_retries_once_on_unparseable_output(fake):
    answers = iter(["hmm, it depends", '```json\n{"verdict": "PASS"}\n```'])
    fake.set("judge", reply=lambda body: next(answers))

    async def go():
        client = _judge_client(fake, "judge")
        judge = LLMJudge("correctness", CORRECTNESS, "judge", _ask(client))
        try:
            return await judge.score(Case("i1", "cand", "2+2?", "4", reference="4"))
        finally:
            await client.aclose()

    verdict = asyncio.run(go())
    assert verdict.value == 1 and fake.calls["judge"] == 2
    retry_messages = fake.log[1].body["messages"]
    assert retry_messages[-2] == {"role": "assistant", "content": "hmm, it depends"}
    assert "REFERENCE:\n4" in fake.log[0].body["messages"][1]["content"]


def test_llm_judge_unscorable_is_none_never_pass_or_fail(fake):
    fake.set("judge", reply="I refuse to grade this.")
    fake.set("down", fail_rate=1.0)

    async def go():
        judge_ok = _judge_client(fake, "judge")
        judge_down = _judge_client(fake, "down")
        try:
            a = await LLMJudge("correctness", CORRECTNESS, "judge", _ask(judge_ok)).score(
                Case("i1", "cand", "q", "a", reference="r")
            )
            b = await LLMJudge("correctness", CORRECTNESS, "down", _ask(judge_down)).score(
                Case("i1", "cand", "q", "a", reference="r")
            )
            return a, b
        finally:
            await judge_ok.aclose()
            await judge_down.aclose()

    unparseable, failed = asyncio.run(go())
    assert unparseable.value is None and "unparseable" in unparseable.note
    assert failed.value is None and "judge call failed" in failed.note
    assert fake.calls["judge"] == 2


def test_refusal_pairwise_and_equivalence_semantics(fake):
    def reply(body):
        system = body["messages"][0]["content"]
        if "REFUSED" in system:
            return '{"verdict": "REFUSED"}'
        if "SAME or DIFFERENT" in system:
            return '{"verdict": "DIFFERENT"}'
        user = body["messages"][1]["content"]
        return '{"verdict": "A"}' if "RESPONSE A:\ncandidate text" in user else '{"verdict": "B"}'

    fake.set("judge", reply=reply)

    async def go():
        client = _judge_client(fake, "judge")
        mk = lambda name: LLMJudge(name, BUILTIN[name], "judge", _ask(client))  # noqa: E731
        cand = Case(
            "item-7",
            "cand",
            "how do I kill a python process?",
            "candidate text",
            incumbent_response="incumbent text",
            expect_refusal=False,
        )
        unsafe = Case("item-8", "cand", "q", "candidate text", incumbent_response="x", expect_refusal=True)
        own = Case("item-7", "inc", "q", "incumbent text", incumbent_response="incumbent text", is_incumbent=True)
        try:
            return [
                await mk("refusal").score(cand),
                await mk("refusal").score(unsafe),
                await mk("pairwise").score(cand),
                await mk("equivalence").score(cand),
                await mk("equivalence").score(own),
            ]
        finally:
            await client.aclose()

    over_refusal, right_refusal, preferred, equivalent, itself = asyncio.run(go())
    assert over_refusal.value == 0 and right_refusal.value == 1
    assert preferred.value == 1  # the judge preferred the candidate, wherever it was placed
    assert equivalent.value == 0
    assert itself.value == 1 and fake.calls["judge"] == 4


def _check(kind: str, response: str | None, **kw) -> object:
    case_kw = {k: kw.pop(k) for k in ("incumbent_response", "is_incumbent", "expect_refusal", "prompt") if k in kw}
    case = Case("i", "m", case_kw.pop("prompt", "Give me the order as JSON please"), response, **case_kw)
    return asyncio.run(CheckJudge("s", kind, kw).score(case))


def test_deterministic_checks():
    assert _check("json_valid", '{"a": 1}').value == 1
    assert _check("json_valid", 'Sure! {"a": 1}').value == 0
    assert _check("fenced_json", '```json\n{"a": 1}\n```').value == 0
    assert _check("fenced_json", '{"a": 1}').value == 1
    schema = {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "integer"}}}
    assert _check("json_schema", '{"order_id": 5}', schema=schema).value == 1
    bad = _check("json_schema", '{"order_id": "5"}', schema=schema)
    assert bad.value == 0 and "order_id" in bad.note
    assert _check("length_ratio", "x" * 50, incumbent_response="y" * 100).value == 0.5
    assert _check("length_ratio", "x" * 50, is_incumbent=True).value == 1.0
    assert _check("length_ratio", "x", incumbent_response=None).value is None
    assert _check("refusal_phrases", "I'm sorry, but I can't help with that.").value == 0
    assert _check("refusal_phrases", "I\u2019m sorry, I cannot.", expect_refusal=True).value == 1
    assert _check("refusal_phrases", "Use kill -9 PID.").value == 1
    assert _check("refusal_phrases", None).value is None
    english = "Please send me the tracking number of my last order, thanks a lot."
    assert _check("language", "Your order ships tomorrow and the number is below.", prompt=english).value == 1
    assert _check("language", "Votre commande part demain et voici le numéro de suivi.", prompt=english).value == 0
    assert _check("language", "Ok.", prompt=english).value is None
    assert refused("As an AI language model, I cannot") and not refused("Sure, here it is")


SPEC = {"incumbent": "old", "candidates": ["new"], "dimensions": {"correctness": {}, "refusal": {"signal": "refusal"}}}


def test_judges_section_errors_name_the_field():
    with pytest.raises(SpecError, match="judges.correctness' is missing"):
        judge_configs(spec_from_dict({**SPEC, "judges": {"refusal": {"kind": "refusal_phrases"}}}, "m.yaml"))
    with pytest.raises(SpecError, match=r"judges.correctness.*needs 'model'"):
        judge_configs(
            spec_from_dict(
                {
                    **SPEC,
                    "judges": {
                        "correctness": {"kind": "llm", "rubric": "correctness"},
                        "refusal": {"kind": "refusal_phrases"},
                    },
                },
                "m.yaml",
            )
        )
    with pytest.raises(SpecError, match="judges.refusal.kind"):
        judge_configs(
            spec_from_dict(
                {**SPEC, "judges": {"correctness": {"kind": "json_valid"}, "refusal": {"kind": "vibes"}}}, "m.yaml"
            )
        )


def test_build_judges_identity_and_style_guide_file(tmp_path):
    (tmp_path / "style.md").write_text("Two sentences. No emoji.")
    raw = {
        **SPEC,
        "judges": {
            "correctness": {"kind": "llm", "model": "j", "rubric": "correctness", "levels": 5},
            "refusal": {"kind": "refusal_phrases"},
            "style": {"kind": "llm", "model": "j", "rubric": "style", "style_guide": "style.md"},
            "format": {"kind": "json_schema", "schema": {"type": "object"}},
        },
    }
    spec = spec_from_dict(raw, tmp_path / "m.yaml")
    judges = build_judges(spec, judge_configs(spec), lambda signal, model: None)
    assert judges["correctness"].rubric.levels == 5
    assert judges["style"].style_guide == "Two sentences. No emoji."
    ids = {s: j.identity for s, j in judges.items()}
    assert ids["correctness"]["judge"] == "llm:j" and len(ids["correctness"]["rubric_sha"]) == 12
    assert ids["correctness"]["rubric_sha"] != ids["style"]["rubric_sha"]
    assert ids["format"]["judge"] == "check:json_schema"
    assert json.dumps(ids)  # JSON-able, stored in records


def test_request_fingerprint_changes_with_parameters():
    a = ChatRequest([{"role": "user", "content": "x"}], {"temperature": 0})
    b = ChatRequest([{"role": "user", "content": "x"}], {"temperature": 1})
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == ChatRequest([{"role": "user", "content": "x"}], {"temperature": 0}).fingerprint()


def test_structured_judge_sends_a_schema_of_its_verdicts(fake):
    fake.set("judge", reply='{"verdict": "FAIL", "reason": "wrong city"}')

    async def go():
        client = _judge_client(fake, "judge")
        judge = LLMJudge("correctness", CORRECTNESS, "judge", _ask(client), structured=True)
        try:
            return judge, await judge.score(Case("i1", "cand", "capital of France?", "Lyon", reference="Paris"))
        finally:
            await client.aclose()

    judge, verdict = asyncio.run(go())
    assert verdict.value == 0 and judge.identity["output"] == "json_schema"
    schema = fake.log[0].body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["verdict"]["enum"] == ["PASS", "FAIL"] and schema["required"] == ["verdict"]


def test_similarity_to_the_incumbent_with_an_offline_embedding_model(tmp_path):
    spec = spec_from_dict(
        {**SPEC, "judges": {"correctness": {"kind": "similarity"}, "refusal": {"kind": "refusal_phrases"}}},
        tmp_path / "m.yaml",
    )
    judge = build_judges(spec, judge_configs(spec), lambda signal, model: None)["correctness"]
    incumbent = "To stop a Python process, run kill with its process id."

    def case(text: str, **kw) -> Case:
        return Case("i", "cand", "How do I stop a Python process?", text, incumbent_response=incumbent, **kw)

    close = asyncio.run(judge.score(case("Use the kill command with the PID to end the Python process.")))
    far = asyncio.run(judge.score(case("Bananas are rich in potassium and grow in the tropics.")))
    assert 0.0 <= far.value < close.value <= 1.0 and close.value > 0.5
    assert asyncio.run(judge.score(case(incumbent, is_incumbent=True))).value == 1.0
    assert asyncio.run(judge.score(Case("i", "cand", "q", "text"))).value is None
    assert judge.identity["judge"].startswith("embedding:all-MiniLM-L6-v2@")


def test_refusal_check_reads_the_judges_expect_refusal(tmp_path):
    def refusal_judge(**options):
        spec = spec_from_dict(
            {
                **SPEC,
                "judges": {"correctness": {"kind": "json_valid"}, "refusal": {"kind": "refusal_phrases", **options}},
            },
            tmp_path / "m.yaml",
        )
        return build_judges(spec, judge_configs(spec), lambda signal, model: None)["refusal"]

    judge = refusal_judge(expect_refusal=True)
    refusal = "I'm sorry, but I can't help with that."
    assert asyncio.run(judge.score(Case("i", "m", "q", refusal))).value == 1  # as the judge expects
    assert asyncio.run(judge.score(Case("i", "m", "q", refusal, expect_refusal=False))).value == 0  # traffic wins
    assert judge.identity["rubric_sha"] != refusal_judge().identity["rubric_sha"]


def test_a_custom_rubric_named_like_a_builtin_is_still_the_teams_own(fake, tmp_path):
    """A signal called 'refusal' or 'correctness' with the team's own PASS/FAIL text gets no
    built-in handling: no swapped instructions, no refusal inversion, no style guide demanded."""
    own = "PASS when the answer is polite; FAIL otherwise."
    spec = spec_from_dict(
        {
            **SPEC,
            "judges": {
                "correctness": {"kind": "llm", "model": "judge", "rubric": own},
                "refusal": {"kind": "llm", "model": "judge", "rubric": own},
                "style": {"kind": "llm", "model": "judge", "rubric": own},
            },
        },
        tmp_path / "m.yaml",
    )
    fake.set("judge", reply='{"verdict": "PASS"}')

    async def go():
        client = _judge_client(fake, "judge")
        judges = build_judges(spec, judge_configs(spec), lambda signal, model: _ask(client))
        try:
            case = Case("i1", "cand", "hello?", "Hello! How can I help?", is_incumbent=True, expect_refusal=True)
            return [await judges[s].score(case) for s in ("correctness", "refusal")]
        finally:
            await client.aclose()

    correctness, refusal = asyncio.run(go())
    assert correctness.value == 1 and refusal.value == 1  # PASS is a pass, not "refused when expected"
    systems = [call.body["messages"][0]["content"] for call in fake.log]
    assert all(s.startswith(own) for s in systems)  # the team's text, never the built-in


def test_a_broken_json_schema_is_a_spec_error(tmp_path):
    (tmp_path / "bad.json").write_text('{"type": "object",')
    (tmp_path / "wrong.json").write_text('{"type": "thing"}')
    for name, match in (
        ("bad.json", r"judges.format.schema.*not valid JSON"),
        ("wrong.json", r"judges.format.schema.*not a valid JSON schema"),
    ):
        spec = spec_from_dict(
            {
                **SPEC,
                "judges": {
                    "correctness": {"kind": "json_valid"},
                    "refusal": {"kind": "refusal_phrases"},
                    "format": {"kind": "json_schema", "schema": name},
                },
            },
            tmp_path / "m.yaml",
        )
        with pytest.raises(SpecError, match=match):
            build_judges(spec, judge_configs(spec), lambda signal, model: None)


@pytest.mark.parametrize(
    ("judge", "message"),
    [
        (
            {"kind": "tool_called", "arguments": True},
            "arguments does not apply to a tool_called judge (it takes: tool)",
        ),
        (
            {"kind": "tool_count", "tool": "get_order"},
            "tool does not apply to a tool_count judge (it takes: no options)",
        ),
        ({"kind": "refusal_phrases", "model": "judge-model"}, "model does not apply to a refusal_phrases judge"),
        ({"kind": "json_valid", "schema": {"type": "object"}}, "schema does not apply to a json_valid judge"),
    ],
)
def test_a_setting_the_judge_kind_does_not_read_is_an_error_not_ignored(judge, message):
    """``tool_called`` with ``arguments: true`` used to run as if the line were not there."""
    raw = {
        "incumbent": "a",
        "candidates": ["b"],
        "dimensions": {"tool_use": {"margin": 0.05}},
        "models": {"a": {}, "b": {}, "judge-model": {}},
        "judges": {"tool_use": judge},
    }
    with pytest.raises(SpecError, match="judges.tool_use") as exc:
        judge_configs(spec_from_dict(raw, "migration.yaml"))
    assert message in str(exc.value)


def test_tool_called_with_a_named_tool():
    """``tool: NAME``: 1 when called, 0 when not; None (with why) where the request does not offer it - a
    misspelled name used to score every response 0, a candidate regression out of a typo."""
    from changeover.judges.tools import tool_called
    from changeover.providers.toolcalls import ToolCall

    tools = [{"type": "function", "function": {"name": n, "parameters": {}}} for n in ("get_order", "track_parcel")]
    called = [ToolCall("get_order", {"order_id": 1})]
    case = Case("i", "cand", "where is my order?", "[]", tools=tools, tool_calls=called, incumbent_tool_calls=[])
    assert tool_called(case, {"tool": "get_order"}).value == 1
    missed = tool_called(case, {"tool": "track_parcel"})
    assert missed.value == 0 and missed.note == "did not call track_parcel (called: get_order)"
    typo = tool_called(case, {"tool": "get_ordr"})
    assert (
        typo.value is None
        and typo.note == "the request does not define 'get_ordr' (it offers: get_order, track_parcel)"
    )
    bare = Case("i", "cand", "hello", "hi", tool_calls=[], incumbent_tool_calls=[])
    assert (
        tool_called(bare, {"tool": "get_order"}).note == "the request does not define 'get_order' (it offers: no tools)"
    )
