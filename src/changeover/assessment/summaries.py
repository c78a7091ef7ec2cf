"""Posterior draws of one comparison -> its summaries: intervals, decision probabilities, judge confusion.

Probabilities and their Monte Carlo errors come from ``stats.decision.judge_delta``
on the [chains, draws] series (the ESS needs the chains); intervals are
equal-tailed (``eti``) at the spec's confidence.
"""

from __future__ import annotations

import numpy as np

from changeover.assessment.result import Interval, JudgeConfusion, Probability, SegmentResult
from changeover.assessment.tables import DimensionScales
from changeover.stats import decision as dec
from changeover.stats.model import PairFit


def eti(draws: np.ndarray, prob: float) -> Interval:
    """Posterior mean and equal-tailed interval of ``prob``."""
    x = np.asarray(draws, float).ravel()
    lo, hi = np.quantile(x, [(1 - prob) / 2, (1 + prob) / 2])
    return Interval(float(x.mean()), float(lo), float(hi), "eti", prob)


def series(fit: PairFit, shares: np.ndarray, s: int | None) -> dict[str, np.ndarray]:
    """[chains, draws] draws of the delta, both pass rates and the failure impacts, overall or in segment s."""
    if s is None:
        return {
            "delta": fit.overall(fit.delta, shares),
            "incumbent": fit.overall(fit.incumbent_rate, shares),
            "candidate": fit.overall(fit.candidate_rate, shares),
            "extra": np.maximum(0.0, -fit.delta) @ shares,
            "net": -fit.overall(fit.delta, shares),
        }
    return {
        "delta": fit.delta[..., s],
        "incumbent": fit.incumbent_rate[..., s],
        "candidate": fit.candidate_rate[..., s],
        "extra": np.maximum(0.0, -fit.delta[..., s]) * shares[s],
        "net": -fit.delta[..., s] * shares[s],
    }


def judgement(
    fit: PairFit, shares: np.ndarray, s: int | None, margin: float, confidence: float, looks: int | None
) -> dec.Judgement:
    """The call on the delta overall (s None) or in segment s, with its MCSEs and borderline flag."""
    return dec.judge_delta(series(fit, shares, s)["delta"], margin, confidence, looks=looks)


def segment_result(
    fit: PairFit,
    shares: np.ndarray,
    s: int | None,
    name: str,
    required: bool,
    margin: float,
    confidence: float,
    monthly: float | None,
    looks: int | None = None,
    converged: bool = True,
) -> SegmentResult:
    """Everything reported about one delta. An unconverged fit's call is inconclusive (never GO or NO-GO)."""
    x = series(fit, shares, s)
    j = dec.judge_delta(x["delta"], margin, confidence, looks=looks)
    call = dec.Call(j.call) if converged else dec.Call.INCONCLUSIVE
    share = 1.0 if s is None else float(shares[s])
    extra = net = None
    if monthly is not None:
        extra, net = eti(x["extra"] * monthly, confidence), eti(x["net"] * monthly, confidence)
    return SegmentResult(
        name=name,
        share=share,
        required=required,
        delta=eti(x["delta"], confidence),
        incumbent=eti(x["incumbent"], confidence),
        candidate=eti(x["candidate"], confidence),
        p_noninferior=Probability(j.p_noninferior, j.mcse_noninferior, _near(j.p_noninferior, j)),
        p_superior=Probability(j.p_superior, j.mcse_superior, _near(j.p_superior, j, j.mcse_superior)),
        p_regression=Probability(j.p_regression, j.mcse_regression, _near(j.p_regression, j, j.mcse_regression)),
        call=call,
        extra_failures_per_month=extra,
        net_failures_per_month=net,
    )


def _near(p: float, j: dec.Judgement, se: float | None = None) -> bool:
    """Whether p lies within the borderline band of the threshold (the rule of ``judge_delta``)."""
    se = j.mcse_noninferior if se is None else se
    return bool(abs(p - j.threshold) < dec.BORDERLINE_Z * se)


def confusions(
    fit: PairFit, scales: DimensionScales, models: tuple[str, str], scored: tuple[tuple[int, ...], ...]
) -> dict[str, dict[str, JudgeConfusion]]:
    """signal -> model -> posterior-mean confusion, for each signal of the dimension.

    A model with no response the signal scored (every call failed, say) has no
    confusion to report: its posterior would be the prior's, so it is left out.
    """
    out: dict[str, dict[str, JudgeConfusion]] = {}
    n_fitted = _fitted_signals(fit, len(scales.names))
    for g, (signal, scale) in enumerate(zip(scales.names[:n_fitted], scales.scales[:n_fitted], strict=True)):
        phi = PairFit.flat(fit.confusion(g)).mean(axis=0)  # [2 models, 2 z, K]
        out[signal] = {
            model: JudgeConfusion(
                model,
                signal,
                scale.kind,
                (tuple(float(v) for v in phi[m, 0]), tuple(float(v) for v in phi[m, 1])),
                scale.describe(),
            )
            for m, model in enumerate(models)
            if scored[m][g] > 0
        }
    return out


def confusions_by_segment(
    fit: PairFit,
    scales: DimensionScales,
    models: tuple[str, str],
    segments: list[str],
    scored: tuple[tuple[int, ...], ...],
) -> dict[str, dict[str, JudgeConfusion]]:
    """segment -> model -> posterior-mean confusion of the first signal in that segment."""
    by_segment = getattr(fit, "confusion_by_segment", None)
    if by_segment is None:
        return {}
    phi = PairFit.flat(by_segment(0)).mean(axis=0)  # [S, 2 models, 2 z, K]
    signal, scale = scales.names[0], scales.scales[0]
    return {
        seg: {
            model: JudgeConfusion(
                model,
                signal,
                scale.kind,
                (tuple(float(v) for v in phi[s, m, 0]), tuple(float(v) for v in phi[s, m, 1])),
                scale.describe(),
            )
            for m, model in enumerate(models)
            if scored[m][0] > 0
        }
        for s, seg in enumerate(segments)
    }


def _fitted_signals(fit: PairFit, wanted: int) -> int:
    """How many of the dimension's signals the fit holds (one, until the model reads several)."""
    for g in range(1, wanted):
        try:
            fit.confusion(g)
        except (ValueError, IndexError):
            return g
    return wanted


def dependence(fit: PairFit) -> float | None:
    """Posterior mean of the judge-error dependence on the two answers to one item (1 = independent)."""
    estimate = getattr(fit, "error_dependence", None)
    if estimate is None:
        return None
    value = float(np.mean(estimate(0)))
    return value if np.isfinite(value) else None
