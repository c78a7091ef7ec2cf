"""Ranked (comparison, model, cell) slots -> concrete responses to label next.

Only responses that exist and have no known truth are offered: a response a
model never gave is in no table, and a failed call is known unacceptable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from changeover.assessment.result import NextLabel
from changeover.assessment.tables import Comparison
from changeover.stats.labelvalue import RankedLabel


def _open(comp: Comparison, model: int, cell: int) -> bool:
    known = getattr(comp.table, "known0" if model == 0 else "known1", None)
    return known is None or int(known[cell]) < 0


def next_labels(
    ranked: list[RankedLabel], comparisons: dict[tuple[str, str], Comparison], incumbent: str, count: int
) -> list[NextLabel]:
    """The first ``count`` distinct (item, model, dimension) the ranking points at, best first."""
    out = []
    for label in _expand(ranked, comparisons, incumbent):
        out.append(label)
        if len(out) >= count:
            break
    return out


def _expand(
    ranked: list[RankedLabel], comparisons: dict[tuple[str, str], Comparison], incumbent: str
) -> Iterator[NextLabel]:
    taken: set[tuple[str, str, str]] = set()
    cursor: dict[tuple[str, str, int, int], int] = defaultdict(int)
    members_of: dict[tuple[str, str, int, int], np.ndarray] = {}
    for r in ranked:
        comp = comparisons[(r.candidate, r.dimension)]
        if not _open(comp, r.model, r.cell):
            continue
        model = incumbent if r.model == 0 else r.candidate
        members = members_of.get((r.candidate, r.dimension, r.cell, r.model))
        if members is None:  # entries holding this model's first sample, first used: what the app shows
            members = np.flatnonzero((comp.table.cell_of_item == r.cell) & comp.first_sample[r.model])
            members_of[(r.candidate, r.dimension, r.cell, r.model)] = members
        key = (r.candidate, r.dimension, r.model, r.cell)
        while cursor[key] < len(members):
            item = comp.items[members[cursor[key]]]
            cursor[key] += 1
            if (item, model, r.dimension) in taken:
                continue
            taken.add((item, model, r.dimension))
            yield NextLabel(item, model, r.dimension, r.value)
            break
