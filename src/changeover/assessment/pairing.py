"""Records -> responses indexed per model and item, each item's segment, traffic shares.

Pairing is by the ``item`` field: the incumbent's and a candidate's responses to
one interaction form a pair. An item's segment and weight come from its lead
record (the incumbent's if it answered, else the first candidate's). A model
may answer an item several times (``evaluate --samples k``: the records carry
``sample`` 0..k-1); ``by_model`` holds each item's first sample, ``samples``
all of them in sample order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from changeover.config import MigrationSpec
from changeover.errors import DataError
from changeover.records import Record


@dataclass(frozen=True, slots=True)
class Index:
    """The spec's models' records by model and item, and each item's segment."""

    by_model: dict[str, dict[str, Record]]
    segment_of: dict[str, str]
    lead: dict[str, Record]  # per item, the record that gives its segment and weight
    samples: dict[str, dict[str, list[Record]]]  # per model and item, every sample in sample order

    def answers(self, model: str, item: str) -> list[Record]:
        """``model``'s answers to ``item``: its repeated samples, or its one record."""
        return self.samples[model][item]

    @property
    def repeated(self) -> bool:
        """True when some model answered some item more than once (repeated samples)."""
        return any(len(v) > 1 for recs in self.samples.values() for v in recs.values())

    @property
    def segments(self) -> list[str]:
        return sorted(set(self.segment_of.values()))


def failed(rec: Record) -> bool:
    """A failed call: ``error`` is set, or the answer is empty (the user got nothing).

    A record with no ``response`` field at all is not a failure: many record
    files carry the signals and labels without the text.
    """
    return bool(rec.error) or (rec.response is not None and not rec.response.strip())


def segment_key(rec: Record, segment_by: list[str]) -> str:
    """The segment key of a record: its ``segment_by`` values joined with '/' ("emea/billing")."""
    if not segment_by:
        return "all"
    parts = []
    for name in segment_by:
        value = rec.segment.get(name)
        if value is None:
            raise DataError(
                f"item '{rec.item}' (model '{rec.model}'): its segment has no field '{name}', "
                f"which the spec's segment_by lists; add it to the record or change segment_by"
            )
        parts.append(str(value))
    return "/".join(parts)


def index_records(spec: MigrationSpec, records: list[Record]) -> Index:
    """Index the records of the spec's models; two records of one model for one item and sample are an error."""
    by_sample: dict[str, dict[str, dict[int, Record]]] = defaultdict(lambda: defaultdict(dict))
    known = set(spec.models)
    for rec in records:
        if rec.model not in known:
            continue
        answers = by_sample[rec.model][rec.item]
        if rec.sample in answers:
            raise DataError(
                f"item '{rec.item}' has two records for model '{rec.model}'"
                + (f" with sample {rec.sample}" if rec.sample else "")
                + "; each model answers an item once per sample (merge their labels into one row, "
                "or number repeated answers with 'sample': 0, 1, ...)"
            )
        answers[rec.sample] = rec
    samples = {m: {i: [a[k] for k in sorted(a)] for i, a in items.items()} for m, items in by_sample.items()}
    by_model: dict[str, dict[str, Record]] = {m: {i: a[0] for i, a in items.items()} for m, items in samples.items()}
    for model in spec.models:
        if not by_model.get(model):
            seen = sorted({r.model for r in records})[:8]
            role = "incumbent" if model == spec.incumbent else "candidate"
            raise DataError(f"no records for the {role} '{model}'; models in the records: {seen}")
    lead: dict[str, Record] = {}
    for model in spec.models:  # incumbent first
        for item, rec in by_model[model].items():
            lead.setdefault(item, rec)
    segment_of = {item: segment_key(rec, spec.segment_by) for item, rec in lead.items()}
    return Index(by_model, segment_of, lead, samples)


def traffic_shares(spec: MigrationSpec, idx: Index, segments: list[str]) -> np.ndarray:
    """Each segment's share of traffic: the spec's ``traffic.shares``, else the records' weights."""
    given = spec.traffic.shares
    if given:
        missing = [s for s in segments if s not in given]
        if missing:
            raise DataError(
                f"traffic.shares has no share for segment '{missing[0]}' (segments in the records: "
                f"{segments}); give every segment a share or remove traffic.shares"
            )
        unseen = [s for s in given if s not in segments and given[s] > 0]
        if unseen:
            raise DataError(
                f"traffic.shares names segment '{unseen[0]}', but no paired record falls in it; "
                f"segments in the records: {segments}"
            )
        out = np.array([given[s] for s in segments], float)
    else:
        weight: dict[str, float] = defaultdict(float)
        for item, seg in idx.segment_of.items():
            rec = idx.lead[item]
            weight[seg] += rec.weight if rec.weight is not None else 1.0
        out = np.array([weight[s] for s in segments], float)
    normalised: np.ndarray = out / out.sum()
    return normalised


def required_segments(spec: MigrationSpec, segments: list[str]) -> list[str]:
    """The segments the decision needs (``required_segments``); an unknown name is an error."""
    if spec.required_segments == "all":
        return list(segments)
    unknown = [s for s in spec.required_segments if s not in segments]
    if unknown:
        raise DataError(
            f"required_segments names '{unknown[0]}', which is not a segment of the records "
            f"({segments}); segment keys join the segment_by values with '/'"
        )
    return list(spec.required_segments)
