"""Who labelled a comparison: per paired item and model, each annotator's votes, for the count table.

The records' ``label_by`` names the annotator of each verdict (``Record.annotators``);
a verdict without a name is the unnamed annotator's (''), and a settled answer
(``settled:<admin>``, ``settled:gold``) is an exact one. With no name at all
the table keeps only the totals, exactly as before annotators were told apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from changeover.records import Record, is_settled
from changeover.stats.model import AnnotatorNoise, PairFit


@dataclass(frozen=True, slots=True)
class AnnotatorVotes:
    """``votes[m]``: [items, A, 2] (said 1, judged) by each of ``names`` on model m's answer."""

    names: tuple[str, ...]
    votes: np.ndarray  # [2, items, A, 2]

    def table_args(self) -> dict[str, Any]:
        """The keyword arguments of ``stats.tables.build_table`` that keep who said what."""
        return {
            "annotators": self.names,
            "votes0": self.votes[0],
            "votes1": self.votes[1],
            "exact": [is_settled(n) for n in self.names],
        }


def annotator_votes(pairs: list[tuple[Record | None, Record | None]], dimension: str) -> AnnotatorVotes | None:
    """Per (incumbent, candidate) entry in table order, each annotator's votes on ``dimension`` (None: an
    answer whose labels count elsewhere); None when no verdict names its annotator."""
    names = sorted({who for pair in pairs for rec in pair if rec is not None for who in rec.annotators(dimension)})
    if not any(names):
        return None
    col = {n: i for i, n in enumerate(names)}
    votes = np.zeros((2, len(pairs), len(names), 2), np.int64)
    for j, pair in enumerate(pairs):
        for m, rec in enumerate(pair):
            if rec is None:
                continue
            for who, verdict in zip(rec.annotators(dimension), rec.labels.get(dimension) or [], strict=True):
                votes[m, j, col[who]] += (int(verdict), 1)
    return AnnotatorVotes(tuple(names), votes)


def annotator_noise(fit: PairFit) -> list[AnnotatorNoise]:
    """Each annotator's posterior noise in one comparison, as the result reports it: none when the
    labels cannot measure noise (one verdict per response, nothing settled), the unnamed annotator only
    when nobody is named."""
    if not fit.design.noisy:
        return []
    noise = fit.annotator_noise()
    return [a for a in noise if a.name] or noise
