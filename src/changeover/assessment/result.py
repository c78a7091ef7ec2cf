"""The assessment's typed result: verdicts, per candidate / dimension / segment results, diagnostics.

These objects are what ``assess`` returns and what the CLI, the report and the
labelling app read. JSON is written from them once, at the edge
(``assessment.jsonout``), against docs/decision.schema.json. Intervals are
named as ArviZ names them: ``eti`` (equal-tailed interval) with its
probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from changeover.stats.decision import Call, Verdict
from changeover.stats.model import AnnotatorNoise

__all__ = [
    "EXIT_CODES",
    "NOT_CONVERGED",
    "AnnotatorNoise",
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
    "Probability",
    "Sampling",
    "SegmentResult",
    "SignalInfo",
    "Verdict",
]


class ConvergenceWarning(UserWarning):
    """The posterior did not meet the sampling policy (issued by ``assess``; also in ``Diagnostics.warnings``)."""


EXIT_CODES = {Verdict.GO: 0, Verdict.NO_GO: 1, Verdict.NEED_LABELS: 3}
NOT_CONVERGED = "posterior not converged"
UNSTABLE_SHOWN = 20  # unstable items named per model and dimension (all are counted)


@dataclass(frozen=True, slots=True)
class Interval:
    """Posterior mean and credible interval of one quantity (``kind`` 'eti': equal-tailed)."""

    mean: float
    lower: float
    upper: float
    kind: str = "eti"
    prob: float = 0.95


@dataclass(frozen=True, slots=True)
class Probability:
    """A decision probability, its Monte Carlo standard error, and whether it is too close to call.

    ``borderline``: within about 2 MCSE of the confidence threshold, so another
    seed could land on the other side; such a probability never gives GO or NO-GO.
    """

    value: float
    mcse: float
    borderline: bool = False


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """The comparison overall (``name`` 'overall', traffic-weighted) or in one segment."""

    name: str
    share: float
    required: bool
    delta: Interval
    incumbent: Interval
    candidate: Interval
    p_noninferior: Probability
    p_superior: Probability
    p_regression: Probability
    call: Call
    extra_failures_per_month: Interval | None = None
    net_failures_per_month: Interval | None = None

    @property
    def borderline(self) -> bool:
        """A probability that decides GO / NO-GO (non-inferiority, regression) is within ~2 MCSE of the threshold.

        P(superior) only chooses between two passing calls, so it does not make a block borderline.
        """
        return self.p_noninferior.borderline or self.p_regression.borderline


@dataclass(frozen=True, slots=True)
class SignalInfo:
    """One automated signal of a dimension and the scale its values were read on."""

    name: str
    kind: str  # binary | ordinal | continuous
    levels: int
    description: str


@dataclass(frozen=True, slots=True)
class ErrorRate:
    """Failed calls (``error`` set, or an empty answer) among a model's responses."""

    model: str
    errors: int
    responses: int

    @property
    def rate(self) -> float:
        return self.errors / self.responses if self.responses else 0.0


@dataclass(frozen=True, slots=True)
class JudgeConfusion:
    """Posterior-mean confusion of one signal on one model: ``matrix[z][k]`` = P(level k | human verdict z)."""

    model: str
    signal: str
    kind: str
    matrix: tuple[tuple[float, ...], tuple[float, ...]]  # row 0: not acceptable, row 1: acceptable
    levels: str

    @property
    def sensitivity(self) -> float:
        """P(signal passes | acceptable); for a binary signal."""
        return self.matrix[1][-1]

    @property
    def specificity(self) -> float:
        """P(signal fails | not acceptable); for a binary signal."""
        return self.matrix[0][0]


