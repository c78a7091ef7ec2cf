"""The prompt registry: each prompt has an id and per-model variants with versions (YAML files).

    # prompts/support-answer.yaml
    id: support-answer
    description: Answer a customer's billing question
    variants:
      default:                       # any model without its own variant
        version: 3
        system: You are a support agent for ACME. Answer in two sentences.
        template: "Customer question: {question}"
      new-model:                     # the prompt adapted for the candidate
        version: 1
        system: You are ACME's support agent. Reply in at most two sentences, plain text.
        params: {temperature: 0.2}

A variant's ``system`` replaces the logged system message; its ``template``
renders the user turn from the interaction's ``variables``. A malformed file
raises ``SpecError`` naming the file, the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from changeover.config import MigrationSpec
from changeover.errors import RecordsError, SpecError
from changeover.prompts.traffic import Interaction

DEFAULT = "default"


class PromptVariant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | str = 1
    system: str | None = None
    template: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None


class Prompt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    description: str = ""
    variants: dict[str, PromptVariant] = Field(min_length=1)
    path: Path | None = Field(None, exclude=True)

    def variant_for(self, model: str) -> tuple[str, PromptVariant]:
        """The model's own variant, else ``default``, else (if there is just one) that one."""
        if model in self.variants:
            return model, self.variants[model]
        if DEFAULT in self.variants:
            return DEFAULT, self.variants[DEFAULT]
        if len(self.variants) == 1:
            return next(iter(self.variants.items()))
        raise SpecError(
            f"{self.path}: prompt '{self.id}' has no variant for '{model}' and no 'default'; add one under variants:"
        )


class PromptsConfig(BaseModel):
    """The spec's ``prompts:`` section."""

    model_config = ConfigDict(extra="forbid")

    registry: str = Field("prompts", description="folder of prompt YAML files, relative to the spec")


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the YAML node at ``loc``, or of the deepest parent found."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for key in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if str(k.value) == str(key):
                    child = v if key != loc[-1] else k
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def load_prompt(path: Path) -> Prompt:
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}:1: a prompt file is a mapping with 'id' and 'variants'")
    try:
        prompt = Prompt.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            field = ".".join(str(p) for p in loc)
            msg = (
                "is required but missing"
                if err["type"] == "missing"
                else ("is not a known key (check its spelling)" if err["type"] == "extra_forbidden" else err["msg"])
            )
            lines.append(f"{path}:{_line_of(node, loc) or 1}: field '{field}' {msg}")
        raise SpecError("\n".join(lines)) from None
    prompt.path = path
    return prompt


