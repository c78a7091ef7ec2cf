"""Paired responses -> one count table per (candidate, dimension), failed calls as known failures.

Each dimension reads one or more signals (``Dimension.signal_names``); each
signal's scale is inferred from every model's values (``signals.infer_scale``).
A failed call (``pairing.failed``) is unacceptable on every dimension: its
truth is known (0), it needs no label and no signal; with ``errors: exclude``
the response is left out of that dimension instead, and its item with it (a
comparison needs both answers). An item one model never answered is not in
the table at all, so it is never ranked for labelling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from changeover.assessment.pairing import Index, failed
from changeover.assessment.result import SignalInfo
from changeover.config import MigrationSpec
from changeover.errors import DataError
from changeover.records import Record
from changeover.signals import MISSING, SignalScale, infer_scale
from changeover.stats.tables import PairTable, build_table


@dataclass(frozen=True, slots=True)
class DimensionScales:
    """The scales of a dimension's signals, in the spec's order."""

    names: list[str]
    scales: list[SignalScale]

    def info(self) -> list[SignalInfo]:
        return [SignalInfo(n, s.kind, s.levels, s.describe()) for n, s in zip(self.names, self.scales, strict=True)]

    def describe(self) -> str:
        """The JSON's ``signal``: the scale of a single signal, or each signal's in turn."""
        if len(self.names) == 1:
            return self.scales[0].describe()
        return "; ".join(f"{i.name}: {i.description}" for i in self.info())


@dataclass(frozen=True, slots=True)
class Comparison:
    """The count table of one (candidate, dimension) and what went into it."""

    candidate: str
    dimension: str
    table: PairTable
    items: list[str]  # paired items in table order (table.cell_of_item aligns with it)
    scales: DimensionScales
    labelled: tuple[int, int]  # human-labelled responses (incumbent, candidate)
    known_failures: tuple[int, int]  # failed calls counted as known unacceptable
    excluded: tuple[int, int]  # failed calls left out (errors: exclude)
    scored: tuple[tuple[int, ...], tuple[int, ...]]  # per model, responses with each signal present


def dimension_scales(spec: MigrationSpec, idx: Index) -> dict[str, DimensionScales]:
    """Every dimension's signal scales, inferred from the responses that did not fail."""
    out = {}
    for name, dim in spec.dimensions.items():
        scales = []
        for signal in dim.signal_names:
            values = [
                rec.signals.get(signal) for recs in idx.by_model.values() for rec in recs.values() if not failed(rec)
            ]
            label = name if len(dim.signal_names) == 1 else f"{name}' signal '{signal}"
            scales.append(infer_scale(values, label, dim.levels, dim.bins))
        out[name] = DimensionScales(list(dim.signal_names), scales)
    return out


def _votes(rec: Record, dimension: str) -> tuple[int, int]:
    votes = rec.labels.get(dimension) or []
    return sum(votes), len(votes)


def comparison(
    spec: MigrationSpec, idx: Index, candidate: str, dimension: str, scales: DimensionScales, segments: list[str]
) -> Comparison:
    """The count table of ``candidate`` against the incumbent on ``dimension``."""
    inc, cand = idx.by_model[spec.incumbent], idx.by_model[candidate]
    both = sorted(set(inc) & set(cand))
    if not both:
        raise DataError(
            f"no item is answered by both the incumbent '{spec.incumbent}' and '{candidate}'; "
            "records pair by their 'item' field"
        )
    exclude = spec.dimensions[dimension].errors == "exclude"
    excluded = [0, 0]
    items = []
    for item in both:
        fails = [failed(inc[item]), failed(cand[item])]
        if exclude and any(fails):
            excluded[0] += fails[0]
            excluded[1] += fails[1]
            continue
        items.append(item)
    if not items:
        raise DataError(
            f"dimension '{dimension}' excludes failed calls (errors: exclude), and every item that "
            f"'{spec.incumbent}' and '{candidate}' both answered has a failed call; nothing is left to compare"
        )
    n, G = len(items), len(scales.names)
    seg_pos = {s: i for i, s in enumerate(segments)}
    seg = np.array([seg_pos[idx.segment_of[i]] for i in items])
    a = np.full((2, n, G), MISSING, np.int64)
    pos, tot, known = np.zeros((2, n), np.int64), np.zeros((2, n), np.int64), np.full((2, n), -1, np.int64)
    labelled, known_failures = [0, 0], [0, 0]
    for j, item in enumerate(items):
        for m, rec in enumerate((inc[item], cand[item])):
            if failed(rec):
                known[m, j] = 0
                known_failures[m] += 1
                continue
            for g, (signal, scale) in enumerate(zip(scales.names, scales.scales, strict=True)):
                a[m, j, g] = scale.level(rec.signals.get(signal))
            pos[m, j], tot[m, j] = _votes(rec, dimension)
            labelled[m] += int(tot[m, j] > 0)
    table = _build(segments, seg, scales, a, pos, tot, known)
    return Comparison(
        candidate,
        dimension,
        table,
        items,
        scales,
        (labelled[0], labelled[1]),
        (known_failures[0], known_failures[1]),
        (excluded[0], excluded[1]),
        (tuple(int(x) for x in (a[0] != MISSING).sum(0)), tuple(int(x) for x in (a[1] != MISSING).sum(0))),
    )


def _build(
    segments: list[str],
    seg: np.ndarray,
    scales: DimensionScales,
    a: np.ndarray,
    pos: np.ndarray,
    tot: np.ndarray,
    known: np.ndarray,
) -> PairTable:
    """``build_table`` with every signal of the dimension ([items, G]) and the known truths."""
    levels = [s.levels for s in scales.scales]
    return build_table(
        segments, seg, levels, a[0], a[1], pos[0], tot[0], pos[1], tot[1], known0=known[0], known1=known[1]
    )
