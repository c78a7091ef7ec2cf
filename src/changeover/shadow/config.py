"""The ``gateway`` and ``shadow`` sections of the spec, plus the settings ``changeover serve`` runs with.

``gateway`` names an OpenAI-compatible upstream for every model of the spec
(API keys by environment variable name only) and how a request's type is found;
``shadow`` says how much traffic is mirrored to the candidates and how the
background queues are bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from changeover.config import MigrationSpec
from changeover.errors import SpecError
from changeover.redaction import Redaction, Regex
from changeover.rollout.config import RolloutConfig, Seconds
from changeover.shadow.limits import parse_size

Bytes = Annotated[int, BeforeValidator(parse_size)]
"""A size: ``"1MiB"``, ``"512KiB"`` or a number of bytes."""


class Upstream(BaseModel):
    """One model's OpenAI-compatible endpoint."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="e.g. http://127.0.0.1:8080/v1 (the path before /chat/completions)")
    model: str | None = Field(None, description="model name sent upstream (default: the spec's name)")
    api_key_env: str | None = Field(
        None,
        description="environment variable holding the API key; without "
        "one, the client's Authorization header is passed through (never stored)",
    )
    timeout: Seconds = Field(60.0, description="answer timeout")
    input_per_mtok: float | None = Field(None, ge=0, description="USD per million input tokens")
    output_per_mtok: float | None = Field(None, ge=0, description="USD per million output tokens")
    params: dict[str, str | None] = Field(
        default_factory=dict, description="rename (new name) or drop (null) request parameters this upstream refuses"
    )
    stream_usage: bool = Field(
        True,
        description="ask for the final usage chunk (stream_options.include_usage) on streamed requests; "
        "false for an upstream that refuses the parameter (its streamed tokens are then estimated)",
    )
    prompt_for: str | None = Field(
        None,
        description="apply the prompt registry's variant meant for this model (as evaluate's arms do; usually "
        "the upstream's own name) to every request sent here, served, fallback or mirrored; unset = as sent",
    )

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {v!r}")
        return v.rstrip("/")


class RequestTypeRule(BaseModel):
    """A classifier rule: the request is of ``type`` when ``pattern`` matches the last user message."""

    model_config = ConfigDict(extra="forbid")

    type: str
    pattern: Regex


class RequestTypes(BaseModel):
    """Where a request's type comes from: a header, then a body field, then the rules, then ``default``."""

    model_config = ConfigDict(extra="forbid")

    header: str | None = "x-changeover-request-type"
    field: str | None = Field("metadata.request_type", description="dotted path in the request body")
    rules: list[RequestTypeRule] = Field(default_factory=list)
    default: str = "default"


class PromptSource(BaseModel):
    """Which registry prompt a live request is: a header, then a body field, then ``default``."""

    model_config = ConfigDict(extra="forbid")

    header: str | None = "x-changeover-prompt-id"
    field: str | None = Field("metadata.prompt_id", description="dotted path in the request body")
    variables_field: str | None = Field(
        "metadata.prompt_variables", description="dotted path of the template's variables (an object)"
    )
    default: str | None = Field(None, description="prompt id of a request naming none (unset: no variant)")


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upstreams: dict[str, Upstream]
    admin_token_env: str = Field(
        "CHANGEOVER_ADMIN_TOKEN",
        description="environment variable holding the admin token; unset = the admin API refuses every call",
    )
    request_type: RequestTypes = Field(default_factory=RequestTypes)
    prompt: PromptSource = Field(default_factory=PromptSource)
    flag_poll: Seconds = Field(0.25, description="how often the stage flag is re-read from the store")
    max_request_bytes: Bytes = Field(
        1 << 20, description="largest chat request body accepted (beyond it: 413, nothing forwarded or stored)"
    )
    max_json_depth: int = Field(64, ge=2, le=1000, description="deepest JSON nesting accepted (beyond it: 400)")
    max_admin_body_bytes: Bytes = Field(64 << 10, description="largest admin API request body (beyond it: 413)")
    max_in_flight: int = Field(
        256, ge=1, description="chat requests served at once; beyond it a fast 503 with Retry-After (shadow.admission)"
    )
    retry_after: Seconds = Field(1.0, gt=0, description="the Retry-After of that 503 (whole seconds, at least 1)")
    controller_lease_ttl: Seconds = Field(
        10.0,
        ge=1,
        description="the rollout-controller lease's life without renewal: another replica takes over from "
        "a dead holder within it (store.lease)",
    )


Share = float | dict[str, float]
"""A share of requests: one for all, or per request type with ``default`` for the rest."""


def _check_share(v: Share) -> Share:
    for share in v.values() if isinstance(v, dict) else [v]:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"a sample share lies in [0, 1], got {share}")
    return v


def share_for(sample: Share, request_type: str) -> float:
    if isinstance(sample, dict):
        return sample.get(request_type, sample.get("default", 0.0))
    return sample