@dataclass
class Registry:
    """All prompts of a registry folder, by id."""

    prompts: dict[str, Prompt]
    folder: Path | None = None

    @classmethod
    def load(cls, folder: str | Path) -> Registry:
        folder = Path(folder)
        if not folder.is_dir():
            raise SpecError(f"{folder}: no such prompt registry folder; create it or fix 'prompts.registry'")
        prompts: dict[str, Prompt] = {}
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            prompt = load_prompt(path)
            if prompt.id in prompts:
                raise SpecError(f"{path}: prompt id '{prompt.id}' is also used by {prompts[prompt.id].path}")
            prompts[prompt.id] = prompt
        return cls(prompts, folder)

    @classmethod
    def empty(cls) -> Registry:
        return cls({})

    def render(self, interaction: Interaction, prompt_for: str) -> Rendered:
        """The interaction as sent to a model, with the variant meant for ``prompt_for``."""
        if interaction.prompt_id is None or interaction.prompt_id not in self.prompts:
            if interaction.prompt_id is not None and self.prompts:
                raise RecordsError(
                    f"{interaction.source}: field 'prompt_id': no prompt "
                    f"'{interaction.prompt_id}' in the registry {self.folder}; "
                    f"known: {', '.join(sorted(self.prompts))}"
                )
            if not interaction.messages:
                raise RecordsError(
                    f"{interaction.source}: the line has no 'messages' or 'prompt' and its "
                    "prompt_id has no template in the registry"
                )
            return Rendered(interaction.messages, interaction.params, interaction.tools, "logged")
        prompt = self.prompts[interaction.prompt_id]
        name, variant = prompt.variant_for(prompt_for)
        messages = [dict(m) for m in interaction.messages]
        if variant.template is not None and interaction.variables:
            try:
                user = variant.template.format_map(interaction.variables)
            except KeyError as exc:
                if not str(exc.args[0]).isidentifier():  # '{"answer": ...}': literal JSON, not a variable
                    raise _template_error(prompt, name, f"no variable {exc}") from None
                raise RecordsError(
                    f"{interaction.source}: field 'variables' has no {exc} needed by the "
                    f"template of prompt '{prompt.id}' variant '{name}' "
                    f"({prompt.path})"
                ) from None
            except (ValueError, IndexError, AttributeError) as exc:  # a lone brace, {0}, {x.y}
                raise _template_error(prompt, name, str(exc)) from None
            last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
            if last_user is None:
                messages.append({"role": "user", "content": user})
            else:
                messages[last_user] = {**messages[last_user], "content": user}
        if variant.system is not None:
            messages = [m for m in messages if m.get("role") not in ("system", "developer")]
            messages.insert(0, {"role": "system", "content": variant.system})
        if not any(m.get("role") == "user" for m in messages):
            raise RecordsError(f"{interaction.source}: no user message after rendering prompt '{prompt.id}'")
        params = {**interaction.params, **variant.params}
        return Rendered(messages, params, variant.tools or interaction.tools, f"{prompt.id}@{name}:v{variant.version}")


def _template_error(prompt: Prompt, variant: str, why: str) -> SpecError:
    return SpecError(
        f"{prompt.path}: field 'variants.{variant}.template' cannot be filled in ({why}); write "
        "literal braces as '{{' and '}}', and variables as {name}"
    )


@dataclass(frozen=True)
class Rendered:
    """What is sent to the model, and which prompt version it is."""

    messages: list[dict[str, Any]]
    params: dict[str, Any]
    tools: list[dict[str, Any]] | None
    version: str


def load_registry(spec: MigrationSpec) -> Registry:
    """The registry the spec's ``prompts:`` section names (empty when there is none)."""
    cfg = spec.section("prompts", PromptsConfig)
    if cfg is None:
        return Registry.empty()
    return Registry.load(spec.resolve(cfg.registry))


def register_variant(
    registry: Registry, prompt_id: str, name: str, variant: PromptVariant, lineage: dict[str, Any]
) -> tuple[Path, Path]:
    """Add (or replace) variant ``name`` of a prompt in its file, and append its lineage.

    The prompt file is rewritten whole (atomically: a temporary file, then a rename) and
    read back; the lineage (parent, pattern, proposer, evidence, and the replaced variant)
    is one JSON line appended to ``<registry>/lineage/<prompt id>.jsonl``. Returns both paths.
    """
    import json
    import os

    prompt = registry.prompts[prompt_id]
    if prompt.path is None or registry.folder is None:
        raise SpecError(f"prompt '{prompt_id}' has no file to register a variant in; load the registry from a folder")
    replaced = prompt.variants.get(name)
    updated = prompt.model_copy(update={"variants": {**prompt.variants, name: variant}})
    raw = updated.model_dump(mode="json", exclude={"path"}, exclude_none=True)
    for v in raw["variants"].values():
        for key in ("params",):
            if not v.get(key):
                v.pop(key, None)
    tmp = prompt.path.with_name(prompt.path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")
    os.replace(tmp, prompt.path)
    registry.prompts[prompt_id] = load_prompt(prompt.path)
    log = registry.folder / "lineage" / f"{prompt_id}.jsonl"
    log.parent.mkdir(exist_ok=True)
    entry = {**lineage, "prompt": prompt_id, "variant": name, "version": variant.version}
    if replaced is not None:
        entry["replaced"] = replaced.model_dump(mode="json", exclude_none=True)
    with log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
    return prompt.path, log
