"""An annotator the measurement model finds noisy gets a second annotator on what they labelled alone."""

from __future__ import annotations

from types import SimpleNamespace

from changeover.labeling.progress import LOW_WEIGHT, noisy_annotators
from changeover.stats.model import AnnotatorNoise


def _decision(**per_dimension: list[AnnotatorNoise]) -> SimpleNamespace:
    dims = {name: SimpleNamespace(annotators=rates) for name, rates in per_dimension.items()}
    return SimpleNamespace(candidates={"cand": SimpleNamespace(dimensions=dims)})


def test_annotators_under_the_weight_threshold_are_rechecked():
    noisy = 0.5 * (1 - LOW_WEIGHT) + 0.01  # just under the weight threshold
    decision = _decision(
        refusal=[AnnotatorNoise("bob", noisy, 0.2, 0.4, 40), AnnotatorNoise("alice", 0.04, 0.01, 0.1, 40)],
        style=[AnnotatorNoise("carol", 0.4, 0.3, 0.5, 30)],
    )
    assert noisy_annotators(decision, ["refusal"]) == {"bob"}  # carol's rate is on a dimension not labelled here
    assert noisy_annotators(decision, ["refusal", "style"]) == {"bob", "carol"}
    fine = _decision(refusal=[AnnotatorNoise("bob", 0.5 * (1 - LOW_WEIGHT) - 0.01, 0.1, 0.3, 40)])
    assert noisy_annotators(fine, ["refusal"]) == frozenset()
    assert noisy_annotators(None, ["refusal"]) == frozenset()  # no fit yet


def test_the_rate_from_the_comparison_with_most_of_their_verdicts_decides():
    decision = SimpleNamespace(
        candidates={
            "a": SimpleNamespace(
                dimensions={"refusal": SimpleNamespace(annotators=[AnnotatorNoise("bob", 0.4, 0, 1, 5)])}
            ),
            "b": SimpleNamespace(
                dimensions={"refusal": SimpleNamespace(annotators=[AnnotatorNoise("bob", 0.05, 0, 1, 50)])}
            ),
        }
    )
    assert noisy_annotators(decision, ["refusal"]) == frozenset()
