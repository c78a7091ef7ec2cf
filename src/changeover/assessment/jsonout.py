"""The decision JSON, written once from the typed result (schema: docs/decision.schema.json).

The keys documented in README ("The assessment") and docs/internals.md keep
their names and meaning; what issue 10 added (MCSE, borderline flags, error
rates, tail ESS, convergence, label sources, the judge-error dependence) comes
as new keys beside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from changeover.assessment.result import (
    CandidateResult,
    Decision,
    Diagnostics,
    DimensionResult,
    ErrorRate,
    Interval,
    JudgeConfusion,
    SegmentResult,
)
from changeover.textfiles import write_atomic


def interval_json(x: Interval | None) -> dict[str, float] | None:
    return None if x is None else {"mean": x.mean, "lower": x.lower, "upper": x.upper}


def segment_json(b: SegmentResult) -> dict[str, Any]:
    return {
        "delta": interval_json(b.delta),
        "incumbent": interval_json(b.incumbent),
        "candidate": interval_json(b.candidate),
        "p_noninferior": b.p_noninferior.value,
        "p_superior": b.p_superior.value,
        "p_regression": b.p_regression.value,
        "verdict": str(b.call),
        "extra_failures_per_month": interval_json(b.extra_failures_per_month),
        "net_failures_per_month": interval_json(b.net_failures_per_month),
        "mcse": {
            "p_noninferior": b.p_noninferior.mcse,
            "p_superior": b.p_superior.mcse,
            "p_regression": b.p_regression.mcse,
        },
        "borderline": b.borderline,
        "share": b.share,
        "required": b.required,
    }


def error_json(e: ErrorRate) -> dict[str, Any]:
    return {"errors": e.errors, "responses": e.responses, "rate": e.rate}


def signal_description(d: DimensionResult) -> str:
    """The ``signal`` key: the one signal's scale, or each signal's, named."""
    if len(d.signals) == 1:
        return d.signals[0].description
    return "; ".join(f"{s.name}: {s.description}" for s in d.signals)


def dimension_json(d: DimensionResult) -> dict[str, Any]:
    return {
        "verdict": str(d.call),
        "overall": segment_json(d.overall),
        "segments": {name: segment_json(b) for name, b in d.segments.items()},
        "required": d.required,
        "signal": signal_description(d),
        "labelled": dict(d.labelled),
        "paired_items": d.paired_items,
        "margin": d.margin,
        "signals": [{"name": s.name, "kind": s.kind, "levels": s.levels, "scale": s.description} for s in d.signals],
        "known_failures": dict(d.known_failures),
        "excluded": dict(d.excluded),
        "converged": d.converged,
        "borderline": d.borderline,
        "labels_needed": d.labels_needed,
        "annotators": [
            {"name": a.name, "noise": a.noise_mean, "lower": a.lower, "upper": a.upper, "labels": a.labels}
            for a in d.annotators
        ],
        "samples": dict(d.samples),
        "unstable": {m: {"items": n, "examples": list(d.unstable_items.get(m, []))} for m, n in d.unstable.items()},
    }


def candidate_json(c: CandidateResult) -> dict[str, Any]:
    return {
        "verdict": str(c.verdict),
        "dimensions": {name: dimension_json(d) for name, d in c.dimensions.items()},
        "summary": c.summary,
        "reason": c.reason,
    }


def judge_json(j: JudgeConfusion) -> dict[str, Any]:
    if j.kind == "binary":
        return {
            "sensitivity": j.matrix[1][1],
            "specificity": j.matrix[0][0],
            "passes_bad": j.matrix[0][1],
            "fails_good": j.matrix[1][0],
        }
    return {"confusion": {"acceptable": list(j.matrix[1]), "not_acceptable": list(j.matrix[0])}, "levels": j.levels}


def diagnostics_json(d: Diagnostics) -> dict[str, Any]:
    s = d.sampling
    return {
        "rhat_max": d.rhat_max,
        "ess_min": d.ess_bulk_min,
        "judge": {dim: {m: judge_json(j) for m, j in models.items()} for dim, models in d.judge.items()},
        "chains": s.chains,
        "draws": s.draws,
        "warmup": s.warmup,
        "seed": s.seed,
        "divergences": d.divergences,
        "warnings": list(d.warnings),
        "ess_bulk_min": d.ess_bulk_min,
        "ess_tail_min": d.ess_tail_min,
        "converged": s.converged,
        "sampling": {
            "requested_draws": s.requested_draws,
            "requested_warmup": s.requested_warmup,
            "rounds": s.rounds,
            "sampler": s.sampler,
            "samplers": list(s.samplers),
        },
        "signals": {
            dim: {sig: {m: judge_json(j) for m, j in models.items()} for sig, models in by_signal.items()}
            for dim, by_signal in d.signals.items()
        },
        "judge_dependence": {c: dict(per) for c, per in d.judge_dependence.items()},
        "judge_by_segment": {
            dim: {seg: {m: judge_json(j) for m, j in models.items()} for seg, models in by_segment.items()}
            for dim, by_segment in d.judge_by_segment.items()
        },
    }


def decision_json(d: Decision) -> dict[str, Any]:
    """The whole decision as JSON-ready data."""
    return {
        "verdict": str(d.verdict),
        "confidence": d.confidence,
        "incumbent": d.incumbent,
        "segment_by": list(d.segment_by),
        "segments": dict(d.shares),
        "monthly_interactions": d.monthly_interactions,
        "candidates": {name: candidate_json(c) for name, c in d.candidates.items()},
        "labels_needed": {c: dict(per) for c, per in d.labels_needed.items()},
        "next_labels": [
            {"item": n.item, "model": n.model, "dimension": n.dimension, "value": n.value} for n in d.next_labels
        ],
        "diagnostics": diagnostics_json(d.diagnostics),
        "reason": d.reason,
        "interval": {"kind": "eti", "prob": d.confidence},
        "error_rates": {m: error_json(e) for m, e in d.error_rates.items()},
        "labels": {"from_records": d.labels.from_records, "from_store": d.labels.from_store},
        "looks": d.looks,
        "threshold": d.threshold if d.threshold is not None else d.confidence,
    }


def write_decision(d: Decision, path: Path) -> None:
    """Write the decision JSON atomically (temp file + rename); an unwritable path is a clear error."""
    write_atomic(path, json.dumps(decision_json(d), indent=2, ensure_ascii=False) + "\n", "the decision JSON")
