"""The spec's ``judges:`` section: which judge produces each signal, and building them.

    judges:
      correctness: {kind: llm, model: judge-model, rubric: correctness}
      refusal:     {kind: refusal_phrases}
      style:       {kind: llm, model: judge-model, rubric: style, style_guide: style.md}
      format:      {kind: json_schema, schema: {type: object, required: [answer]}}

Every dimension's signal needs a judge; a judge may also produce an extra
signal that no dimension uses (it is stored, and ignored by ``assess``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from changeover.config import MigrationSpec
from changeover.errors import SpecError
from changeover.judges.base import Ask, Judge
from changeover.judges.checks import CHECKS, CheckJudge
from changeover.judges.comparison import ComparisonJudge
from changeover.judges.llm import LLMJudge
from changeover.judges.rubrics import BUILTIN, custom_rubric
from changeover.judges.similarity import DEFAULT_EMBEDDING, SimilarityJudge, offline_encoder

JudgeKind = Literal[
    "llm",
    "json_valid",
    "fenced_json",
    "json_schema",
    "refusal_phrases",
    "length_ratio",
    "language",
    "similarity",
    "tool_called",
    "tool_arguments",
    "tool_abstain",
    "tool_count",
    "tool_order",
]


_LLM_OPTIONS = {"model", "rubric", "levels", "style_guide", "expect_refusal", "retries", "structured", "params"}
OPTIONS_OF: dict[str, set[str]] = {
    "llm": _LLM_OPTIONS,
    "json_schema": {"json_schema"},
    "language": {"language"},
    "refusal_phrases": {"phrases", "expect_refusal"},
    "similarity": {"embedding"},
    "tool_called": {"tool"},
    "tool_order": {"arguments"},
}
"""The settings each judge kind reads; any other one given is an error (it would be ignored)."""


class JudgeConfig(BaseModel):
    """One signal's judge."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: JudgeKind
    model: str | None = Field(None, description="llm: the judge model (a key of models:)")
    rubric: str | None = Field(
        None,
        description="llm: correctness | refusal | style | equivalence | pairwise | comparison, or your own PASS/FAIL "
        "instructions",
    )
    levels: int | None = Field(None, ge=2, le=10, description="llm: answer on a 1..levels scale instead")
    style_guide: str | None = Field(None, description="style: the guide's text, or a file next to the spec")
    json_schema: dict[str, Any] | str | None = Field(
        None, alias="schema", description="json_schema: the schema, or a file"
    )
    language: str | None = Field(None, description="language: expected ISO 639-1 code (default: the request's)")
    phrases: list[str] = Field(default_factory=list, description="refusal_phrases: extra phrases")
    expect_refusal: bool = Field(False, description="refusal: assumed when the traffic does not say")
    retries: int = Field(1, ge=0, le=3, description="llm: re-asks after an unparseable answer")
    structured: bool = Field(
        False, description="llm: constrain the answer with a JSON schema (response_format; OpenAI, vLLM, llama.cpp)"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="llm: generation parameters")
    embedding: str = Field(DEFAULT_EMBEDDING, description="similarity: the offline embedding model")
    tool: str | None = Field(None, description="tool_called: the tool that must be called (default: the incumbent's)")
    arguments: bool = Field(False, description="tool_order: the arguments must be equivalent too")

    @model_validator(mode="after")
    def _needs(self) -> JudgeConfig:
        given = self.model_fields_set - {"kind"}
        foreign = sorted(given - OPTIONS_OF.get(self.kind, set()))
        if foreign:
            names = ["schema" if f == "json_schema" else f for f in foreign]
            allowed = sorted("schema" if f == "json_schema" else f for f in OPTIONS_OF.get(self.kind, set()))
            raise ValueError(
                f"{', '.join(names)} {'does' if len(names) == 1 else 'do'} not apply to a {self.kind} judge "
                f"(it takes: {', '.join(allowed) or 'no options'}); check the kind and the spelling"
            )
        if self.kind == "llm" and not self.model:
            raise ValueError("an llm judge needs 'model' (a key of models:)")
        if self.kind == "llm" and not self.rubric:
            raise ValueError(f"an llm judge needs 'rubric': one of {', '.join(BUILTIN)} or your own text")
        if self.kind == "json_schema" and self.json_schema is None:
            raise ValueError("a json_schema judge needs 'schema' (inline, or a .json file)")
        return self


class JudgesSection(RootModel[dict[str, JudgeConfig]]):
    """``judges:`` maps a signal name to its judge."""


