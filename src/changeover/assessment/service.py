"""``assess``: records + spec -> the typed decision, with the posterior draws behind it.

Pairs each candidate's responses with the incumbent's (``pairing``), reduces
them to count tables per dimension (``tables``), fits the measurement model
under the sampling policy (``sampling``), summarises every delta (``summaries``)
and decides: GO / NO-GO / NEED-LABELS at the spec's confidence, with the
labels that would move the decision most (``ranking``). No printing, no files.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from changeover.assessment import summaries
from changeover.assessment.annotators import annotator_noise
from changeover.assessment.jsonout import decision_json, judge_json
from changeover.assessment.pairing import failed, index_records, required_segments, traffic_shares
from changeover.assessment.ranking import next_labels as expand_labels
from changeover.assessment.result import (
    NOT_CONVERGED,
    UNSTABLE_SHOWN,
    CandidateResult,
    ConvergenceWarning,
    Decision,
    Diagnostics,
    DimensionResult,
    ErrorRate,
    LabelSource,
    Sampling,
    SegmentResult,
    Verdict,
)
from changeover.assessment.sampling import Progress, SampledFit, SamplingPolicy, sample
from changeover.assessment.tables import Comparison, comparison, dimension_scales
from changeover.assessment.words import plain_words
from changeover.config import MigrationSpec
from changeover.errors import SpecError
from changeover.records import Record
from changeover.stats import decision as dec
from changeover.stats.labelvalue import LabelTarget, labels_needed, rank_labels
from changeover.stats.model import SAMPLERS, FitSettings, PairFit
from changeover.stats.stopping import confidence_at_look


@dataclass
class PairPosterior:
    """Posterior draws for one (candidate, dimension) comparison, chains merged."""

    candidate: str
    dimension: str
    segments: list[str]
    shares: np.ndarray
    incumbent_rate: np.ndarray  # [draws, S]
    candidate_rate: np.ndarray
    delta: np.ndarray
    delta_overall: np.ndarray  # [draws]
    judge: dict[str, dict[str, Any]]  # model -> the first signal's confusion, as in the JSON
    fit: PairFit
    items: list[str]  # the table's entries' items, in order (an item once per paired sample)


@dataclass
class Assessment:
    """What ``assess`` returns: the typed ``decision``, the posterior draws behind it, the spec."""

    spec: MigrationSpec
    decision: Decision
    pairs: dict[tuple[str, str], PairPosterior]
    comparisons: dict[tuple[str, str], Comparison] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.decision.verdict)

    @property
    def exit_code(self) -> int:
        return self.decision.exit_code

    @property
    def candidates(self) -> dict[str, CandidateResult]:
        return self.decision.candidates

    @property
    def labels_needed(self) -> dict[str, dict[str, int]]:
        """Further labels per candidate and dimension (``stats.labelvalue.labels_needed``; 0 when decided)."""
        return self.decision.labels_needed

    @property
    def next_labels(self) -> list[dict[str, Any]]:
        """The responses to label next as JSON objects {item, model, dimension, value}, best first."""
        return [
            {"item": n.item, "model": n.model, "dimension": n.dimension, "value": n.value}
            for n in self.decision.next_labels
        ]

    @property
    def warnings(self) -> list[str]:
        return self.decision.diagnostics.warnings

    def to_json(self) -> dict[str, Any]:
        """The decision JSON (docs/decision.schema.json), written from the typed result."""
        return decision_json(self.decision)


@dataclass(frozen=True)
class Prepared:
    """What ``assess`` reads from the records: the segments, their traffic shares, the count table of every
    (candidate, dimension), each model's failed calls and how many human verdicts went in. ``prepare``
    builds it from Python records; ``assessment.pushdown`` from a GROUP BY in DuckDB or the store's SQL."""

    segments: list[str]
    shares: np.ndarray
    comparisons: dict[tuple[str, str], Comparison]
    error_rates: dict[str, ErrorRate]
    labels_in: int