@dataclass(slots=True)
class DimensionResult:
    """One candidate on one dimension: the call, overall and per segment, and what it rests on."""

    candidate: str
    name: str
    call: Call
    required: bool
    margin: float
    overall: SegmentResult
    segments: dict[str, SegmentResult]
    signals: list[SignalInfo]
    labelled: dict[str, int]  # model -> human-labelled responses in the comparison
    known_failures: dict[str, int]  # model -> failed calls counted as known unacceptable
    excluded: dict[str, int]  # model -> failed calls left out (errors: exclude)
    paired_items: int
    converged: bool
    labels_needed: int = 0
    # each annotator's posterior noise (P(their verdict is flipped)) in this comparison, with their verdicts in it;
    # empty when the labels cannot measure it (one verdict per response, nothing settled)
    annotators: list[AnnotatorNoise] = field(default_factory=list)
    samples: dict[str, int] = field(default_factory=dict)  # model -> most answers to one item (repeated samples)
    unstable: dict[str, int] = field(default_factory=dict)  # model -> items whose samples both pass and fail
    unstable_items: dict[str, list[str]] = field(default_factory=dict)  # model -> the first UNSTABLE_SHOWN of them

    @property
    def borderline(self) -> bool:
        return self.overall.borderline or any(s.borderline for s in self.segments.values() if s.required)


@dataclass(slots=True)
class CandidateResult:
    """One candidate against the incumbent: its verdict, per dimension, in plain words."""

    name: str
    verdict: Verdict
    dimensions: dict[str, DimensionResult]
    summary: str = ""
    reason: str | None = None  # why the verdict is what it is when it is not the data's call


@dataclass(frozen=True, slots=True)
class NextLabel:
    """One response whose human label would move the decision most (``value``: expected variance cut)."""

    item: str
    model: str
    dimension: str
    value: float


@dataclass(slots=True)
class Sampling:
    """How the posterior was sampled: the requested settings, the final ones, the rounds it took."""

    chains: int
    draws: int  # per chain, in the longest round
    warmup: int
    seed: int
    requested_draws: int
    requested_warmup: int
    rounds: int
    converged: bool
    sampler: str = "auto"  # the one asked for (stats.model.FitSettings)
    samplers: tuple[str, ...] = ("nuts",)  # the ones the final fits came from ("nuts", "hmc")


@dataclass(slots=True)
class Diagnostics:
    """Convergence of every reported quantity, the judges' confusion, warnings.

    ``judge[dimension][model]``: the first signal's confusion (the JSON's
    ``diagnostics.judge``); ``signals[dimension][signal][model]``: every signal's;
    ``judge_by_segment[dimension][segment][model]``: the first signal's per segment
    (a judge can err differently on, say, safe and unsafe prompts).
    ``judge_dependence[candidate][dimension]``: the estimated dependence of the
    judge's errors on the two answers to one item, when the model estimates it.
    """

    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    sampling: Sampling
    judge: dict[str, dict[str, JudgeConfusion]] = field(default_factory=dict)
    signals: dict[str, dict[str, dict[str, JudgeConfusion]]] = field(default_factory=dict)
    judge_by_segment: dict[str, dict[str, dict[str, JudgeConfusion]]] = field(default_factory=dict)
    judge_dependence: dict[str, dict[str, float | None]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LabelSource:
    """Where the human labels in force came from: in the records, merged from the store."""

    from_records: int
    from_store: int | None = None  # None: the store was not consulted


@dataclass(slots=True)
class Decision:
    """The whole typed result of one assessment."""

    verdict: Verdict
    confidence: float
    incumbent: str
    segment_by: list[str]
    shares: dict[str, float]
    monthly_interactions: float | None
    candidates: dict[str, CandidateResult]
    labels_needed: dict[str, dict[str, int]]
    next_labels: list[NextLabel]
    diagnostics: Diagnostics
    error_rates: dict[str, ErrorRate]
    labels: LabelSource
    reason: str | None = None
    looks: int | None = None  # how many times the decision has been read as labels arrived (None: once)
    threshold: float | None = None  # the probability a call needs at this look (stats.stopping); None: confidence

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[Verdict(self.verdict)]
