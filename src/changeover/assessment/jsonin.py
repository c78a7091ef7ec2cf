"""A decision JSON (docs/decision.schema.json) read back into the typed result.

For consumers handed the JSON rather than the live assessment (a saved
``decision.json``, an assessment-like object whose ``to_json`` is all it has):
they then read the same typed objects as everyone else. Keys added after the
first JSON format (MCSE, borderline, error rates, ...) are optional here, so an
older decision still reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from changeover.assessment.result import (
    AnnotatorNoise,
    CandidateResult,
    Decision,
    Diagnostics,
    DimensionResult,
    ErrorRate,
    Interval,
    JudgeConfusion,
    LabelSource,
    NextLabel,
    Probability,
    Sampling,
    SegmentResult,
    SignalInfo,
)
from changeover.errors import DataError
from changeover.stats.decision import Call, Verdict

Json = Mapping[str, Any]


def _interval(x: Json | None, prob: float) -> Interval | None:
    if not x:
        return None
    return Interval(float(x["mean"]), float(x["lower"]), float(x["upper"]), "eti", prob)


def _required_interval(x: Json, prob: float) -> Interval:
    out = _interval(x, prob)
    if out is None:
        raise DataError("the decision JSON has a result block without its interval")
    return out


def _segment(name: str, b: Json, prob: float, share: float, required: bool) -> SegmentResult:
    mcse = b.get("mcse") or {}
    borderline = bool(b.get("borderline", False))

    def p(key: str) -> Probability:
        return Probability(float(b[key]), float(mcse.get(key, 0.0)), borderline and key != "p_superior")

    return SegmentResult(
        name=name,
        share=float(b.get("share", share)),
        required=bool(b.get("required", required)),
        delta=_required_interval(b["delta"], prob),
        incumbent=_required_interval(b["incumbent"], prob),
        candidate=_required_interval(b["candidate"], prob),
        p_noninferior=p("p_noninferior"),
        p_superior=p("p_superior"),
        p_regression=p("p_regression"),
        call=Call(b.get("verdict") or Call.INCONCLUSIVE),
        extra_failures_per_month=_interval(b.get("extra_failures_per_month"), prob),
        net_failures_per_month=_interval(b.get("net_failures_per_month"), prob),
    )


def _dimension(
    candidate: str, name: str, d: Json, prob: float, shares: Mapping[str, float], needed: int
) -> DimensionResult:
    signals = [
        SignalInfo(str(s["name"]), str(s["kind"]), int(s["levels"]), str(s["scale"])) for s in d.get("signals") or []
    ] or [SignalInfo(name, "binary", 2, str(d.get("signal", "")))]
    return DimensionResult(
        candidate=candidate,
        name=name,
        call=Call(d["verdict"]),
        required=bool(d.get("required", True)),
        margin=float(d.get("margin", 0.0)),
        overall=_segment("overall", d["overall"], prob, 1.0, True),
        segments={
            s: _segment(s, b, prob, float(shares.get(s, 0.0)), True) for s, b in (d.get("segments") or {}).items()
        },
        signals=signals,
        labelled={str(m): int(n) for m, n in (d.get("labelled") or {}).items()},
        known_failures={str(m): int(n) for m, n in (d.get("known_failures") or {}).items()},
        excluded={str(m): int(n) for m, n in (d.get("excluded") or {}).items()},
        paired_items=int(d.get("paired_items") or 0),
        converged=bool(d.get("converged", True)),
        labels_needed=int(d.get("labels_needed", needed) or 0),
        annotators=[
            AnnotatorNoise(str(a["name"]), float(a["noise"]), float(a["lower"]), float(a["upper"]), int(a["labels"]))
            for a in d.get("annotators") or []
        ],
        samples={str(m): int(n) for m, n in (d.get("samples") or {}).items()},
        unstable={str(m): int(u["items"]) for m, u in (d.get("unstable") or {}).items()},
        unstable_items={
            str(m): [str(i) for i in u.get("examples") or []] for m, u in (d.get("unstable") or {}).items()
        },
    )


def _judge(model: str, signal: str, j: Json) -> JudgeConfusion | None:
    if "sensitivity" in j and "specificity" in j:
        se, sp = float(j["sensitivity"]), float(j["specificity"])
        return JudgeConfusion(model, signal, "binary", ((sp, 1 - sp), (1 - se, se)), "binary signal with 2 levels")
    conf = j.get("confusion")
    if isinstance(conf, Mapping) and "acceptable" in conf and "not_acceptable" in conf:
        bad, good = tuple(float(v) for v in conf["not_acceptable"]), tuple(float(v) for v in conf["acceptable"])
        return JudgeConfusion(model, signal, "ordinal", (bad, good), str(j.get("levels", "")))
    return None


def _diagnostics(d: Json) -> Diagnostics:
    sampling = d.get("sampling") or {}
    draws, warmup = int(d.get("draws") or 0), int(d.get("warmup") or 0)
    judge: dict[str, dict[str, JudgeConfusion]] = {}
    for dim, models in (d.get("judge") or {}).items():
        for model, j in models.items():
            if (conf := _judge(model, dim, j)) is not None:
                judge.setdefault(dim, {})[model] = conf
    signals: dict[str, dict[str, dict[str, JudgeConfusion]]] = {}
    for dim, by_signal in (d.get("signals") or {}).items():
        for signal, models in by_signal.items():
            for model, j in models.items():
                if (conf := _judge(model, signal, j)) is not None:
                    signals.setdefault(dim, {}).setdefault(signal, {})[model] = conf
    by_segment: dict[str, dict[str, dict[str, JudgeConfusion]]] = {}
    for dim, segs in (d.get("judge_by_segment") or {}).items():
        for seg, models in segs.items():
            for model, j in models.items():
                if (conf := _judge(model, dim, j)) is not None:
                    by_segment.setdefault(dim, {}).setdefault(seg, {})[model] = conf
    return Diagnostics(
        rhat_max=float(d.get("rhat_max", float("nan"))),
        ess_bulk_min=float(d.get("ess_bulk_min", d.get("ess_min", float("nan")))),
        ess_tail_min=float(d.get("ess_tail_min", float("nan"))),
        divergences=int(d.get("divergences") or 0),
        sampling=Sampling(
            chains=int(d.get("chains") or 0),
            draws=draws,
            warmup=warmup,
            seed=int(d.get("seed") or 0),
            requested_draws=int(sampling.get("requested_draws", draws)),
            requested_warmup=int(sampling.get("requested_warmup", warmup)),
            rounds=int(sampling.get("rounds", 1)),
            converged=bool(d.get("converged", True)),
            sampler=str(sampling.get("sampler", "hmc")),  # decisions written before 2026-12-01: the static HMC
            samplers=tuple(str(x) for x in sampling.get("samplers", [sampling.get("sampler", "hmc")])),
        ),
        judge=judge,
        signals=signals,
        judge_by_segment=by_segment,
        judge_dependence={c: dict(per) for c, per in (d.get("judge_dependence") or {}).items()},
        warnings=[str(w) for w in d.get("warnings") or []],
    )


def decision_from_json(data: Json) -> Decision:
    """The typed decision from its JSON; a missing documented key is a ``DataError`` naming it."""
    missing = [k for k in ("verdict", "confidence", "candidates") if k not in data]
    if missing:
        raise DataError(
            f"the assessment JSON lacks {', '.join(repr(k) for k in missing)}; "
            "re-run `changeover assess` with this version of changeover"
        )
    prob = float(data["confidence"])
    shares = {str(s): float(w) for s, w in (data.get("segments") or {}).items()}
    needed = {c: {d: int(n) for d, n in per.items()} for c, per in (data.get("labels_needed") or {}).items()}
    candidates = {
        name: CandidateResult(
            name=name,
            verdict=Verdict(c["verdict"]),
            dimensions={
                dim: _dimension(name, dim, d, prob, shares, needed.get(name, {}).get(dim, 0))
                for dim, d in c["dimensions"].items()
            },
            summary=str(c.get("summary") or ""),
            reason=c.get("reason"),
        )
        for name, c in data["candidates"].items()
    }
    labels = data.get("labels") or {}
    return Decision(
        verdict=Verdict(data["verdict"]),
        confidence=prob,
        incumbent=str(data.get("incumbent", "")),
        segment_by=list(data.get("segment_by") or []),
        shares=shares,
        monthly_interactions=data.get("monthly_interactions"),
        candidates=candidates,
        labels_needed=needed,
        next_labels=[
            NextLabel(str(x["item"]), str(x["model"]), str(x["dimension"]), float(x.get("value", 0.0)))
            for x in data.get("next_labels") or []
        ],
        diagnostics=_diagnostics(data.get("diagnostics") or {}),
        error_rates={
            m: ErrorRate(m, int(e["errors"]), int(e["responses"])) for m, e in (data.get("error_rates") or {}).items()
        },
        labels=LabelSource(int(labels.get("from_records") or 0), labels.get("from_store")),
        reason=data.get("reason"),
        looks=data.get("looks"),
        threshold=data.get("threshold"),
    )
