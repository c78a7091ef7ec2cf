"""The same data give the same verdict and exit code for every seed (issue 10: the demo flipped 3 0 3 3 0 3)."""

from changeover import demo
from changeover.assessment import assess


def test_the_demo_data_give_one_verdict_over_six_seeds():
    data = demo.prepare()
    outcomes = set()
    for seed in range(11, 17):
        a = assess(data.spec, data.records, seed=seed)
        outcomes.add((a.verdict, a.exit_code, tuple(c.verdict for c in a.decision.candidates.values())))
    assert len(outcomes) == 1, outcomes
