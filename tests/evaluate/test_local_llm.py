"""Real local models end to end: SmolLM2 (llama.cpp) as incumbent, candidate (another prompt) and judge.

The model is weak: these tests check the real wire protocol, tokens, latency
and messy judge output flowing into ``assess``, never what a verdict should be.
"""

from __future__ import annotations

import warnings

import pytest

from changeover.assess import assess
from changeover.evaluate import LIVE_CANDIDATE, LIVE_INCUMBENT, run_live_demo
from changeover.store import open_store

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_live_migration_with_real_local_models_into_assess(local_llm, tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        result = run_live_demo(
            tmp_path / "live", items=4, base_url=local_llm.base_url, model=local_llm.model, store=store
        )
    recs = result.records
    assert len(recs) == 8 and {r.model for r in recs} == {LIVE_INCUMBENT, LIVE_CANDIDATE}
    for rec in recs:
        assert rec.error is None and rec.response and rec.response.strip()
        assert 0 < rec.tokens_out <= 32 and rec.tokens_in > 5 and rec.latency_ms > 0
        assert rec.signals["refusal"] in (0, 1)
        assert rec.signals["correctness"] in (0, 1, None)
        if rec.signals["correctness"] is None:
            assert rec.extra["unscorable"]["correctness"]  # unscorable always says why
        assert rec.extra["judges"]["correctness"]["judge"] == "llm:smollm2-judge"
    versions = {r.model: r.extra["prompt_version"] for r in recs}
    assert versions == {LIVE_INCUMBENT: "assistant@default:v1", LIVE_CANDIDATE: f"assistant@{LIVE_CANDIDATE}:v1"}
    judged = result.judge_stats["correctness"]
    assert judged["scored"] + judged["unscorable"] == 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decision = assess(result.spec_for_assess, recs, draws=60, warmup=60, chains=2)
    assert decision.verdict in ("GO", "NO-GO", "NEED-LABELS")
    assert set(decision.to_json()["candidates"]) == {LIVE_CANDIDATE}


def test_two_different_real_models_smollm2_incumbent_gemma_candidate(local_llm, local_gemma, tmp_path):
    import yaml

    from changeover.config import load_spec
    from changeover.evaluate import evaluate, live_demo_inputs
    from changeover.prompts import read_interactions

    spec_path, traffic = live_demo_inputs(local_llm.base_url, local_llm.model, tmp_path / "live", items=4)
    raw = yaml.safe_load(spec_path.read_text())
    raw["candidates"] = ["gemma3-base"]
    raw["models"]["gemma3-base"] = {
        "base_url": local_gemma.base_url,
        "model": local_gemma.model,
        "api": "completions",
        "concurrency": 2,
        "timeout_s": 120,
    }
    del raw["models"][LIVE_CANDIDATE]
    spec_path.write_text(yaml.safe_dump(raw))
    result = evaluate(load_spec(spec_path), read_interactions(traffic), labels_budget=0)
    gemma = [r for r in result.records if r.model == "gemma3-base"]
    assert len(gemma) == 4 and all(r.error is None and r.tokens_out > 0 for r in gemma)
    assert all(r.extra["prompt_version"] == "assistant@default:v1" for r in gemma)
    assert all(r.signals["correctness"] in (0, 1, None) for r in result.records)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decision = assess(result.spec_for_assess, result.records, draws=60, warmup=60, chains=2)
    assert set(decision.to_json()["candidates"]) == {"gemma3-base"}


def test_streaming_from_llama_cpp(local_llm):
    import asyncio

    from changeover.providers import ChatRequest, ModelClient, ModelConfig, build_provider

    config = ModelConfig(base_url=local_llm.base_url, model=local_llm.model, stream=True)
    client = ModelClient("smollm2", build_provider("smollm2", config), config)

    async def go():
        try:
            return await client.complete(
                ChatRequest([{"role": "user", "content": "Name three colours."}], {"max_tokens": 12})
            )
        finally:
            await client.aclose()

    out = asyncio.run(go())
    assert out.ok and out.text.strip() and 0 < out.tokens_out <= 12
    assert out.finish_reason in ("stop", "length") and 0 < out.ttft_ms < out.latency_ms
