"""Imported traffic evaluated by a real model: OpenTelemetry spans -> traffic -> SmolLM2 behind llama.cpp."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from changeover.cli import run
from changeover.records import read_records

SAMPLES = Path(__file__).parent / "samples"


@pytest.mark.llm
def test_imported_otel_spans_evaluated_by_smollm2(local_llm, tmp_path, capsys):
    endpoint = {"base_url": local_llm.base_url, "model": local_llm.model, "concurrency": 2, "timeout_s": 120}
    spec = tmp_path / "migration.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "incumbent": "smol-warm",
                "candidates": ["smol-cold"],
                "segment_by": ["region"],
                "dimensions": {"refusal": {"margin": 0.05}},
                "models": {"smol-warm": endpoint, "smol-cold": endpoint},
                "judges": {"refusal": {"kind": "refusal_phrases"}, "length": {"kind": "length_ratio"}},
                "evaluate": {"params": {"max_tokens": 24, "temperature": 0}, "min_per_segment": 1},
                "traffic_import": {"segments": {"region": "resource.cloud.region"}},
            }
        )
    )
    traffic = tmp_path / "traffic.jsonl"
    assert (
        run(["traffic", "import", str(SAMPLES / "otel_genai_spans.jsonl"), "--out", str(traffic), "--spec", str(spec)])
        == 0
    )
    out = tmp_path / "out"
    code = run(
        ["evaluate", "--spec", str(spec), "--prompts", str(traffic), "--out", str(out), "--no-progress"]
        + ["--db", str(tmp_path / "c.db")]
    )
    assert code == 0, capsys.readouterr().out
    records = read_records(out / "records.jsonl")
    assert len(records) == 6 and {r.model for r in records} == {"smol-warm", "smol-cold"}
    assert {r.segment["region"] for r in records} == {"eu-west-1", "us-east-1"}
    for rec in records:
        assert rec.error is None and rec.response is not None and rec.tokens_in > 10 and rec.tokens_out > 0
        assert rec.signals["refusal"] in (0, 1)
