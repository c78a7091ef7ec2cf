"""The migration spec: a YAML file read into typed, validated objects.

The core keys (incumbent, candidates, segments, traffic, confidence,
dimensions) are typed here. Feature sections (``models``, ``prompts``,
``judges``, ``shadow``, ``rollout``, ``embeddings``, ``labeling``, ...) are
kept raw and validated by the feature that owns them through
``MigrationSpec.section(name, Model)``, so a bad value anywhere is reported as
``migration.yaml: field 'rollout.stages.1.weight': ...``.

Strict by design: a misspelled key at any level is an error naming the file,
the line and the closest valid key (``did you mean 'rollout'?``). A spec that
silently ignored ``rolout:`` would roll the candidate out on the default plan
with no rollback trigger. The core keys (incumbent, candidates, dimensions)
are required only by the commands that decide; an embedding migration's spec
may hold only its ``embeddings:`` section (``load_spec(path, core=False)``).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

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
    "traffic_import",
)
CORE_REQUIRED = ("incumbent", "candidates", "dimensions")


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
    """The whole spec. ``path`` is where it was read from (for messages and relative paths).

    Feature sections are kept raw (``model_extra``) and validated by their feature through
    ``section``; any other top-level key is refused when the spec is loaded.
    """

    model_config = ConfigDict(extra="allow")

    incumbent: str = ""
    candidates: list[str] = Field(default_factory=list, min_length=1)
    segment_by: list[str] = Field(default_factory=list)
    traffic: Traffic = Field(default_factory=Traffic)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    dimensions: dict[str, Dimension] = Field(default_factory=dict, min_length=1)
    required_segments: Literal["all"] | list[str] = "all"
    seed: int = 20261123
    path: Path | None = Field(None, exclude=True)
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> MigrationSpec:
        if self.incumbent and self.incumbent in self.candidates:
            raise ValueError(f"the incumbent '{self.incumbent}' is also listed as a candidate")
        if len(set(self.candidates)) != len(self.candidates):
            raise ValueError("candidates are listed twice")
        for name, dim in self.dimensions.items():
            if dim.signal is None and dim.signals is None:
                dim.signal = name
        return self

    # ----------------------------------------------------------------- access

    @property
    def has_core(self) -> bool:
        """True when the spec names a migration to decide (incumbent, candidates, dimensions)."""
        return bool(self.incumbent and self.candidates and self.dimensions)

    @property
    def models(self) -> list[str]:
        """Incumbent first, then candidates: the order used everywhere."""
        if not self.has_core:
            raise SpecError(
                f"{self.path or 'spec'}: this command decides a model migration and needs "
                f"{_missing_core(self)}; see `changeover assess --help` for an example spec"
            )
        return [self.incumbent, *self.candidates]

    def raw(self, name: str) -> Any:
        """A feature section as written in the YAML (None when absent)."""
        return (self.model_extra or {}).get(name)

    def section(self, name: str, model: type[T], default: Any = None) -> T | None:
        """Validate feature section ``name`` with ``model``; errors name the field path, line and fix."""
        raw = self.raw(name)
        if raw is None:
            if default is None:
                return None
            raw = default
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise SpecError(
                format_validation_error(exc, self.path or "spec", prefix=name, model=model, lines=self._lines)
            ) from None

    def require(self, name: str, model: type[T], command: str) -> T:
        """Like ``section``, for a section that ``command`` cannot run without: its absence is named."""
        got = self.section(name, model)
        if got is None:
            line = f":{self._lines[()]}" if () in self._lines else ""
            raise SpecError(
                f"{self.path or 'spec'}{line}: `{command}` needs the '{name}:' section, and the spec has none; "
                f"add it (docs/ describe its keys)"
            )
        return got

    def resolve(self, relative: str | Path) -> Path:
        """A path written in the spec, relative to the spec file's folder."""
        p = Path(relative)
        if p.is_absolute() or self.path is None:
            return p
        return (self.path.parent / p).resolve()


def _missing_core(spec: MigrationSpec) -> str:
    missing = [k for k in CORE_REQUIRED if not getattr(spec, k)]
    return " and ".join(f"'{k}'" for k in missing) or "the core keys"


# --------------------------------------------------------------------------- error messages


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    if known:
        shown = ", ".join(sorted(known)[:12])
        return f"; known keys here: {shown}"
    return ""


