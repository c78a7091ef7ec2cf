"""The assessment as the report reads it: per candidate and dimension, the typed results
(``changeover.assessment.DimensionResult``) plus the plots drawn from the posterior draws
(``Assessment.pairs``).

``AssessmentLike`` is the slice of ``changeover.assessment.Assessment`` the report needs:
its typed ``decision`` or, for anything else, a ``to_json()`` in the documented format
(docs/decision.schema.json), read back into the typed result (``decision_of``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from markupsafe import Markup

from changeover.assessment.jsonin import decision_from_json
from changeover.assessment.result import Decision, DimensionResult, SegmentResult
from changeover.config import MigrationSpec
from changeover.errors import DataError
from changeover.report import plots
from changeover.report.formatting import points


class PairLike(Protocol):
    """Posterior draws of one (candidate, dimension) comparison."""

    segments: list[str]
    shares: np.ndarray
    incumbent_rate: np.ndarray
    candidate_rate: np.ndarray
    delta: np.ndarray
    delta_overall: np.ndarray
    judge: dict[str, Any]


class AssessmentLike(Protocol):
    """What the report reads from an assessment (see docs/internals.md); ``decision`` when it has one."""

    @property
    def verdict(self) -> str: ...

    @property
    def pairs(self) -> Mapping[tuple[str, str], PairLike]: ...

    def to_json(self) -> dict[str, Any]: ...


def decision_of(assessment: AssessmentLike) -> Decision:
    """The typed decision of an assessment: its own, or its JSON read back."""
    decision = getattr(assessment, "decision", None)
    if isinstance(decision, Decision):
        return decision
    result = assessment.to_json()
    if not isinstance(result, dict):
        raise DataError("the assessment has no JSON form (to_json() did not return a mapping)")
    return decision_from_json(result)


@dataclass(slots=True)
class SegmentRow:
    """One row of a dimension's segment table."""

    name: str
    summary: SegmentResult
    required: bool
    share: float | None


@dataclass(slots=True)
class DimensionView:
    """Everything the report shows for one candidate on one dimension."""

    candidate: str
    dimension: str
    verdict: str
    margin: float
    required: bool
    overall: SegmentResult
    segments: list[SegmentRow]
    density_svg: Markup | None
    forest_svg: Markup
    labels_needed: int | None = None

    @property
    def anchor(self) -> str:
        return _anchor(f"{self.candidate}-{self.dimension}")


@dataclass(slots=True)
class CandidateView:
    name: str
    verdict: str
    colour: str
    dimensions: list[DimensionView] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return _anchor(self.name)


def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower())


def required_segment(spec: MigrationSpec, segment: str) -> bool:
    """Whether the decision needs this segment (``required_segments`` in the spec)."""
    return spec.required_segments == "all" or segment in spec.required_segments


def weighted_rate(rate: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Traffic-weighted overall pass rate per draw from per-segment rates [draws, S]."""
    rate = np.asarray(rate, float)
    if rate.ndim == 1:
        return rate
    w = np.asarray(shares, float)
    w = w / w.sum() if w.sum() > 0 else np.full(rate.shape[1], 1 / rate.shape[1])
    return rate @ w


def _shares(pair: PairLike | None, spec: MigrationSpec, decision: Decision) -> dict[str, float]:
    """Traffic share per segment: the pair's weights, else the decision's, else the spec's."""
    if pair is not None:
        return {s: float(w) for s, w in zip(pair.segments, np.asarray(pair.shares, float), strict=True)}
    if decision.shares:
        return dict(decision.shares)
    return dict(spec.traffic.shares or {})


def split_segments(dim: DimensionResult) -> dict[str, SegmentResult]:
    """The dimension's segments, or none when there is only one (it is the overall)."""
    return dict(dim.segments) if len(dim.segments) > 1 else {}


def _forest_rows(dim: DimensionResult, shares: dict[str, float], spec: MigrationSpec) -> list[plots.ForestRow]:
    rows = []
    for name, seg in split_segments(dim).items():
        d = seg.delta
        rows.append(
            plots.ForestRow(
                name,
                d.mean,
                d.lower,
                d.upper,
                shares.get(name),
                required=required_segment(spec, name),
                verdict=str(seg.call),
            )
        )
    o = dim.overall.delta
    rows.append(plots.ForestRow("overall", o.mean, o.lower, o.upper, overall=True, verdict=str(dim.overall.call)))
    return rows


def dimension_view(
    candidate: str,
    dim: DimensionResult,
    pair: PairLike | None,
    spec: MigrationSpec,
    colours: dict[str, str],
    shares: dict[str, float],
) -> DimensionView:
    """Numbers and plots for one (candidate, dimension)."""
    name = dim.name
    margin = spec.dimensions[name].margin if name in spec.dimensions else dim.margin
    density = None
    if pair is not None:
        density = plots.density_plot(
            [
                plots.Series(spec.incumbent, weighted_rate(pair.incumbent_rate, pair.shares), colours[spec.incumbent]),
                plots.Series(candidate, weighted_rate(pair.candidate_rate, pair.shares), colours[candidate]),
            ],
            label=f"Posterior of the {name} pass rate, {spec.incumbent} vs {candidate}",
            xlabel=f"true {name} pass rate (human verdict), traffic-weighted",
        )
    forest = plots.forest_plot(
        _forest_rows(dim, shares, spec),
        margin,
        label=f"{name}: {candidate} − {spec.incumbent} per segment (margin {points(-margin)})",
    )
    segments = [SegmentRow(s, v, required_segment(spec, s), shares.get(s)) for s, v in split_segments(dim).items()]
    required = spec.dimensions[name].required if name in spec.dimensions else dim.required
    return DimensionView(
        candidate, name, str(dim.call), margin, required, dim.overall, segments, density, forest, dim.labels_needed
    )


def candidate_views(decision: Decision, assessment: AssessmentLike | None, spec: MigrationSpec) -> list[CandidateView]:
    """One view per candidate (in the spec's order), each with its dimensions."""
    colours = plots.model_colours(spec.incumbent, spec.candidates)
    pairs = getattr(assessment, "pairs", None) or {}
    out = []
    ordered = [c for c in spec.candidates if c in decision.candidates]
    ordered += [c for c in decision.candidates if c not in ordered]
    for cand in ordered:
        data = decision.candidates[cand]
        colours.setdefault(cand, plots.CANDIDATE_COLOURS[len(colours) % len(plots.CANDIDATE_COLOURS)])
        view = CandidateView(cand, str(data.verdict), colours[cand])
        for dim_name, dim in data.dimensions.items():
            pair = pairs.get((cand, dim_name))
            view.dimensions.append(dimension_view(cand, dim, pair, spec, colours, _shares(pair, spec, decision)))
        out.append(view)
    return out
