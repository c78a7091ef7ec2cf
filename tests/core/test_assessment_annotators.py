"""Annotators named in the records reach the assessment: a noise rate each, reported in the Decision."""

import numpy as np
import pytest

from changeover.assessment import assess
from changeover.assessment.annotators import UNNAMED, annotator_votes
from changeover.config import spec_from_dict
from changeover.errors import DataError, RecordsError
from changeover.records import Record, record_from_dict

NOISE = {"bob": 0.35, "ana": 0.03, "cy": 0.03}


def _records(seed: int) -> list[Record]:
    """Two segments; 120 responses per segment and model labelled, 40% twice; 20 gold checks each."""
    rng = np.random.default_rng(seed)
    names = list(NOISE)
    out = []
    for s, region in enumerate(("north", "south")):
        for i in range(400):
            z = (int(rng.random() < 0.8), int(rng.random() < 0.78))
            for m, model in enumerate(("legacy", "cand")):
                rec = Record(f"{region}-{i}", model, {"region": region})
                rec.signals["correctness"] = int(rng.random() < (0.85 if z[m] else 0.15))
                if i < 120:
                    who = list(rng.choice(names, size=2 if rng.random() < 0.4 else 1, replace=False))
                elif i < 120 + 10 * len(names) and m == s:
                    who = [names[(i - 120) // 10], "settled:gold"]
                else:
                    who = []
                verdicts = [z[m] if w.startswith("settled:") or rng.random() >= NOISE[w] else 1 - z[m] for w in who]
                if who:
                    rec.add_labels("correctness", verdicts, [str(w) for w in who])
                out.append(rec)
    return out


SPEC = {
    "incumbent": "legacy",
    "candidates": ["cand"],
    "segment_by": ["region"],
    "dimensions": {"correctness": {"signal": "correctness", "margin": 0.05}},
}


def test_each_annotator_gets_a_noise_rate_in_the_decision():
    result = assess(spec_from_dict(SPEC), _records(1), seed=3, draws=250, warmup=300)
    dim = result.decision.candidates["cand"].dimensions["correctness"]
    noise = {a.name: a for a in dim.annotators}
    assert set(noise) == set(NOISE)  # the settled answers are exact: no rate of their own
    assert noise["bob"].noise_mean > 0.2 and noise["bob"].lower < 0.35 < noise["bob"].upper
    assert noise["ana"].noise_mean < 0.1 and noise["cy"].noise_mean < 0.1
    assert all(a.lower <= a.noise_mean <= a.upper for a in noise.values())
    assert noise["bob"].labels > 100
    # the decision JSON carries the same rates, valid against its schema, and reads back into them
    import json

    import jsonschema

    from changeover.assessment import decision_from_json

    decision = result.to_json()
    jsonschema.validate(decision, json.loads(open("docs/decision.schema.json").read()))
    rows = {a["name"]: a for a in decision["candidates"]["cand"]["dimensions"]["correctness"]["annotators"]}
    assert rows["bob"]["noise"] == noise["bob"].noise_mean and rows["bob"]["labels"] == noise["bob"].labels
    back = decision_from_json(decision).candidates["cand"].dimensions["correctness"].annotators
    assert back == dim.annotators


def test_unnamed_verdicts_report_no_rate_without_double_labels():
    recs = _records(2)
    for r in recs:
        r.label_by.clear()
        if len(r.labels.get("correctness", [])) > 1:
            r.labels["correctness"] = r.labels["correctness"][:1]
    result = assess(spec_from_dict(SPEC), recs, seed=3, draws=250, warmup=300)
    assert result.decision.candidates["cand"].dimensions["correctness"].annotators == []


def test_label_by_round_trips_and_is_checked():
    row = {"item": "q1", "model": "m", "labels": {"c": [1, 0]}, "label_by": {"c": ["ana", "settled:lead"]}}
    rec = record_from_dict(row, "f.jsonl:1")
    assert rec.annotators("c") == ["ana", "settled:lead"]
    assert record_from_dict(rec.to_dict(), "x").label_by == rec.label_by
    assert "label_by" not in Record("q1", "m", labels={"c": [1]}).to_dict()  # old records: same fingerprint
    with pytest.raises(RecordsError, match=r"f.jsonl:1: field 'label_by.c': 1 annotator name\(s\) for 2 verdict"):
        record_from_dict({**row, "label_by": {"c": "ana"}}, "f.jsonl:1")


def test_the_unnamed_rate_is_reported_beside_named_ones_and_a_column_without_verdicts_is_not():
    recs = _records(4)
    rng = np.random.default_rng(5)
    failed_only = 0
    for r in recs:
        by = r.annotators("correctness")
        if "settled:gold" in by:  # the unnamed annotator checked on the gold responses too, flipping 40%
            truth = r.labels["correctness"][by.index("settled:gold")]
            r.add_labels("correctness", [truth if rng.random() >= 0.4 else 1 - truth], [""])
        elif not by and r.model == "cand" and failed_only < 20:  # dee judges only calls that failed
            r.error, failed_only = "timeout", failed_only + 1
            r.add_labels("correctness", [1], ["dee"])
    result = assess(spec_from_dict(SPEC), recs, seed=3, draws=250, warmup=300)
    noise = {a.name: a for a in result.decision.candidates["cand"].dimensions["correctness"].annotators}
    assert set(noise) == {*NOISE, UNNAMED}  # no column for dee (known truth: nothing but the prior)
    assert noise[UNNAMED].labels == 60 and noise[UNNAMED].noise_mean > 0.2  # the noisy one is not hidden
    assert all(a.labels > 0 for a in noise.values())


def test_two_settled_answers_that_disagree_are_an_error_naming_them():
    recs = _records(1)
    rec = next(r for r in recs if "settled:gold" in r.annotators("correctness"))
    gold = rec.labels["correctness"][rec.annotators("correctness").index("settled:gold")]
    rec.add_labels("correctness", [1 - gold], ["settled:lead"])
    with pytest.raises(DataError) as err:
        assess(spec_from_dict(SPEC), recs, seed=3, draws=50, warmup=50)
    text = str(err.value)
    assert f"item '{rec.item}', model '{rec.model}', dimension 'correctness'" in text
    assert f"'settled:gold' says {gold}, 'settled:lead' says {1 - gold}" in text and "resolve it" in text
    rec.labels["correctness"][-1] = gold  # the same answer twice is no conflict
    votes = annotator_votes([(None, rec)], "correctness")
    assert votes is not None and votes.votes[1, 0, votes.names.index("settled:lead")].tolist() == [gold, 1]
