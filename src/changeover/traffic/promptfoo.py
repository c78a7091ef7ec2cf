"""promptfoo configs and test files (YAML): each test case, rendered into each prompt, is one interaction.

A ``promptfooconfig.yaml`` has ``prompts`` (strings with ``{{var}}`` placeholders,
chat prompts as a JSON list of messages, ``{raw, label}`` objects or ``file://``
references), ``tests`` (a list, or a ``file://`` reference) and ``defaultTest``. A
tests file is the bare list; its cases then need a ``prompt`` (or ``question``,
``input``, ``query``) variable. A variable holding a list expands into one case per
value, as promptfoo does. The first ``equals`` / ``contains`` / ``similar`` assertion
becomes the reference, an ``is-refusal`` assertion sets ``expect_refusal``; the case's
``metadata`` becomes its segment.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from changeover.traffic.common import (
    Loc,
    TrafficError,
    TrafficRow,
    line_of,
    node_at,
    read_yaml_with_lines,
    shape_errors,
)
from changeover.traffic.openai_chat import messages_from

NAME = "promptfoo"
PROMPT_VARS = ("prompt", "question", "input", "query")
REFERENCE_ASSERTS = ("equals", "contains", "icontains", "starts-with", "similar")
_VAR = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


def detect_path(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def render(template: str, variables: dict[str, Any], loc: Loc) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in variables:
            raise TrafficError(f"{loc.field(f'vars.{name}')} is used by the prompt but the test does not set it")
        value = variables[name]
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return _VAR.sub(sub, template)


def _load_ref(ref: str, base: Path, loc: Loc) -> str:
    target = (base / ref.removeprefix("file://")).resolve()
    if not target.exists():
        raise TrafficError(f"{loc}: {ref} names a file that does not exist ({target})")
    return target.read_text(encoding="utf-8")


def _prompts(raw: Any, base: Path, loc: Loc) -> list[tuple[str, str]]:
    """(label, template) for each prompt of the config."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, p in enumerate(items):
        label = f"prompt{i + 1}"
        if isinstance(p, dict):
            label = str(p.get("label") or p.get("id") or label)
            p = p.get("raw") or p.get("id")
        if not isinstance(p, str):
            raise TrafficError(f"{loc.field(f'prompts.{i}')} must be a string, a file:// reference or {{raw, label}}")
        if p.startswith("file://"):
            label = label if label != f"prompt{i + 1}" else Path(p).stem
            p = _load_ref(p, base, loc.at(f"prompts.{i}"))
        out.append((label, p))
    return out


def _expand(variables: dict[str, Any]) -> list[dict[str, Any]]:
    lists = {k: v for k, v in variables.items() if isinstance(v, list)}
    if not lists:
        return [variables]
    keys = list(lists)
    return [{**variables, **dict(zip(keys, combo, strict=True))} for combo in itertools.product(*lists.values())]


def _messages(template: str, variables: dict[str, Any], loc: Loc) -> list[dict[str, Any]]:
    text = template.strip()
    if text.startswith("["):
        try:
            chat = json.loads(text)
        except json.JSONDecodeError:
            chat = None
        if isinstance(chat, list):
            rendered = [
                {**m, "content": render(m["content"], variables, loc)} if isinstance(m.get("content"), str) else m
                for m in chat
                if isinstance(m, dict)
            ]
            return messages_from(rendered, loc)
    return [{"role": "user", "content": render(template, variables, loc)}]


def _checks(asserts: Any) -> tuple[str | None, bool | None]:
    reference, refusal = None, None
    for a in asserts or []:
        if not isinstance(a, dict):
            continue
        kind = a.get("type")
        if kind in REFERENCE_ASSERTS and reference is None and isinstance(a.get("value"), str):
            reference = a["value"]
        elif kind == "is-refusal":
            refusal = True
        elif kind == "not-is-refusal":
            refusal = False
    return reference, refusal


