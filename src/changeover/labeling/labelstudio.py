"""Reading a Label Studio JSON export (a list of tasks with their annotations).

Each task's ``data`` must carry the response's ``item`` and ``model`` (the
names are options); each ``choices`` result's ``from_name`` is the dimension,
its choice the verdict (1/0, yes/no, pass/fail, acceptable/not acceptable).
Cancelled annotations are ignored. Errors name the JSON path, e.g.
``export.json: [3].annotations[0].result[1]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from changeover.errors import RecordsError
from changeover.labeling.label_files import IncomingLabel, parse_time, parse_verdict, text


def _annotator(completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("username") or completed_by.get("id"))
    return f"labelstudio-user-{completed_by}" if completed_by is not None else "labelstudio"


def _results(
    path: Path, loc: str, task_id: Any, annotation: dict[str, Any], item: str, model: str, dimensions: list[str] | None
) -> list[IncomingLabel]:
    out = []
    who = _annotator(annotation.get("completed_by"))
    at = parse_time(annotation.get("created_at"), f"{loc}.created_at")
    for k, result in enumerate(annotation.get("result") or []):
        rloc = f"{loc}.result[{k}]"
        if not isinstance(result, dict) or result.get("type") != "choices":
            continue
        dim = text(result.get("from_name"), f"{rloc}.from_name")
        if dimensions and dim not in dimensions:
            raise RecordsError(
                f"{rloc}.from_name: {dim!r} is not a dimension of the spec "
                f"({', '.join(dimensions)}); name the Label Studio control after it"
            )
        choices = (result.get("value") or {}).get("choices") or []
        if len(choices) != 1:
            raise RecordsError(f"{rloc}.value.choices: expected exactly one choice, got {choices!r}")
        value = parse_verdict(choices[0], f"{rloc}.value.choices[0]")
        cid = f"labelstudio:{task_id}:{annotation.get('id')}/{dim}"
        out.append(IncomingLabel(rloc, item, model, dim, value, "label", who, at, cid))
    return out


def read_labelstudio(
    path: Path, dimensions: list[str] | None, item_field: str = "item", model_field: str = "model"
) -> list[IncomingLabel]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecordsError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(tasks, list):
        raise RecordsError(f"{path}: a Label Studio export is a JSON list of tasks (export as 'JSON')")
    out: list[IncomingLabel] = []
    for i, task in enumerate(tasks):
        tloc = f"{path}: [{i}]"
        if not isinstance(task, dict):
            raise RecordsError(f"{tloc}: a task must be an object")
        data = task.get("data") or {}
        item = text(data.get(item_field), f"{tloc}.data.{item_field}")
        model = text(data.get(model_field), f"{tloc}.data.{model_field}")
        for j, annotation in enumerate(task.get("annotations") or []):
            if isinstance(annotation, dict) and not annotation.get("was_cancelled"):
                out.extend(
                    _results(path, f"{tloc}.annotations[{j}]", task.get("id", i), annotation, item, model, dimensions)
                )
    return out
