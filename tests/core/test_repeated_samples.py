"""Repeated samples per item (``evaluate --samples k``): every answer enters the model, each item weighs one.

The simulation: each item has its own pass probability per model (items vary: a
logit spread of 1.5 around the segment's rate), each of its k answers passes
with that probability, the judge scores every answer, and humans label the
first answer of a random subset. The estimand is the population pass rate
(the mean of the items' probabilities), which is what a user's traffic sees.
Seeded (``stats.repeated``); the larger run is ``benchmarks/bench_repeated_samples.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from changeover.assessment import assess
from changeover.cli import run
from changeover.config import spec_from_dict
from changeover.errors import DataError
from changeover.records import record_from_dict
from changeover.stats.repeated import run_simulation

from .conftest import write_jsonl


@pytest.mark.slow
def test_coverage_holds_with_three_samples_per_item():
    out = run_simulation(reps=60, seed=1, ways=("weighted", "first"))
    print({k: (round(c, 3), round(w, 4)) for k, (c, w) in out.items()})
    coverage, width = out["weighted"]
    assert coverage >= 0.93, out
    # every answer is used, and costs nothing in width against one answer per item
    assert width <= out["first"][1] * 1.02, out


# --------------------------------------------------------------------------- records with repeated samples

SPEC = {
    "incumbent": "legacy",
    "candidates": ["cand"],
    "segment_by": ["region"],
    "traffic": {"monthly_interactions": 1_000_000},
    "dimensions": {"correctness": {"margin": 0.05}},
}


def sampled_rows(seed: int, items: int = 120, k: int = 3, labelled: int = 30) -> list[dict]:
    """The incumbent answers each item once, the candidate k times (``sample`` 0..k-1); the first answers of
    ``labelled`` items per model carry a human label."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(items):
        region = ("emea", "apac")[i % 2]
        p = (rng.beta(4, 1.5), rng.beta(4, 1.5))
        for m, model in enumerate(("legacy", "cand")):
            for s in range(1 if m == 0 else k):
                z = int(rng.random() < p[m])
                row = {
                    "item": f"q{i}",
                    "model": model,
                    "segment": {"region": region},
                    "signals": {"correctness": int(rng.random() < (0.9 if z else 0.2))},
                }
                if m == 1:
                    row["sample"] = s
                if s == 0 and i < labelled:
                    row["labels"] = {"correctness": z}
                rows.append(row)
    return rows


def _records(rows: list[dict]) -> list:
    return [record_from_dict(r, f"row {i}") for i, r in enumerate(rows)]


def test_every_sample_enters_and_each_item_weighs_one():
    from changeover.assessment.pairing import index_records
    from changeover.assessment.tables import comparison, dimension_scales

    rows = sampled_rows(3)
    spec = spec_from_dict(SPEC)
    idx = index_records(spec, _records(rows))
    comp = comparison(spec, idx, "cand", "correctness", dimension_scales(spec, idx)["correctness"], ["apac", "emea"])
    assert comp.table.items == 360  # 120 items x 3 paired samples (the incumbent's one answer reused)
    assert comp.table.item_weight.sum() == pytest.approx(120)  # ... but 120 items inform P(signals | segment)
    assert comp.paired_items == 120 and comp.samples == (1, 3)
    assert comp.labelled == (30, 30)  # the reused incumbent answer brings its label once
    t = comp.table
    assert int((t.tot0 * t.n).sum()) == 30 and int((t.tot1 * t.n).sum()) == 30  # labels in the table
    assert comp.first_sample.sum(1).tolist() == [120, 120]  # the app shows, and ranks, each item's first answers
    by_item: dict[str, set[int]] = {}
    for r in rows:
        if r["model"] == "cand":
            by_item.setdefault(r["item"], set()).add(r["signals"]["correctness"])
    assert sorted(comp.unstable[1]) == sorted(i for i, v in by_item.items() if len(v) > 1)
    assert comp.unstable[0] == []  # one answer per item cannot be unstable


def test_assess_reports_samples_and_unstable_items(tmp_path):
    import jsonschema

    rows = sampled_rows(4)
    a = assess(spec_from_dict(SPEC), _records(rows))
    dim = a.decision.candidates["cand"].dimensions["correctness"]
    assert dim.samples == {"legacy": 1, "cand": 3}
    assert dim.paired_items == 120
    assert dim.unstable["legacy"] == 0 and 0 < dim.unstable["cand"] <= 120
    assert len(dim.unstable_items["cand"]) == min(20, dim.unstable["cand"])
    decision = a.to_json()
    schema = json.loads(open("docs/decision.schema.json").read())
    jsonschema.validate(decision, schema, cls=jsonschema.Draft202012Validator)
    assert (
        decision["candidates"]["cand"]["dimensions"]["correctness"]["unstable"]["cand"]["items"] == dim.unstable["cand"]
    )


