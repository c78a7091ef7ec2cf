"""The assessment service: records + spec -> a typed decision (no CLI, no printing).

    from changeover.assessment import assess
    assessment = assess(spec, records)
    assessment.verdict                  # Verdict.GO / NO_GO / NEED_LABELS (equal to "GO", ...)
    assessment.decision.candidates["cand"].dimensions["correctness"].overall.delta.lower
    assessment.to_json()                # the decision JSON (docs/decision.schema.json)

Modules, one job each: ``pairing`` (records by model and item, segments,
shares), ``tables`` (count tables, failed calls as known failures, several
signals), ``sampling`` (the fit and its convergence policy), ``summaries``
(intervals, probabilities with MCSE, judge confusion), ``result`` (the typed
result), ``ranking`` (the responses to label next), ``words`` (plain words),
``jsonout`` (the JSON, written once), ``jsonin`` (a decision JSON read back into
the typed result), ``service`` (``assess``).
"""

from changeover.assessment.jsonin import decision_from_json
from changeover.assessment.jsonout import decision_json, write_decision
from changeover.assessment.pairing import failed
from changeover.assessment.result import (
    NOT_CONVERGED,
    Call,
    CandidateResult,
    ConvergenceWarning,
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
    Verdict,
)
from changeover.assessment.sampling import SamplingPolicy
from changeover.assessment.service import Assessment, PairPosterior, assess
from changeover.assessment.words import plain_words

__all__ = [
    "NOT_CONVERGED",
    "Assessment",
    "Call",
    "CandidateResult",
    "ConvergenceWarning",
    "Decision",
    "Diagnostics",
    "DimensionResult",
    "ErrorRate",
    "Interval",
    "JudgeConfusion",
    "LabelSource",
    "NextLabel",
    "PairPosterior",
    "Probability",
    "Sampling",
    "SamplingPolicy",
    "SegmentResult",
    "SignalInfo",
    "Verdict",
    "assess",
    "decision_from_json",
    "decision_json",
    "failed",
    "plain_words",
    "write_decision",
]
