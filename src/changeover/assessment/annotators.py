"""Who labelled a comparison: per paired item and model, each annotator's votes, for the count table.

The records' ``label_by`` names the annotator of each verdict (``Record.annotators``);
a verdict without a name is the unnamed annotator's (''), and a settled answer
(``settled:<admin>``, ``settled:gold``) is an exact one. With no name at all
the table keeps only the totals, exactly as before annotators were told apart.
Two settled answers that disagree on one response cannot both be exact: the
table is not built (a ``DataError`` naming them) until someone resolves it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from changeover.errors import DataError
from changeover.records import Record, is_settled
from changeover.stats.model import AnnotatorNoise, PairFit

UNNAMED = "(unnamed)"  # how the result names the unnamed annotator's rate when others are named


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
            given = list(zip(rec.annotators(dimension), rec.labels.get(dimension) or [], strict=True))
            settled_once(rec, dimension, given)
            for who, verdict in given:
                votes[m, j, col[who]] += (int(verdict), 1)
    return AnnotatorVotes(tuple(names), votes)


def settled_once(rec: Record, dimension: str, given: list[tuple[str, int]]) -> None:
    """Raise a ``DataError`` when two settled answers on one response disagree: both exact, no truth fits
    them, and the response would silently count for nothing."""
    settled = [(who, int(v)) for who, v in given if is_settled(who)]
    for who, v in settled[1:]:
        if v != settled[0][1]:
            first, value = settled[0]
            raise DataError(
                f"item '{rec.item}', model '{rec.model}', dimension '{dimension}': two settled answers disagree "
                f"({first!r} says {value}, {who!r} says {v}); both are taken as exact, so no truth fits them - "
                "resolve it: correct the gold file's answer or settle the response again on the review page"
            )


def annotator_noise(fit: PairFit) -> list[AnnotatorNoise]:
    """Each annotator's posterior noise in one comparison, as the result reports it: none when the
    labels cannot measure noise (one verdict per response, nothing settled); only annotators with a
    verdict in the table (one whose only verdicts are on failed answers, of known truth, has nothing
    but the prior); the unnamed annotator's verdicts as ``UNNAMED`` beside named ones (they may be
    the noisy ones), as '' when nobody is named."""
    if not fit.design.noisy:
        return []
    noise = [a for a in fit.annotator_noise() if a.labels > 0]
    if not any(a.name for a in noise):
        return noise
    return [a if a.name else replace(a, name=UNNAMED) for a in noise]
