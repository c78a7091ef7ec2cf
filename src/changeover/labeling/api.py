"""The JSON API behind the pages, for other tools too.

- ``GET /api/next``: the response to judge now (leased to the caller), blind: no model name.
- ``POST /api/labels``: ``{"client_id", "task" | ("item", "model"), "status"?, "verdicts"?, "corrects"?}``;
  idempotent by ``client_id`` (a resend answers 200 with ``duplicate: true``).
- ``POST /api/resolve``: the admin settles a response ``{"client_id", "task", "reason", "verdicts"?, "flag"?}``.
- ``GET /api/progress``: the caller's counts; the admin gets the whole panel.
- ``GET /api/flags?status=flag|skip``: flagged (or skipped) responses with their notes (admin).
- ``GET /api/disagreements``: responses whose verdicts in force differ, who said what (admin).
- ``GET /api/export?format=csv|jsonl``: every label row (admin).
"""

from __future__ import annotations

import io
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from changeover import jsonlimits as limits
from changeover.labeling.accounts import Annotator
from changeover.labeling.auth import guarded
from changeover.labeling.export import FORMATS, write_labels
from changeover.labeling.resolve import parse_resolution
from changeover.labeling.review import disagreements, flagged
from changeover.labeling.service import LabelingService
from changeover.labeling.submit import (
    MAX_ITEM,
    MAX_MODEL,
    MAX_TASK,
    LabelRequestError,
    bounded,
    parse_submission,
    shown,
)
from changeover.labeling.tasks import Task

MAX_JSON_DEPTH = 8  # a label nests 2 deep ({"verdicts": {...}})


def task_json(service: LabelingService, task: Task) -> dict[str, Any]:
    """A task as annotators see it: the interaction and one response, never the model's name."""
    return {
        "task": task.id,
        "item": task.item,
        "messages": [{"role": m.role, "content": m.content} for m in task.messages()],
        "response": task.response,
        "reference": task.reference,
        "response_hash": task.response_hash,
        "dimensions": [{"name": d, "rubric": service.rubric(d)} for d in service.dimensions],
    }


def _service(request: Request) -> LabelingService:
    return request.app.state.service


def _error(exc: LabelRequestError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


@guarded()
def next_task(request: Request, who: Annotator) -> Response:
    service = _service(request)
    task = service.next_task(who.name)
    if task is None:
        return JSONResponse({"task": None, "message": "nothing left to label for you right now"})
    return JSONResponse(task_json(service, task))


def _target(service: LabelingService, body: dict[str, Any]) -> Task:
    task = bounded(body, "task", MAX_TASK, "the task id from GET /api/next")
    if task is not None:
        return service.task(task)
    item = bounded(body, "item", MAX_ITEM, "the item id")
    model = bounded(body, "model", MAX_MODEL, "the model name")
    if item is not None and model is not None:
        return service.task_for(item, model)
    raise LabelRequestError("name the response: 'task' (from GET /api/next) or 'item' and 'model'")


@guarded()
def post_label(request: Request, who: Annotator) -> Response:
    service = _service(request)
    body, error = _json_body(request)
    if error is not None:
        return error
    try:
        sub = parse_submission(body, service.dimensions)
        task = _target(service, body)
        result = service.submit(who.name, task, sub)
    except LabelRequestError as exc:
        return _error(exc)
    return JSONResponse(result.to_json(), status_code=200 if result.duplicate else 201)


def _json_body(request: Request) -> tuple[Any, Response | None]:
    """The request's JSON body, or the error response to send (415, 400)."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        # a cross-site HTML form cannot send this type, so a login cookie cannot be abused to post
        return None, JSONResponse({"error": "send JSON (Content-Type: application/json)"}, status_code=415)
    try:
        return limits.loads(request.state.body or b"null", MAX_JSON_DEPTH), None
    except limits.TooDeep as exc:
        return None, JSONResponse({"error": f"{exc}; a label is a flat object"}, status_code=400)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, JSONResponse({"error": "the body must be JSON"}, status_code=400)


@guarded(admin=True)
def post_resolution(request: Request, who: Annotator) -> Response:
    """The admin settles a response (verdicts that supersede those in force) or dismisses a flag."""
    service = _service(request)
    body, error = _json_body(request)
    if error is not None:
        return error
    try:
        res = parse_resolution(body, service.dimensions)
        task = _target(service, body)
        payload = service.resolve(who.name, task, res)
    except LabelRequestError as exc:
        return _error(exc)
    return JSONResponse(payload, status_code=201)


@guarded()
def progress(request: Request, who: Annotator) -> Response:
    service = _service(request)
    return JSONResponse(service.progress(None if who.is_admin else who.name))


def export_response(service: LabelingService, fmt: str) -> Response:
    if fmt not in FORMATS:
        return JSONResponse({"error": f"format {shown(fmt)}: use csv or jsonl"}, status_code=422)
    buf = io.StringIO()
    write_labels(service.store, fmt, buf)
    media = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return Response(
        buf.getvalue(), media_type=media, headers={"Content-Disposition": f'attachment; filename="labels.{fmt}"'}
    )


@guarded(admin=True)
def flags(request: Request, who: Annotator) -> Response:
    service = _service(request)
    status = request.query_params.get("status", "flag")
    if status not in ("flag", "skip"):
        return JSONResponse({"error": f"status {shown(status)}: use flag or skip"}, status_code=422)
    return JSONResponse({"flags": [f.to_json() for f in flagged(service.store, service.catalogue, status)]})


@guarded(admin=True)
def disagreements_list(request: Request, who: Annotator) -> Response:
    service = _service(request)
    return JSONResponse({"disagreements": [d.to_json() for d in disagreements(service.store, service.catalogue)]})


@guarded(admin=True)
def export(request: Request, who: Annotator) -> Response:
    return export_response(_service(request), request.query_params.get("format", "csv"))
