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

from dataclasses import dataclass, replace

import numpy as np

from changeover.assessment.annotators import AnnotatorVotes, annotator_votes
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
    first_sample: np.ndarray  # [2, entries]: the entry holds model m's first sample, first used (what the app shows)
    samples: tuple[int, int] = (1, 1)  # per model, the most answers to one item (repeated samples)
    unstable: tuple[list[str], list[str]] = ([], [])  # per model, items whose samples both pass and fail

    @property
    def paired_items(self) -> int:
        """Items in the comparison (an item with repeated samples has an entry per paired sample)."""
        return len(set(self.items))


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
    pairs = [_sample_pairs(idx.answers(spec.incumbent, i), idx.answers(candidate, i)) for i in both]
    if exclude:
        for k, item_pairs in enumerate(pairs):
            for m in (0, 1):  # each failed answer once, however often it was paired
                excluded[m] += len({id(p[m]) for p in item_pairs if failed(p[m])})
            pairs[k] = [p for p in item_pairs if not (failed(p[0]) or failed(p[1]))]
    flagged = [_first_uses(item_pairs) for item_pairs in pairs]
    entries = [(item, p) for item, item_pairs in zip(both, flagged, strict=True) for p in item_pairs]
    if not entries:
        raise DataError(
            f"dimension '{dimension}' excludes failed calls (errors: exclude), and every item that "
            f"'{spec.incumbent}' and '{candidate}' both answered has a failed call; nothing is left to compare"
        )
    per_item = {item: len(item_pairs) for item, item_pairs in zip(both, pairs, strict=True)}
    items = [item for item, _ in entries]
    n, G = len(entries), len(scales.names)
    seg_pos = {s: i for i, s in enumerate(segments)}
    seg = np.array([seg_pos[idx.segment_of[i]] for i in items])
    weight = np.array([1.0 / per_item[i] for i in items])
    a = np.full((2, n, G), MISSING, np.int64)
    pos, tot, known = np.zeros((2, n), np.int64), np.zeros((2, n), np.int64), np.full((2, n), -1, np.int64)
    labelled, known_failures = [0, 0], [0, 0]
    scored = np.zeros((2, G), np.int64)
    for j, (_, (r0, r1, first0, first1)) in enumerate(entries):
        for m, (rec, first) in enumerate(((r0, first0), (r1, first1))):
            if failed(rec):
                known[m, j] = 0
                known_failures[m] += int(first)
                continue
            for g, (signal, scale) in enumerate(zip(scales.names, scales.scales, strict=True)):
                a[m, j, g] = scale.level(rec.signals.get(signal))
            if first:  # an answer reused to pair with another model's extra samples counts, and labels, once
                scored[m] += a[m, j] != MISSING
                pos[m, j], tot[m, j] = _votes(rec, dimension)
                labelled[m] += int(tot[m, j] > 0)
    repeated = any(c > 1 for c in per_item.values())
    models = (spec.incumbent, candidate)
    samples = (max(len(idx.answers(m, i)) for i in both) for m in models)
    unstable = tuple([i for i in both if _unstable(idx.answers(m, i), scales)] for m in models)
    who = annotator_votes([(r0 if f0 else None, r1 if f1 else None) for _, (r0, r1, f0, f1) in entries], dimension)
    table = _build(segments, seg, scales, a, pos, tot, known, weight if repeated else None, who)
    shown = np.array(
        [
            [r0.sample == 0 and f0 for _, (r0, _, f0, _) in entries],
            [r1.sample == 0 and f1 for _, (_, r1, _, f1) in entries],
        ],
        bool,
    ).reshape(2, len(entries))
    if repeated:  # the queue counts only answers the app can show as open (stats.labelvalue)
        per_cell = [np.bincount(table.cell_of_item, weights=shown[m], minlength=table.cells) for m in (0, 1)]
        table = replace(table, shown=np.stack(per_cell).astype(np.int64))
    return Comparison(
        candidate,
        dimension,
        table,
        items,
        scales,
        (labelled[0], labelled[1]),
        (known_failures[0], known_failures[1]),
        (excluded[0], excluded[1]),
        (tuple(int(x) for x in scored[0]), tuple(int(x) for x in scored[1])),
        shown,
        (next(samples), next(samples)),
        (unstable[0], unstable[1]),
    )


def _build(
    segments: list[str],
    seg: np.ndarray,
    scales: DimensionScales,
    a: np.ndarray,
    pos: np.ndarray,
    tot: np.ndarray,
    known: np.ndarray,
    weight: np.ndarray | None = None,
    who: AnnotatorVotes | None = None,
) -> PairTable:
    """``build_table`` with every signal of the dimension ([items, G]), the known truths and sample weights
    (and who gave each verdict, when the records name annotators)."""
    levels = [s.levels for s in scales.scales]
    return build_table(
        segments,
        seg,
        levels,
        a[0],
        a[1],
        pos[0],
        tot[0],
        pos[1],
        tot[1],
        known0=known[0],
        known1=known[1],
        weight=weight,
        **(who.table_args() if who is not None else {}),
    )


def _unstable(answers: list[Record], scales: DimensionScales) -> bool:
    """True when an item's repeated answers both pass and fail: a failed call, or the dimension's first
    signal below level (levels + 1) // 2, against one at or above it (the pass half: the upper level of
    two, the upper two of five, as in ``stats.simulate``)."""
    if len(answers) < 2:
        return False
    scale = scales.scales[0]
    outcomes = set()
    for rec in answers:
        if failed(rec):
            outcomes.add(False)
            continue
        level = scale.level(rec.signals.get(scales.names[0]))
        if level != MISSING:
            outcomes.add(level >= (scale.levels + 1) // 2)
    return len(outcomes) > 1


def _sample_pairs(inc: list[Record], cand: list[Record]) -> list[tuple[Record, Record]]:
    """An item's paired samples: the k-th answer of each model, the fewer reused in turn to pair with the more."""
    k = max(len(inc), len(cand))
    return [(inc[j % len(inc)], cand[j % len(cand)]) for j in range(k)]


def _first_uses(pairs: list[tuple[Record, Record]]) -> list[tuple[Record, Record, bool, bool]]:
    """Each kept pair with, per model, whether it is its answer's first use among the kept pairs: an answer
    paired twice brings its labels, failures and counts once (to the first pair that still holds it)."""
    seen: tuple[set[int], set[int]] = (set(), set())
    out = []
    for r0, r1 in pairs:
        first = [id(r) not in seen[m] for m, r in enumerate((r0, r1))]
        seen[0].add(id(r0))
        seen[1].add(id(r1))
        out.append((r0, r1, first[0], first[1]))
    return out
