"""The migration spec: a YAML file read into typed, validated objects.

The core keys (incumbent, candidates, segments, traffic, confidence,
dimensions) are typed here. Feature sections (``models``, ``prompts``,
``judges``, ``shadow``, ``rollout``, ``embeddings``, ``labeling``, ...) are
kept raw and validated by the feature that owns them through
``MigrationSpec.section(name, Model)``, so a bad value anywhere is reported as
``migration.yaml: field 'rollout.stages.1.weight': ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from changeover.errors import SpecError

T = TypeVar("T", bound=BaseModel)

FEATURE_SECTIONS = (
    "models",
    "prompts",
    "judges",
    "evaluate",
    "pricing",
    "shadow",
    "rollout",
    "embeddings",
    "labeling",
    "report",
    "redaction",
    "gateway",
)


class Dimension(BaseModel):
    """One quality dimension to decide on (correctness, refusal behaviour, style)."""

    model_config = ConfigDict(extra="forbid")

    signal: str | None = Field(
        None, description="signals key holding the automated verdict; default: the dimension's name"
    )
    margin: float = Field(0.02, ge=0.0, lt=1.0, description="non-inferiority margin on the pass rate")
    levels: int | None = Field(None, ge=2, le=20, description="number of ordinal levels 1..K, if the signal is ordinal")
    bins: int = Field(4, ge=2, le=20, description="quantile bins for a continuous score in [0,1]")
    signals: list[str] | None = Field(
        None,
        min_length=1,
        description="several signals keys for this dimension (each with its own per-model confusion); "
        "use instead of 'signal'",
    )
    errors: Literal["fail", "exclude"] = Field(
        "fail",
        description="a response with an error (or no answer) is unacceptable ('fail', the default) "
        "or left out of this dimension ('exclude')",
    )
    required: bool = True
    rubric: str | None = Field(None, description="text shown to judges and human annotators")

    @model_validator(mode="after")
    def _one_way_to_name_signals(self) -> Dimension:
        if self.signal is not None and self.signals is not None:
            raise ValueError("give either 'signal' or 'signals', not both")
        if self.signals is not None and len(set(self.signals)) != len(self.signals):
            raise ValueError("'signals' lists a signal twice")
        return self

    @property
    def signal_names(self) -> list[str]:
        """The signals keys this dimension reads, in the spec's order (one unless ``signals`` lists several)."""
        if self.signals is not None:
            return list(self.signals)
        assert self.signal is not None  # filled with the dimension's name by MigrationSpec
        return [self.signal]


class Traffic(BaseModel):
    """Production traffic: what impact estimates and the overall delta are weighted by."""

    model_config = ConfigDict(extra="forbid")

    monthly_interactions: float | None = Field(None, ge=0)
    shares: dict[str, float] | None = None

    @field_validator("shares")
    @classmethod
    def _shares_positive(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None:
            if any(s < 0 for s in v.values()):
                raise ValueError("shares must be >= 0")
            if sum(v.values()) <= 0:
                raise ValueError("shares must not all be zero")
        return v


class MigrationSpec(BaseModel):
    """The whole spec. ``path`` is where it was read from (for messages and relative paths)."""

    model_config = ConfigDict(extra="allow")

    incumbent: str
    candidates: list[str] = Field(min_length=1)
    segment_by: list[str] = Field(default_factory=list)
    traffic: Traffic = Field(default_factory=Traffic)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    dimensions: dict[str, Dimension] = Field(min_length=1)
    required_segments: Literal["all"] | list[str] = "all"
    seed: int = 20261123
    path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> MigrationSpec:
        if self.incumbent in self.candidates:
            raise ValueError(f"the incumbent '{self.incumbent}' is also listed as a candidate")
        if len(set(self.candidates)) != len(self.candidates):
            raise ValueError("candidates are listed twice")
        for name, dim in self.dimensions.items():
            if dim.signal is None and dim.signals is None:
                dim.signal = name
        return self

    # ----------------------------------------------------------------- access

    @property
    def models(self) -> list[str]:
        """Incumbent first, then candidates: the order used everywhere."""
        return [self.incumbent, *self.candidates]

    def raw(self, name: str) -> Any:
        """A feature section as written in the YAML (None when absent)."""
        return (self.model_extra or {}).get(name)

    def section(self, name: str, model: type[T], default: Any = None) -> T | None:
        """Validate feature section ``name`` with ``model``; errors name the field path."""
        raw = self.raw(name)
        if raw is None:
            if default is None:
                return None
            raw = default
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise SpecError(format_validation_error(exc, self.path or "spec", prefix=name)) from None

    def resolve(self, relative: str | Path) -> Path:
        """A path written in the spec, relative to the spec file's folder."""
        p = Path(relative)
        if p.is_absolute() or self.path is None:
            return p
        return (self.path.parent / p).resolve()


def format_validation_error(exc: ValidationError, path: object, prefix: str = "") -> str:
    """Turn a pydantic error into 'file: field 'a.b': message' lines."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if prefix:
            loc = f"{prefix}.{loc}" if loc else prefix
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "is required but missing"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known key (check its spelling)"
        lines.append(f"{path}: field '{loc}' {msg}" if loc else f"{path}: {msg}")
    return "\n".join(lines)


def load_spec(path: str | Path) -> MigrationSpec:
    """Read and validate a migration spec YAML file."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: no such spec file; see `changeover assess --help` for an example")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return spec_from_dict(raw, path)


def spec_from_dict(raw: Any, path: str | Path = "spec") -> MigrationSpec:
    """Validate an already-parsed spec mapping (used by tests and the demo)."""
    if not isinstance(raw, dict):
        raise SpecError(
            f"{path}: the spec must be a YAML mapping with at least 'incumbent', 'candidates' and 'dimensions'"
        )
    try:
        spec = MigrationSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, path)) from None
    spec.path = Path(path)
    return spec
