"""`changeover pick`: GO candidates ranked by cost at the spec's traffic, a cheaper undecided one named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from changeover.assess import assess
from changeover.cli import run
from changeover.config import spec_from_dict
from changeover.pick import pick
from changeover.records import Record, write_records

SPEC = {
    "incumbent": "old",
    "candidates": ["dear", "cheap", "broken"],
    "traffic": {"monthly_interactions": 1_000_000},
    "dimensions": {"correctness": {"margin": 0.05}},
    "pricing": {"cheap": {"input_per_1k": 0.0001, "output_per_1k": 0.0002}},
}
PASS = {"old": 0.80, "dear": 0.90, "cheap": 0.80, "broken": 0.40}
COST = {"old": 0.010, "dear": 0.004, "broken": 0.001}  # cheap: from tokens and the price table


def _records(n: int = 400, seed: int = 3) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        for model, p in PASS.items():
            z = int(rng.random() < p)
            # a good judge on every model; labels on many items, except few on 'cheap' (it stays undecided)
            signal = z if rng.random() < 0.92 else 1 - z
            labelled = i < (30 if model == "cheap" else 300)
            rec = Record(
                item=f"q{i}",
                model=model,
                signals={"correctness": signal},
                labels={"correctness": [z]} if labelled else {},
                latency_ms=float(rng.gamma(4.0, 100.0 if model != "dear" else 200.0)),
            )
            if model == "cheap":
                rec.tokens_in, rec.tokens_out = 500.0, float(rng.integers(100, 300))
            else:
                rec.cost_usd = COST[model] * float(rng.uniform(0.8, 1.2))
            out.append(rec)
    return out


@pytest.fixture(scope="module")
def chosen():
    spec = spec_from_dict(SPEC)
    records = _records()
    return spec, records, pick(assess(spec, records), records)


def test_go_candidates_rank_first_cheapest_first_and_the_cheaper_undecided_is_named(chosen):
    spec, _, result = chosen
    verdicts = {c.candidate: c.verdict.value for c in result.ranked}
    assert verdicts == {"dear": "GO", "cheap": "NEED-LABELS", "broken": "NO-GO"}
    assert [c.candidate for c in result.ranked] == ["dear", "cheap", "broken"]
    assert result.recommended.candidate == "dear" and result.exit_code == 0
    assert [c.candidate for c in result.cheaper_undecided] == ["cheap"]
    assert result.cheaper_undecided[0].next_labels, "the labels that would settle it"
    assert result.cheaper_undecided[0].labels_needed > 0
    # the Pareto front of cost and quality: cheap (cheapest) and dear (best); broken and the incumbent are dominated
    assert {c.candidate: c.on_front for c in result.ranked} == {"dear": True, "cheap": True, "broken": False}
    assert not result.incumbent_on_front and result.dimensions == ["correctness"]
    assert result.ranked[0].quality["correctness"].lower > 0  # dear is better than old


def test_costs_per_month_and_the_paired_saving(chosen):
    _, _, result = chosen
    dear = result.ranked[0]
    # 1M interactions x ~$0.004 = ~$4,000 a month; the incumbent ~$10,000; saving ~$6,000
    assert 3_800 < dear.costs.cost.mean < 4_200
    assert 9_500 < result.incumbent.cost.mean < 10_500
    assert dear.saving.lower < 6_000 < dear.saving.upper and dear.saving.upper - dear.saving.lower < 300
    cheap = result.ranked[1]  # priced from tokens: 500 in x 0.0001/1k + ~200 out x 0.0002/1k = ~$0.00009
    assert cheap.costs.priced == 400 and 80 < cheap.costs.cost.mean < 100
    assert dear.costs.p95_latency_ms > result.incumbent.p95_latency_ms


def test_no_go_candidate_exits_3_then_1():
    spec = spec_from_dict({**SPEC, "candidates": ["cheap", "broken"]})
    records = [r for r in _records() if r.model in ("old", "cheap", "broken")]
    assert pick(assess(spec, records), records).exit_code == 3
    spec = spec_from_dict({**SPEC, "candidates": ["broken"]})
    records = [r for r in records if r.model in ("old", "broken")]
    result = pick(assess(spec, records), records)
    assert result.recommended is None and result.exit_code == 1


def test_the_command_prints_the_ranking_writes_json_and_exits_0(tmp_path, capsys, monkeypatch):
    import yaml

    monkeypatch.chdir(tmp_path)  # no default store here: --records alone must not create one
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(SPEC))
    write_records(_records(), tmp_path / "r.jsonl")
    rc = run(["pick", "--spec", "m.yaml", "--records", "r.jsonl", "--json", "pick.json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "pick: dear" in out and "cheaper but undecided: cheap" in out
    data = json.loads((tmp_path / "pick.json").read_text())
    assert data["recommended"] == "dear" and [c["candidate"] for c in data["ranked"]] == ["dear", "cheap", "broken"]
    assert data["cost_unit"] == "usd_per_month"
    assert {c["candidate"]: c["on_pareto_front"] for c in data["ranked"]} == {
        "dear": True,
        "cheap": True,
        "broken": False,
    }
    assert data["incumbent"]["on_pareto_front"] is False and "front" in out
    assert not (tmp_path / ".changeover").exists()
