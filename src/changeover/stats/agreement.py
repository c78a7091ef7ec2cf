"""Agreement between human annotators on binary verdicts: one definition for every place that shows it.

Over the responses with two or more verdicts, ``observed`` is the share of
agreeing pairs among all pairs of verdicts on the same response, and ``kappa``
is Fleiss' kappa for two categories: (observed - expected) / (1 - expected),
with expected = p^2 + (1 - p)^2 and p the share of 1s among those verdicts
(None when every verdict is the same, so chance agreement is 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

__all__ = ["Agreement", "fleiss_kappa"]


@dataclass(frozen=True, slots=True)
class Agreement:
    """Agreement over ``responses`` responses holding ``pairs`` pairs of verdicts."""

    responses: int
    pairs: int
    observed: float | None
    kappa: float | None


def fleiss_kappa(verdict_lists: Iterable[list[int]]) -> Agreement:
    """Observed pairwise agreement and Fleiss' kappa over the lists with at least two verdicts."""
    multi = [v for v in verdict_lists if len(v) >= 2]
    pairs = [(a, b) for v in multi for a, b in combinations(v, 2)]
    if not pairs:
        return Agreement(0, 0, None, None)
    observed = sum(a == b for a, b in pairs) / len(pairs)
    ones = sum(sum(v) for v in multi) / sum(len(v) for v in multi)
    expected = ones**2 + (1 - ones) ** 2
    kappa = (observed - expected) / (1 - expected) if expected < 1 else None
    return Agreement(len(multi), len(pairs), observed, kappa)
