"""The progress panel: labels done today and in total, agreement, and the live decision.

The decision is read from the assessment's typed result: per candidate, the
comparison that decides it (dimension and segment), its probability against
the threshold (with its Monte Carlo error and the borderline flag when the
assessment reports them), and the core's ``labels_needed`` -- the one number
``changeover assess`` prints too. (The app once showed "still wanted", the
verdicts missing over every stored response, beside the core's estimate: on
one store ~20,117 against ~3,439; the catalogue count is now named "open
responses" and is not a labels-needed figure.)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import select

from changeover.labeling.agreement import Agreement, agreement_by_annotator, kappa_by_dimension
from changeover.labeling.gold import GOLD, Answers, Quality, gold_verdicts, quality
from changeover.labeling.resolve import REVIEW
from changeover.store import Store
from changeover.store.events import aware, now
from changeover.store.responses import all_labels, in_force
from changeover.store.schema import labels


@dataclass(slots=True)
class Counts:
    """Responses one annotator (or the team) judged, skipped and flagged."""

    total: int = 0
    today: int = 0
    skipped: int = 0
    flagged: int = 0

    def to_json(self) -> dict[str, int]:
        return {"total": self.total, "today": self.today, "skipped": self.skipped, "flagged": self.flagged}


def midnight_utc(at: datetime | None = None) -> datetime:
    at = at or now()
    return datetime.combine(at.astimezone(UTC).date(), time(0), tzinfo=UTC)


def count_by_annotator(store: Store) -> tuple[dict[str, Counts], Counts]:
    """Per annotator and for the team: distinct responses judged (total/today), skipped, flagged."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(labels.c.item, labels.c.model, labels.c.annotator, labels.c.status, labels.c.created_at)
        ).all()
    start = midnight_utc()
    seen: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    today: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for r in rows:
        key = (r.item, r.model)
        status = "label" if r.status == GOLD else r.status  # a gold check counts as judged: blind to them
        seen[(r.annotator, status)].add(key)
        if status == "label" and aware(r.created_at) >= start:
            today[r.annotator].add(key)
    names = sorted({a for a, _ in seen})
    per = {
        a: Counts(len(seen[(a, "label")]), len(today[a]), len(seen[(a, "skip")]), len(seen[(a, "flag")])) for a in names
    }
    team = Counts(
        sum(c.total for c in per.values()),
        sum(c.today for c in per.values()),
        sum(c.skipped for c in per.values()),
        sum(c.flagged for c in per.values()),
    )
    return per, team


def annotators_verdicts(store: Store, rows: list[Any] | None = None) -> dict[tuple[str, str, str, str], Any]:
    """The annotators' own verdicts in force, by (item, model, dimension, annotator): an admin's
    resolution (source 'review') settles the response for the assessment, but agreement is
    measured on what the annotators said."""
    return in_force(r for r in (all_labels(store) if rows is None else rows) if r.source != REVIEW)


def annotator_quality(store: Store, answers: Answers, dimensions: list[str]) -> dict[str, Quality]:
    """Per annotator, on the labelled dimensions: gold verdicts against ``answers``, and every verdict of
    theirs (regular and gold) against the other annotators' majority on the same response."""
    rows = all_labels(store)
    golds = {k: r for k, r in gold_verdicts(rows).items() if k[2] in dimensions}
    own = {k: r for k, r in annotators_verdicts(store, rows).items() if k[2] in dimensions}
    return quality(answers, golds, {k: int(r.value) for k, r in (own | golds).items()})


def agreement(store: Store, dimensions: list[str]) -> dict[str, Agreement]:
    by_unit: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for (item, model, dim, _annotator), row in annotators_verdicts(store).items():
        by_unit[(item, model, dim)].append(int(row.value))
    return kappa_by_dimension(dict(by_unit), dimensions)


def annotator_agreement(store: Store, dimensions: list[str]) -> dict[str, Agreement]:
    """Each annotator's agreement with the others on the labelled dimensions (their verdicts in force)."""
    verdicts = {k: int(r.value) for k, r in annotators_verdicts(store).items() if k[2] in dimensions}
    return agreement_by_annotator(verdicts)