def test_two_records_for_one_sample_are_an_error(tmp_path, spec_path, capsys):
    rows = sampled_rows(5, items=20, labelled=0)
    dup = next(r for r in rows if r["model"] == "cand" and r.get("sample") == 2)
    with pytest.raises(DataError, match="two records for model 'cand' with sample 2"):
        assess(spec_from_dict(SPEC), _records([*rows, dup]))
    bad = [*rows[:-1], {**rows[-1], "sample": "two"}]
    path = write_jsonl(tmp_path / "r.jsonl", bad)
    assert run(["assess", "--spec", str(spec_path), "--records", str(path)]) == 2
    err = capsys.readouterr().err
    assert "field 'sample' must be a whole number" in err and "'two'" in err


def test_store_labels_join_an_items_first_sample_only():
    from changeover.store.responses import merge_labels

    recs = _records(sampled_rows(6, items=4, labelled=0))
    merged = merge_labels(recs, {("q1", "cand", "correctness"): [1, 0]})
    assert merged == 2
    got = {(r.item, r.model, r.sample): r.labels.get("correctness") for r in recs if r.item == "q1"}
    assert got == {
        ("q1", "legacy", 0): None,
        ("q1", "cand", 0): [1, 0],
        ("q1", "cand", 1): None,
        ("q1", "cand", 2): None,
    }


def test_assess_and_the_report_name_the_unstable_items(tmp_path, spec_path, capsys):
    records = write_jsonl(tmp_path / "r.jsonl", sampled_rows(7))
    out = tmp_path / "report.html"
    assert run(["assess", "--spec", str(spec_path), "--records", str(records)]) in (0, 1, 3)
    text = " ".join(capsys.readouterr().out.split())
    assert "unstable items (passing some samples and failing others): cand on correctness:" in text
    assert "(3 samples; e.g. q" in text
    assert run(["report", "--spec", str(spec_path), "--records", str(records), "--out", str(out)]) in (0, 1, 3)
    assert "unstable items (passing some samples and failing others)" in out.read_text()


def test_an_excluded_failure_leaves_the_reused_answers_labels_with_the_pairs_kept():
    """errors: exclude drops the pair holding a failed sample; the incumbent's one answer, reused in the
    pairs that remain, still brings its label once and is still offered for labelling."""
    from changeover.assessment.pairing import index_records
    from changeover.assessment.tables import comparison, dimension_scales

    rows = sampled_rows(8, items=6, labelled=6)
    for r in rows:
        if r["item"] == "q0" and r["model"] == "cand" and r["sample"] == 0:
            r["error"] = "timeout"
    spec = spec_from_dict({**SPEC, "segment_by": [], "dimensions": {"correctness": {"errors": "exclude"}}})
    idx = index_records(spec, _records(rows))
    comp = comparison(spec, idx, "cand", "correctness", dimension_scales(spec, idx)["correctness"], ["all"])
    assert comp.excluded == (0, 1) and comp.labelled == (6, 5)  # cand's failed sample 0 held q0's label
    assert comp.scored[0] == (6,)
    q0 = [j for j, item in enumerate(comp.items) if item == "q0"]
    assert len(q0) == 2 and comp.first_sample[0, q0].tolist() == [True, False]  # still labellable
    assert not comp.first_sample[1, q0].any()  # the candidate's first answer failed: nothing to label


def test_a_sample_is_checked_where_the_row_is_read():
    from changeover.errors import RecordsError

    assert record_from_dict({"item": "a", "model": "m", "sample": "2"}, "f.csv:3").sample == 2  # a CSV cell
    for bad in (1.5, -1, True, "two"):
        with pytest.raises(RecordsError, match=r"f.jsonl:7: .*field 'sample' must be a whole number"):
            record_from_dict({"item": "a", "model": "m", "sample": bad}, "f.jsonl:7")


def test_the_queue_offers_only_answers_the_app_can_show():
    """An incumbent answer reused beside the candidate's extra samples, and the candidate's samples after the
    first, are not open slots: labels_needed and the ranking count each item's first answer once."""
    from changeover.stats.labelvalue import open_cells

    rows = sampled_rows(9, items=60, labelled=0)
    for r in rows:
        if r["model"] == "legacy":
            r["labels"] = {"correctness": 1}  # the incumbent is fully labelled
    a = assess(spec_from_dict(SPEC), _records(rows), draws=200, warmup=200, next_count=200)
    t = a.comparisons[("cand", "correctness")].table
    assert int(t.labellable(1).sum()) == 60 and int(t.n.sum()) == 180  # 3 entries per item, 1 shown
    assert int(t.labellable(0)[t.tot0 == 0].sum()) == 0  # the reused, labelled incumbent answer: nothing open
    assert not open_cells(a.pairs[("cand", "correctness")].fit, 0).any()
    offered = a.decision.next_labels
    assert offered and all(x.model == "cand" for x in offered)
    assert len({x.item for x in offered}) == len(offered) <= 60  # one per item: its first answer