def _known_keys(model: type[BaseModel], parent: tuple[Any, ...]) -> list[str]:
    """The keys a model accepts at ``parent`` (a pydantic error location), read from its JSON schema."""
    try:
        schema = model.model_json_schema()
    except Exception:  # a model with types JSON schema cannot describe: no suggestion, still an error
        return []
    defs = schema.get("$defs", {})

    def resolve(node: dict[str, Any]) -> list[dict[str, Any]]:
        if "$ref" in node:
            return resolve(defs.get(node["$ref"].rsplit("/", 1)[-1], {}))
        options = node.get("anyOf") or node.get("oneOf") or node.get("allOf")
        if options:
            return [r for o in options for r in resolve(o)]
        return [node]

    nodes = resolve(schema)
    for part in parent:
        nxt: list[dict[str, Any]] = []
        for node in nodes:
            props = node.get("properties") or {}
            if isinstance(part, str) and part in props:
                nxt += resolve(props[part])
            elif isinstance(part, int) and isinstance(node.get("items"), dict):
                nxt += resolve(node["items"])
            elif isinstance(node.get("additionalProperties"), dict):
                nxt += resolve(node["additionalProperties"])
        nodes = nxt or nodes  # a part the schema does not show (a union tag): stay where we are
    keys: list[str] = []
    for node in nodes:
        keys += [k for k in (node.get("properties") or {}) if k not in keys]
    return keys


def _line_of(lines: dict[tuple[str | int, ...], int], loc: tuple[Any, ...]) -> int | None:
    """The YAML line of a location, skipping parts the YAML does not have (pydantic's union tags)."""
    path: tuple[str | int, ...] = ()
    best = lines.get(())
    for part in loc:
        if path + (part,) in lines:
            path = path + (part,)
            best = lines[path]
    return best


def format_validation_error(
    exc: ValidationError,
    path: object,
    prefix: str = "",
    model: type[BaseModel] | None = None,
    lines: dict[tuple[str | int, ...], int] | None = None,
) -> str:
    """Turn a pydantic error into 'file:line: field 'a.b': message' lines, with the closest key for a typo."""
    out = []
    lines = lines or {}
    for err in exc.errors():
        loc = tuple(err["loc"])
        full = ((prefix,) if prefix else ()) + loc
        name = ".".join(str(p) for p in full)
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "is required but missing"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known key" + (
                _suggest(str(loc[-1]), _known_keys(model, loc[:-1])) if model is not None else " (check its spelling)"
            )
        line = _line_of(lines, full)
        at = f"{path}:{line}" if line is not None else f"{path}"
        out.append(f"{at}: field '{name}' {msg}" if name else f"{at}: {msg}")
    return "\n".join(out)


def _yaml_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Map each key path of a YAML document to its 1-based line (for error messages)."""
    out: dict[tuple[str | int, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (str(key.value),)
                out[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                out[path + (i,)] = value.start_mark.line + 1
                walk(value, path + (i,))

    if root is not None:
        out[()] = root.start_mark.line + 1
        walk(root, ())
    return out


# --------------------------------------------------------------------------- loading


def load_spec(path: str | Path, *, core: bool = True) -> MigrationSpec:
    """Read and validate a migration spec YAML file.

    ``core=False`` accepts a spec without incumbent/candidates/dimensions (an embedding migration);
    every key present is still checked.
    """
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: no such spec file; see `changeover assess --help` for an example")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc}); it must be a UTF-8 YAML file") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return spec_from_dict(raw, path, core=core, lines=_yaml_lines(text))


def spec_from_dict(
    raw: Any,
    path: str | Path = "spec",
    *,
    core: bool = True,
    lines: dict[tuple[str | int, ...], int] | None = None,
) -> MigrationSpec:
    """Validate an already-parsed spec mapping (used by tests and the demo)."""
    lines = lines or {}
    if not isinstance(raw, dict):
        raise SpecError(
            f"{path}: the spec must be a YAML mapping with at least 'incumbent', 'candidates' and 'dimensions'"
        )
    known = [name for name in MigrationSpec.model_fields if name != "path"] + list(FEATURE_SECTIONS)
    problems = []
    for key in raw:
        if str(key) not in known:
            line = lines.get((str(key),))
            at = f"{path}:{line}" if line is not None else f"{path}"
            problems.append(f"{at}: '{key}' is not a known top-level key{_suggest(str(key), known)}")
    if core:
        for key in CORE_REQUIRED:
            if key not in raw:
                problems.append(f"{path}: field '{key}' is required but missing")
    try:
        spec = MigrationSpec.model_validate(raw)
    except ValidationError as exc:
        problems.append(format_validation_error(exc, path, model=MigrationSpec, lines=lines))
    if problems:
        raise SpecError("\n".join(problems))
    spec.path = Path(path)
    spec._lines = lines
    return spec