def annotator_noise(decision: Any, dimensions: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per annotator, per labelled dimension: their noise rate as the assessment estimated it (the
    measurement model's one rate per annotator), from the comparison holding most of their verdicts.

    ``weight`` = 1 - 2 x noise: how much of one of their verdicts is signal (1: taken as the truth,
    0: a coin flip, worth nothing).
    """
    best: dict[tuple[str, str], Any] = {}
    for cand in decision.candidates.values() if decision is not None else ():
        for dim in dimensions:
            result = cand.dimensions.get(dim)
            for a in getattr(result, "annotators", None) or []:
                if a.name and ((a.name, dim) not in best or a.labels > best[(a.name, dim)].labels):
                    best[(a.name, dim)] = a
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (name, dim), a in sorted(best.items(), key=lambda kv: (kv[0][0], dimensions.index(kv[0][1]))):
        out[name].append(
            {
                "dimension": dim,
                "noise": a.noise_mean,
                "lower": a.lower,
                "upper": a.upper,
                "weight": 1.0 - 2.0 * a.noise_mean,
                "labels": a.labels,
            }
        )
    return dict(out)


LOW_WEIGHT = 0.5  # an annotator whose verdicts count for less than this (noise over 25%) is rechecked


def noisy_annotators(decision: Any, dimensions: list[str]) -> frozenset[str]:
    """Annotators whose estimated weight (``annotator_noise``) is under ``LOW_WEIGHT`` on some dimension:
    the queue asks a second annotator to judge what they labelled alone, as it does for low gold agreement."""
    return frozenset(
        name
        for name, rates in annotator_noise(decision, dimensions).items()
        if any(r["weight"] < LOW_WEIGHT for r in rates)
    )


UNDECIDED = ("NEED-LABELS", "inconclusive")


@dataclass(frozen=True, slots=True)
class Deciding:
    """What decides one candidate, or one of its dimensions: the weakest required comparison.

    ``segment`` is 'overall' or a segment; ``probability`` names the one that
    decides (P(non-inferior), or P(regression) when a regression is called);
    ``threshold`` is the confidence it must reach; ``mcse`` and ``borderline``
    come from the assessment when it reports them. ``labels_needed`` is the
    core's ``labels_needed`` (summed over the candidate's dimensions on a
    candidate's line), the same number ``changeover assess`` prints.
    """

    candidate: str
    dimension: str | None
    segment: str | None
    verdict: str
    probability: str
    p: float | None
    mcse: float | None
    borderline: bool
    threshold: float
    labels_needed: int

    @property
    def text(self) -> str:
        where = f"{self.dimension}, {self.segment}" if self.dimension else "no comparison"
        out = f"{where}: P({self.probability}) = "
        if self.p is None:
            return out + "not available"
        out += f"{self.p:.3f}" + (f" ± {self.mcse:.3f}" if self.mcse is not None else "")
        out += f" against {self.threshold:.2f} needed"
        if self.borderline:
            out += " (borderline: too close to call)"
        if self.labels_needed:
            out += f"; about {self.labels_needed:,} more labels needed"
        elif self.verdict not in UNDECIDED:
            out += "; no more labels needed"
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "dimension": self.dimension,
            "segment": self.segment,
            "verdict": self.verdict,
            "probability": self.probability,
            "p": self.p,
            "mcse": self.mcse,
            "borderline": self.borderline,
            "threshold": self.threshold,
            "labels_needed": self.labels_needed,
            "text": self.text,
        }


def _value(prob: Any) -> tuple[float | None, float | None, bool]:
    """(value, MCSE, borderline) of a probability, typed (with MCSE) or a bare number."""
    if prob is None:
        return None, None, False
    if isinstance(prob, int | float):
        return float(prob), None, False
    return float(prob.value), getattr(prob, "mcse", None), bool(getattr(prob, "borderline", False))


def _entries(dim: Any) -> list[tuple[str, Any]]:
    """The comparisons a dimension's call rests on: overall, and each required segment when there are several."""
    out = [("overall", dim.overall)]
    if len(dim.segments) > 1:
        out += [(name, s) for name, s in dim.segments.items() if s.required]
    return out


def _weakest(entries: list[tuple[str, str, Any]]) -> tuple[str, str, Any, str]:
    """Of (dimension, segment, result): a called regression (most certain) or the least sure non-inferiority."""
    regressions = [e for e in entries if str(e[2].call) == "regression"]
    if regressions:
        dim, seg, res = max(regressions, key=lambda e: _value(e[2].p_regression)[0] or 0.0)
        return dim, seg, res, "regression"
    dim, seg, res = min(entries, key=lambda e: _value(e[2].p_noninferior)[0] or 0.0)
    return dim, seg, res, "non-inferior"


def _deciding(
    candidate: str, verdict: str, entries: list[tuple[str, str, Any]], threshold: float, needed: int
) -> Deciding:
    if not entries:
        return Deciding(candidate, None, None, verdict, "non-inferior", None, None, False, threshold, needed)
    dim, seg, res, which = _weakest(entries)
    p, mcse, borderline = _value(res.p_regression if which == "regression" else res.p_noninferior)
    return Deciding(candidate, dim, seg, verdict, which, p, mcse, borderline, threshold, needed)


def decision_summary(decision: Any, labels_needed: dict[str, dict[str, int]], dimensions: list[str]) -> dict[str, Any]:
    """Per candidate, what decides it, and per labelled dimension the same, from the typed assessment result.

    ``labels_needed``: the assessment's ``labels_needed`` (``Assessment.labels_needed``).
    """
    # the threshold this look is read at: the confidence, raised as labels arrive (stats.stopping)
    threshold = float(decision.threshold if decision.threshold is not None else decision.confidence)
    candidates, lines = [], []
    for name, cand in decision.candidates.items():
        needed = labels_needed.get(name) or {}
        required = [(d, r) for d, r in cand.dimensions.items() if r.required] or list(cand.dimensions.items())
        entries = [(d, seg, res) for d, r in required for seg, res in _entries(r)]
        total = sum(int(needed.get(d, 0)) for d, _ in required)
        candidates.append(_deciding(name, str(cand.verdict), entries, threshold, total))
        for d in dimensions:
            r = cand.dimensions.get(d)
            if r is not None:
                per = [(d, seg, res) for seg, res in _entries(r)]
                lines.append(_deciding(name, str(r.call), per, threshold, int(needed.get(d, 0))))
    return {
        "verdict": str(decision.verdict),
        "candidates": [c.to_json() for c in candidates],
        "lines": [line.to_json() for line in lines],
        "labels_needed": total_needed(labels_needed),
    }


def total_needed(labels_needed: dict[str, dict[str, int]]) -> int:
    """The core's labels needed over every candidate and dimension (what the report's headline says)."""
    return sum(int(n) for per in labels_needed.values() for n in per.values())