class JudgeSettings(BaseModel):
    """``shadow.judge``: the spec's ``judges:`` run on a sample of mirrored pairs, off the request path."""

    model_config = ConfigDict(extra="forbid")

    sample: Share = Field(1.0, description="share of mirrored pairs judged; per request type as a mapping")
    requests_per_minute: int = Field(60, ge=1, description="judge model calls per minute (beyond: paused, counted)")
    usd_per_day: float = Field(10.0, ge=0, description="judge spend per UTC day (beyond: paused, counted)")
    queue_size: int = Field(1000, ge=1, description="pairs waiting to be judged; beyond it they are dropped, counted")
    concurrency: int = Field(4, ge=1, description="pairs judged at once")
    prefilter_similarity: float = Field(
        1.0,
        gt=0,
        le=1,
        description="a candidate answer this word-similar to the incumbent's takes the incumbent's verdicts "
        "(no judge call); 1.0 = identical words (or equal JSON) only",
    )
    expect_refusal: list[str] = Field(
        default_factory=list, description="request types whose requests should be refused (the refusal check)"
    )
    expect_refusal_header: str = Field(
        "x-changeover-expect-refusal", description="header saying per request whether it should be refused"
    )
    resume: Seconds = Field(
        3600.0,
        description="at start-up, judge the sampled pairs of this last stretch of the shadow log that have no "
        "judged records yet (queued when the gateway stopped); 0 = off",
    )

    @field_validator("sample")
    @classmethod
    def _share(cls, v: Share) -> Share:
        return _check_share(v)

    def rate(self, request_type: str) -> float:
        return share_for(self.sample, request_type)


def _keep_alive_shorthand(v: object) -> object:
    """``shadow.keep_alive: 0.02`` is ``{rate: 0.02}``."""
    return {"rate": v} if isinstance(v, int | float) and not isinstance(v, bool) else v


class KeepAliveSettings(BaseModel):
    """``shadow.keep_alive``: once the calibrated decision on a request type's judged shadow records is settled,
    mirror (and so judge) that type at ``rate`` only; back to ``sample`` when it is not (``shadow.keepalive``)."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(0.02, ge=0, le=1, description="share of a settled request type's requests still mirrored")
    interval: Seconds = Field(600.0, gt=0, description="how often the judged records are assessed per request type")
    window: Seconds = Field(
        7 * 86400.0, gt=0, description="the judged shadow records assessed: those stored in this last stretch"
    )
    draws: int = Field(500, ge=50, description="posterior draws per chain of each assessment (2 chains)")
    warmup: int = Field(500, ge=50, description="warm-up iterations per chain of each assessment")


class ShadowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidates: list[str] | None = Field(None, description="candidates to mirror to (default: all)")
    sample: float | dict[str, float] = Field(
        1.0,
        description="share of requests mirrored; per request type as a mapping, with 'default' for the rest",
    )
    queue_size: int = Field(1000, ge=1, description="mirror queue bound; beyond it mirrors are dropped")
    concurrency: int = Field(8, ge=1, description="mirror requests in flight per gateway")
    timeout: Seconds = Field(30.0, description="a mirrored call taking longer is logged as a timeout")
    log_queue_size: int = Field(20000, ge=1, description="write queue bound; beyond it log rows are dropped")
    batch_size: int = Field(200, ge=1)
    flush_interval: Seconds = 0.2
    log_requests: bool = Field(True, description="store the request context (messages, tools, parameters)")
    redact: list[Redaction] = Field(default_factory=list)
    judge: JudgeSettings | None = Field(None, description="judge a sample of mirrored pairs (off = not set)")
    keep_alive: Annotated[KeepAliveSettings | None, BeforeValidator(_keep_alive_shorthand)] = Field(
        None,
        description="a settled request type falls back to this keep-alive mirror rate (needs 'judge'; a number "
        "is the rate)",
    )

    @field_validator("sample")
    @classmethod
    def _share(cls, v: Share) -> Share:
        return _check_share(v)

    def rate(self, request_type: str) -> float:
        return share_for(self.sample, request_type)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway needs from the spec, validated together."""

    incumbent: str
    candidate: str
    mirror_to: list[str]
    gateway: GatewayConfig
    shadow: ShadowConfig
    rollout: RolloutConfig


def load_settings(spec: MigrationSpec) -> Settings:
    where = spec.path or "spec"
    gateway = spec.section("gateway", GatewayConfig)
    if gateway is None:
        raise SpecError(
            f"{where}: the gateway needs a 'gateway' section with 'upstreams' naming a base_url "
            "for the incumbent and each candidate (see docs/gateway.md)"
        )
    missing = [m for m in spec.models if m not in gateway.upstreams]
    if missing:
        raise SpecError(
            f"{where}: field 'gateway.upstreams' has no entry for {', '.join(missing)}; "
            "give each model of the spec a base_url"
        )
    shadow = spec.section("shadow", ShadowConfig, default={})
    rollout = spec.section("rollout", RolloutConfig, default={})
    candidate = rollout.candidate or spec.candidates[0]
    if candidate not in spec.candidates:
        raise SpecError(
            f"{where}: field 'rollout.candidate' is {candidate!r}, which is not one of the "
            f"candidates ({', '.join(spec.candidates)})"
        )
    mirror_to = shadow.candidates if shadow.candidates is not None else list(spec.candidates)
    unknown = [m for m in mirror_to if m not in spec.candidates]
    if unknown:
        raise SpecError(f"{where}: field 'shadow.candidates' names {', '.join(unknown)}, not candidates of the spec")
    if shadow.keep_alive is not None and shadow.judge is None:
        raise SpecError(
            f"{where}: field 'shadow.keep_alive' needs 'shadow.judge' (a request type is settled by the calibrated "
            "decision on its judged pairs); add shadow: {judge: {}} or remove keep_alive"
        )
    return Settings(spec.incumbent, candidate, mirror_to, gateway, shadow, rollout)