def _text_or_file(spec: MigrationSpec, value: str, field: str) -> str:
    if "\n" not in value and value.endswith((".md", ".txt", ".json", ".yaml", ".yml")):
        path = spec.resolve(value)
        if not path.exists():
            raise SpecError(f"{spec.path or 'spec'}: field '{field}': no such file {path}")
        return path.read_text(encoding="utf-8")
    return value


def _json_schema(spec: MigrationSpec, value: dict[str, Any] | str | None, field: str) -> Any:
    """The schema of a json_schema judge (inline, JSON text or a .json file), checked up front:
    a broken schema is a SpecError now, not a traceback halfway through a run."""
    import jsonschema

    schema = value
    if isinstance(value, str):
        try:
            schema = json.loads(_text_or_file(spec, value, field))
        except json.JSONDecodeError as exc:
            raise SpecError(
                f"{spec.path or 'spec'}: field '{field}': not valid JSON ({exc.msg}, line "
                f"{exc.lineno}); give the schema inline or as a .json file"
            ) from None
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise SpecError(
            f"{spec.path or 'spec'}: field '{field}': not a valid JSON schema ({exc.message[:160]})"
        ) from None
    return schema


def judge_configs(spec: MigrationSpec) -> dict[str, JudgeConfig]:
    """The validated ``judges:`` section; every dimension's signal must have a judge."""
    section = spec.section("judges", JudgesSection)
    configs = dict(section.root) if section is not None else {}
    for name, dim in spec.dimensions.items():
        for signal in dim.signal_names:
            if signal not in configs:
                raise SpecError(
                    f"{spec.path or 'spec'}: field 'judges.{signal}' is missing: dimension "
                    f"'{name}' reads signal '{signal}'; add e.g. "
                    f"judges: {{{signal}: {{kind: llm, model: <judge model>, rubric: {name}}}}}"
                )
    return configs


def judge_models(configs: dict[str, JudgeConfig]) -> list[str]:
    """The models the LLM judges call (they need clients too)."""
    return list(dict.fromkeys(c.model for c in configs.values() if c.kind == "llm" and c.model))


def build_judges(
    spec: MigrationSpec, configs: dict[str, JudgeConfig], ask_for: Callable[[str, str], Ask]
) -> dict[str, Judge]:
    """One judge per signal; ``ask_for(signal, model)`` gives an LLM judge its way to call its model.

    An unknown or uninstalled embedding model is a ``ChangeoverError`` naming it.
    """
    judges: dict[str, Judge] = {}
    for signal, cfg in configs.items():
        if cfg.kind == "llm":
            assert cfg.model and cfg.rubric
            rubric = BUILTIN.get(cfg.rubric) or custom_rubric(signal, cfg.rubric)
            if cfg.levels:
                if rubric.levels is None and set((rubric.labels or {}).values()) != {0, 1}:
                    raise SpecError(
                        f"{spec.path or 'spec'}: field 'judges.{signal}.levels': rubric "
                        f"'{rubric.name}' has no ordinal form; remove 'levels'"
                    )
                rubric = rubric.ordinal(cfg.levels)
            guide = _text_or_file(spec, cfg.style_guide, f"judges.{signal}.style_guide") if cfg.style_guide else ""
            if rubric.builtin == "style" and not guide:
                raise SpecError(
                    f"{spec.path or 'spec'}: field 'judges.{signal}.style_guide' is required by "
                    "the style rubric (the guide's text or a .md file next to the spec)"
                )
            judges[signal] = (ComparisonJudge if rubric.builtin == "comparison" else LLMJudge)(
                signal,
                rubric,
                cfg.model,
                ask_for(signal, cfg.model),
                guide,
                cfg.retries,
                cfg.params,
                cfg.expect_refusal,
                cfg.structured,
            )
        elif cfg.kind == "similarity":
            judges[signal] = SimilarityJudge(signal, *offline_encoder(cfg.embedding))
        else:
            options: dict[str, Any] = {
                "phrases": cfg.phrases,
                "language": cfg.language,
                "tool": cfg.tool,
                "arguments": cfg.arguments,
            }
            if cfg.kind == "refusal_phrases":
                options["expect_refusal"] = cfg.expect_refusal
            if cfg.kind == "json_schema":
                options["schema"] = _json_schema(spec, cfg.json_schema, f"judges.{signal}.schema")
            assert cfg.kind in CHECKS
            judges[signal] = CheckJudge(signal, cfg.kind, {k: v for k, v in options.items() if v})
    return judges