def convert(path: Path, **_: Any) -> Iterator[TrafficRow]:
    data, root = read_yaml_with_lines(path)
    base = path.parent
    if isinstance(data, list):
        config: dict[str, Any] = {"tests": data}
        tests_node = root
    elif isinstance(data, dict):
        config, tests_node = data, node_at(root, "tests")
    else:
        raise TrafficError(f"{path}:1: a promptfoo file is a config mapping (prompts, tests) or a list of tests")
    tests = config.get("tests")
    if isinstance(tests, str) and tests.startswith("file://"):
        target = (base / tests.removeprefix("file://")).resolve()
        if target.suffix.lower() not in (".yaml", ".yml", ".json"):
            raise TrafficError(
                f"{Loc(path, line_of(tests_node)).field('tests')}: only YAML or JSON test files are read, got {tests}"
            )
        yield from convert(target) if "prompts" not in config else _with_prompts(config, target, base)
        return
    if not isinstance(tests, list) or not tests:
        raise TrafficError(
            f"{Loc(path, line_of(tests_node) or 1).field('tests')} must be a non-empty list of test cases"
        )
    prompts = _prompts(config.get("prompts"), base, Loc(path, line_of(node_at(root, "prompts"))))
    default = config.get("defaultTest") or {}
    yield from _cases(path, tests, tests_node, prompts, default)


def _with_prompts(config: dict[str, Any], tests_path: Path, base: Path) -> Iterator[TrafficRow]:
    data, root = read_yaml_with_lines(tests_path)
    if not isinstance(data, list):
        raise TrafficError(f"{tests_path}:1: a tests file is a list of test cases")
    prompts = _prompts(config.get("prompts"), base, Loc(tests_path, 1))
    yield from _cases(tests_path, data, root, prompts, config.get("defaultTest") or {})


def _cases(
    path: Path, tests: list[Any], tests_node: Any, prompts: list[tuple[str, str]], default: dict[str, Any]
) -> Iterator[TrafficRow]:
    for i, test in enumerate(tests):
        loc = Loc(path, line_of(node_at(tests_node, i)))
        if not isinstance(test, dict):
            raise TrafficError(f"{loc}: a test case is a mapping with 'vars' (and 'assert')")
        with shape_errors(loc):
            rows = list(_rows(path, i, test, loc, prompts, default))
        yield from rows


def _rows(
    path: Path, i: int, test: dict[str, Any], loc: Loc, prompts: list[tuple[str, str]], default: dict[str, Any]
) -> Iterator[TrafficRow]:
    """The interactions of test case ``i``: each expansion of its list variables, in each prompt."""
    for where, given in (("defaultTest.vars", default.get("vars")), ("vars", test.get("vars"))):
        if given is not None and not isinstance(given, dict):
            raise TrafficError(f"{loc.field(where)} must be a mapping of variables (file:// vars are not read)")
    variables = {**(default.get("vars") or {}), **(test.get("vars") or {})}
    reference, refusal = _checks([*(default.get("assert") or []), *(test.get("assert") or [])])
    segment = {str(k): str(v) for k, v in (test.get("metadata") or {}).items() if isinstance(v, (str, int, float))}
    for j, expanded in enumerate(_expand(variables)):
        templates = prompts
        if not templates:
            name = next((v for v in PROMPT_VARS if isinstance(expanded.get(v), str)), None)
            if name is None:
                raise TrafficError(
                    f"{loc.field('vars')}: no prompts in the config, so a test needs a text variable named one of "
                    f"{', '.join(PROMPT_VARS)}"
                )
            templates = [("promptfoo", "{{" + name + "}}")]
        for label, template in templates:
            item = f"{path.stem}-{i + 1}" + (f"-{j + 1}" if j else "") + (f"-{label}" if len(templates) > 1 else "")
            yield TrafficRow(
                item=item,
                messages=_messages(template, expanded, loc),
                segment={"request_type": label, **segment},
                reference=reference,
                expect_refusal=refusal,
                variables=expanded,
                source=str(loc),
                raw=test,
            )