def prepare(spec: MigrationSpec, records: list[Record]) -> Prepared:
    """The count tables and what else ``assess`` reads, from records in memory (the Python engine)."""
    idx = index_records(spec, records)
    segments = idx.segments
    shares = traffic_shares(spec, idx, segments)
    required_segments(spec, segments)  # an unknown required segment is reported before the tables are built
    scales = dimension_scales(spec, idx)
    comparisons = {
        (candidate, dimension): comparison(spec, idx, candidate, dimension, scales[dimension], segments)
        for candidate in spec.candidates
        for dimension in spec.dimensions
    }
    return Prepared(segments, shares, comparisons, _error_rates(spec, records), _labels_in(spec, records))


def assess(
    spec: MigrationSpec,
    records: list[Record],
    *,
    seed: int | None = None,
    draws: int | None = None,
    warmup: int | None = None,
    chains: int = 4,
    sampler: str = "auto",
    next_count: int = 50,
    policy: SamplingPolicy | None = None,
    looks: int | None = None,
    store_labels: int | None = None,
    progress: Progress | None = None,
    prepared: Prepared | None = None,
) -> Assessment:
    """Fit the measurement model for every candidate x dimension and decide.

    ``policy``: when the fit is good enough and how much longer to sample when
    it is not (default: R-hat <= 1.01, ESS >= 400, no divergences, up to 8x).
    ``draws`` / ``warmup`` default to each fit's sampler's (``stats.model.FitSettings``: 300 / 150 per chain
    for nutpie's NUTS, 500 / 500 for the static HMC, whose ESS per draw is a third of NUTS's); ``sampler``
    "auto" takes NUTS for every fit (whitened where its Laplace approximation holds), and the HMC for a fit
    NUTS left divergent at target acceptance 0.95 too.
    ``looks``: how many times this decision has been read as labels arrived
    (the labelling loop), for the optional-stopping threshold of ``stats.stopping``.
    ``store_labels``: how many labels from the store were merged into the records
    (reported in the result). ``progress`` is told what is being done. ``prepared``: the count tables
    built elsewhere (``assessment.pushdown``); ``records`` are then not read.
    """
    policy = policy or SamplingPolicy()
    if prepared is None:
        prepared = prepare(spec, records)
    segments, shares, comparisons = prepared.segments, prepared.shares, prepared.comparisons
    required = required_segments(spec, segments)
    keys = list(comparisons)
    if sampler not in SAMPLERS:
        raise SpecError(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
    lengths = {k: v for k, v in (("warmup", warmup), ("draws", draws)) if v is not None}  # else the sampler's
    settings = FitSettings(chains=chains, seed=spec.seed if seed is None else seed, sampler=sampler, **lengths)
    conf, monthly = spec.confidence, spec.traffic.monthly_interactions

    def deciding(fit: PairFit, margin: float) -> list[Any]:
        blocks: list[int | None] = [None] + ([segments.index(s) for s in required] if len(segments) > 1 else [])
        return [summaries.judgement(fit, shares, s, margin, conf, looks) for s in blocks]

    def unsettled(i: int, fit: PairFit) -> float | None:
        return dec.more_draws_needed(deciding(fit, spec.dimensions[keys[i][1]].margin))

    if progress is not None:
        progress(f"fitting {len(spec.candidates)} candidate(s) x {len(spec.dimensions)} dimension(s)")
    sampled, rounds = sample([comparisons[k].table for k in keys], shares, settings, policy, unsettled, progress)

    pairs: dict[tuple[str, str], PairPosterior] = {}
    candidates: dict[str, CandidateResult] = {}
    longest = max(sampled, key=lambda s: (s.fit.delta.shape[1], s.fit.warmup)).fit
    requested = settings.lengths(longest.sampler)
    diag = Diagnostics(
        rhat_max=max(s.convergence.rhat_max for s in sampled),
        ess_bulk_min=min(s.convergence.ess_bulk_min for s in sampled),
        ess_tail_min=min(s.convergence.ess_tail_min for s in sampled),
        divergences=sum(s.convergence.divergences for s in sampled),
        sampling=Sampling(
            chains,
            longest.delta.shape[1],
            longest.warmup,
            settings.seed,
            requested[1],
            requested[0],
            rounds,
            all(s.converged for s in sampled),
            sampler,
            tuple(sorted({s.fit.sampler for s in sampled})),
        ),
    )
    targets: list[LabelTarget] = []
    for key, s in zip(keys, sampled, strict=True):
        candidate, dimension = key
        comp, fit = comparisons[key], s.fit
        dim_spec = spec.dimensions[dimension]
        by_signal = summaries.confusions(fit, comp.scales, (spec.incumbent, candidate), comp.scored)
        first = by_signal[comp.scales.names[0]]
        for model, j in first.items():
            diag.judge.setdefault(dimension, {}).setdefault(model, j)
        for signal, models in by_signal.items():
            for model, j in models.items():
                diag.signals.setdefault(dimension, {}).setdefault(signal, {}).setdefault(model, j)
        diag.judge_dependence.setdefault(candidate, {})[dimension] = summaries.dependence(fit)
        if len(segments) > 1:
            per_segment = summaries.confusions_by_segment(
                fit, comp.scales, (spec.incumbent, candidate), segments, comp.scored
            )
            for seg, models in per_segment.items():
                for model, j in models.items():
                    diag.judge_by_segment.setdefault(dimension, {}).setdefault(seg, {}).setdefault(model, j)
        pairs[key] = _posterior(candidate, dimension, segments, shares, fit, comp, first)
        result = _dimension(spec, comp, s, segments, shares, required, monthly, looks)
        candidates.setdefault(candidate, CandidateResult(candidate, Verdict.NEED_LABELS, {})).dimensions[dimension] = (
            result
        )
        if dim_spec.required:
            undecided: list[tuple[str, int | None]] = (
                [("overall", None)] if result.overall.call == dec.Call.INCONCLUSIVE else []
            )
            undecided += [
                (seg, segments.index(seg))
                for seg in required
                if len(segments) > 1 and result.segments[seg].call == dec.Call.INCONCLUSIVE
            ]
            # labels still needed against the threshold this look is read at (stats.stopping), not the plain one
            at_look = confidence_at_look(conf, looks)
            targets.append(LabelTarget(candidate, dimension, fit, shares, dim_spec.margin, at_look, undecided))

    if not diag.sampling.converged:
        bad = [f"{c}/{d}" for (c, d), s in zip(keys, sampled, strict=True) if not s.converged]
        diag.warnings.append(
            f"{NOT_CONVERGED} for {', '.join(bad)} after sampling {policy.max_scale}x longer "
            f"(R-hat max {diag.rhat_max:.3f}, ESS bulk min {diag.ess_bulk_min:.0f}, tail min "
            f"{diag.ess_tail_min:.0f}, {diag.divergences} divergences): no GO or NO-GO"
        )
    for cand_result in candidates.values():
        _decide(spec, cand_result, segments, required)
    needed = labels_needed(targets)
    for name, per in needed.items():
        for dim, n in per.items():
            candidates[name].dimensions[dim].labels_needed = int(n)
    ranked = expand_labels(rank_labels(targets, next_count), comparisons, spec.incumbent, next_count)
    verdict = dec.overall_verdict([c.verdict for c in candidates.values()])
    reason = NOT_CONVERGED if not diag.sampling.converged and verdict == Verdict.NEED_LABELS else None
    for w in diag.warnings:
        warnings.warn(w, ConvergenceWarning, stacklevel=2)
    decision = Decision(
        verdict=Verdict(verdict),
        confidence=conf,
        incumbent=spec.incumbent,
        segment_by=list(spec.segment_by),
        shares={s: float(w) for s, w in zip(segments, shares, strict=True)},
        monthly_interactions=monthly,
        candidates=candidates,
        labels_needed=needed,
        next_labels=ranked,
        diagnostics=diag,
        error_rates=prepared.error_rates,
        labels=LabelSource(prepared.labels_in, store_labels),
        reason=reason,
        looks=looks,
        threshold=confidence_at_look(conf, looks),
    )
    return Assessment(spec, decision, pairs, comparisons)


def _posterior(
    candidate: str,
    dimension: str,
    segments: list[str],
    shares: np.ndarray,
    fit: PairFit,
    comp: Comparison,
    judge: dict[str, Any],
) -> PairPosterior:
    flat = PairFit.flat
    return PairPosterior(
        candidate,
        dimension,
        segments,
        shares,
        flat(fit.incumbent_rate),
        flat(fit.candidate_rate),
        flat(fit.delta),
        flat(fit.overall(fit.delta, shares)),
        {model: judge_json(j) for model, j in judge.items()},
        fit,
        comp.items,
    )


def _dimension(
    spec: MigrationSpec,
    comp: Comparison,
    s: SampledFit,
    segments: list[str],
    shares: np.ndarray,
    required: list[str],
    monthly: float | None,
    looks: int | None,
) -> DimensionResult:
    dim_spec = spec.dimensions[comp.dimension]
    margin, conf = dim_spec.margin, spec.confidence

    def block(i: int | None, name: str, req: bool) -> SegmentResult:
        return summaries.segment_result(s.fit, shares, i, name, req, margin, conf, monthly, looks, s.converged)

    overall = block(None, "overall", True)
    segs = {seg: block(i, seg, seg in required) for i, seg in enumerate(segments)}
    req_calls = [segs[x].call for x in required] if len(segments) > 1 else []
    models = (spec.incumbent, comp.candidate)
    return DimensionResult(
        candidate=comp.candidate,
        name=comp.dimension,
        call=dec.Call(dec.dimension_verdict(overall.call, req_calls)),
        required=dim_spec.required,
        margin=margin,
        overall=overall,
        segments=segs,
        signals=comp.scales.info(),
        labelled=dict(zip(models, comp.labelled, strict=True)),
        known_failures=dict(zip(models, comp.known_failures, strict=True)),
        excluded=dict(zip(models, comp.excluded, strict=True)),
        paired_items=comp.paired_items,
        converged=s.converged,
        samples=dict(zip(models, comp.samples, strict=True)),
        unstable={m: len(u) for m, u in zip(models, comp.unstable, strict=True)},
        unstable_items={m: u[:UNSTABLE_SHOWN] for m, u in zip(models, comp.unstable, strict=True)},
        annotators=annotator_noise(s.fit),
    )


def _decide(spec: MigrationSpec, cand: CandidateResult, segments: list[str], required: list[str]) -> None:
    """The candidate's verdict from its required dimensions, overall and in every required segment."""
    calls = []
    for name, d in cand.dimensions.items():
        if not spec.dimensions[name].required:
            continue
        calls.append(d.overall.call)
        if len(segments) > 1:
            calls += [d.segments[s].call for s in required]
    cand.verdict = Verdict(dec.combine(calls))
    unconverged = [n for n, d in cand.dimensions.items() if spec.dimensions[n].required and not d.converged]
    if unconverged and cand.verdict == Verdict.NEED_LABELS:  # its calls are inconclusive: never GO or NO-GO
        cand.reason = NOT_CONVERGED
    elif cand.verdict == Verdict.NEED_LABELS and any(d.borderline for d in cand.dimensions.values()):
        cand.reason = "borderline: a decision probability is within 2 Monte Carlo errors of the threshold"
    cand.summary = plain_words(cand, segments, spec.segment_by)


def _error_rates(spec: MigrationSpec, records: list[Record]) -> dict[str, ErrorRate]:
    counts = {m: [0, 0] for m in spec.models}
    for rec in records:
        if rec.model in counts:
            counts[rec.model][0] += failed(rec)
            counts[rec.model][1] += 1
    return {m: ErrorRate(m, e, n) for m, (e, n) in counts.items()}


def _labels_in(spec: MigrationSpec, records: list[Record]) -> int:
    """Human verdicts on the spec's models and dimensions in the records given."""
    models, dims = set(spec.models), set(spec.dimensions)
    return sum(len(v) for r in records if r.model in models for d, v in r.labels.items() if d in dims)
