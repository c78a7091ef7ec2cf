"""The Pareto front of cost and quality: the options no other option beats on both.

An option dominates another when it costs no more and is no worse on every
quality dimension, and is strictly better on at least one of them. The front is
the options nobody dominates; an option with an unknown cost is never on it (it
cannot be placed). Two identical options do not dominate each other, so both stay
on the front. ``pick`` compares the posterior means of each required dimension's
delta against the incumbent (the incumbent itself sits at zero), so the front says
where the expected trade-offs lie; the intervals in the report say how firm they are.
"""

from __future__ import annotations

from collections.abc import Sequence


def dominates(a: tuple[float, Sequence[float]], b: tuple[float, Sequence[float]]) -> bool:
    """Whether ``a`` = (cost, qualities) dominates ``b``: no dearer, no worse anywhere, better somewhere."""
    cost_a, quality_a = a
    cost_b, quality_b = b
    if cost_a > cost_b or any(qa < qb for qa, qb in zip(quality_a, quality_b, strict=True)):
        return False
    return cost_a < cost_b or any(qa > qb for qa, qb in zip(quality_a, quality_b, strict=True))


def pareto_front(options: Sequence[tuple[float | None, Sequence[float]]]) -> list[bool]:
    """For each (cost, qualities) option, whether it is on the front; lower cost and higher quality are better."""
    placed = [(cost, tuple(quality)) for cost, quality in options if cost is not None]
    return [
        cost is not None and not any(dominates(other, (cost, tuple(quality))) for other in placed)
        for cost, quality in options
    ]
