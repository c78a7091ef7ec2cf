"""The assessment as the report reads it: per candidate and dimension, the numbers of
issue 2's JSON plus the plots drawn from the posterior draws (``Assessment.pairs``).

``AssessmentLike`` is the slice of ``changeover.assess.Assessment`` the report needs, so
the report renders anything that honours the contract in docs/internals.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from markupsafe import Markup

from changeover.config import MigrationSpec
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
    """What the report reads from an assessment (see docs/internals.md)."""

    verdict: str
    pairs: dict[tuple[str, str], PairLike]

    def to_json(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class SegmentRow:
    """One row of a dimension's segment table."""

    name: str
    summary: dict[str, Any]
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
    overall: dict[str, Any]
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


def _shares(pair: PairLike | None, spec: MigrationSpec, result: dict[str, Any]) -> dict[str, float]:
    """Traffic share per segment: the pair's weights, else the JSON's, else the spec's."""
    if pair is not None:
        return {s: float(w) for s, w in zip(pair.segments, np.asarray(pair.shares, float), strict=True)}
    if isinstance(result.get("segments"), dict):
        return {str(s): float(w) for s, w in result["segments"].items()}
    return dict(spec.traffic.shares or {})


def split_segments(dim: dict[str, Any]) -> dict[str, Any]:
    """The dimension's segments, or none when there is only one (it is the overall)."""
    segments = dim.get("segments") or {}
    return segments if len(segments) > 1 else {}


def _forest_rows(dim: dict[str, Any], shares: dict[str, float], spec: MigrationSpec) -> list[plots.ForestRow]:
    rows = []
    for name, seg in split_segments(dim).items():
        d = seg["delta"]
        rows.append(
            plots.ForestRow(
                name,
                d["mean"],
                d["lower"],
                d["upper"],
                shares.get(name),
                required=required_segment(spec, name),
                verdict=seg.get("verdict"),
            )
        )
    o = dim["overall"]["delta"]
    rows.append(
        plots.ForestRow(
            "overall", o["mean"], o["lower"], o["upper"], overall=True, verdict=dim["overall"].get("verdict")
        )
    )
    return rows


def dimension_view(
    candidate: str,
    name: str,
    dim: dict[str, Any],
    pair: PairLike | None,
    spec: MigrationSpec,
    colours: dict[str, str],
    needed: int | None,
    shares: dict[str, float],
) -> DimensionView:
    """Numbers and plots for one (candidate, dimension)."""
    margin = spec.dimensions[name].margin if name in spec.dimensions else 0.0
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
    required = spec.dimensions[name].required if name in spec.dimensions else True
    return DimensionView(
        candidate, name, dim["verdict"], margin, required, dim["overall"], segments, density, forest, needed
    )


def candidate_views(
    result: dict[str, Any], assessment: AssessmentLike | None, spec: MigrationSpec
) -> list[CandidateView]:
    """One view per candidate (in the spec's order), each with its dimensions."""
    colours = plots.model_colours(spec.incumbent, spec.candidates)
    pairs = getattr(assessment, "pairs", None) or {}
    needed = result.get("labels_needed") or {}
    out = []
    ordered = [c for c in spec.candidates if c in result["candidates"]]
    ordered += [c for c in result["candidates"] if c not in ordered]
    for cand in ordered:
        data = result["candidates"][cand]
        colours.setdefault(cand, plots.CANDIDATE_COLOURS[len(colours) % len(plots.CANDIDATE_COLOURS)])
        view = CandidateView(cand, data["verdict"], colours[cand])
        for dim_name, dim in data["dimensions"].items():
            pair = pairs.get((cand, dim_name))
            view.dimensions.append(
                dimension_view(
                    cand,
                    dim_name,
                    dim,
                    pair,
                    spec,
                    colours,
                    (needed.get(cand) or {}).get(dim_name),
                    _shares(pair, spec, result),
                )
            )
        out.append(view)
    return out
