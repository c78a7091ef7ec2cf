"""From posterior draws of a delta to a verdict at a stated confidence.

With margin m and confidence g, for delta = candidate - incumbent pass rate:
regression when P(delta < -m) >= g; superior when P(delta > 0) >= g;
non-inferior when P(delta > -m) >= g; otherwise inconclusive. A candidate is
GO when every required dimension is at least non-inferior overall and in every
required segment, NO-GO when any of them is a regression, else NEED-LABELS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUPERIOR, NONINFERIOR, INCONCLUSIVE, REGRESSION = "superior", "non-inferior", "inconclusive", "regression"
GO, NO_GO, NEED_LABELS = "GO", "NO-GO", "NEED-LABELS"
PASSING = (SUPERIOR, NONINFERIOR)


@dataclass(frozen=True)
class Interval:
    mean: float
    lower: float
    upper: float

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "lower": self.lower, "upper": self.upper}


def interval(draws: np.ndarray, confidence: float) -> Interval:
    """Posterior mean and equal-tailed credible interval at ``confidence``."""
    lo, hi = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(np.mean(draws)), float(lo), float(hi))


@dataclass(frozen=True)
class Judgement:
    """The decision on one delta (overall or in one segment)."""

    p_noninferior: float
    p_superior: float
    p_regression: float
    verdict: str


def judge_delta(delta: np.ndarray, margin: float, confidence: float) -> Judgement:
    p_ni = float(np.mean(delta > -margin))
    p_sup = float(np.mean(delta > 0))
    p_reg = float(np.mean(delta < -margin))
    if p_reg >= confidence:
        verdict = REGRESSION
    elif p_sup >= confidence:
        verdict = SUPERIOR
    elif p_ni >= confidence:
        verdict = NONINFERIOR
    else:
        verdict = INCONCLUSIVE
    return Judgement(p_ni, p_sup, p_reg, verdict)


def combine(verdicts: list[str]) -> str:
    """A dimension's or candidate's overall call from the verdicts that are required."""
    if any(v == REGRESSION for v in verdicts):
        return NO_GO
    if all(v in PASSING for v in verdicts):
        return GO
    return NEED_LABELS


def dimension_verdict(overall: str, segments: list[str]) -> str:
    """The dimension's headline verdict: the worst of overall and required segments."""
    order = [REGRESSION, INCONCLUSIVE, NONINFERIOR, SUPERIOR]
    return min([overall, *segments], key=order.index)


def overall_verdict(candidate_verdicts: list[str]) -> str:
    """The migration: GO if some candidate is GO, NO-GO if all are, else NEED-LABELS."""
    if any(v == GO for v in candidate_verdicts):
        return GO
    if candidate_verdicts and all(v == NO_GO for v in candidate_verdicts):
        return NO_GO
    return NEED_LABELS
