"""The labels section: how many human labels there are, by whom, how well annotators agree,
and how many more the decision needs (with the next items to label).

Counts come from the records (labels imported with them, merged with app labels by
``load_records``); annotator names come from the store's ``labels`` table when a store is
given, since records carry verdicts without names.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from changeover.assessment.result import Decision, NextLabel
from changeover.config import MigrationSpec
from changeover.records import Record
from changeover.store import Store
from changeover.store.responses import labels_in_force


@dataclass(slots=True)
class Agreement:
    """Inter-annotator agreement on responses judged by two or more people."""

    dimension: str
    responses: int  # responses with >= 2 verdicts
    observed: float  # share of agreeing verdict pairs
    kappa: float | None  # chance-corrected (Fleiss' kappa for two categories)


@dataclass(slots=True)
class LabelStats:
    """Section input: everything the labels section shows."""

    total_verdicts: int
    labelled_responses: int
    by_cell: list[dict[str, Any]]  # model, dimension, labelled, responses, share
    by_annotator: list[tuple[str, int]]
    agreement: list[Agreement]
    needed: dict[str, dict[str, int]]
    next_labels: list[NextLabel] = field(default_factory=list)

    @property
    def total_needed(self) -> int:
        return sum(int(v) for per in self.needed.values() for v in per.values())


def human_verdict(verdicts: list[int]) -> int:
    """The human verdict of a response with several labels: the majority, a tie counting as acceptable."""
    return int(2 * sum(verdicts) >= len(verdicts))


def agreement(dimension: str, verdict_lists: list[list[int]]) -> Agreement | None:
    """Pairwise agreement and Fleiss' kappa over responses with several verdicts."""
    multi = [v for v in verdict_lists if len(v) >= 2]
    if not multi:
        return None
    pairs = [(a, b) for v in multi for a, b in combinations(v, 2)]
    observed = sum(a == b for a, b in pairs) / len(pairs)
    ones = sum(sum(v) for v in multi) / sum(len(v) for v in multi)
    expected = ones**2 + (1 - ones) ** 2
    kappa = (observed - expected) / (1 - expected) if expected < 1 else None
    return Agreement(dimension, len(multi), observed, kappa)


def annotator_counts(store: Store | None, records: list[Record]) -> list[tuple[str, int]]:
    """Verdicts in force per annotator (store labels; corrections replace, not add) plus
    those imported with the records, unnamed."""
    named: list[tuple[str, int]] = []
    app_total = 0
    if store is not None:
        per = Counter(annotator for (_item, _model, _dim, annotator) in labels_in_force(store))
        named = sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))
        app_total = sum(per.values())
    in_records = sum(len(v) for r in records for v in r.labels.values())
    imported = in_records - app_total
    return named + ([("imported with the records", imported)] if imported > 0 else [])


def cells_from_decision(decision: Decision, spec: MigrationSpec) -> list[dict[str, Any]]:
    """Labelled responses per (model, dimension) as the assessment counted them (its
    ``labelled`` and ``paired_items``), for when the report is not given the records."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for data in decision.candidates.values():
        for dim, d in data.dimensions.items():
            for model, n in d.labelled.items():
                responses = d.paired_items
                cell = cells.setdefault((model, dim), {"model": model, "dimension": dim, "labelled": 0, "responses": 0})
                cell["labelled"] = max(cell["labelled"], int(n))
                cell["responses"] = max(cell["responses"], responses)
    order = {m: i for i, m in enumerate(spec.models)}
    out = sorted(cells.values(), key=lambda c: (c["dimension"], order.get(c["model"], 99)))
    for c in out:
        c["share"] = c["labelled"] / c["responses"] if c["responses"] else 0.0
    return out


def label_stats(
    records: list[Record], spec: MigrationSpec, decision: Decision, store: Store | None = None, next_limit: int = 12
) -> LabelStats:
    """Build the section input from the records, the store and the decision (whose
    ``labels_needed`` is ``stats.labelvalue.labels_needed``, the number the CLI and the labelling app show)."""
    responses: Counter[tuple[str, str]] = Counter()
    labelled: Counter[tuple[str, str]] = Counter()
    verdicts_by_dim: dict[str, list[list[int]]] = {}
    for r in records:
        for dim in spec.dimensions:
            responses[(r.model, dim)] += 1
            verdicts = r.labels.get(dim)
            if verdicts:
                labelled[(r.model, dim)] += 1
                verdicts_by_dim.setdefault(dim, []).append(verdicts)
    by_cell = [
        {
            "model": m,
            "dimension": d,
            "labelled": labelled[(m, d)],
            "responses": responses[(m, d)],
            "share": labelled[(m, d)] / responses[(m, d)] if responses[(m, d)] else 0.0,
        }
        for d in spec.dimensions
        for m in spec.models
        if responses[(m, d)]
    ]
    agreements = [a for d, v in verdicts_by_dim.items() if (a := agreement(d, v)) is not None]
    total_verdicts = sum(len(v) for vs in verdicts_by_dim.values() for v in vs)
    if not records:
        by_cell = cells_from_decision(decision, spec)
        total_verdicts = sum(c["labelled"] for c in by_cell)
    return LabelStats(
        total_verdicts=total_verdicts,
        labelled_responses=sum(c["labelled"] for c in by_cell),
        by_cell=by_cell,
        by_annotator=annotator_counts(store, records),
        agreement=agreements,
        needed={c: dict(per) for c, per in decision.labels_needed.items()},
        next_labels=list(decision.next_labels[:next_limit]),
    )
