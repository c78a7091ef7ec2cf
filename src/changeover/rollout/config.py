"""The ``rollout`` section of the spec: stages, stabilisation windows, rollback triggers and the hold.

After the last stage (100 %) the incumbent stays warm for ``hold`` (a week by
default) while ``reverse_mirror`` of the candidate's requests are also sent to
it, and the triggers keep running: a regression that shows only after days
still rolls back. ``hold: 0`` completes the rollout at once.

Read with ``spec.section("rollout", RolloutConfig)``; every field is checked
(``extra="forbid"``) so a typo is reported as ``migration.yaml: field 'rollout.stages.1.weight'``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """``"90s"``, ``"10m"``, ``"24h"``, ``"250ms"`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '30s', '10m' or '24h', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like '30s', '10m' or '24h', got {value!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def format_duration(seconds: float) -> str:
    """``7d``, ``6d 23h``, ``3h 05m``, ``4m 10s`` or ``12.3s``: at most the two largest units."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    rest = int(seconds)
    first = next(i for i, (_, size) in enumerate(units) if rest >= size)
    (big, big_size), (small, small_size) = units[first], units[first + 1]
    high, low = divmod(rest, big_size)
    low //= small_size
    return f"{high}{big}" + (f" {low:02d}{small}" if low else "")


Seconds = Annotated[float, BeforeValidator(parse_duration)]

Metric = Literal[
    "refusal_rate",
    "error_rate",
    "timeout_rate",
    "malformed_rate",
    "p50_latency",
    "p95_latency",
    "p99_latency",
    "semantic_equivalence",
    "p_regression",
]


class Stage(BaseModel):
    """One step of the rollout: the candidate's share of live traffic and how long to hold it."""

    model_config = ConfigDict(extra="forbid")

    weight: int = Field(ge=0, le=100, description="percent of users served by the candidate (0 = shadow)")
    min_duration: Seconds = Field(600.0, description="stabilisation window: minimum time at this stage")
    min_requests: int = Field(100, ge=0, description="minimum candidate responses (served or mirrored) seen")


class Trigger(BaseModel):
    """A rollback trigger decided in advance: a metric of the candidate compared with a bound.

    Exactly one of ``above_baseline`` (absolute points over the incumbent's value in
    the same window), ``ratio`` (times the incumbent's value), ``above`` or ``below``
    (an absolute bound). ``inconclusive`` widens the bound into a band in which the
    measurement neither passes nor fails (a human decides).
    """

    model_config = ConfigDict(extra="forbid")

    metric: Metric
    above_baseline: float | None = None
    ratio: float | None = Field(None, gt=0)
    above: float | None = None
    below: float | None = None
    inconclusive: float | None = Field(
        None, ge=0, description="width of the band before the bound in which a measurement is inconclusive"
    )
    min_samples: int = Field(20, ge=1, description="fewer candidate samples in the window: not measured")
    dimension: str | None = Field(None, description="p_regression: the spec dimension (default: all required)")

    @model_validator(mode="after")
    def _one_bound(self) -> Trigger:
        given = [k for k in ("above_baseline", "ratio", "above", "below") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of above_baseline, ratio, above, below (got {', '.join(given) or 'none'})"
            )
        return self

    @property
    def name(self) -> str:
        kind = next(k for k in ("above_baseline", "ratio", "above", "below") if getattr(self, k) is not None)
        return f"{self.metric}:{kind}:{getattr(self, kind)}"


class RolloutConfig(BaseModel):
    """The staged plan: which candidate, the stages, the triggers and the analysis limits
    (Argo Rollouts semantics: ``failure_limit``, ``consecutive_error_limit``,
    ``inconclusive_limit``, ``consecutive_success``)."""

    model_config = ConfigDict(extra="forbid")

    candidate: str | None = Field(None, description="the candidate being rolled out (default: the first)")
    flag: str = Field(
        "changeover.rollout", min_length=1, max_length=200, description="the store flag holding the stage"
    )
    stickiness: list[str] = Field(
        default_factory=lambda: ["header:x-changeover-user", "header:x-session-id", "field:user"],
        description="where the sticky key comes from, first found wins",
    )
    stages: list[Stage] = Field(
        default_factory=lambda: [
            Stage(weight=0),
            Stage(weight=5),
            Stage(weight=25),
            Stage(weight=50),
            Stage(weight=100),
        ],
        min_length=1,
    )
    triggers: list[Trigger] = Field(default_factory=list)
    window: Seconds = Field(300.0, description="sliding window the triggers are measured on")
    interval: Seconds = Field(10.0, description="time between two analysis runs")
    failure_limit: int = Field(0, ge=0, description="failed measurements of one trigger tolerated in a stage")
    consecutive_error_limit: int = Field(4, ge=0, description="unmeasurable runs in a row tolerated")
    inconclusive_limit: int = Field(0, ge=0, description="inconclusive measurements tolerated before pausing")
    consecutive_success: int = Field(1, ge=1, description="successful runs in a row needed to advance")
    auto_advance: bool = Field(True, description="advance when a stage's window passed with every trigger clear")
    fallback_to_incumbent: bool = Field(True, description="answer from the incumbent when the candidate fails")
    hold: Seconds = Field(
        7 * 86400.0,
        description="after reaching 100 %: how long the incumbent stays warm and the triggers keep running "
        "before it is decommissioned (0 = complete at once)",
    )
    reverse_mirror: float = Field(
        0.05, ge=0.0, le=1.0, description="during the hold: share of the candidate's requests mirrored to the incumbent"
    )

    @model_validator(mode="after")
    def _increasing(self) -> RolloutConfig:
        weights = [s.weight for s in self.stages]
        if weights != sorted(weights) or len(set(weights)) != len(weights):
            raise ValueError(f"stage weights must strictly increase, got {weights}")
        return self
