"""Several signals per dimension: each read on its own scale, each with its own confusion per model."""

import numpy as np

from changeover import demo
from changeover.assessment import assess
from changeover.config import spec_from_dict


def test_xstest_with_the_judge_and_a_refusal_phrase_check():
    data = demo.prepare(labels=120, seed=7)
    raw = demo.demo_spec_dict()
    raw["dimensions"]["refusal"] = {"signals": ["refusal", "refusal_strmatch"], "margin": 0.02}
    a = assess(spec_from_dict(raw), data.records)
    dim = a.decision.candidates["gpt4"].dimensions["refusal"]
    assert [s.name for s in dim.signals] == ["refusal", "refusal_strmatch"]
    assert a.to_json()["candidates"]["gpt4"]["dimensions"]["refusal"]["signal"] == (
        "refusal: binary signal with 2 levels; refusal_strmatch: binary signal with 2 levels"
    )
    confusion = a.decision.diagnostics.signals["refusal"]
    assert set(confusion) == {"refusal", "refusal_strmatch"}
    assert set(confusion["refusal_strmatch"]) == {"llama2orig", "gpt4", "mistralguard"}
    # the two signals are different evaluators: their estimated confusions differ
    j, s = confusion["refusal"]["mistralguard"], confusion["refusal_strmatch"]["mistralguard"]
    assert abs(j.specificity - s.specificity) > 0.02 or abs(j.sensitivity - s.sensitivity) > 0.02
    full = demo.naive_delta(data.truth, data.spec, "gpt4", "human")
    assert dim.overall.delta.lower <= full <= dim.overall.delta.upper
    assert np.isfinite(a.decision.diagnostics.rhat_max)
